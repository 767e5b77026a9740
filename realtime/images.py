"""Reading pictures of any common kind into the frame contract (uint8 H x W x 3 RGB)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from .errors import BadImageError, InputNotFoundError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif"}
MAX_MEGAPIXELS = 120  # an 8K frame is 33 MP; a bigger picture would take GBs of memory to stylise


def _to_rgb8(img) -> np.ndarray:
    """Any Pillow mode -> uint8 RGB; transparency is composited on white."""
    from PIL import Image

    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        grey = np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(canvas, rgba)
    arr = np.asarray(img.convert("RGB"))
    if arr.dtype != np.uint8:  # 16-bit RGB PNGs arrive as uint16 on some Pillow versions
        arr = (arr.astype(np.float64) / 257.0 + 0.5).astype(np.uint8)
    return np.ascontiguousarray(arr)


def load_image(path: str | Path, max_side: int | None = None) -> np.ndarray:
    """Read a picture as uint8 (H, W, 3) RGB, upright (EXIF orientation applied).

    Greyscale, CMYK, palette, RGBA and 16-bit images are converted; ``max_side`` shrinks
    (never enlarges) so the longer side is at most that many pixels.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    if not path.exists():
        raise InputNotFoundError(f"image not found: {path}")
    if path.is_dir():
        raise BadImageError(f"{path} is a folder, not an image")
    if not path.is_file():  # a FIFO or a device would block the read
        raise BadImageError(f"{path} is not a regular file; save the picture to a file first")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # _check_pixels decides
            with Image.open(path) as img:
                _check_pixels(path, img.width, img.height)
                img.load()
                img = ImageOps.exif_transpose(img)
                if img.width == 0 or img.height == 0:
                    raise BadImageError(f"{path} has zero size ({img.width}x{img.height}); pass a real picture")
                rgb = _to_rgb8(img)
    except Image.DecompressionBombError as e:  # Pillow refuses twice its limit before we see the size
        raise BadImageError(f"{path} is more than the {MAX_MEGAPIXELS} megapixels we decode; downscale it first") from e
    except PermissionError as e:
        raise BadImageError(f"{path} is not readable (permission denied); check its permissions") from e
    except UnidentifiedImageError as e:
        raise BadImageError(f"{path} is not an image Pillow can read; pass a JPEG, PNG or WebP") from e
    except (OSError, SyntaxError, ValueError) as e:
        if isinstance(e, BadImageError):
            raise
        raise BadImageError(f"{path} could not be decoded ({e}); re-save it as PNG or JPEG") from e
    if max_side and max(rgb.shape[:2]) > max_side:
        rgb = resize_long_side(rgb, max_side)
    return rgb


def _check_pixels(path: Path, w: int, h: int) -> None:
    if w * h > MAX_MEGAPIXELS * 1_000_000:
        raise BadImageError(f"{path} is {w}x{h} ({w * h / 1e6:.0f} megapixels), more than the {MAX_MEGAPIXELS} "
                            f"we decode; downscale it first")


def resize_long_side(rgb: np.ndarray, long_side: int) -> np.ndarray:
    """Area-resample so max(H, W) == long_side (aspect kept, at least 1 pixel)."""
    import cv2

    h, w = rgb.shape[:2]
    scale = long_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    return cv2.resize(rgb, size, interpolation=interp)


def save_image(path: str | Path, rgb: np.ndarray) -> None:
    """Write uint8 (H, W, 3) RGB; the format follows the suffix."""
    from PIL import Image

    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected uint8 (H, W, 3), got {rgb.dtype} {rgb.shape}")
    Image.fromarray(rgb).save(path)
