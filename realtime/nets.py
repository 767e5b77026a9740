"""Networks, declared as data.

- ``vgg_normalised()`` / ``adain_decoder()``: the exact layouts of the published
  pytorch-AdaIN checkpoints (``vgg_normalised.pth``, ``decoder.pth``), so they load with
  strict keys.
- ``student_encoder()`` / ``student_decoder()``: our configurable VGG-style family
  (width multiplier, depth to relu3_1 or relu4_1, optional depthwise-separable blocks,
  optional fast stem) used for the models we train ourselves.
- ``vgg16_teacher()``: ImageNet VGG-16 to relu4_1 (Caffe weights), the teacher and loss network.

Every encoder takes RGB in [0, 1], shape (N, 3, H, W), and every decoder returns RGB
that is roughly in [0, 1] (callers clamp). Models come from these factories only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, fields

import torch
from torch import nn

from .adain import calc_mean_std

TAPS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")


class Encoder(nn.Module):
    """A Sequential plus the indices of its named ReLU outputs (taps)."""

    def __init__(self, layers: nn.Sequential, taps: dict[str, int], stride: int):
        super().__init__()
        self.layers = layers
        self.taps = dict(taps)
        self.stride = stride
        self.out_channels = _last_conv(layers).out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)

    def features(self, x: torch.Tensor, names: tuple[str, ...] = TAPS) -> dict[str, torch.Tensor]:
        """The tapped activations named in ``names``, running only as deep as needed."""
        wanted = {self.taps[n]: n for n in names}
        out: dict[str, torch.Tensor] = {}
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i in wanted:
                out[wanted[i]] = x
                if len(out) == len(wanted):
                    break
        return out


def _last_conv(layers: nn.Sequential) -> nn.Conv2d:
    convs = [m for m in layers.modules() if isinstance(m, nn.Conv2d)]
    return convs[-1]


# --- published pytorch-AdaIN layouts --------------------------------------------------------

def _pad() -> nn.ReflectionPad2d:
    return nn.ReflectionPad2d((1, 1, 1, 1))


def _pool() -> nn.MaxPool2d:
    return nn.MaxPool2d((2, 2), (2, 2), (0, 0), ceil_mode=True)


def vgg_normalised() -> nn.Sequential:
    """The 53-module VGG-19 of ``vgg_normalised.pth``; module 0 folds in the preprocessing."""
    return nn.Sequential(
        nn.Conv2d(3, 3, (1, 1)),
        _pad(), nn.Conv2d(3, 64, (3, 3)), nn.ReLU(),  # relu1_1 (3)
        _pad(), nn.Conv2d(64, 64, (3, 3)), nn.ReLU(),  # relu1_2
        _pool(),
        _pad(), nn.Conv2d(64, 128, (3, 3)), nn.ReLU(),  # relu2_1 (10)
        _pad(), nn.Conv2d(128, 128, (3, 3)), nn.ReLU(),  # relu2_2
        _pool(),
        _pad(), nn.Conv2d(128, 256, (3, 3)), nn.ReLU(),  # relu3_1 (17)
        _pad(), nn.Conv2d(256, 256, (3, 3)), nn.ReLU(),  # relu3_2
        _pad(), nn.Conv2d(256, 256, (3, 3)), nn.ReLU(),  # relu3_3
        _pad(), nn.Conv2d(256, 256, (3, 3)), nn.ReLU(),  # relu3_4
        _pool(),
        _pad(), nn.Conv2d(256, 512, (3, 3)), nn.ReLU(),  # relu4_1 (30)
        _pad(), nn.Conv2d(512, 512, (3, 3)), nn.ReLU(),  # relu4_2
        _pad(), nn.Conv2d(512, 512, (3, 3)), nn.ReLU(),  # relu4_3
        _pad(), nn.Conv2d(512, 512, (3, 3)), nn.ReLU(),  # relu4_4
        _pool(),
        _pad(), nn.Conv2d(512, 512, (3, 3)), nn.ReLU(),  # relu5_1
        _pad(), nn.Conv2d(512, 512, (3, 3)), nn.ReLU(),  # relu5_2
        _pad(), nn.Conv2d(512, 512, (3, 3)), nn.ReLU(),  # relu5_3
        _pad(), nn.Conv2d(512, 512, (3, 3)), nn.ReLU(),  # relu5_4
    )


VGG19_TAPS = {"relu1_1": 3, "relu2_1": 10, "relu3_1": 17, "relu4_1": 30}


def vgg19_encoder(full: nn.Sequential) -> Encoder:
    """Inference keeps modules [:31], up to relu4_1."""
    return Encoder(nn.Sequential(*list(full.children())[:31]), VGG19_TAPS, stride=8)


def adain_decoder() -> Decoder:
    """The 29-module decoder of ``decoder.pth`` (relu4_1, 512 channels -> RGB), as ``layers``."""
    return Decoder(_adain_decoder_layers(), "relu4_1")


def _adain_decoder_layers() -> nn.Sequential:
    return nn.Sequential(
        _pad(), nn.Conv2d(512, 256, (3, 3)), nn.ReLU(),
        nn.Upsample(scale_factor=2, mode="nearest"),
        _pad(), nn.Conv2d(256, 256, (3, 3)), nn.ReLU(),
        _pad(), nn.Conv2d(256, 256, (3, 3)), nn.ReLU(),
        _pad(), nn.Conv2d(256, 256, (3, 3)), nn.ReLU(),
        _pad(), nn.Conv2d(256, 128, (3, 3)), nn.ReLU(),
        nn.Upsample(scale_factor=2, mode="nearest"),
        _pad(), nn.Conv2d(128, 128, (3, 3)), nn.ReLU(),
        _pad(), nn.Conv2d(128, 64, (3, 3)), nn.ReLU(),
        nn.Upsample(scale_factor=2, mode="nearest"),
        _pad(), nn.Conv2d(64, 64, (3, 3)), nn.ReLU(),
        _pad(), nn.Conv2d(64, 3, (3, 3)),
    )


# --- our student family ---------------------------------------------------------------------

@dataclass(frozen=True)
class StudentConfig:
    """Shape of a student encoder/decoder pair.

    width: multiplier on VGG's 64/128/256/512 channels.
    depth: 3 (up to relu3_1) or 4 (up to relu4_1).
    separable: depthwise-separable 3x3 blocks except the first conv.
    fast_stem: stride-2 first conv and a pixel-shuffle output, so no layer but the first
        and last touches full resolution (the full-resolution layers are memory bound on CPU).
    decoder_width: multiplier for the decoder (defaults to width).
    skips: shallower taps (e.g. relu1_1, relu2_1, relu3_1) that are AdaIN-normalised with the
        style's statistics at that level and added into the decoder after the upsampling that
        reaches their resolution (multi-level AdaIN): detail comes back, style acts at every scale.
    padding: how every 3x3 convolution pads: "zeros" (our first models) lets the network find
        the picture's edge and paint a frame there; "reflect" gives it nothing to find.
    modulate: hidden size of the decoder's style modulation (0: none). The decoder reads the
        channel statistics of its own input, which after AdaIN are the style's, and turns them
        into a scale and shift for every hidden convolution: it can paint each style its own way
        rather than one way for all (after MicroAST's modulated decoder blocks).
    """

    width: float = 0.25
    depth: int = 4
    separable: bool = False
    fast_stem: bool = True
    decoder_width: float | None = None
    skips: tuple[str, ...] = ()
    padding: str = "zeros"
    modulate: int = 0

    def __post_init__(self) -> None:
        if self.padding not in PADDINGS:
            raise ValueError(f"padding must be one of {PADDINGS}, got {self.padding!r}")
        if self.depth not in (3, 4):
            raise ValueError(f"depth must be 3 or 4, got {self.depth}")
        if not 0 < self.width <= 1 or (self.decoder_width is not None and not 0 < self.decoder_width <= 1):
            raise ValueError("width multipliers must be in (0, 1]")
        object.__setattr__(self, "skips", tuple(self.skips))
        bad = [t for t in self.skips if t not in TAPS[: self.depth - 1]]
        if bad:
            raise ValueError(f"skips must be among {TAPS[: self.depth - 1]}, got {bad}")
        if not isinstance(self.modulate, int) or self.modulate < 0:
            raise ValueError(f"modulate must be a hidden size >= 0, got {self.modulate!r}")

    @classmethod
    def from_dict(cls, d: dict) -> StudentConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    @property
    def taps(self) -> tuple[str, ...]:
        """Every feature the decoder needs: the skips, shallow to deep, then the deepest tap."""
        return (*sorted(self.skips), TAPS[self.depth - 1])

    def to_dict(self) -> dict:
        d = asdict(self)
        if not self.modulate:  # files without it read the same as before it existed
            del d["modulate"]
        return d

    def channels(self, decoder: bool = False) -> list[int]:
        w = self.decoder_width if decoder and self.decoder_width is not None else self.width
        return [max(8, int(round(c * w))) for c in (64, 128, 256, 512)][: self.depth]

    @property
    def stride(self) -> int:
        return 2 ** (self.depth - 1) * (2 if self.fast_stem else 1)


PADDINGS = ("zeros", "reflect", "replicate")


def _conv3(cin: int, cout: int, padding: str, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride, 1, groups=groups, padding_mode=padding)


def _block(cin: int, cout: int, cfg: StudentConfig) -> list[nn.Module]:
    if cfg.separable:
        return [_conv3(cin, cin, cfg.padding, groups=cin), nn.Conv2d(cin, cout, 1), nn.ReLU()]
    return [_conv3(cin, cout, cfg.padding), nn.ReLU()]


def student_encoder(cfg: StudentConfig) -> Encoder:
    """VGG-style encoder; relu1_1 ... relu{depth}_1 tapped. Input RGB [0, 1]."""
    c = cfg.channels()
    stem_stride = 2 if cfg.fast_stem else 1
    layers: list[nn.Module] = [_conv3(3, c[0], cfg.padding, stem_stride), nn.ReLU()]  # relu1_1
    taps = {"relu1_1": 1}
    for level in range(1, cfg.depth):
        layers += _block(c[level - 1], c[level - 1], cfg)  # relu{level}_2
        layers.append(nn.MaxPool2d(2, 2, ceil_mode=True))
        layers += _block(c[level - 1], c[level], cfg)  # relu{level+1}_1
        taps[f"relu{level + 1}_1"] = len(layers) - 1
    return Encoder(nn.Sequential(*layers), taps, stride=cfg.stride)


class StyleModulation(nn.Module):
    """(N, C, h, w) decoder input -> {layer index: (scale, shift)}, each (N, c, 1, 1).

    A small MLP of the input's channel means and standard deviations (after AdaIN: the style's).
    Its last layer starts at zero, so a fresh modulation is the identity and a decoder trained
    without one keeps its output when one is added. The hidden layer is SiLU: with ReLU, training
    left 8 of 128 hidden units alive for any of eight eval styles (their inputs are all >= 0 and
    the first layer learns only through a last layer that starts at zero).
    """

    def __init__(self, channels: int, hidden: int, targets: dict[int, int]):
        super().__init__()
        self.targets = dict(targets)  # layer index -> channels it outputs
        self.mlp = nn.Sequential(nn.Linear(2 * channels, hidden), nn.SiLU(),
                                 nn.Linear(hidden, 2 * sum(self.targets.values())))
        nn.init.zeros_(self.mlp[2].weight)
        nn.init.zeros_(self.mlp[2].bias)

    def forward(self, x: torch.Tensor) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
        n = x.shape[0]
        mean, std = calc_mean_std(x)
        params = self.mlp(torch.cat([mean.flatten(1), std.flatten(1)], dim=1))
        out, at = {}, 0
        for idx, ch in self.targets.items():
            scale = params[:, at: at + ch].reshape(n, ch, 1, 1) + 1.0
            shift = params[:, at + ch: at + 2 * ch].reshape(n, ch, 1, 1)
            out[idx] = (scale, shift)
            at += 2 * ch
        return out


class Decoder(nn.Module):
    """Features -> RGB: a Sequential of layers, plus (multi-level AdaIN) 1x1 projections of
    shallower taps added after the layers that reach their resolution, and (optionally) a style
    modulation of its hidden convolutions made from the statistics of its input.

    forward(feats): feats maps tap name -> (N, C, h, w); ``deepest`` is required, the skip taps
    too. ``run`` is the same loop with the skip terms made by the caller (a backend that folds
    AdaIN into the projections). Every decoder, ours and the published one, is this type.
    """

    def __init__(self, layers: nn.Sequential, deepest: str, skips: dict[str, tuple[int, nn.Conv2d]] | None = None,
                 mod: StyleModulation | None = None):
        super().__init__()
        self.layers = layers
        self.deepest = deepest
        self.inject = {idx: tap for tap, (idx, _) in (skips or {}).items()}
        self.skips = nn.ModuleDict({tap: conv for tap, (_, conv) in (skips or {}).items()})
        self.mod = mod  # None adds no keys: files without a modulation load as before

    def forward(self, feats: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.run(feats[self.deepest], lambda tap: self.skips[tap](feats[tap]))

    def run(self, x: torch.Tensor, skip: Callable[[str], torch.Tensor]) -> torch.Tensor:
        films = self.mod(x) if self.mod is not None else {}
        for i, layer in enumerate(self.layers):
            x = layer(x)
            film = films.get(i)
            if film is not None:
                x = torch.addcmul(film[1], x, film[0])
            tap = self.inject.get(i)
            if tap is not None:
                x = x + skip(tap)
        return x


def student_decoder(cfg: StudentConfig) -> Decoder:
    """Mirror of the encoder: features at relu{depth}_1 (and skips) -> RGB at the input size.

    The skip projections start at zero, so a fresh decoder with skips computes exactly what
    its layers alone compute.
    """
    layers = _mirror_layers(cfg)
    enc = dict(zip(TAPS, cfg.channels()))
    ups = [i for i, m in enumerate(layers) if isinstance(m, nn.Upsample)]
    skips = {}
    for k, idx in enumerate(ups):  # the k-th upsampling reaches the resolution of relu{depth-1-k}_1
        tap = TAPS[cfg.depth - 2 - k]
        if tap in cfg.skips:
            conv = nn.Conv2d(enc[tap], _last_conv(nn.Sequential(*list(layers)[:idx])).out_channels, 1)
            nn.init.zeros_(conv.weight)
            nn.init.zeros_(conv.bias)
            skips[tap] = (idx, conv)
    mod = None
    if cfg.modulate:
        hidden = {i: m.out_channels for i, m in enumerate(layers)
                  if isinstance(m, nn.Conv2d) and i + 1 < len(layers) and isinstance(layers[i + 1], nn.ReLU)}
        mod = StyleModulation(cfg.channels()[-1], cfg.modulate, hidden)
    return Decoder(layers, TAPS[cfg.depth - 1], skips, mod)


def _mirror_layers(cfg: StudentConfig) -> nn.Sequential:
    enc = cfg.channels()
    c = cfg.channels(decoder=True)
    layers: list[nn.Module] = _block(enc[-1], c[-2], cfg)
    layers.append(nn.Upsample(scale_factor=2, mode="nearest"))
    for level in range(cfg.depth - 2, 0, -1):
        layers += _block(c[level], c[level], cfg)
        layers += _block(c[level], c[level - 1], cfg)
        layers.append(nn.Upsample(scale_factor=2, mode="nearest"))
    layers += _block(c[0], c[0], cfg)
    if cfg.fast_stem:
        layers += [_conv3(c[0], 12, cfg.padding), nn.PixelShuffle(2)]
    else:
        layers.append(_conv3(c[0], 3, cfg.padding))
    return nn.Sequential(*layers)


# --- teacher ----------------------------------------------------------------------------------

VGG16_BLOCKS = (("block1_conv1", 3, 64), ("block1_conv2", 64, 64), "pool",
                ("block2_conv1", 64, 128), ("block2_conv2", 128, 128), "pool",
                ("block3_conv1", 128, 256), ("block3_conv2", 256, 256), ("block3_conv3", 256, 256), "pool",
                ("block4_conv1", 256, 512))
VGG16_TAPS = {"relu1_1": 2, "relu2_1": 7, "relu3_1": 12, "relu4_1": 19}
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


class CaffePreprocess(nn.Module):
    """RGB [0, 1] -> BGR x 255 - ImageNet mean (the Caffe VGG convention)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(CAFFE_MEAN_BGR).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flip(1) * 255.0 - self.mean


def vgg16_teacher(state: dict[str, torch.Tensor] | None = None) -> Encoder:
    """VGG-16 conv layers to relu4_1 (stride 8). ``state`` uses the ``blockB_convK`` keys."""
    layers: list[nn.Module] = [CaffePreprocess()]
    names: list[tuple[int, str]] = []
    for spec in VGG16_BLOCKS:
        if spec == "pool":
            layers.append(nn.MaxPool2d(2, 2))
            continue
        name, cin, cout = spec
        names.append((len(layers), name))
        layers += [nn.Conv2d(cin, cout, 3, 1, 1), nn.ReLU()]
    seq = nn.Sequential(*layers)
    if state is not None:
        mapped = {}
        for idx, name in names:
            mapped[f"{idx}.weight"] = state[f"{name}.weight"]
            mapped[f"{idx}.bias"] = state[f"{name}.bias"]
        seq.load_state_dict(mapped, strict=True)
    enc = Encoder(seq, VGG16_TAPS, stride=8)
    enc.requires_grad_(False)
    return enc.eval()
