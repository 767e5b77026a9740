"""Training our student models: distillation, then the AdaIN decoder objective.

Stage ``distill``: the student encoder learns the VGG-16 teacher's relu1_1..relu4_1
through 1x1 adapters (the idea of Collaborative Distillation, Wang et al. 2020), while the
decoder learns to reconstruct images from the (detached) student features.
Stage ``adain``: the encoder is frozen; the decoder learns the AdaIN objective with the
teacher as loss network: content loss at relu4_1 against AdaIN(teacher(c), teacher(s)),
style loss on channel mean and std at relu1_1..relu4_1 (Huang & Belongie 2017), plus a
small total-variation term and a penalty for pixels outside [0, 1].

Runs are seeded, checkpoint to ``run_dir/last.pt`` atomically, resume from it, log to
``run_dir/train.log`` and keep their config in ``run_dir/config.json``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ...adain import adain_with_stats, calc_mean_std
from ...model import upgrade_decoder_state
from ...nets import TAPS, StudentConfig, student_decoder, student_encoder, vgg16_teacher
from .data import ImageBank, StyleImages, seed_everything

log = logging.getLogger("realtime.train")


@dataclass
class TrainConfig:
    content_dir: str
    style_dir: str
    teacher: str
    student: dict = field(default_factory=lambda: StudentConfig().to_dict())
    seed: int = 0
    batch: int = 8
    crop: int = 128
    distill_steps: int = 1500
    adain_steps: int = 6000
    lr: float = 1e-3
    adain_lr: float = 3e-4
    style_weight: float = 10.0
    tv_weight: float = 1e-5
    range_weight: float = 10.0
    checkpoint_every: int = 100
    threads: int = 2
    bf16_teacher: bool = True
    init_from: str | None = None  # warm start: encoder, adapters and decoder main path of a checkpoint
    # data scale: images are held at this short side and crops take windows of crop..crop*max_zoom_out
    short_side: int = 288
    max_zoom_out: float = 2.0
    # extra objectives (0 = off), in the evaluation's own terms: a perceptual content loss against the
    # content image (channel-unit-normalised teacher features at relu2_1..relu4_1) and the style
    # distance sum ||d mu|| + ||d sigma|| over relu1_1..relu4_1 in raw teacher units / 1000
    adain_content_weight: float = 1.0
    perceptual_content_weight: float = 0.0
    style_distance_weight: float = 0.0
    encoder_lr: float = 0.0  # > 0: fine-tune the encoder end to end in the AdaIN stage
    mod_lr: float = 0.0  # the decoder's style modulation in the AdaIN stage (0: adain_lr)
    # styles as the product sees them: whole images at this long side (0 = random crops, as before)
    style_max_side: int = 0
    # output distillation: L1 to a frozen model's output (an exported .safetensors), away from the
    # outer distill_margin pixels, so a teacher's own border artefacts are not learnt
    distill_from: str | None = None
    distill_weight: float = 0.0
    distill_margin: int = 16
    # structure: 1 - the contrast-structure term of SSIM between the output's and the content's luma
    # (Gaussian windows, sigma 1.5, as the evaluation's SSIM); mean brightness stays the style's
    structure_weight: float = 0.0


_LUMA = (0.299, 0.587, 0.114)


def contrast_structure(a: torch.Tensor, b: torch.Tensor, sigma: float = 1.5) -> torch.Tensor:
    """Mean contrast-structure term of SSIM, (2 s_ab + C2) / (s_aa + s_bb + C2), of the luma of two
    RGB batches in [0, 1], over Gaussian windows (reflect-padded, so the border is no special case)."""
    w = torch.tensor(_LUMA, dtype=a.dtype, device=a.device).view(1, 3, 1, 1)
    x, y = (a * w).sum(1, keepdim=True), (b * w).sum(1, keepdim=True)
    r = int(3 * sigma + 0.5)
    k = torch.exp(-(torch.arange(-r, r + 1, dtype=a.dtype, device=a.device) ** 2) / (2 * sigma * sigma))
    k = k / k.sum()

    def blur(z: torch.Tensor) -> torch.Tensor:
        z = F.conv2d(F.pad(z, (r, r, 0, 0), mode="reflect"), k.view(1, 1, 1, -1))
        return F.conv2d(F.pad(z, (0, 0, r, r), mode="reflect"), k.view(1, 1, -1, 1))

    mx, my = blur(x), blur(y)
    sxx, syy, sxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    c2 = 0.03 ** 2
    return ((2 * sxy + c2) / (sxx.clamp_min(0) + syy.clamp_min(0) + c2)).mean()


def _teacher_scales(teacher: nn.Module, images: torch.Tensor) -> dict[str, float]:
    """Mean activation per tap on a calibration batch: dividing by it puts every layer on
    the same footing, as the 'normalised' VGG of the AdaIN paper does."""
    with torch.no_grad():
        feats = teacher.features(images)
    return {k: float(v.mean()) for k, v in feats.items()}


class Trainer:
    def __init__(self, cfg: TrainConfig, run_dir: str | Path):
        from safetensors.torch import load_file

        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        torch.set_num_threads(cfg.threads)
        self.gen = seed_everything(cfg.seed)
        self.student_cfg = StudentConfig.from_dict(cfg.student)
        self.encoder = student_encoder(self.student_cfg)
        self.decoder = student_decoder(self.student_cfg)
        teacher_channels = {"relu1_1": 64, "relu2_1": 128, "relu3_1": 256, "relu4_1": 512}
        self.taps = TAPS[: self.student_cfg.depth]
        student_channels = dict(zip(TAPS, self.student_cfg.channels()))
        self.adapters = nn.ModuleDict({t: nn.Conv2d(student_channels[t], teacher_channels[t], 1) for t in self.taps})
        self.teacher = vgg16_teacher(load_file(cfg.teacher))
        self.step = 0
        self.scales: dict[str, float] = {}
        self.content = ImageBank(cfg.content_dir, short_side=cfg.short_side)
        self.style = ImageBank(cfg.style_dir, short_side=cfg.short_side)
        self._make_optimizer()
        self._resume()
        if self.step == 0 and cfg.init_from:
            self._warm_start(Path(cfg.init_from))
        if not self.scales:
            self.scales = _teacher_scales(self.teacher, self.content.crops(16, cfg.crop, self.gen))
        self.whole_styles = None
        if cfg.style_max_side:
            self.whole_styles = StyleImages(cfg.style_dir, cfg.style_max_side, self.student_cfg.stride)
            self.style_targets = self._whole_style_targets()
        self.distiller = None
        if cfg.distill_from:
            from ...model import load_student

            self.distiller = load_student(Path(cfg.distill_from)).requires_grad_(False)
        (self.run_dir / "config.json").write_text(json.dumps(asdict(cfg), indent=2))

    # --- state --------------------------------------------------------------------------
    def _make_optimizer(self) -> None:
        if self.step < self.cfg.distill_steps:
            params = [*self.encoder.parameters(), *self.adapters.parameters(), *self.decoder.parameters()]
            self.opt = torch.optim.Adam(params, lr=self.cfg.lr)
        else:
            lr = self.cfg.adain_lr
            mod = set(self.decoder.mod.parameters()) if self.decoder.mod is not None else set()
            groups = [{"params": [p for p in self.decoder.parameters() if p not in mod], "lr": lr, "base_lr": lr}]
            if mod:  # a modulation added to trained weights starts at zero and may need a faster rate
                mod_lr = self.cfg.mod_lr or lr
                groups.append({"params": list(self.decoder.mod.parameters()), "lr": mod_lr, "base_lr": mod_lr})
            self.encoder.requires_grad_(self.cfg.encoder_lr > 0)
            if self.cfg.encoder_lr > 0:
                groups.append({"params": list(self.encoder.parameters()), "lr": self.cfg.encoder_lr,
                               "base_lr": self.cfg.encoder_lr})
            self.opt = torch.optim.Adam(groups)

    def _state(self) -> dict:
        return {"step": self.step, "student": json.dumps(self.student_cfg.to_dict()),
                "encoder": self.encoder.state_dict(), "decoder": self.decoder.state_dict(),
                "adapters": self.adapters.state_dict(), "opt": self.opt.state_dict(), "scales": self.scales,
                "rng": self.gen.get_state(), "torch_rng": torch.get_rng_state()}

    def save(self) -> None:
        tmp = self.run_dir / "last.pt.tmp"
        torch.save(self._state(), tmp)
        os.replace(tmp, self.run_dir / "last.pt")

    def _resume(self) -> None:
        path = self.run_dir / "last.pt"
        if not path.exists():
            return
        state = torch.load(path, weights_only=True)
        self.step = state["step"]
        self.encoder.load_state_dict(state["encoder"])
        self.decoder.load_state_dict(state["decoder"])
        self.adapters.load_state_dict(state["adapters"])
        self.scales = state["scales"]
        self.gen.set_state(state["rng"])
        torch.set_rng_state(state["torch_rng"])
        self._make_optimizer()
        try:
            self.opt.load_state_dict(state["opt"])
        except ValueError:  # saved at the stage boundary with the other stage's optimizer
            log.info("optimizer state not reused (stage changed)")
        log.info("resumed at step %d from %s", self.step, path)

    def _warm_start(self, path: Path) -> None:
        """Take a finished distillation (and any decoder of the same main path) from a checkpoint,
        then begin at the AdaIN stage; new skip projections start at zero. An exported model
        (.safetensors, e.g. a shipped one) gives encoder and decoder only: the adapters are not used
        after distillation, and the teacher scales are measured afresh."""
        if path.suffix == ".safetensors":
            from ...model import load_student

            model = load_student(path)
            self.encoder.layers.load_state_dict(model.encoder.layers.state_dict(), strict=True)
            missing, unexpected = self.decoder.load_state_dict(model.decoder.state_dict(), strict=False)
            if unexpected or any(not k.startswith("mod.") for k in missing):
                raise ValueError(f"{path} has a decoder of another shape than {self.student_cfg.to_dict()} "
                                 f"(missing {missing[:3]}, unexpected {unexpected[:3]}); warm-start with the "
                                 f"same student, a style modulation may be added")
            if missing:
                log.info("a style modulation starts at the identity on top of %s", path)
            self.step = self.cfg.distill_steps
            self._make_optimizer()
            log.info("warm start from the exported model %s; AdaIN stage begins at %d", path, self.step)
            return
        state = torch.load(path, weights_only=True)
        self.encoder.load_state_dict(state["encoder"])
        self.adapters.load_state_dict(state["adapters"])
        decoder = state["decoder"]
        dropped = sorted({k.split(".")[1] for k in decoder if k.startswith("skips.")} - set(self.student_cfg.skips))
        if dropped:  # the main path alone would load and train, without the detail the skips carried
            raise ValueError(f"{path} has a decoder with skips {dropped} that the student config "
                             f"{self.student_cfg.to_dict()} lacks; warm-start with the same student "
                             f"(leave --student out to inherit it)")
        decoder = upgrade_decoder_state(decoder)
        if set(decoder) == set(self.decoder.state_dict()):  # same decoder: fine-tune all of it
            self.decoder.load_state_dict(decoder, strict=True)
        else:  # new skips start at zero
            self.decoder.layers.load_state_dict({k.removeprefix("layers."): v for k, v in decoder.items()
                                                 if not k.startswith("skips.")}, strict=True)
        self.scales = state["scales"]
        self.step = self.cfg.distill_steps
        self._make_optimizer()
        log.info("warm start from %s (its step %d); AdaIN stage begins at %d", path, state["step"], self.step)

    def _whole_style_targets(self) -> dict[str, torch.Tensor]:
        """Teacher (mean, std) of every whole style image, per tap as (S, 2, C), cached in the run."""
        path = self.run_dir / f"style_targets_{self.cfg.style_max_side}.pt"
        if path.exists():
            return torch.load(path, weights_only=True)
        rows: dict[str, list[torch.Tensor]] = {k: [] for k in TAPS}
        with torch.no_grad():
            for i in range(len(self.whole_styles)):
                for k, v in self._teacher_feats(self.whole_styles.image(i)).items():
                    rows[k].append(torch.stack([x.flatten() for x in calc_mean_std(v)]))
        targets = {k: torch.stack(v) for k, v in rows.items()}
        torch.save(targets, path)
        log.info("teacher statistics of %d whole styles cached in %s", len(self.whole_styles), path)
        return targets

    def _style_batch(self, n: int):
        """(student features or stats to AdaIN with, teacher (mean, std) per tap, style ids or crops)."""
        if self.whole_styles is None:
            s = self.style.crops(n, self.cfg.crop, self.gen, self.cfg.max_zoom_out)
            with torch.no_grad():
                ts = self._teacher_feats(s)
            return ({k: calc_mean_std(v) for k, v in self.encoder.features(s, self.student_cfg.taps).items()},
                    {k: calc_mean_std(v) for k, v in ts.items()}, s)
        ids = torch.randint(len(self.whole_styles), (n,), generator=self.gen).tolist()
        per = [self.encoder.features(self.whole_styles.image(i), self.student_cfg.taps) for i in ids]
        student = {k: tuple(torch.cat(x) for x in zip(*(calc_mean_std(f[k]) for f in per)))
                   for k in self.student_cfg.taps}
        teacher = {k: (v[ids, 0, :, None, None], v[ids, 1, :, None, None]) for k, v in self.style_targets.items()}
        return student, teacher, ids

    def _distill_target(self, c: torch.Tensor, styles) -> torch.Tensor:
        with torch.no_grad():
            if isinstance(styles, torch.Tensor):
                stats = self.distiller.style_stats(styles)
            else:
                per = [self.distiller.style_stats(self.whole_styles.image(i)) for i in styles]
                stats = {k: tuple(torch.cat(x) for x in zip(*(p[k] for p in per))) for k in self.distiller.taps}
            return self.distiller(c, stats).clamp(0.0, 1.0)

    def _decode(self, feats: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.decoder(feats)

    # --- losses -------------------------------------------------------------------------
    def _teacher_ctx(self):
        return torch.autocast("cpu", dtype=torch.bfloat16) if self.cfg.bf16_teacher else nullcontext()

    def _teacher_feats(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        with self._teacher_ctx():
            feats = self.teacher.features(x)
        return {k: v.float() / self.scales[k] for k, v in feats.items()}

    def distill_step(self) -> dict[str, float]:
        half = self.cfg.batch // 2
        x = torch.cat([self.content.crops(self.cfg.batch - half, self.cfg.crop, self.gen),
                       self.style.crops(half, self.cfg.crop, self.gen)])
        with torch.no_grad():
            target = self._teacher_feats(x)
        feats = self.encoder.features(x, self.taps)
        losses = {}
        for t in self.taps:
            pred = self.adapters[t](feats[t])
            tgt = F.adaptive_avg_pool2d(target[t], pred.shape[-2:])
            losses[f"d_{t}"] = F.mse_loss(pred, tgt) / tgt.pow(2).mean().clamp_min(1e-6)
        recon = self._decode({k: v.detach() for k, v in feats.items()})
        losses["recon_l1"] = F.l1_loss(recon, x)
        return losses

    def adain_step(self) -> dict[str, float]:
        c = self.content.crops(self.cfg.batch, self.cfg.crop, self.gen, self.cfg.max_zoom_out)
        with nullcontext() if self.cfg.encoder_lr > 0 else torch.no_grad():
            fc = self.encoder.features(c, self.student_cfg.taps)
            student_style, style_stats, styles = self._style_batch(self.cfg.batch)
            t = {k: adain_with_stats(fc[k], *student_style[k]) for k in fc}
        with torch.no_grad():
            tc = self._teacher_feats(c)
            target = adain_with_stats(tc[self.taps[-1]], *style_stats[self.taps[-1]])
        g = self._decode(t)
        tg = self._teacher_feats(g)
        losses = {"content": self.cfg.adain_content_weight * F.mse_loss(tg[self.taps[-1]], target)}
        style = 0.0
        distance = 0.0
        for k in TAPS:
            gm, gs = calc_mean_std(tg[k])
            sm, ss = style_stats[k]
            style = style + F.mse_loss(gm, sm) + F.mse_loss(gs, ss)
            if self.cfg.style_distance_weight:  # back to raw teacher units, norm per sample
                scale = self.scales[k] / 1000.0
                gap = (gm - sm).flatten(1).norm(dim=1) + (gs - ss).flatten(1).norm(dim=1)
                distance = distance + scale * gap.mean()
        if self.cfg.style_weight:
            losses["style"] = self.cfg.style_weight * style
        if self.cfg.style_distance_weight:
            losses["style_dist"] = self.cfg.style_distance_weight * distance
        if self.cfg.perceptual_content_weight:
            perceptual = 0.0
            for k in ("relu2_1", "relu3_1", "relu4_1"):
                a = tg[k] / (tg[k].norm(dim=1, keepdim=True) + 1e-6)
                b = tc[k] / (tc[k].norm(dim=1, keepdim=True) + 1e-6)
                perceptual = perceptual + (a - b).pow(2).sum(dim=1).mean() / 3
            losses["perceptual"] = self.cfg.perceptual_content_weight * perceptual
        if self.distiller is not None and self.cfg.distill_weight:
            m = self.cfg.distill_margin
            q = self._distill_target(c, styles)
            losses["distill"] = self.cfg.distill_weight * F.l1_loss(g[..., m:-m, m:-m], q[..., m:-m, m:-m])
        if self.cfg.structure_weight:
            losses["structure"] = self.cfg.structure_weight * (1 - contrast_structure(g, c))
        tv = (g[..., 1:, :] - g[..., :-1, :]).abs().mean() + (g[..., 1:] - g[..., :-1]).abs().mean()
        losses["tv"] = self.cfg.tv_weight * tv * 255.0 ** 2
        losses["range"] = self.cfg.range_weight * (F.relu(g - 1) + F.relu(-g)).pow(2).mean()
        return losses

    # --- loop ---------------------------------------------------------------------------
    def run(self, max_minutes: float | None = None) -> None:
        total = self.cfg.distill_steps + self.cfg.adain_steps
        start = time.time()
        last_log = start
        first_step = self.step
        while self.step < total:
            if self.step == self.cfg.distill_steps:
                self._make_optimizer()
            stage = "distill" if self.step < self.cfg.distill_steps else "adain"
            if stage == "adain":  # cosine decay to 10% over the stage
                progress = (self.step - self.cfg.distill_steps) / max(1, self.cfg.adain_steps)
                for group in self.opt.param_groups:
                    decay = 0.1 + 0.45 * (1 + math.cos(math.pi * progress))
                    group["lr"] = group.get("base_lr", self.cfg.adain_lr) * decay
            self.encoder.train(stage == "distill" or self.cfg.encoder_lr > 0)
            losses = self.distill_step() if stage == "distill" else self.adain_step()
            loss = sum(losses.values())
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            self.step += 1
            if self.step % 20 == 0 or time.time() - last_log > 60:
                last_log = time.time()
                parts = " ".join(f"{k}={float(v.detach()):.4g}" for k, v in losses.items())
                log.info("step %d/%d %s loss=%.4g %s (%.2f s/step avg)", self.step, total, stage, float(loss.detach()),
                         parts, (time.time() - start) / max(1, self.step - first_step))
            if self.step % self.cfg.checkpoint_every == 0 or self.step == total:
                self.save()
            if max_minutes is not None and time.time() - start > max_minutes * 60:
                self.save()
                log.info("stopping at step %d after %.1f min (time limit); rerun to resume", self.step, max_minutes)
                return
        log.info("finished %d steps", self.step)

    def export(self, path: str | Path, extra: dict | None = None) -> Path:
        """Write encoder + decoder as one safetensors file with the config in its metadata."""
        from ...model import save_student

        meta = {"steps": str(self.step), **{k: str(v) for k, v in (extra or {}).items()}}
        return save_student(self.encoder, self.decoder, self.student_cfg, path, meta)


def checkpoint_student(path: str | Path) -> dict | None:
    """The student config a checkpoint was trained with: stored in it, or (older checkpoints)
    in the ``config.json`` of its run folder; None if neither is there."""
    path = Path(path)
    if path.suffix == ".safetensors":  # an exported model: the config is in its metadata
        from ...model import student_config

        return student_config(path)
    state = torch.load(path, weights_only=True, map_location="cpu")
    if "student" in state:
        return json.loads(state["student"])
    config = path.parent / "config.json"
    if config.exists():
        return json.loads(config.read_text()).get("student")
    return None


def setup_logging(run_dir: str | Path) -> None:
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s")
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    for handler in (logging.FileHandler(run_dir / "train.log"), logging.StreamHandler()):
        handler.setFormatter(fmt)
        root.addHandler(handler)
