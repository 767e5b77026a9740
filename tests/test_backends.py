"""ONNX export, torch <-> ONNX Runtime parity, backend selection and its failure messages."""

import sys

import numpy as np
import pytest
import torch

from conftest import frame_diff, modulated_model, pattern, real_image, registered_case, spread_output
from realtime import nets
from realtime.backends import OrtBackend, TorchBackend, create_backend
from realtime.errors import BackendUnavailableError
from realtime.registry import registry

ort = pytest.importorskip("onnxruntime", reason="onnxruntime not installed (pip install '.[onnx]')")
# Tolerance: frames come out as uint8. fp32 ORT kernels sum in another order than torch, which moves
# an output by up to ~2e-3 of the range, so a pixel may round to the next level: at most 1 level
# apart, on under 1% of the values. Features and statistics: 1e-3 of their largest value.
MAX_LEVELS = 1
MAX_FRACTION_OFF = 0.01
FEAT_TOL = 1e-3


def _assert_same_frames(ref: np.ndarray, got: np.ndarray, name: str) -> None:
    diff = frame_diff(ref, got)
    print(f"{name}: max {diff.max()} levels, {np.mean(diff > 0):.2%} of values off, output std {ref.std():.1f}")
    assert diff.max() <= MAX_LEVELS
    assert np.mean(diff > 0) < MAX_FRACTION_OFF


def _assert_close(ref: torch.Tensor, got: torch.Tensor) -> None:
    assert ref.shape == got.shape
    assert (ref - got).abs().max() <= FEAT_TOL * ref.abs().max()


@pytest.mark.parametrize("name", sorted(registry()))
def test_onnx_matches_torch_on_a_real_image(name, tmp_path):
    model, img = registered_case(name)
    style = torch.from_numpy(pattern(64, 64, 3)).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        stats = model.style_stats(style)
    ref_b, ort_b = TorchBackend(model, torch.device("cpu")), OrtBackend(model, cache_dir=tmp_path)

    (ref_f, ref_s), (got_f, got_s) = ref_b.encode(img), ort_b.encode(img)
    assert ref_f.keys() == got_f.keys() == ref_s.keys() == got_s.keys() == set(model.taps)
    for tap in model.taps:
        _assert_close(ref_f[tap], got_f[tap])
        _assert_close(ref_s[tap][0], got_s[tap][0])
        _assert_close(ref_s[tap][1], got_s[tap][1])
    _assert_same_frames(ref_b.decode(ref_f, ref_s, stats, 0.8), ort_b.decode(got_f, got_s, stats, 0.8), name)
    # a different size through the same graphs (dynamic height and width)
    frame2 = pattern(2 * model.stride, 5 * model.stride)
    f2, s2 = ort_b.encode(frame2)
    assert ort_b.decode(f2, s2, stats, 1.0).shape == frame2.shape


def test_multi_level_model_matches_between_backends(tmp_path):
    from realtime.model import load_student, save_student

    torch.manual_seed(3)
    cfg = nets.StudentConfig(width=0.125, skips=("relu1_1", "relu2_1", "relu3_1"))
    enc, dec = nets.student_encoder(cfg), nets.student_decoder(cfg)
    for conv in dec.skips.values():  # non-zero projections, so the skips matter
        torch.nn.init.normal_(conv.weight, std=0.3)
    model = load_student(save_student(enc, dec, cfg, tmp_path / "skip.safetensors"))
    frame = real_image(64, 96)
    spread_output(model, frame)
    stats = model.style_stats(torch.rand(1, 3, 48, 48))
    ref_b, ort_b = TorchBackend(model, torch.device("cpu")), OrtBackend(model, cache_dir=tmp_path)
    f, own = ort_b.encode(frame)
    _assert_same_frames(ref_b.decode(ref_b.encode(frame)[0], own, stats, 0.7), ort_b.decode(f, own, stats, 0.7),
                        "skips")


def test_modulated_model_matches_between_backends(tmp_path):
    """The style modulation lives inside the decoder graph: ONNX Runtime must paint what eager
    torch paints (torch-bf16: tests/test_bf16.py)."""
    model = modulated_model(tmp_path / "mod.safetensors")
    frame = real_image(64, 96)
    spread_output(model, frame)
    stats = model.style_stats(torch.rand(1, 3, 48, 48))
    ref_b, ort_b = TorchBackend(model, torch.device("cpu")), OrtBackend(model, cache_dir=tmp_path)
    f, own = ort_b.encode(frame)
    ref = ref_b.decode(ref_b.encode(frame)[0], own, stats, 0.9)
    got = ort_b.decode(f, own, stats, 0.9)
    _assert_same_frames(ref, got, "modulated")
    with torch.no_grad():  # the graph carries the modulation: without it the picture differs
        torch.nn.init.zeros_(model.decoder.mod.mlp[2].weight)
        torch.nn.init.zeros_(model.decoder.mod.mlp[2].bias)
    unmodulated = TorchBackend(model, torch.device("cpu")).decode(ref_b.encode(frame)[0], own, stats, 0.9)
    assert frame_diff(unmodulated, got).mean() > 1.0


def test_export_is_checked_and_cached(tmp_path, tiny_model):
    import onnx

    from realtime.export import cached_export

    paths = cached_export(tiny_model, tmp_path)
    for p in paths.values():
        onnx.checker.check_model(onnx.load(str(p)))
    stamp = paths["decoder"].stat().st_mtime_ns
    assert cached_export(tiny_model, tmp_path)["decoder"].stat().st_mtime_ns == stamp


def test_auto_order_on_cpu(tiny_model, tmp_path, monkeypatch):
    from realtime import backends

    cpu = torch.device("cpu")
    if backends.cpu_has_native_bf16():  # bf16 convolutions in hardware: the fastest CPU backend
        assert create_backend("auto", tiny_model, cpu, cache_dir=tmp_path).name == "torch-cpu-bf16"
    monkeypatch.setattr(backends, "cpu_has_native_bf16", lambda: False)
    assert create_backend("auto", tiny_model, cpu, cache_dir=tmp_path).name == "onnxruntime-cpu"
    assert create_backend("torch", tiny_model, cpu).name == "torch-cpu"


def test_auto_keeps_int8_opt_in(default_model, tmp_path):
    # int8 flickers more from frame to frame (realtime.backends, AUTO_ORDER), so auto never picks it
    name = create_backend("auto", default_model, torch.device("cpu"), cache_dir=tmp_path).name
    assert name in ("torch-cpu-bf16", "onnxruntime-cpu")
    assert create_backend("onnxruntime-int8", default_model, torch.device("cpu"),
                          cache_dir=tmp_path).name == "onnxruntime-cpu-int8"


def test_missing_onnxruntime_falls_back_and_says_why(tiny_model, tmp_path, monkeypatch):
    from realtime import backends

    monkeypatch.setattr(backends, "cpu_has_native_bf16", lambda: False)  # so auto reaches onnxruntime
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if not installed
    with pytest.raises(BackendUnavailableError, match=r"pip install 'realtime-style\[onnx\]'"):
        create_backend("onnxruntime", tiny_model, torch.device("cpu"), cache_dir=tmp_path)
    assert create_backend("auto", tiny_model, torch.device("cpu"), cache_dir=tmp_path).name == "torch-cpu"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_no_cuda_messages(tiny_model, tmp_path):
    with pytest.raises(BackendUnavailableError, match="CUDAExecutionProvider is not available"):
        create_backend("onnxruntime", tiny_model, torch.device("cuda"), cache_dir=tmp_path)
    with pytest.raises(BackendUnavailableError, match="no backend could start.*tensorrt.*onnxruntime.*torch"):
        create_backend("auto", tiny_model, torch.device("cuda"), cache_dir=tmp_path)
    from realtime.stylizer import pick_device

    with pytest.raises(BackendUnavailableError, match="no CUDA GPU.*--device cpu"):
        pick_device("cuda")
    with pytest.raises(BackendUnavailableError, match="unknown backend"):
        create_backend("tpu", tiny_model, torch.device("cpu"))


def test_int8_graphs_belong_to_their_weights_and_track_fp32(tiny_model, tmp_path):
    import shutil

    from realtime.int8 import int8_dirs
    from realtime.tools.quantize import quantize_int8
    from realtime.stylizer import Stylizer

    cpu = torch.device("cpu")
    with pytest.raises(BackendUnavailableError, match="no int8 graphs for model tiny.*realtime.tools.quantize"):
        create_backend("onnxruntime-int8", tiny_model, cpu, cache_dir=tmp_path)
    content = real_image()
    contents = [content, content[:, ::-1].copy(), content[::-1].copy()]
    styles = [pattern(64, 64, t=7 * k) for k in range(3)]
    quantize_int8(tiny_model, contents, styles, int8_dirs(tiny_model, tmp_path)[1])
    assert create_backend("onnxruntime-int8", tiny_model, cpu, cache_dir=tmp_path).name == "onnxruntime-cpu-int8"

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
        create_backend("onnxruntime-int8", other, cpu, cache_dir=tmp_path)

    import onnx  # graphs of an older layout (other inputs) are refused too, with the fix named
    from realtime.int8 import VERSION_KEY

    for part in ("encoder", "decoder"):
        path = int8_dirs(tiny_model, tmp_path)[1] / f"{part}.onnx"
        graph = onnx.load(str(path))
        next(m for m in graph.metadata_props if m.key == VERSION_KEY).value = "3"
        onnx.save(graph, str(path))
    # an edited graph no longer matches the sha256 recorded when it was made
    with pytest.raises(BackendUnavailableError, match="encoder.onnx does not match its sha256"):
        create_backend("onnxruntime-int8", tiny_model, cpu, cache_dir=tmp_path)
    from realtime.export import write_sums

    write_sums(int8_dirs(tiny_model, tmp_path)[1])  # as an older version would have made them
    with pytest.raises(BackendUnavailableError, match="older graph layout; make them again"):
        create_backend("onnxruntime-int8", tiny_model, cpu, cache_dir=tmp_path)


def test_damaged_graph_cache_is_made_again(tiny_model, tmp_path):
    """200 changed floats in a cached decoder: caught by its sha256 and exported afresh, so the
    picture is the model's (it was 107 grey levels off before graphs were checked)."""
    from realtime.export import cached_export

    paths = cached_export(tiny_model, tmp_path)
    good = paths["decoder"].read_bytes()
    data = bytearray(good)
    data[len(data) // 2: len(data) // 2 + 800] = bytes(800)
    paths["decoder"].write_bytes(bytes(data))
    assert cached_export(tiny_model, tmp_path) == paths
    assert paths["decoder"].read_bytes() == good
    paths["encoder"].write_bytes(paths["encoder"].read_bytes()[:100])  # truncated: InvalidProtobuf before
    backend = create_backend("onnxruntime", tiny_model, torch.device("cpu"), cache_dir=tmp_path)
    frame = real_image()
    feats, stats = backend.encode(frame)
    assert backend.decode(feats, stats, stats, 1.0).shape == frame.shape


def test_graph_cache_key_tells_paddings_apart():
    """One set of weights padded two ways is two networks: the cached ONNX graph of one must
    never be served for the other."""
    from realtime import nets
    from realtime.export import model_hash
    from realtime.model import StyleModel

    models = []
    for padding in ("zeros", "reflect"):
        torch.manual_seed(0)
        cfg = nets.StudentConfig(width=0.125, depth=3, padding=padding)
        models.append(StyleModel(padding, nets.student_encoder(cfg), nets.student_decoder(cfg), cfg.taps))
    assert all(torch.equal(a, b) for a, b in zip(models[0].state_dict().values(), models[1].state_dict().values()))
    assert model_hash(models[0]) != model_hash(models[1])
