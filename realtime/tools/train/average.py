"""Average the weights of exported models of one network (a "model soup").

Two checkpoints of one lineage often sit on either side of a trade-off (one more styled, one
closer to the photograph); the mean of their weights can land ahead of both on the two measures
at once, at no cost in speed. Only files of the same student config and tensor names average.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ...errors import BadSettingError, OutputError, WeightsError


def average_models(paths: list[str | os.PathLike], out: str | os.PathLike,
                   weights: list[float] | None = None) -> Path:
    """Write the weighted mean of the tensors of ``paths`` (our safetensors models) to ``out``.

    weights: one non-negative number per file (normalised to sum 1); equal weights when None.
    The inputs are only read; ``out`` must not be one of them and is written by rename
    (``write_student``), so a failure leaves no half-written file."""
    from ...model import _read_student, write_student

    paths = [Path(p) for p in paths]
    out = Path(out)
    if len(paths) < 2:
        raise BadSettingError(f"averaging needs at least two models, got {len(paths)}")
    weights = [1.0] * len(paths) if weights is None else [float(w) for w in weights]
    if len(weights) != len(paths) or min(weights) < 0 or sum(weights) <= 0:
        raise BadSettingError(f"need one non-negative weight per model ({len(paths)}), got {weights}")
    if any(out.resolve() == p.resolve() for p in paths if p.exists()):
        raise OutputError(f"{out} is one of the models being averaged; write the average to a new file")
    total = sum(weights)
    acc: dict[str, torch.Tensor] = {}
    dtypes: dict[str, torch.dtype] = {}
    first_cfg, first_keys = None, None
    for p, w in zip(paths, weights):
        if not p.is_file():
            raise WeightsError(f"{p} does not exist")
        cfg, tensors = _read_student(p, tensors=True)
        if first_cfg is None:
            first_cfg, first_keys = cfg, sorted(tensors)
            dtypes = {k: t.dtype for k, t in tensors.items()}
        elif cfg != first_cfg or sorted(tensors) != first_keys:
            raise WeightsError(f"{p} is a different network from {paths[0]} (student config or tensor names "
                               f"differ); only checkpoints of one network can be averaged")
        for k, t in tensors.items():
            acc[k] = acc.get(k, 0) + t.double() * (w / total)
    steps = "weight average of " + ", ".join(f"{p.name} x {w / total:.3g}" for p, w in zip(paths, weights))
    return write_student({k: v.to(dtypes[k]) for k, v in acc.items()}, first_cfg, out, {"steps": steps})


def main(argv: list[str] | None = None) -> None:
    import argparse

    p = argparse.ArgumentParser(description="Average the weights of exported models of one network.\n\n"
                                "Example: python scripts/average_models.py runs/a.safetensors runs/b.safetensors "
                                "-o runs/mix.safetensors", formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="+", help="exported .safetensors files of one student config")
    p.add_argument("-o", "--output", required=True, help="where to write the average (a new file)")
    p.add_argument("--weights", type=float, nargs="+", help="one weight per model (default: equal)")
    args = p.parse_args(argv)
    try:
        out = average_models(args.models, args.output, args.weights)
    except (BadSettingError, OutputError, WeightsError) as e:
        raise SystemExit(f"error: {e}") from None
    print(f"wrote {out}")
