"""Inference rewrites that change how a network computes, never what it computes.

Shared by the torch-bf16 backend and the ONNX export, so each trick is written once:

- ``fold_input_scale``: frames arrive as 0..255; conv(x / 255) is a convolution with the
  weights / 255 (zero, reflect and replicate padding are all linear in x), so no per-frame
  multiply is needed.
- ``drop_pixel_shuffle`` / ``unshuffle_hwc``: a final PixelShuffle(r) becomes a reordering of
  the last convolution's output channels from PixelShuffle's (c, i, j) to (i, j, c); the
  channels-last output (N, h, w, r*r*C) is then the frame (N, h*r, w*r, C) after one swap of
  axes with contiguous (j, c) runs, instead of a slow shuffle plus a transpose.
- ``fold_skip_adain``: AdaIN on a skip tap followed by its 1x1 projection is one 1x1
  convolution: W (f * s + t) + b == (W * s) f + (W t + b).
"""

from __future__ import annotations

import torch
from torch import nn

from .nets import Decoder, Encoder


def fold_input_scale(encoder: Encoder, scale: float = 1.0 / 255.0) -> bool:
    """Fold ``scale`` into the first convolution; False (nothing changed) if the encoder does
    not start with one, and the caller must scale its input itself."""
    first = encoder.layers[0]
    if not isinstance(first, nn.Conv2d):
        return False
    first.weight.data.mul_(scale)
    return True


def drop_pixel_shuffle(decoder: Decoder) -> int:
    """Replace a final PixelShuffle(r) by Identity and reorder the convolution before it (see
    the module docstring); returns r, or 0 when the decoder does not end in a PixelShuffle."""
    layers = decoder.layers
    if not isinstance(layers[-1], nn.PixelShuffle):
        return 0
    r = layers[-1].upscale_factor
    conv = layers[-2]
    channels = conv.out_channels // (r * r)
    order = torch.tensor([c * r * r + k for k in range(r * r) for c in range(channels)])
    conv.weight.data = conv.weight.data[order].clone()
    conv.bias.data = conv.bias.data[order].clone()
    layers[-1] = nn.Identity()
    return r


def unshuffle_hwc(y: torch.Tensor, r: int) -> torch.Tensor:
    """(N, h, w, r*r*C) from a decoder rewritten by ``drop_pixel_shuffle`` -> (N, h*r, w*r, C)."""
    n, h, w, rrc = y.shape
    return y.reshape(n, h, w, r, rrc // r).permute(0, 1, 3, 2, 4).reshape(n, h * r, w * r, rrc // (r * r))


def fold_skip_adain(weight: torch.Tensor, bias: torch.Tensor, scale: torch.Tensor,
                    shift: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The 1x1 projection (weight (O, C, 1, 1), bias (O,)) of ``f * scale + shift`` (scale and
    shift (1, C, 1, 1)) as one projection of f."""
    folded_w = weight * scale.reshape(1, -1, 1, 1)
    folded_b = bias + (weight[:, :, 0, 0] @ shift.reshape(-1, 1)).reshape(-1)
    return folded_w, folded_b
