"""ONNX export, torch <-> ONNX Runtime parity, backend selection and its failure messages."""

import sys

import numpy as np
import pytest
import torch

from conftest import SHARED_DATA, pattern
from realtime import nets
from realtime.backends import OrtBackend, TorchBackend, create_backend
from realtime.adain import calc_mean_std
from realtime.errors import BackendUnavailableError
from realtime.model import StyleModel, load_model

ort = pytest.importorskip("onnxruntime", reason="onnxruntime not installed (pip install '.[onnx]')")
# Tolerance: outputs are RGB in [0, 1]; fp32 ORT kernels reorder sums differently from torch.
MAX_ABS_TOL = 2e-3


def _real_image(h=96, w=128) -> np.ndarray:
    eval_dir = SHARED_DATA / "content" / "eval"
    if eval_dir.is_dir():
        from realtime.images import load_image, resize_long_side

        img = load_image(sorted(eval_dir.iterdir())[0])
        return np.ascontiguousarray(resize_long_side(img, w)[:h - h % 16 or 16])
    return pattern(h, w)


def _registered_models():
    """Every registered model: bundled ones as shipped, downloadable ones with random weights."""
    torch.manual_seed(0)
    vgg = nets.vgg19_encoder(nets.vgg_normalised())
    return {"lite": load_model("lite", allow_download=False),
            "adain-vgg19": StyleModel("adain-vgg19", vgg, nets.adain_decoder()).eval()}


@pytest.mark.parametrize("name", ["lite", "adain-vgg19"])
def test_onnx_matches_torch_on_a_real_image(name, tmp_path):
    model = _registered_models()[name]
    img = _real_image()
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255
    s = model.stride
    x = x[..., : x.shape[-2] // s * s, : x.shape[-1] // s * s]
    style = torch.from_numpy(pattern(64, 64, 3)).permute(2, 0, 1)[None].float() / 255
    from realtime.adain import calc_mean_std

    with torch.no_grad():
        stats = model.style_stats(style)
    ref_b, ort_b = TorchBackend(model, torch.device("cpu")), OrtBackend(model, cache=tmp_path)

    def own(feats):
        return {k: calc_mean_std(v) for k, v in feats.items()}

    ref_f, got_f = ref_b.encode(x), ort_b.encode(x)
    assert ref_f.keys() == got_f.keys() == set(model.taps)
    ref = ref_b.decode(ref_f, own(ref_f), stats, 0.8)
    got = ort_b.decode(got_f, own(got_f), stats, 0.8)
    err = (ref - got).abs()
    scale = ref.abs().max()
    print(f"{name}: max abs err {err.max():.2e}, mean {err.mean():.2e}, output max {scale:.2e}")
    assert err.max() < MAX_ABS_TOL
    assert err.max() <= 1e-3 * scale  # relative too: random VGG weights give small outputs
    # a different size through the same graphs (dynamic height and width)
    x2 = torch.rand(1, 3, 2 * s, 5 * s)
    f2 = ort_b.encode(x2)
    assert ort_b.decode(f2, own(f2), stats, 1.0).shape == x2.shape


def test_multi_level_model_matches_between_backends(tmp_path):
    from realtime.model import load_student, save_student

    torch.manual_seed(3)
    cfg = nets.StudentConfig(width=0.125, skips=("relu1_1", "relu2_1", "relu3_1"))
    enc, dec = nets.student_encoder(cfg), nets.student_decoder(cfg)
    for conv in dec.skips.values():  # non-zero projections, so the skips matter
        torch.nn.init.normal_(conv.weight, std=0.3)
    model = load_student(save_student(enc, dec, cfg, tmp_path / "skip.safetensors"))
    x = torch.rand(1, 3, 64, 96)
    stats = model.style_stats(torch.rand(1, 3, 48, 48))
    ref_b, ort_b = TorchBackend(model, torch.device("cpu")), OrtBackend(model, cache=tmp_path)
    f = ort_b.encode(x)
    own = {k: calc_mean_std(v) for k, v in f.items()}
    ref = ref_b.decode(ref_b.encode(x), own, stats, 0.7)
    assert (ref - ort_b.decode(f, own, stats, 0.7)).abs().max() < MAX_ABS_TOL


def test_export_is_checked_and_cached(tmp_path, tiny_model):
    import onnx

    from realtime.export import cached_export

    paths = cached_export(tiny_model, tmp_path)
    for p in paths.values():
        onnx.checker.check_model(onnx.load(str(p)))
    stamp = paths["decoder"].stat().st_mtime_ns
    assert cached_export(tiny_model, tmp_path)["decoder"].stat().st_mtime_ns == stamp


def test_auto_prefers_onnxruntime_on_cpu(tiny_model, tmp_path):
    backend = create_backend("auto", tiny_model, torch.device("cpu"), cache=tmp_path)
    assert backend.name == "onnxruntime-cpu"
    assert create_backend("torch", tiny_model, torch.device("cpu")).name == "torch-cpu"


def test_auto_takes_the_bundled_int8_graphs_of_the_default_model(default_model, tmp_path):
    assert create_backend("auto", default_model, torch.device("cpu"), cache=tmp_path).name == "onnxruntime-cpu-int8"


def test_missing_onnxruntime_falls_back_and_says_why(tiny_model, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if not installed
    with pytest.raises(BackendUnavailableError, match=r"pip install 'realtime-style\[onnx\]'"):
        create_backend("onnxruntime", tiny_model, torch.device("cpu"), cache=tmp_path)
    assert create_backend("auto", tiny_model, torch.device("cpu"), cache=tmp_path).name == "torch-cpu"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_no_cuda_messages(tiny_model, tmp_path):
    with pytest.raises(BackendUnavailableError, match="CUDAExecutionProvider is not available"):
        create_backend("onnxruntime", tiny_model, torch.device("cuda"), cache=tmp_path)
    with pytest.raises(BackendUnavailableError, match="no backend could start.*tensorrt.*onnxruntime.*torch"):
        create_backend("auto", tiny_model, torch.device("cuda"), cache=tmp_path)
    from realtime.stylizer import pick_device

    with pytest.raises(ValueError, match="no CUDA"):
        pick_device("cuda")
    with pytest.raises(BackendUnavailableError, match="unknown backend"):
        create_backend("tpu", tiny_model, torch.device("cpu"))


def test_int8_graphs_belong_to_their_weights_and_track_fp32(tiny_model, tmp_path):
    import shutil

    from realtime.quantize import int8_dirs, quantize_int8
    from realtime.stylizer import Stylizer

    cpu = torch.device("cpu")
    with pytest.raises(BackendUnavailableError, match="no int8 graphs for model tiny.*scripts/quantize.py"):
        create_backend("onnxruntime-int8", tiny_model, cpu, cache=tmp_path)
    content = _real_image()
    contents = [content, content[:, ::-1].copy(), content[::-1].copy()]
    styles = [pattern(64, 64, t=7 * k) for k in range(3)]
    quantize_int8(tiny_model, contents, styles, int8_dirs(tiny_model, tmp_path)[1])
    assert create_backend("onnxruntime-int8", tiny_model, cpu, cache=tmp_path).name == "onnxruntime-cpu-int8"

    outs = {}
    for backend in ("onnxruntime", "onnxruntime-int8"):
        st = Stylizer(tiny_model, device="cpu", backend=backend, cache_dir=tmp_path)
        st.set_style(styles[0])
        outs[backend] = st.stylize(content).astype(np.float32) / 255
    diff = np.abs(outs["onnxruntime"] - outs["onnxruntime-int8"])
    assert diff.mean() < 0.03  # int8 is an approximation of fp32, not another picture
    assert diff.max() > 0  # and it really ran the quantised graphs

    torch.manual_seed(1)  # other weights, same shape: the graphs must not be used for them
    from realtime.model import load_student, save_student

    cfg = nets.StudentConfig(width=0.125, depth=3)
    other = load_student(save_student(nets.student_encoder(cfg), nets.student_decoder(cfg), cfg,
                                      tmp_path / "tiny.safetensors"))
    shutil.copytree(int8_dirs(tiny_model, tmp_path)[1], int8_dirs(other, tmp_path)[1])
    with pytest.raises(BackendUnavailableError, match="made from other weights"):
        create_backend("onnxruntime-int8", other, cpu, cache=tmp_path)
