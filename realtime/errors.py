"""The exception tree. Messages are one line for the user: what is wrong and what to do.

Leaves also subclass the matching builtin, so callers can catch ``FileNotFoundError`` or
``ValueError`` without knowing this module.
"""

from __future__ import annotations


class StylizeError(Exception):
    """Base of every error this package raises on purpose."""


class InputNotFoundError(StylizeError, FileNotFoundError):
    """An input file or folder does not exist."""


class BadImageError(StylizeError, ValueError):
    """A file that should be a picture is not one we can read."""


class BadVideoError(StylizeError, ValueError):
    """A file that should be a video is not one, or has no video stream."""


class OutputError(StylizeError, OSError):
    """The output cannot be written where asked (exists, not writable, is the input)."""


class UnknownModelError(StylizeError, LookupError):
    """A model name that the registry does not know."""


class WeightsError(StylizeError, OSError):
    """Weights could not be downloaded, failed verification, or have the wrong layout."""


class BadSettingError(StylizeError, ValueError):
    """A setting out of its range (style weights, strength, sizes)."""


class InputTooLargeError(StylizeError, ValueError):
    """An input bigger than we stylise without being told how (see --max-size)."""


def out_of_space(error: BaseException) -> bool:
    """True for a write that failed because the disk is full or a file-size limit was reached."""
    import errno

    while error is not None:
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
            return True
        error = getattr(error, "error", None) or error.__cause__
    return False


class PipelineError(StylizeError, RuntimeError):
    """A worker thread failed; ``where`` names the stage (decode, stylise, encode)."""

    def __init__(self, where: str, error: BaseException):
        self.where = where
        super().__init__(f"{where} failed: {type(error).__name__}: {error}")


class BackendUnavailableError(StylizeError, RuntimeError):
    """No inference backend asked for (or none at all, for 'auto') could start."""


class CameraError(StylizeError, OSError):
    """The camera is missing, busy, or stopped delivering frames."""
