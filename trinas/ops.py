"""Slimmable candidate operations: one module per operation at the maximum width, run at any width.

Every filter of a candidate runs at a fixed norm (`fixed_norm`). Without it, a cell could scale its own
output to undo any keep or operation weight, so at the weights' optimum the reconstruction gradient on those
architecture weights is 0, whatever the cell is worth, and the choice follows noise and the order term (the
x2 reference runs drifted to no cells). With fixed norms the weights set what a cell computes and the
architecture sets how much of it is used. A derived TriNet takes the normalised filters (`supernet.derived_value`) and
trains them freely from there.

A narrower width is the first `w` filters of the widest one (kernel level), so a derived network takes its
weights by slicing. Inside the supernet a width is a channel mask: the soft mask of a width distribution,
`mask[c] = P(width > c)`, which is exactly 1 on the first `w` channels and 0 after once the distribution is
one-hot. The modules are TriNet's own (`net.make_op`), so parameter names match those of a derived TriNet.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .net import make_op
from .space import OPERATIONS, WIDTH_CHANGING


def make_candidate(name: str, max_width: int) -> nn.Module:
    """The operation `name` at the maximum width, both in and out."""
    return make_op(name, max_width, max_width)


FILTER_NORM = 3 ** -0.5  # the expected norm of a filter under PyTorch's default conv initialisation


def fixed_norm(weight: torch.Tensor) -> torch.Tensor:
    """The filters of a candidate's conv, each (output channel) scaled to the norm FILTER_NORM."""
    norms = weight.flatten(1).norm(dim=1).clamp_min(1e-12)
    return weight * (FILTER_NORM / norms).view(-1, *([1] * (weight.dim() - 1)))


def _conv(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    return conv._conv_forward(x, fixed_norm(conv.weight), conv.bias)


def width_mask(probs: torch.Tensor, widths: tuple[int, ...], max_width: int) -> torch.Tensor:
    """Soft channel masks (..., max_width) from width distributions (..., len(widths))."""
    channel = torch.arange(max_width, device=probs.device)
    below = (channel[None, :] < torch.tensor(widths, device=probs.device)[:, None]).to(probs.dtype)
    return probs @ below


def as_channels(mask: torch.Tensor) -> torch.Tensor:
    """A (C,) mask shaped to multiply (N, C, H, W) features."""
    return mask.view(1, -1, 1, 1)


def run_candidate(name: str, module: nn.Module, x: torch.Tensor, in_mask: torch.Tensor,
                  trunk_mask: torch.Tensor) -> torch.Tensor:
    """Apply one candidate as a slice of itself: `in_mask` says which input channels exist.

    Only the inside of an operation needs masking here (a depthwise conv or a residual block's middle, whose
    width is its input's); the caller masks the output to the width chosen for it.
    """
    kind = OPERATIONS[name]["kind"]
    if kind == "skip":
        return x
    if kind == "conv":
        return _conv(module, x)
    if kind == "sepconv":
        return _conv(module.pointwise, _conv(module.depthwise, x) * as_channels(in_mask))
    if kind == "resblock":
        return x + _conv(module.conv2, F.relu(_conv(module.conv1, x)) * as_channels(trunk_mask))
    raise ValueError(f"unknown operation kind {kind!r}")


def changes_width(name: str) -> bool:
    return name in WIDTH_CHANGING
