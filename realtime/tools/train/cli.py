"""Train (or resume) a student model, then export it to safetensors.

Example (two CPU cores, ~2.5 h):
    python scripts/train.py --run runs/lite --teacher ../shared/weights/vgg16_imagenet_caffe.safetensors \
        --data ../shared/data --export models/lite/model.safetensors --max-minutes 150
Rerunning the same command resumes from runs/lite/last.pt."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

USAGE = """Train (or resume) a student model, then export it to safetensors.

Example (two CPU cores, ~2.5 h):
    python scripts/train.py --run runs/lite --teacher ../shared/weights/vgg16_imagenet_caffe.safetensors \
        --data ../shared/data --export models/lite/model.safetensors --max-minutes 150
Rerunning the same command resumes from runs/lite/last.pt.
"""


def _parser() -> argparse.ArgumentParser:
    """Flags named as TrainConfig's fields, so every flag given overrides its field."""
    p = argparse.ArgumentParser(description=USAGE, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, help="run folder: checkpoints, train.log, config.json")
    p.add_argument("--teacher", required=True, help="vgg16_imagenet_caffe.safetensors")
    p.add_argument("--data", required=True, help="folder with content/train and style/train")
    p.add_argument("--export", help="write the final weights here (safetensors)")
    p.add_argument("--max-minutes", type=float, help="stop (and checkpoint) after this long")
    p.add_argument("--export-now", action="store_true", help="export the last checkpoint to --export, no training")
    p.add_argument("--distill-steps", type=int)
    p.add_argument("--adain-steps", type=int)
    p.add_argument("--batch", type=int)
    p.add_argument("--crop", type=int)
    p.add_argument("--style-weight", type=float)
    p.add_argument("--student", type=json.loads, help='JSON, e.g. {"width": 0.25, "depth": 4}')
    p.add_argument("--seed", type=int)
    p.add_argument("--threads", type=int, help="torch threads (default 2; 1 each for two runs side by side)")
    p.add_argument("--init-from", help="warm start from another run's last.pt or an exported .safetensors "
                                        "(skips distillation); its student config is kept unless --student is given")
    for flag, kind, text in (("--adain-lr", float, "decoder learning rate in the AdaIN stage"),
                             ("--encoder-lr", float, "fine-tune the encoder end to end at this rate (AdaIN stage)"),
                             ("--mod-lr", float, "learning rate of the decoder's style modulation (default: "
                                                 "--adain-lr)"),
                             ("--short-side", int, "hold training images at this short side"),
                             ("--max-zoom-out", float, "crop windows span crop..crop*this pixels"),
                             ("--adain-content-weight", float, "weight of the AdaIN-target content loss"),
                             ("--perceptual-content-weight", float, "weight of the perceptual content loss"),
                             ("--style-distance-weight", float, "weight of the eval-form style distance"),
                             ("--style-max-side", int, "train on whole style images at this long side "
                                                       "(as the product sees them) instead of crops"),
                             ("--distill-from", str, "an exported .safetensors whose outputs to distil"),
                             ("--distill-weight", float, "weight of the L1 to the --distill-from outputs"),
                             ("--distill-margin", int, "border pixels the distillation ignores"),
                             ("--structure-weight", float, "weight of 1 - SSIM's contrast-structure term "
                                                           "between output and content luma")):
        p.add_argument(flag, type=kind, help=text)
    return p


def main(argv: list[str] | None = None) -> None:
    from dataclasses import fields

    p = _parser()
    args = p.parse_args(argv)

    from .trainer import Trainer, TrainConfig, checkpoint_student, setup_logging

    setup_logging(args.run)
    cfg_path = Path(args.run) / "config.json"
    data = Path(args.data)
    base = {"content_dir": str(data / "content/train"), "style_dir": str(data / "style/train"), "teacher": args.teacher}
    if cfg_path.exists():  # resuming: the stored config wins, flags may extend step counts
        base.update(json.loads(cfg_path.read_text()))
    overrides = {f.name: getattr(args, f.name) for f in fields(TrainConfig)
                 if f.name != "teacher" and getattr(args, f.name, None) is not None}
    if args.init_from and args.student is None and not cfg_path.exists():  # same network as the run it starts from
        inherited = checkpoint_student(args.init_from)
        if inherited is not None:
            overrides["student"] = inherited
    cfg = TrainConfig(**{**base, **overrides})
    trainer = Trainer(cfg, args.run)
    if args.export_now:
        if not args.export:
            p.error("--export-now needs --export PATH")
        logging.getLogger("realtime.train").info("exported step %d to %s", trainer.step, trainer.export(args.export))
        return
    trainer.run(max_minutes=args.max_minutes)
    if args.export and trainer.step >= cfg.distill_steps + cfg.adain_steps:
        out = trainer.export(args.export)
        logging.getLogger("realtime.train").info("exported %s", out)


if __name__ == "__main__":
    main()
