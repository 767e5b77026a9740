"""Style models: an encoder and a decoder around AdaIN, built from the registry or a path."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from torch import nn

from . import nets
from .adain import adain_with_stats, blend_alpha, calc_mean_std
from .errors import InputNotFoundError, WeightsError
from .registry import ModelSpec, get_spec, resolve


Feats = dict[str, torch.Tensor]
StatsByTap = dict[str, tuple[torch.Tensor, torch.Tensor]]


class StyleModel(nn.Module):
    """encode: RGB [0, 1] (N, 3, H, W) -> {tap: features}; decode: AdaIN per tap, then the decoder.

    ``taps`` are the feature levels AdaIN acts on: the deepest one, plus the skips of
    multi-level models. H and W must be multiples of ``stride``; the Stylizer pads and crops.
    """

    def __init__(self, name: str, encoder: nets.Encoder, decoder: nn.Module, taps: tuple[str, ...] | None = None):
        super().__init__()
        self.name = name
        self.encoder = encoder
        self.decoder = decoder
        self.stride = encoder.stride
        deepest = max(encoder.taps, key=encoder.taps.get)
        self.taps = tuple(taps) if taps else (deepest,)
        self.multi_level = len(self.taps) > 1

    def encode(self, x: torch.Tensor) -> Feats:
        return self.encoder.features(x, self.taps)

    def style_stats(self, style: torch.Tensor) -> StatsByTap:
        return {k: calc_mean_std(v) for k, v in self.encode(style).items()}

    def decode(self, feats: Feats, content: StatsByTap, style: StatsByTap, alpha: float = 1.0) -> torch.Tensor:
        t = {}
        for k, f in feats.items():
            t[k] = adain_with_stats(f, *style[k], content[k])
            if alpha < 1.0:
                t[k] = blend_alpha(f, t[k], alpha)
        return self.decoder(t)

    def forward(self, content: torch.Tensor, style: StatsByTap, alpha: float = 1.0) -> torch.Tensor:
        feats = self.encode(content)
        return self.decode(feats, {k: calc_mean_std(v) for k, v in feats.items()}, style, alpha)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Decode an image with its own statistics (shape checks, FLOP counts)."""
        return self.forward(x, self.style_stats(x))


def _torch_load(path: Path) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure means "not a plain state dict"
        raise WeightsError(f"{path} is not a plain PyTorch state dict ({type(e).__name__}); "
                           f"only weights_only checkpoints are loaded") from e
    if not isinstance(state, dict):
        raise WeightsError(f"{path} holds a {type(state).__name__}, expected a state dict")
    return state


def _strict(module: nn.Module, state: dict, path: Path) -> None:
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).splitlines()[0:2]
        raise WeightsError(f"{path} does not match the expected layout: {' '.join(first)}") from e


def load_adain_vgg19(encoder_path: Path, decoder_path: Path, name: str = "adain-vgg19") -> StyleModel:
    """The published pytorch-AdaIN pair (vgg_normalised.pth + decoder.pth)."""
    vgg = nets.vgg_normalised()
    _strict(vgg, _torch_load(encoder_path), encoder_path)
    decoder = nets.adain_decoder()
    _strict(decoder.layers, _torch_load(decoder_path), decoder_path)
    return StyleModel(name, nets.vgg19_encoder(vgg), decoder).eval()


def _read_student(path: Path, tensors: bool) -> tuple[dict, dict]:
    """(student config as stored, tensors or {}) of one of our safetensors files."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            weights = {k: f.get_tensor(k) for k in f.keys()} if tensors else {}
    except (SafetensorError, OSError) as e:
        raise WeightsError(f"{path} is not a readable safetensors file: {e}") from e
    if meta.get("format") != "realtime-style-student":
        raise WeightsError(f"{path} is not a realtime-style model (metadata format={meta.get('format')!r})")
    try:
        student = json.loads(meta["student"])
        nets.StudentConfig.from_dict(student)
    except (KeyError, TypeError, ValueError) as e:
        raise WeightsError(f"{path} has damaged metadata (its student config does not parse: {e}); "
                           f"export the model again") from e
    bad = [k for k, t in weights.items() if t.is_floating_point() and not bool(torch.isfinite(t).all())]
    if bad:
        raise WeightsError(f"{path} holds NaN or infinite weights ({bad[0]}{' and more' if len(bad) > 1 else ''}); "
                           f"the file is damaged or the training diverged")
    return student, weights


def student_config(path: str | os.PathLike) -> dict:
    """The student config stored in one of our safetensors files (no tensors are read)."""
    return _read_student(Path(path), tensors=False)[0]


def load_student(path: Path, name: str | None = None) -> StyleModel:
    """One of our own safetensors files (encoder.* and decoder.* tensors, config in metadata)."""
    student, tensors = _read_student(path, tensors=True)
    cfg = nets.StudentConfig.from_dict(student)
    encoder = nets.student_encoder(cfg)
    decoder = nets.student_decoder(cfg)
    _strict(encoder.layers, {k[8:]: v for k, v in tensors.items() if k.startswith("encoder.")}, path)
    _strict(decoder, upgrade_decoder_state({k[8:]: v for k, v in tensors.items() if k.startswith("decoder.")}), path)
    return StyleModel(name or path.stem, encoder, decoder, cfg.taps).eval()


def upgrade_decoder_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Files written before every decoder was a ``nets.Decoder`` keep a skip-less decoder's
    layers at the top level ("0.weight"); today they live under "layers."."""
    if any(k.startswith(("layers.", "skips.")) for k in state):
        return state
    return {f"layers.{k}": v for k, v in state.items()}


def save_student(encoder: nets.Encoder, decoder: nets.Decoder, cfg: nets.StudentConfig, path: str | os.PathLike,
                 metadata: dict[str, str] | None = None) -> Path:
    """Write a student pair as one safetensors file that ``load_student`` reads back."""
    tensors = {f"encoder.{k}": v.detach() for k, v in encoder.layers.state_dict().items()}
    tensors.update({f"decoder.{k}": v.detach() for k, v in decoder.state_dict().items()})
    return write_student(tensors, cfg.to_dict(), path, metadata)


def write_student(tensors: dict[str, torch.Tensor], student: dict, path: str | os.PathLike,
                  metadata: dict[str, str] | None = None) -> Path:
    """The file format ``load_student`` reads: "encoder.*" / "decoder.*" tensors, the student
    config as JSON in the metadata. Written under a temporary name and renamed, so a crash
    never leaves half a model under the final name."""
    from safetensors.torch import save_file

    meta = {"format": "realtime-style-student", "student": json.dumps(student), **(metadata or {})}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp), metadata=meta)
    os.replace(tmp, path)
    return path


def build_from_spec(spec: ModelSpec, paths: dict[str, Path]) -> StyleModel:
    if spec.arch == "adain-vgg19":
        return load_adain_vgg19(paths["encoder"], paths["decoder"], spec.name)
    if spec.arch == "student":
        return load_student(paths["weights"], spec.name)
    raise WeightsError(f"model {spec.name} has unknown architecture {spec.arch!r}")


def load_model(model: str | os.PathLike = "default", cache_dir: str | os.PathLike | None = None,
               allow_download: bool = True) -> StyleModel:
    """A registered name ("default", "lite", "adain-vgg19"), a .safetensors file of ours,
    or a folder holding vgg_normalised.pth and decoder.pth."""
    text = os.fspath(model)
    path = Path(text)
    looks_like_path = os.sep in text or path.suffix in (".safetensors", ".pth") or path.exists()
    if looks_like_path:
        if not path.exists():
            raise InputNotFoundError(f"model file not found: {path}")
        if path.is_dir():
            enc, dec = path / "vgg_normalised.pth", path / "decoder.pth"
            if not (enc.exists() and dec.exists()):
                raise WeightsError(f"{path} should hold vgg_normalised.pth and decoder.pth")
            return load_adain_vgg19(enc, dec, path.name)
        return load_student(path)
    spec = get_spec(text)
    spec, paths = resolve(spec.name, cache_dir, allow_download)
    return build_from_spec(spec, paths)
