"""``stylize doctor``: what this machine offers (devices, backends, codecs, models)."""

from __future__ import annotations

import os
import platform


def _line(label: str, value: str) -> str:
    return f"{label:<22}{value}"


def report(cache_dir: str | None = None) -> str:
    from .media import import_av

    av = import_av()
    import numpy
    import torch

    from .registry import cache_root, default_model, file_status, models_dir, registry

    lines = [_line("python", platform.python_version()), _line("numpy", numpy.__version__),
             _line("torch", torch.__version__), _line("cpu threads", f"{torch.get_num_threads()} of {os.cpu_count()}")]
    from .backends import cpu_has_native_bf16

    lines.append(_line("cpu bfloat16", "native: auto runs torch-bf16 on the CPU" if cpu_has_native_bf16()
                       else "not native (no AVX512-BF16 or AMX): auto runs ONNX Runtime fp32 on the CPU"))
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            lines.append(_line(f"cuda:{i}", torch.cuda.get_device_name(i)))
    else:
        lines.append(_line("cuda", "not available (CPU only)"))
    try:
        import onnxruntime as ort

        lines.append(_line("onnxruntime", f"{ort.__version__}: {', '.join(ort.get_available_providers())}"))
    except ImportError:
        lines.append(_line("onnxruntime", "not installed (pip install 'realtime-style[onnx]')"))
    codecs = []
    for name in ("libx264", "h264", "aac"):
        try:
            av.codec.Codec(name, "w")
            codecs.append(f"{name} encode")
        except Exception:  # noqa: BLE001 - a missing codec is what we report
            codecs.append(f"{name} MISSING")
    lines.append(_line("PyAV", f"{av.__version__} ({', '.join(codecs)})"))
    lines.append(_line("weights cache", str(cache_root(cache_dir))))
    for name, spec in sorted(registry().items()):
        statuses = {wf.filename: file_status(wf, cache_dir) for wf in spec.files}
        states = ", ".join(f"{f}: {st}" for f, st in statuses.items())
        if "missing" in statuses.values():
            states += f" (stylize models pull {name})"
        if all((models_dir() / name / "int8" / f"{part}.onnx").exists() for part in ("encoder", "decoder")):
            states += "; int8 graphs bundled (--backend onnxruntime-int8)"
        mark = " (default)" if name == default_model() else ""
        lines.append(_line(f"model {name}{mark}", states))
    return "\n".join(lines)
