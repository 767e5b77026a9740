#!/usr/bin/env bash
# GPU readiness: the requires_cuda tests, then the bench at 720p, 1080p and 4K for every CUDA
# backend that starts (torch fp16, ONNX Runtime CUDA, TensorRT), into one JSON report.
# Run it where a GPU is lent (CI has none and skips these tests):
#     bash scripts/gpu_check.sh [OUT_DIR]
# Needs the CUDA build of torch and, for the ONNX backends, onnxruntime-gpu.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:-runs/gpu_check}"
py="${PYTHON:-python}"  # the interpreter of the environment with the CUDA build of torch
mkdir -p "$out"
"$py" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" \
    || { echo "gpu_check: torch sees no CUDA GPU here" >&2; exit 2; }
"$py" -m pytest -q -m requires_cuda -rs --junitxml="$out/tests.xml" tests/ | tee "$out/tests.txt"
tests_rc=${PIPESTATUS[0]}
style=$(ls ../shared/data/style/eval/*.jpg 2>/dev/null | head -1)
if [ -z "$style" ]; then
    style="$out/style.png"
    "$py" -c "import numpy as np; from PIL import Image; Image.fromarray((np.random.rand(256,256,3)*255).astype('uint8')).save('$style')"
fi
"$py" -m realtime bench --device cuda --style "$style" --sizes 1280x720 1920x1080 3840x2160 --no-peer \
    --backend torch --backend onnxruntime --backend tensorrt --json "$out/bench.json" | tee "$out/bench.txt"
bench_rc=${PIPESTATUS[0]}
"$py" - "$out" "$tests_rc" "$bench_rc" <<'PY'
import json, sys
from pathlib import Path
out, tests_rc, bench_rc = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
import torch
bench = json.loads((out / "bench.json").read_text()) if (out / "bench.json").exists() else {}
report = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__, "tests_exit": tests_rc,
          "bench_exit": bench_rc, "bench": bench.get("rows", [])}
(out / "report.json").write_text(json.dumps(report, indent=2))
print(f"gpu_check: report in {out / 'report.json'} (tests exit {tests_rc}, bench exit {bench_rc})")
PY
exit $(( tests_rc != 0 || bench_rc != 0 ))
