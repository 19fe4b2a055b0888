"""The published efficient-SR networks that issue 13's targets come from, rebuilt layer for layer to be timed.

Only their shapes matter here: the weights are random (a network's speed does not depend on its weights),
and their quality is the published one, trained on other data (FSRCNN on 91 images and General-100, CARN-M
on DIV2K), so it is quoted as published, never as measured here.

- FSRCNN (Dong et al., 2016; d=56, s=12, m=4): works on the luminance only, PReLU after every convolution,
  a 9x9 transposed convolution makes the output. Colour would be resized on top of it (not timed: that
  favours FSRCNN).
- CARN-M (Ahn et al., 2018): an entry convolution, three cascading blocks mixed by 1x1 convolutions on the
  concatenation of everything before; in each block one efficient residual block (grouped 3x3, 3x3, 1x1,
  groups of 4, its weights shared by its three uses) cascaded the same way; grouped sub-pixel upsampling,
  an exit convolution.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

# Set5 / Set14 PSNR (Y channel) as published; the figures issue 13 quotes.
PUBLISHED = {
    ("FSRCNN", 2): (37.00, 32.63), ("FSRCNN", 3): (33.18, 29.37), ("FSRCNN", 4): (30.72, 27.61),
    ("CARN-M", 2): (37.53, 33.26), ("CARN-M", 3): (33.99, 30.08), ("CARN-M", 4): (31.92, 28.42),
}
TRAINED_ON = {"FSRCNN": "91 images + General-100", "CARN-M": "DIV2K"}


class FSRCNN(nn.Module):
    """`subpixel`: the 9x9 transposed convolution written as a convolution to scale^2 channels and a pixel
    shuffle (the same kind of map, often faster on a CPU), so FSRCNN is timed in its faster form."""

    def __init__(self, scale: int, d: int = 56, s: int = 12, m: int = 4, subpixel: bool = False) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(1, d, 5, padding=2), nn.PReLU(d), nn.Conv2d(d, s, 1), nn.PReLU(s)]
        for _ in range(m):
            layers += [nn.Conv2d(s, s, 3, padding=1), nn.PReLU(s)]
        layers += [nn.Conv2d(s, d, 1), nn.PReLU(d)]
        self.body = nn.Sequential(*layers)
        if subpixel:  # each output phase sees ceil(9 / scale) input pixels across, rounded up to odd
            k = -(-9 // scale) | 1
            self.deconv = nn.Sequential(nn.Conv2d(d, scale * scale, k, padding=k // 2), nn.PixelShuffle(scale))
        else:
            self.deconv = nn.ConvTranspose2d(d, 1, 9, stride=scale, padding=4, output_padding=scale - 1)
        self.scale = scale
        self.channels = 1

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.deconv(self.body(y))


class _EfficientResidual(nn.Module):
    def __init__(self, width: int, groups: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(width, width, 3, padding=1, groups=groups), nn.ReLU(inplace=True),
                                  nn.Conv2d(width, width, 3, padding=1, groups=groups), nn.ReLU(inplace=True),
                                  nn.Conv2d(width, width, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + x)


class _Cascade(nn.Module):
    """Three units in a row, each output concatenated with everything before and mixed by a 1x1 conv (the
    inner cascade passes one unit three times: its weights are shared)."""

    def __init__(self, units: list[nn.Module], width: int) -> None:
        super().__init__()
        self.units = nn.ModuleList(units)
        self.mix = nn.ModuleList(nn.Sequential(nn.Conv2d(width * (i + 2), width, 1), nn.ReLU(inplace=True))
                                 for i in range(len(units)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        concat = out = x
        for unit, mix in zip(self.units, self.mix):
            concat = torch.cat([concat, unit(out)], dim=1)
            out = mix(concat)
        return out


def _cascading_block(width: int, groups: int) -> _Cascade:
    return _Cascade([_EfficientResidual(width, groups)] * 3, width)


class CARNM(nn.Module):
    def __init__(self, scale: int, width: int = 64, groups: int = 4) -> None:
        super().__init__()
        self.entry = nn.Conv2d(3, width, 3, padding=1)
        self.cascade = _Cascade([_cascading_block(width, groups) for _ in range(3)], width)
        up: list[nn.Module] = []
        for factor in ([2, 2] if scale == 4 else [scale]):
            up += [nn.Conv2d(width, width * factor ** 2, 3, padding=1, groups=groups), nn.ReLU(inplace=True),
                   nn.PixelShuffle(factor)]
        self.upsample = nn.Sequential(*up)
        self.exit = nn.Conv2d(width, 3, 3, padding=1)
        self.register_buffer("mean", torch.tensor([0.4488, 0.4371, 0.4040]).view(1, 3, 1, 1))
        self.scale = scale
        self.channels = 3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.exit(self.upsample(self.cascade(self.entry(x - self.mean)))) + self.mean


NETWORKS = {"FSRCNN": FSRCNN, "CARN-M": CARNM}
FORMS = {"FSRCNN": {"transposed conv": {}, "sub-pixel": {"subpixel": True}}, "CARN-M": {"": {}}}


def reference_network(name: str, scale: int, form: str | None = None) -> nn.Module:
    """The network `name` at `scale`, in one of its FORMS (default: the first, the paper's)."""
    forms = FORMS[name]
    return NETWORKS[name](scale, **forms[form if form is not None else next(iter(forms))]).eval()
