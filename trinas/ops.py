"""Slimmable candidate operations: one module per operation at the maximum width, run at any width.

Every filter of a candidate runs at a fixed norm (`FixedNorm`, a `torch.nn.utils.parametrize`
parametrisation put on every convolution of a candidate). Without it, a cell could scale its own output to
undo any keep or operation weight, so at the weights' optimum the reconstruction gradient on those
architecture weights is 0, whatever the cell is worth, and the choice follows noise and the order term (the
x2 reference runs drifted to no cells). With fixed norms the weights set what a cell computes and the
architecture sets how much of it is used. A derived TriNet takes the normalised filters (reading a
parametrised `conv.weight` gives them) and trains them freely from there.

A narrower width is the first `w` filters of the widest one (kernel level), so a derived network takes its
weights by slicing. Inside the supernet a width is a channel mask: the soft mask of a width distribution,
`mask[c] = P(width > c)`, which is exactly 1 on the first `w` channels and 0 after once the distribution is
one-hot. The modules are TriNet's own (`OpKind.build`), so a derived TriNet is a slice of the supernet.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize

from .operations import op_kind

FILTER_NORM = 3 ** -0.5  # the expected norm of a filter under PyTorch's default conv initialisation


def fixed_norm(weight: torch.Tensor) -> torch.Tensor:
    """The filters of a conv, each (output channel) scaled to the norm FILTER_NORM."""
    norms = weight.flatten(1).norm(dim=1).clamp_min(1e-12)
    return weight * (FILTER_NORM / norms).view(-1, *([1] * (weight.dim() - 1)))


class FixedNorm(nn.Module):
    """The parametrisation `weight -> fixed_norm(weight)`."""

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return fixed_norm(weight)


def make_candidate(name: str, max_width: int) -> nn.Module:
    """The operation `name` at the maximum width, both in and out, every conv filter at a fixed norm."""
    module = op_kind(name).build(max_width, max_width)
    for conv in [m for m in module.modules() if isinstance(m, nn.Conv2d)]:
        parametrize.register_parametrization(conv, "weight", FixedNorm())
    return module


def runs_at_fixed_norm(module: nn.Module, tensor_name: str) -> bool:
    """Whether `module.<tensor_name>` is computed from a raw parameter (its Adam moments are the raw one's)."""
    return parametrize.is_parametrized(module, tensor_name)


def width_mask(probs: torch.Tensor, widths: tuple[int, ...], max_width: int) -> torch.Tensor:
    """Soft channel masks (..., max_width) from width distributions (..., len(widths))."""
    channel = torch.arange(max_width, device=probs.device)
    below = (channel[None, :] < torch.tensor(widths, device=probs.device)[:, None]).to(probs.dtype)
    return probs @ below


def as_channels(mask: torch.Tensor) -> torch.Tensor:
    """A (C,) mask shaped to multiply (N, C, H, W) features."""
    return mask.view(1, -1, 1, 1)
