"""Training runs end to end on a few generated images with a random teacher: they resume where
they stopped, warm-start from another run, and export a model the stylizer loads."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from conftest import random_vgg16_state
from realtime.model import load_student
from realtime.tools.train.trainer import Trainer, TrainConfig, checkpoint_student

TINY = {"width": 0.125, "depth": 4, "fast_stem": True}


@pytest.fixture()
def setup(tmp_path):
    rng = np.random.default_rng(0)
    for folder, n in (("content", 3), ("style", 2)):
        (tmp_path / folder).mkdir()
        for k in range(n):
            img = cv2.GaussianBlur(rng.integers(0, 256, (70, 90, 3), dtype=np.uint8), (5, 5), 0)
            cv2.imwrite(str(tmp_path / folder / f"{k}.png"), img)
    save_file(random_vgg16_state(), str(tmp_path / "teacher.safetensors"))

    def config(**kw):
        base = dict(content_dir=str(tmp_path / "content"), style_dir=str(tmp_path / "style"),
                    teacher=str(tmp_path / "teacher.safetensors"), student=TINY, batch=2, crop=32,
                    short_side=48, distill_steps=2, adain_steps=2, checkpoint_every=1, threads=1)
        return TrainConfig(**{**base, **kw})

    return tmp_path, config


def _finite_losses(run_dir) -> list[str]:
    lines = (run_dir / "train.log").read_text().splitlines() if (run_dir / "train.log").exists() else []
    return [ln for ln in lines if "loss=" in ln]


def test_resume_continues_from_the_checkpoint(setup):
    tmp, config = setup
    first = Trainer(config(distill_steps=2, adain_steps=0), tmp / "run")
    first.run()
    assert first.step == 2 and (tmp / "run" / "last.pt").exists()
    saved = {k: v.clone() for k, v in first.encoder.state_dict().items()}
    # the same run with more steps picks up at step 2 with the same weights, then trains on
    second = Trainer(config(distill_steps=2, adain_steps=2), tmp / "run")
    assert second.step == 2
    assert all(torch.equal(saved[k], v) for k, v in second.encoder.state_dict().items())
    second.run()
    assert second.step == 4
    assert json.loads((tmp / "run" / "config.json").read_text())["adain_steps"] == 2


def test_warm_start_with_eval_losses_trains_encoder_and_exports(setup):
    tmp, config = setup
    Trainer(config(), tmp / "base").run()
    cfg = config(init_from=str(tmp / "base" / "last.pt"), encoder_lr=1e-3, style_weight=0,
                 style_distance_weight=1.0, perceptual_content_weight=10.0, adain_content_weight=0.2,
                 adain_steps=3)
    trainer = Trainer(cfg, tmp / "fine")
    assert trainer.step == cfg.distill_steps  # distillation is skipped
    before = {k: v.clone() for k, v in trainer.encoder.state_dict().items()}
    losses = trainer.adain_step()
    assert set(losses) == {"content", "style_dist", "perceptual", "tv", "range"}
    assert all(torch.isfinite(v) for v in losses.values())
    trainer.run()
    assert trainer.step == cfg.distill_steps + cfg.adain_steps
    moved = [k for k, v in trainer.encoder.state_dict().items() if not torch.equal(before[k], v)]
    assert moved, "encoder_lr > 0 must fine-tune the encoder"

    model = load_student(trainer.export(tmp / "m.safetensors"))
    content = torch.rand(1, 3, 48, 64)  # the stylizer pads to the stride; the net itself does not
    style = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        out = model(content, model.style_stats(style))
    assert out.shape == content.shape and torch.isfinite(out).all()


def test_frozen_encoder_stays_put(setup):
    tmp, config = setup
    trainer = Trainer(config(distill_steps=0, adain_steps=2), tmp / "frozen")
    before = {k: v.clone() for k, v in trainer.encoder.state_dict().items()}
    trainer.run()
    assert all(torch.equal(before[k], v) for k, v in trainer.encoder.state_dict().items())


def test_warm_start_keeps_the_skips_it_was_trained_with(setup):
    tmp, config = setup
    skipped = {**TINY, "skips": ["relu1_1", "relu3_1"]}
    Trainer(config(student=skipped), tmp / "base").run()
    ckpt = tmp / "base" / "last.pt"
    assert checkpoint_student(ckpt)["skips"] == ["relu1_1", "relu3_1"]
    # without the skips, the decoder's main path alone would load: refused, not silently dropped
    with pytest.raises(ValueError, match="skips"):
        Trainer(config(init_from=str(ckpt)), tmp / "plain")
    fine = Trainer(config(init_from=str(ckpt), student=checkpoint_student(ckpt)), tmp / "fine")
    base = torch.load(ckpt, weights_only=True)["decoder"]
    assert all(torch.equal(base[k], v) for k, v in fine.decoder.state_dict().items())
    # adding skips to a plain decoder is the supported direction: they start at zero
    Trainer(config(), tmp / "plainbase").run()
    grown = Trainer(config(init_from=str(tmp / "plainbase" / "last.pt"), student=skipped), tmp / "grown")
    assert all(float(v.abs().sum()) == 0 for k, v in grown.decoder.state_dict().items() if k.startswith("skips."))


def test_warm_start_from_an_exported_model(setup):
    """A shipped .safetensors (no optimizer, adapters or scales) is a starting point too."""
    tmp, config = setup
    skipped = {**TINY, "skips": ["relu1_1"]}
    base = Trainer(config(student=skipped), tmp / "base")
    base.run()
    exported = base.export(tmp / "base.safetensors")
    assert checkpoint_student(exported)["skips"] == ["relu1_1"]
    fine = Trainer(config(init_from=str(exported), student=checkpoint_student(exported), adain_steps=3),
                   tmp / "fine")
    assert fine.step == fine.cfg.distill_steps
    for mine, theirs in ((fine.encoder, base.encoder), (fine.decoder, base.decoder)):
        ref = theirs.state_dict()
        assert all(torch.equal(ref[k], v) for k, v in mine.state_dict().items())
    assert set(fine.scales) == set(fine.taps)  # measured afresh
    fine.run()
    assert fine.step == fine.cfg.distill_steps + 3
    model = load_student(fine.export(tmp / "fine.safetensors"))
    with torch.no_grad():
        out = model(torch.rand(1, 3, 32, 32), model.style_stats(torch.rand(1, 3, 32, 32)))
    assert torch.isfinite(out).all()


def test_a_style_modulation_grows_on_an_exported_model(setup):
    """Warm-starting a modulated student from a file without one keeps every trained weight, starts
    the modulation at the identity, trains it at --mod-lr, and refuses a decoder of another shape."""
    tmp, config = setup
    plain = {**TINY, "skips": ["relu2_1"], "padding": "reflect"}
    base = Trainer(config(student=plain), tmp / "base")
    base.run()
    exported = base.export(tmp / "base.safetensors")
    fine = Trainer(config(init_from=str(exported), student={**plain, "modulate": 8}, mod_lr=1e-2), tmp / "mod")
    ref = base.decoder.state_dict()
    assert all(torch.equal(ref[k], v) for k, v in fine.decoder.state_dict().items() if not k.startswith("mod."))
    assert [g["lr"] for g in fine.opt.param_groups][:2] == [fine.cfg.adain_lr, 1e-2]
    last = fine.decoder.mod.mlp[2].weight
    assert float(last.detach().abs().max()) == 0.0
    fine.run()
    assert float(fine.decoder.mod.mlp[2].weight.detach().abs().max()) > 0.0
    assert load_student(fine.export(tmp / "mod.safetensors")).decoder.mod is not None
    with pytest.raises(ValueError, match="another shape"):
        Trainer(config(init_from=str(exported), student={**plain, "skips": ["relu1_1"], "modulate": 8}), tmp / "bad")


def test_structure_loss_is_ssims_contrast_structure_term_and_trains(setup):
    """1 for a picture against itself or a brighter copy, lower for lost contrast, near 0 for noise,
    within 0.01 of the evaluation's SSIM on same-brightness pictures; as a loss it is finite and in
    the step's losses."""
    from realtime.tools.evaluate import luminance_ssim
    from realtime.tools.train.trainer import contrast_structure

    rng = np.random.default_rng(0)
    a = cv2.GaussianBlur(rng.random((64, 80, 3)).astype(np.float32), (5, 5), 1.0)
    b = np.clip(a + rng.normal(0, 0.05, a.shape).astype(np.float32), 0, 1)
    t = lambda x: torch.from_numpy(x).permute(2, 0, 1)[None]  # noqa: E731
    assert contrast_structure(t(a), t(a)).item() == pytest.approx(1.0, abs=1e-5)
    assert contrast_structure(t(a), t(np.clip(a + 0.2, 0, 1.5))).item() == pytest.approx(1.0, abs=1e-4)
    assert contrast_structure(t(a), t(0.5 * a + 0.25)).item() < 0.95
    assert contrast_structure(t(a), t(rng.random(a.shape).astype(np.float32))).item() < 0.2
    u8 = lambda x: (x * 255 + 0.5).astype(np.uint8)  # noqa: E731
    assert contrast_structure(t(a), t(b)).item() == pytest.approx(luminance_ssim(u8(a), u8(b)), abs=0.01)

    tmp, config = setup
    trainer = Trainer(config(structure_weight=2.0), tmp / "s")
    losses = trainer.adain_step()
    assert "structure" in losses and torch.isfinite(losses["structure"])
    losses["structure"].backward()  # it reaches the decoder's weights
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in trainer.decoder.parameters())


def test_average_of_two_exported_models_is_the_mean_of_their_weights(setup):
    """scripts/average_models.py: the mean of two trained checkpoints of one network loads and
    runs; a different network, a single model or writing over an input is a one-line error."""
    from safetensors import safe_open

    from realtime.errors import OutputError, WeightsError
    from realtime.tools.train.average import average_models, main

    tmp, config = setup
    a = Trainer(config(seed=1), tmp / "a")
    a.run()
    b = Trainer(config(seed=2), tmp / "b")
    b.run()
    pa, pb = a.export(tmp / "a.safetensors"), b.export(tmp / "b.safetensors")
    before = {p: p.read_bytes() for p in (pa, pb)}
    main([str(pa), str(pb), "--weights", "3", "1", "-o", str(tmp / "mix.safetensors")])
    with safe_open(str(pa), "pt") as fa, safe_open(str(pb), "pt") as fb, \
            safe_open(str(tmp / "mix.safetensors"), "pt") as fm:
        differ = [k for k in fa.keys() if not torch.equal(fa.get_tensor(k), fb.get_tensor(k))]
        assert differ  # two seeds train two different networks, so the mean is a real test
        for k in fa.keys():
            torch.testing.assert_close(fm.get_tensor(k), 0.75 * fa.get_tensor(k) + 0.25 * fb.get_tensor(k))
        assert "a.safetensors x 0.75" in fm.metadata()["steps"]
    model = load_student(tmp / "mix.safetensors")
    with torch.no_grad():
        assert torch.isfinite(model(torch.rand(1, 3, 32, 32), model.style_stats(torch.rand(1, 3, 32, 32)))).all()
    assert {p: p.read_bytes() for p in (pa, pb)} == before  # inputs only read

    other = Trainer(config(student={**TINY, "skips": ["relu1_1"]}), tmp / "other")
    other.run()
    with pytest.raises(WeightsError, match="different network"):
        average_models([pa, other.export(tmp / "other.safetensors")], tmp / "bad.safetensors")
    with pytest.raises(OutputError, match="one of the models"):
        average_models([pa, pb], pa)
    assert pa.read_bytes() == before[pa]
    with pytest.raises(SystemExit, match="at least two models"):
        main([str(pa), "-o", str(tmp / "one.safetensors")])
    assert not (tmp / "bad.safetensors").exists() and not (tmp / "one.safetensors").exists()
