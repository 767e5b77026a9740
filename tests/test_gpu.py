"""CUDA backends against the CPU's fp32 result (run by scripts/gpu_check.sh where a GPU is lent).

Tolerances: fp16 (torch on CUDA) and TensorRT's fp16 paths round activations to 11 bits, so a
frame may differ from fp32 by a few levels: mean <= 1.5 levels, 99th percentile <= 6.
"""

import numpy as np
import pytest
import torch

from conftest import frame_diff, registered_case
from realtime.backends import TorchBackend, create_backend
from realtime.registry import registry

pytestmark = pytest.mark.requires_cuda
CUDA = torch.device("cuda")


def _reference(model, img):
    ref = TorchBackend(model, torch.device("cpu"))
    feats, stats = ref.encode(img)
    return ref, ref.decode(feats, stats, stats, 1.0), stats


@pytest.mark.parametrize("name", sorted(registry()))
@pytest.mark.parametrize("backend", ["torch", "onnxruntime", "tensorrt"])
def test_cuda_backends_match_fp32_on_the_cpu(name, backend, tmp_path):
    model, img = registered_case(name)
    _, expected, stats = _reference(model, img)
    try:
        gpu = create_backend(backend, model, CUDA, cache_dir=tmp_path)
    except Exception as e:  # noqa: BLE001 - a provider this onnxruntime build lacks is a skip, not a failure
        pytest.skip(f"{backend} cannot start here: {e}")
    feats, own = gpu.encode(img)
    got = gpu.decode(feats, own, stats, 1.0)
    diff = frame_diff(expected, got)
    assert diff.mean() <= 1.5 and np.percentile(diff, 99) <= 6, (backend, diff.mean(), np.percentile(diff, 99))


def test_auto_picks_the_gpu(default_model, style_image):
    from realtime.stylizer import Stylizer

    s = Stylizer(default_model, device="auto")
    s.set_style(style_image)
    assert s.device.type == "cuda"
    out = s.stylize(np.zeros((480, 640, 3), np.uint8))
    assert out.shape == (480, 640, 3)
