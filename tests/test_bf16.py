"""The bfloat16 CPU backend: agreement with fp32 torch on every registered model, the folded
skips and channel reordering it relies on, and what happens on a CPU without native bf16."""

import numpy as np
import pytest
import torch

from conftest import frame_diff, modulated_model, pattern, real_image, registered_case, spread_output
from realtime import backends, nets
from realtime.backends import TorchBackend, TorchBf16Backend, cpu_has_native_bf16, create_backend
from realtime.errors import BackendUnavailableError
from realtime.registry import registry

needs_bf16 = pytest.mark.skipif(not cpu_has_native_bf16(),
                                reason="this CPU has no native bfloat16 (AVX512-BF16 or AMX)")
CPU = torch.device("cpu")
# Tolerance: bf16 keeps 8 significant bits, so each feature is off by up to ~0.4% of itself and
# the errors add up through the convolutions. Measured against fp32 torch on a real photo: features
# and statistics within 0.6% of their largest value; frames 0.05-0.7 levels apart on average, the
# 99th percentile 1-3 levels. Allowed: 1% / mean 1 level / 99th percentile 4 levels.
FEAT_TOL = 1e-2
MEAN_LEVELS = 1.0
P99_LEVELS = 4


def _assert_near_fp32(ref: np.ndarray, got: np.ndarray, name: str) -> None:
    diff = frame_diff(ref, got)
    print(f"{name}: mean {diff.mean():.3f} levels, 99th percentile {np.percentile(diff, 99)}, max {diff.max()}")
    assert diff.mean() <= MEAN_LEVELS
    assert np.percentile(diff, 99) <= P99_LEVELS


def _compare(model, frame: np.ndarray, alpha: float, name: str) -> None:
    style = torch.from_numpy(pattern(64, 64, 3)).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        stats = model.style_stats(style)
    ref_b, bf_b = TorchBackend(model, CPU), TorchBf16Backend(model, CPU)
    (ref_f, ref_s), (got_f, got_s) = ref_b.encode(frame), bf_b.encode(frame)
    assert got_f.keys() == ref_f.keys() == set(model.taps)
    for tap in model.taps:
        assert got_f[tap].dtype == torch.bfloat16 and got_s[tap][0].dtype == torch.float32
        for ref, got in ((ref_f[tap], got_f[tap].float()), (ref_s[tap][0], got_s[tap][0]),
                         (ref_s[tap][1], got_s[tap][1])):
            assert (ref - got).abs().max() <= FEAT_TOL * ref.abs().max()
    _assert_near_fp32(ref_b.decode(ref_f, ref_s, stats, alpha), bf_b.decode(got_f, got_s, stats, alpha), name)


@needs_bf16
@pytest.mark.parametrize("name", sorted(registry()))
def test_bf16_matches_fp32_on_a_real_image(name):
    model, img = registered_case(name)
    _compare(model, img, 0.8, name)


@needs_bf16
def test_bf16_folds_adain_into_the_skips(tmp_path):
    """Non-zero skip projections and alpha < 1: the per-frame folded 1x1 weights carry AdaIN."""
    torch.manual_seed(3)
    cfg = nets.StudentConfig(width=0.125, skips=("relu1_1", "relu2_1", "relu3_1"))
    enc, dec = nets.student_encoder(cfg), nets.student_decoder(cfg)
    for conv in dec.skips.values():
        torch.nn.init.normal_(conv.weight, std=0.3)
    from realtime.model import load_student, save_student

    model = load_student(save_student(enc, dec, cfg, tmp_path / "skips.safetensors"))
    frame = real_image(64, 96)
    spread_output(model, frame)
    _compare(model, frame, 0.6, "skips")


@needs_bf16
def test_bf16_runs_the_style_modulation(tmp_path):
    model = modulated_model(tmp_path / "mod.safetensors")
    frame = real_image(64, 96)
    spread_output(model, frame)
    _compare(model, frame, 0.9, "modulated")


@needs_bf16
def test_bf16_leaves_the_callers_model_in_fp32(default_model):
    before = {k: v.clone() for k, v in default_model.state_dict().items()}
    TorchBf16Backend(default_model, CPU)
    after = default_model.state_dict()
    assert all(after[k].dtype == torch.float32 and torch.equal(after[k], v) for k, v in before.items())


@needs_bf16
def test_stylizer_on_bf16_keeps_odd_sizes(default_model):
    from realtime.stylizer import Stylizer

    frame = real_image(101, 134)[:101]
    out = {}
    for backend in ("torch", "torch-bf16"):
        st = Stylizer(default_model, device="cpu", backend=backend)
        st.set_style(pattern(64, 64, 5))
        out[backend] = st.stylize(frame)
    assert out["torch-bf16"].shape == frame.shape
    _assert_near_fp32(out["torch"], out["torch-bf16"], "stylizer")


def test_no_native_bf16_is_refused_and_auto_moves_on(tiny_model, tmp_path, monkeypatch):
    monkeypatch.setattr(backends, "cpu_has_native_bf16", lambda: False)
    with pytest.raises(BackendUnavailableError, match="no native bfloat16.*use onnxruntime or torch"):
        create_backend("torch-bf16", tiny_model, CPU)
    assert create_backend("auto", tiny_model, CPU, cache_dir=tmp_path).name != "torch-cpu-bf16"


def test_bf16_is_for_cpus(tiny_model):
    with pytest.raises(BackendUnavailableError, match="torch-bf16 is for CPUs"):
        create_backend("torch-bf16", tiny_model, torch.device("cuda"))
