from pathlib import Path

import pytest
import torch

from realtime import nets
from realtime.errors import WeightsError
from realtime.model import load_adain_vgg19, load_model, load_student


def _fake_published(tmp_path):
    """State dicts with the published key layouts, saved the way pytorch-AdaIN saved them."""
    torch.manual_seed(0)
    enc, dec = tmp_path / "vgg_normalised.pth", tmp_path / "decoder.pth"
    torch.save(nets.vgg_normalised().state_dict(), enc)
    torch.save(nets.adain_decoder().layers.state_dict(), dec)
    return enc, dec


def test_published_layouts_match_the_checkpoints_shape():
    vgg = nets.vgg_normalised()
    assert len(vgg) == 53
    assert tuple(vgg[0].weight.shape) == (3, 3, 1, 1)
    dec = nets.adain_decoder().layers  # the published file's keys are these layers' keys
    assert len(dec) == 29
    assert [i for i, m in enumerate(dec) if isinstance(m, torch.nn.Conv2d)] == [1, 5, 8, 11, 14, 18, 21, 25, 28]
    assert [i for i, m in enumerate(dec) if isinstance(m, torch.nn.Upsample)] == [3, 16, 23]
    keys = set(vgg.state_dict())
    assert "0.weight" in keys and "51.weight" in keys


def test_adain_vgg19_loads_strictly_and_runs(tmp_path):
    enc, dec = _fake_published(tmp_path)
    model = load_adain_vgg19(enc, dec)
    assert len(model.encoder.layers) == 31  # up to relu4_1
    x = torch.rand(1, 3, 37, 50)
    from realtime.stylizer import Stylizer
    import numpy as np
    s = Stylizer(model, device="cpu")
    s.set_style(np.full((40, 40, 3), 128, np.uint8))
    out = s.stylize((x[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8))
    assert out.shape == (37, 50, 3)
    # a folder holding both files loads the same way
    assert load_model(tmp_path).encoder.stride == 8


def test_wrong_layout_is_a_clear_error(tmp_path):
    enc, dec = _fake_published(tmp_path)
    state = torch.load(dec, weights_only=True)
    state.pop("28.bias")
    torch.save(state, dec)
    with pytest.raises(WeightsError, match="does not match the expected layout"):
        load_adain_vgg19(enc, dec)


def test_pickled_objects_are_refused(tmp_path):
    enc, _ = _fake_published(tmp_path)
    bad = tmp_path / "decoder.pth"
    torch.save(nets.adain_decoder(), bad)  # a whole pickled module, not a state dict
    with pytest.raises(WeightsError, match="weights_only"):
        load_adain_vgg19(enc, bad)


@pytest.mark.parametrize("cfg", [nets.StudentConfig(), nets.StudentConfig(width=0.125, depth=3),
                                 nets.StudentConfig(separable=True), nets.StudentConfig(fast_stem=False, depth=3),
                                 nets.StudentConfig(skips=("relu1_1", "relu2_1", "relu3_1")),
                                 nets.StudentConfig(depth=3, skips=("relu2_1",)),
                                 nets.StudentConfig(skips=("relu1_1", "relu2_1"), padding="reflect"),
                                 nets.StudentConfig(width=0.125, skips=("relu2_1",), padding="reflect", modulate=16)])
def test_student_family_round_trips_any_size(cfg, tmp_path):
    from realtime.model import save_student

    enc, dec = nets.student_encoder(cfg), nets.student_decoder(cfg)
    path = save_student(enc, dec, cfg, tmp_path / "m.safetensors")
    model = load_student(path)
    x = torch.rand(1, 3, 2 * cfg.stride, 3 * cfg.stride)
    assert model.reconstruct(x).shape == x.shape
    assert set(model.encoder.taps) == set(nets.TAPS[: cfg.depth])
    assert model.taps == cfg.taps and model.multi_level == bool(cfg.skips)
    pads = {m.padding_mode for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size != (1, 1)}
    assert pads == {cfg.padding}


@pytest.mark.parametrize("padding", ["reflect", "replicate"])
def test_edge_padding_gives_the_network_no_edge_to_find(padding):
    """A flat picture must come out the same everywhere (up to the 2-px period of the pixel
    shuffle): with zero padding the border of the output differs from its middle (the frame
    every output of our first models had); with reflection or replication no layer can tell
    where the picture ends."""
    torch.manual_seed(0)
    x = torch.full((1, 3, 64, 96), 0.6)
    spreads = {}
    for mode in ("zeros", padding):
        cfg = nets.StudentConfig(skips=("relu1_1", "relu2_1", "relu3_1"), padding=mode)
        enc, dec = nets.student_encoder(cfg), nets.student_decoder(cfg)
        for conv in dec.skips.values():  # non-zero projections, so the skips are exercised too
            torch.nn.init.normal_(conv.weight, std=0.1)
        model = load_student(_saved(enc, dec, cfg))
        with torch.no_grad():
            y = model(x, model.style_stats(torch.rand(1, 3, 64, 64)))
        spreads[mode] = max(float((y[..., 2:, :] - y[..., :-2, :]).abs().max()),
                            float((y[..., 2:] - y[..., :-2]).abs().max()))
    assert spreads["zeros"] > 1e-3, spreads
    assert spreads[padding] < 1e-5, spreads
    with pytest.raises(ValueError, match="padding"):
        nets.StudentConfig(padding="circular")


def _saved(enc, dec, cfg):
    import tempfile

    from realtime.model import save_student

    return save_student(enc, dec, cfg, Path(tempfile.mkdtemp()) / "m.safetensors")


def test_fresh_skip_decoder_equals_its_main_path():
    cfg = nets.StudentConfig(skips=("relu1_1", "relu2_1", "relu3_1"))
    enc, dec = nets.student_encoder(cfg), nets.student_decoder(cfg)
    plain = nets.student_decoder(nets.StudentConfig())
    dec.layers.load_state_dict(plain.layers.state_dict())
    feats = enc.features(torch.rand(1, 3, 64, 96), cfg.taps)
    assert torch.allclose(dec(feats), plain(feats))
    with pytest.raises(ValueError, match="skips"):
        nets.StudentConfig(depth=3, skips=("relu3_1",))


def test_style_modulation_starts_as_the_identity_then_tells_styles_apart():
    """Added to a trained decoder, a fresh modulation changes nothing (warm starts keep their
    picture); once trained, the same content comes out differently for styles whose statistics
    differ, beyond what AdaIN alone does. Files without it keep their keys and config."""
    torch.manual_seed(0)
    plain_cfg = nets.StudentConfig(width=0.125, skips=("relu1_1", "relu2_1"), padding="reflect")
    mod_cfg = nets.StudentConfig(**{**plain_cfg.to_dict(), "modulate": 16})
    assert "modulate" not in plain_cfg.to_dict() and mod_cfg.to_dict()["modulate"] == 16
    enc, plain, dec = nets.student_encoder(plain_cfg), nets.student_decoder(plain_cfg), nets.student_decoder(mod_cfg)
    assert not any(k.startswith("mod.") for k in plain.state_dict())
    missing, unexpected = dec.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and missing and all(k.startswith("mod.") for k in missing)
    model_plain = load_student(_saved(enc, plain, plain_cfg))
    model_mod = load_student(_saved(enc, dec, mod_cfg))
    x = torch.rand(1, 3, 64, 96)
    styles = [model_plain.style_stats(torch.rand(1, 3, 64, 64) * k) for k in (0.3, 1.0)]
    with torch.no_grad():
        for s in styles:
            assert torch.allclose(model_mod(x, s), model_plain(x, s), atol=1e-6)
        torch.nn.init.normal_(model_mod.decoder.mod.mlp[2].weight, std=0.05)
        gaps = [float((model_mod(x, s) - model_plain(x, s)).abs().mean()) for s in styles]
        c = mod_cfg.channels()[-1]
        films = [model_mod.decoder.mod(torch.rand(1, c, 4, 6) * k) for k in (0.3, 1.0)]
    assert min(gaps) > 1e-4, gaps
    assert films[0].keys() == films[1].keys() and len(films[0]) == 6  # every hidden convolution
    assert all(float((films[0][i][0] - films[1][i][0]).abs().max()) > 1e-3 for i in films[0])
    with pytest.raises(ValueError, match="modulate"):
        nets.StudentConfig(modulate=-1)


def test_teacher_loads_caffe_keys():
    from conftest import random_vgg16_state

    state = random_vgg16_state()
    teacher = nets.vgg16_teacher(state)
    feats = teacher.features(torch.rand(1, 3, 32, 32))
    assert [f.shape[1] for f in feats.values()] == [64, 128, 256, 512]
    assert feats["relu4_1"].shape[-1] == 4
    assert torch.equal(teacher.layers[1].weight, state["block1_conv1.weight"])


def test_non_model_safetensors_is_refused(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "other.safetensors"
    save_file({"x": torch.zeros(2)}, str(path))
    with pytest.raises(WeightsError, match="not a realtime-style model"):
        load_student(path)
