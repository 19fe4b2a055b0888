"""TriNet: the plain network built from a Genotype. The only network inference ever runs.

It also answers the questions an inference engine asks of a model (scale, receptive field, channels,
half-precision support), so the engine never special-cases an architecture.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from .operations import add_to_new, add_to_subpixels, op_kind, relu_new
from .space import Cell, Genotype, Upsample

# The memory layout training runs in (networks and batches): channels-last trains these convolutions 1.1-1.4x
# faster a step on the CPU (`benchmarks/training_step.py`); the engine runs inference channels-last too.
TRAIN_LAYOUT = torch.channels_last


def make_op(name: str, in_width: int, out_width: int, folded: bool = False) -> nn.Module:
    """One operation of a cell, mapping `in_width` channels to `out_width` (as inference runs it if `folded`)."""
    kind = op_kind(name)
    module = kind.build(in_width, out_width)
    return kind.fold(module) if folded else module


def absorbs_residual(cell: Cell) -> bool:
    """Whether a folded cell carries its residual inside its kernel: a single convolution, as wide out as in."""
    return len(cell.ops) == 1 and op_kind(cell.ops[0]).absorbs_residual


class CellBlock(nn.Module):
    """A Cell from the genotype: its ops in a chain, ReLU between them, a residual around the whole.

    Folded, a cell of one plain convolution has the residual in its kernel (`fold`), so it runs no add."""

    def __init__(self, cell: Cell, width: int, folded: bool = False) -> None:
        super().__init__()
        ops, current = [], width
        for name, out_width in zip(cell.ops, cell.widths):
            ops.append(make_op(name, current, out_width, folded))
            current = out_width
        self.ops = nn.ModuleList(ops)
        self.cell = cell
        self.residual = not (folded and absorbs_residual(cell))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        for i, op in enumerate(self.ops):
            if i > 0:
                y = F.relu(y) if y is x else relu_new(y)  # after a skip: the cell's own input, kept intact
            y = op(y)
        if not self.residual:
            return y
        return x + y if y is x else add_to_new(y, x)


class UpsampleBlock(nn.Sequential):
    """Sub-pixel upsampling: a 3x3 conv to width*factor^2 channels, then pixel shuffle."""

    def __init__(self, width: int, factor: int) -> None:
        super().__init__(nn.Conv2d(width, width * factor * factor, 3, padding=1), nn.PixelShuffle(factor))


class TriNet(nn.Module):
    """head conv -> path of cells and upsamplers -> tail conv, plus a global bicubic skip (or, with a shuffle
    tail, cells -> tail conv to channels x scale^2 -> + the input repeated -> pixel shuffle; see Genotype).

    Input and output are float tensors in [0, 1] of shape (N, channels, H, W) -> (N, channels, H*s, W*s).
    Built for training by default; `folded=True` builds the modules inference runs (re-parameterisable
    operations as one conv), which is what a model folder stores (`fold` turns one into the other).
    """

    supports_half = True
    size_multiple = 1

    def __init__(self, genotype: Genotype, folded: bool = False) -> None:
        super().__init__()
        self.genotype = genotype
        self.folded = folded
        width = genotype.width
        self.head = nn.Conv2d(genotype.channels, width, 3, padding=1)
        steps: list[nn.Module] = []
        for step in genotype.path:
            if isinstance(step, Cell):
                steps.append(CellBlock(step, width, folded))
            else:
                steps.append(UpsampleBlock(width, step.factor))
        self.body = nn.Sequential(*steps)
        shuffled = genotype.tail == "shuffle"
        self.tail = nn.Conv2d(width, genotype.channels * (genotype.scale**2 if shuffled else 1), 3, padding=1)
        self.shuffle = nn.PixelShuffle(genotype.scale) if shuffled else None

    @property
    def scale(self) -> int:
        return self.genotype.scale

    @property
    def channels(self) -> int:
        return self.genotype.channels

    @property
    def receptive_field(self) -> int:
        return receptive_radius(self.genotype)

    @property
    def peak_floats_per_pixel(self) -> float:
        """Rough floats alive at once per input pixel at the widest point: sizes tiles to free memory."""
        return peak_floats_per_pixel(self.genotype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.shuffle is not None:  # the input repeated into every sub-pixel channel: a nearest skip
            y = self.tail(self.body(self.head(x)))
            return self.shuffle(add_to_subpixels(y, x, self.scale))
        skip = F.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False)
        return add_to_new(self.tail(self.body(self.head(x))), skip)


def fold(net: TriNet) -> TriNet:
    """The same network as inference runs it: every operation folded (identical output up to rounding)."""
    if net.folded:
        return net
    folded = TriNet(net.genotype, folded=True).to(next(net.parameters()))
    for target, source in zip(folded.body, net.body):
        if isinstance(source, CellBlock):
            for i, (name, module) in enumerate(zip(source.cell.ops, source.ops)):
                target.ops[i] = op_kind(name).fold(copy.deepcopy(module))
            if not target.residual:  # x + conv(x) is one conv with the identity added at its centre tap
                _add_identity(target.ops[0], 1.0)
        else:
            target.load_state_dict(source.state_dict())
    folded.head.load_state_dict(net.head.state_dict())
    folded.tail.load_state_dict(net.tail.state_dict())
    if hasattr(net, "config"):
        folded.config = net.config  # type: ignore[attr-defined]
    return folded.train(net.training)


@torch.no_grad()
def unfold_into(net: TriNet, folded: TriNet) -> None:
    """Set a training-time TriNet to compute exactly what a folded one of the same genotype does (the inverse
    of `fold`): a model folder, which stores the folded form, then starts a training run with every branch of
    its re-parameterisable operations alive."""
    if net.folded or not folded.folded or net.genotype != folded.genotype:
        raise ValueError("unfold_into needs a training-time TriNet and a folded one of the same genotype")
    for target, source in zip(net.body, folded.body):
        if not isinstance(source, CellBlock):
            target.load_state_dict(source.state_dict())
            continue
        ops = list(source.ops)
        if not source.residual:  # its conv holds the cell's identity at the centre tap: take it out again
            ops[0] = copy.deepcopy(ops[0])
            _add_identity(ops[0], -1.0)
        for name, module, folded_op in zip(source.cell.ops, target.ops, ops):
            op_kind(name).unfold_into(module, folded_op)
    net.head.load_state_dict(folded.head.state_dict())
    net.tail.load_state_dict(folded.tail.state_dict())


@torch.no_grad()
def _add_identity(conv: nn.Conv2d, amount: float) -> None:
    """Add `amount` times the identity at a square conv's centre tap: a cell's residual, folded in or out."""
    channels = torch.arange(conv.out_channels)
    conv.weight[channels, channels, conv.kernel_size[0] // 2, conv.kernel_size[1] // 2] += amount


def receptive_radius(genotype: Genotype) -> int:
    """How many input pixels on each side an output pixel depends on: the context a tile needs
    (`receptive_reach` rounded up, at least `least_radius`)."""
    return max(least_radius(genotype.tail), math.ceil(receptive_reach(genotype) - 1e-9))


def receptive_reach(genotype: Genotype) -> float:
    """The reach of a network in input pixels, unrounded: each operation's reach (pixels each side,
    `OpKind.reach`) at resolution factor s is that divided by s in input pixels, plus the fixed layers'
    (`fixed_reach`)."""
    reach, resolution = fixed_reach(tuple(s.factor for s in genotype.path if isinstance(s, Upsample))), 1
    for step in genotype.path:
        if isinstance(step, Upsample):
            resolution *= step.factor
        else:
            reach += sum(op_kind(op).reach for op in step.ops) / resolution
    return reach


def fixed_reach(factors: tuple[int, ...]) -> float:
    """The reach of the layers every network has: the head conv, each upsampler's 3x3 conv and the tail conv,
    in input pixels."""
    reach, resolution = 1.0, 1  # the head conv
    for factor in factors:
        reach += 1 / resolution
        resolution *= factor
    return reach + 1 / resolution


def least_radius(tail: str) -> int:
    """The least context a tile needs: the bicubic skip reaches 2 input pixels; a shuffle tail has no skip
    (the nearest one reaches no further than the pixel)."""
    return 1 if tail == "shuffle" else 2


def peak_floats_per_pixel(genotype: Genotype) -> float:
    """The largest input+output activation of any layer, per input pixel, plus the skip and output."""
    c, w, area, peak = genotype.channels, genotype.width, 1, 0.0
    for step in genotype.path:
        if isinstance(step, Upsample):
            peak = max(peak, area * (w + 2 * w * step.factor**2))  # conv output + shuffled copy
            area *= step.factor**2
        else:
            peak = max(peak, area * (3 * w + max(step.widths)))  # trunk, residual, op in/out
    return peak + 2 * c * genotype.scale**2
