"""Slimmable candidate operations: one module per operation at the maximum width, run at any width.

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
        return module(x)
    if kind == "sepconv":
        return module.pointwise(module.depthwise(x) * as_channels(in_mask))
    if kind == "resblock":
        return x + module.conv2(F.relu(module.conv1(x)) * as_channels(trunk_mask))
    raise ValueError(f"unknown operation kind {kind!r}")


def changes_width(name: str) -> bool:
    return name in WIDTH_CHANGING
