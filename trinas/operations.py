"""The registry of operation kinds a cell may hold: each kind is one object, described in one place.

Everything that needs to know about an operation asks its kind: the genotype's checks (does it keep its
width?), TriNet and the supernet (its module at a width, which both run), the cost (multiply-adds per pixel,
after folding), the receptive field (pixels of context each side) and export (the folded module that
inference runs). Adding an operation is one new class here, or in your own file:

    @register_op
    class Conv7x7(OpKind):
        name, reach = "conv7x7", 3
        def build(self, c_in, c_out): return Conv(c_in, c_out, 7)
        def madds(self, c_in, c_out): return 49 * c_in * c_out

A module's forward takes optional channel masks of its input and output widths (`in_mask`, `out_mask`,
shape (1, C, 1, 1)): the supernet runs every candidate at the maximum width and masks what a narrower choice
would not have, so an operation with an inner width equal to its input's (a depthwise conv, a residual
block's middle) or its output's (a conv followed by another) masks it there. TriNet passes no masks. The
caller masks the output itself.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class OpKind:
    """What the search, TriNet, the cost model and export need to know about one kind of operation."""

    name: str = ""
    reach: float = 0  # pixels of context on each side, at the operation's own resolution
    keeps_width: bool = False  # its output width is its input width (a skip, a residual block)

    def build(self, c_in: int, c_out: int) -> nn.Module:
        """The training-time module, mapping `c_in` channels to `c_out`."""
        raise NotImplementedError

    def madds(self, c_in: int, c_out: int) -> int:
        """Multiply-adds per pixel of the module inference runs (after `fold`), biases not counted."""
        raise NotImplementedError

    def fold(self, module: nn.Module) -> nn.Module:
        """The module inference runs, computing the same function (by default the module itself)."""
        return module

    @torch.no_grad()
    def unfold_into(self, module: nn.Module, folded: nn.Module) -> None:
        """Set the training-time `module` to compute what the `folded` one does (the inverse of `fold`, so a
        folded model folder can start a training run; by default the two modules are the same kind)."""
        module.load_state_dict(folded.state_dict())

    # For channel pruning: which channels each convolution of the *folded* module indexes, as
    # {submodule path: (its output channels, its input channels)}, each "in" (the op's input channels), "out"
    # (its output channels) or None (not channels: a depthwise conv's single input). A bias follows its
    # conv's output channels. None (the default) means unknown: the pruner then leaves the op's widths alone.
    channel_roles: dict[str, tuple[str | None, str | None]] | None = None

    # Whether the folded module is one plain convolution that can absorb an identity (a cell holding only
    # this op, as wide out as in, then folds its residual into the kernel's centre: one add less per cell).
    absorbs_residual: bool = False

    # The kind whose folded module is the same computation at inference (ecb3x3 runs as a conv3x3), so the
    # latency table times it once under that name; None: the kind runs as itself.
    runs_as: str | None = None


OPERATIONS: dict[str, OpKind] = {}

# The candidates of a `SearchSpace` unless it names its own (`upscale search` names its own by default:
# `trinas.search_config.SEARCH_OPS`). Registering a kind adds it to OPERATIONS (so
# genotypes and `--ops` may use it) but not here, so a plug-in never changes the default search. ecb3x3 is
# here because it paid: in `benchmarks/operation_value.py` (4,000 steps, 2 seeds) it raised Set5 by 0.37 dB
# over plain 3x3 convolutions at 0.99x their time on the CPU; rep3x3 and spanatt3x3 did not (CHANGELOG).
DEFAULT_OPS: list[str] = ["skip", "conv3x3", "conv5x5", "dilconv3x3", "sepconv3x3", "resblock3x3", "ecb3x3"]


def register_op(cls: type[OpKind]) -> type[OpKind]:
    """Class decorator: make an operation kind known under its `name`."""
    kind = cls()
    if not kind.name or kind.name in OPERATIONS:
        raise ValueError(f"operation kinds need a unique name, got {kind.name!r}")
    OPERATIONS[kind.name] = kind
    return cls


def unregister_op(name: str) -> None:
    """Forget a kind (tests register their own and clean up)."""
    OPERATIONS.pop(name, None)


def op_kind(name: str) -> OpKind:
    try:
        return OPERATIONS[name]
    except KeyError:
        raise ValueError(f"unknown operation {name!r}; known: {sorted(OPERATIONS)}") from None


# ------------------------------------------------------------------------------------------- modules

def relu_new(y: torch.Tensor) -> torch.Tensor:
    """ReLU of a tensor the caller has just made and holds alone: at inference (no gradients) written into it,
    saving a pass that allocates and fills a new tensor of the same size. With the residual adds done the same
    way (`add_to_new`), the first `trinas-x4-rt` took 0.89x the time per 1280x720 frame on our 2-core CPU,
    `trinas-x4-hand` (then named `trinas-x4`) and `trinas-x2` 0.96x
    (`benchmarks/results/in-place-relu-add-2026-12-03.txt`). Training keeps the out-of-place form, whose graph
    autograd needs."""
    return F.relu_(y) if not torch.is_grad_enabled() else F.relu(y)


def add_to_new(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """y + x, written into `y` at inference when `y` is a tensor the caller has just made and holds alone
    (`relu_new`)."""
    return y.add_(x) if not torch.is_grad_enabled() else y + x


def add_to_subpixels(y: torch.Tensor, x: torch.Tensor, scale: int) -> torch.Tensor:
    """The shuffle tail's nearest skip: y (N, C*scale^2, H, W) plus the input x (N, C, H, W) in each of its
    scale^2 sub-pixel channels, `y + x.repeat_interleave(scale**2, dim=1)` without making the repeated copy (a
    broadcast over y's own memory order, written into `y` at inference as `add_to_new`). On a 320x180 x4
    frame in channels-last it took 0.7 ms on our 2-core CPU, where the repeat and the add took 3.9."""
    grouped = y.unflatten(1, (x.shape[1], scale * scale))
    if torch.is_grad_enabled():
        return (grouped + x.unsqueeze(2)).flatten(1, 2)
    grouped.add_(x.unsqueeze(2))
    return y  # not the view flattened again: its batch stride loses channels-last (pixel shuffle ran 2x slower)


class Conv(nn.Conv2d):
    """A 'same'-padded conv whose forward takes (and ignores) the input mask, like every operation module."""

    def __init__(self, c_in: int, c_out: int, kernel: int, dilation: int = 1, groups: int = 1) -> None:
        super().__init__(c_in, c_out, kernel, padding=dilation * (kernel - 1) // 2, dilation=dilation,
                         groups=groups)

    def forward(self, x: torch.Tensor, in_mask: torch.Tensor | None = None,
                out_mask: torch.Tensor | None = None) -> torch.Tensor:
        return super().forward(x)


class Skip(nn.Module):
    def forward(self, x: torch.Tensor, in_mask: torch.Tensor | None = None,
                out_mask: torch.Tensor | None = None) -> torch.Tensor:
        return x


class SepConv(nn.Module):
    """Depthwise kxk then pointwise 1x1: most of a conv's reach at a fraction of its cost."""

    def __init__(self, c_in: int, c_out: int, kernel: int) -> None:
        super().__init__()
        self.depthwise = Conv(c_in, c_in, kernel, groups=c_in)
        self.pointwise = Conv(c_in, c_out, 1)

    def forward(self, x: torch.Tensor, in_mask: torch.Tensor | None = None,
                out_mask: torch.Tensor | None = None) -> torch.Tensor:
        y = self.depthwise(x)
        return self.pointwise(y if in_mask is None else y * in_mask)


class ResBlock(nn.Module):
    """conv-ReLU-conv with an identity skip; keeps the width."""

    def __init__(self, width: int, kernel: int) -> None:
        super().__init__()
        self.conv1 = Conv(width, width, kernel)
        self.conv2 = Conv(width, width, kernel)

    def forward(self, x: torch.Tensor, in_mask: torch.Tensor | None = None,
                out_mask: torch.Tensor | None = None) -> torch.Tensor:
        h = relu_new(self.conv1(x))
        return add_to_new(self.conv2(h if in_mask is None else h * in_mask), x)


class RepConv(nn.Module):
    """A 3x3 conv trained as two parallel branches, 3x3 and 1x1 (the over-parameterisation of RepVGG and
    ECBSR, without their batch norms).

    The branches are linear, so they fold into one 3x3 conv (`folded`) with the same output: the cost of a
    3x3 conv at inference, a different (and, measured or not, often easier) optimisation while training.
    There is no identity branch: inside a residual cell it doubled the trunk at every cell, and in 4,000
    steps the baseline built from it scored 1.1 dB below plain convolutions on Set5 (CHANGELOG).
    """

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv3 = Conv(c_in, c_out, 3)
        self.conv1 = Conv(c_in, c_out, 1)

    def kernel(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The one 3x3 kernel and bias the branches add up to (differentiable: training runs it)."""
        return self.conv3.weight + F.pad(self.conv1.weight, (1, 1, 1, 1)), self.conv3.bias + self.conv1.bias

    def forward(self, x: torch.Tensor, in_mask: torch.Tensor | None = None,
                out_mask: torch.Tensor | None = None) -> torch.Tensor:
        return F.conv2d(x, *self.kernel(), padding=1)

    @torch.no_grad()
    def folded(self) -> Conv:
        return conv_from_kernel(*self.kernel())


def conv_from_kernel(weight: torch.Tensor, bias: torch.Tensor) -> Conv:
    """A plain 'same'-padded conv holding a folded kernel."""
    c_out, c_in, k, _ = weight.shape
    conv = Conv(c_in, c_out, k).to(weight)
    conv.weight.copy_(weight)
    conv.bias.copy_(bias)
    return conv


@torch.no_grad()
def unfold_branches(module: nn.Module, folded: nn.Conv2d) -> None:
    """Make a re-parameterisable module (RepConv, EdgeRepConv) compute the `folded` conv: its 3x3 branch takes
    the folded kernel less what the other branches add, so every branch keeps its weights (and keeps
    training) and the sum is the folded conv exactly."""
    weight, bias = module.kernel()
    module.conv3.weight.add_(folded.weight - weight)
    module.conv3.bias.add_(folded.bias - bias)


EDGE_FILTERS = torch.tensor([[[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]],    # Sobel, horizontal change
                             [[1.0, 2.0, 1.0], [0.0, 0.0, 0.0], [-1.0, -2.0, -1.0]],    # Sobel, vertical change
                             [[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]])     # Laplacian


EDGE_INIT_SCALE = 1e-3


class EdgeRepConv(nn.Module):
    """ECBSR's edge-oriented block as a re-parameterisable 3x3 conv (Zhang et al., ACM MM 2021): five linear
    branches while training, one 3x3 conv at inference.

    Branches: a 3x3 conv; a 1x1 expansion to twice the output width, then a 3x3 conv (a deep linear
    over-parameterisation, which changes how the weights train, not what they can express); and a 1x1
    conv followed by each fixed edge filter (two Sobel, one Laplacian), depthwise. The 1x1 convs have no bias,
    so the zero padding of the 3x3 stages commutes with them and the fold is exact at the borders too. No
    identity branch (inside a residual cell it doubled the trunk: see RepConv).
    """

    expansion = 2

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv3 = Conv(c_in, c_out, 3)
        self.expand = nn.Conv2d(c_in, self.expansion * c_out, 1, bias=False)
        self.squeeze = Conv(self.expansion * c_out, c_out, 3)
        self.edges = nn.ModuleList(nn.Conv2d(c_in, c_out, 1, bias=False) for _ in EDGE_FILTERS)
        with torch.no_grad():  # the edge branches start near zero, as ECBSR's (at full strength eight such
            for conv in self.edges:  # layers in a row trained to barely above bicubic: CHANGELOG)
                conv.weight.mul_(EDGE_INIT_SCALE)
        self.register_buffer("edge_filters", EDGE_FILTERS.clone(), persistent=False)

    def kernel(self, out_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The one 3x3 kernel and bias the five branches add up to (differentiable: training runs it).
        `out_mask` masks the expansion's channels 2c and 2c+1 with output channel c, as a narrower op has."""
        expand = self.expand.weight[..., 0, 0]
        if out_mask is not None:
            expand = expand * out_mask.reshape(-1).repeat_interleave(self.expansion)[:, None]
        weight = self.conv3.weight + torch.einsum("omhw,mi->oihw", self.squeeze.weight, expand)
        for conv, kernel in zip(self.edges, self.edge_filters):
            weight = weight + torch.einsum("hw,oi->oihw", kernel.to(weight), conv.weight[..., 0, 0])
        return weight, self.conv3.bias + self.squeeze.bias

    def forward(self, x: torch.Tensor, in_mask: torch.Tensor | None = None,
                out_mask: torch.Tensor | None = None) -> torch.Tensor:
        # Online re-parameterisation: the branches are linear, so one conv with their summed kernel computes
        # the same output with the same gradients, at the cost of one 3x3 conv instead of five branches.
        return F.conv2d(x, *self.kernel(out_mask), padding=1)

    @torch.no_grad()
    def folded(self) -> Conv:
        return conv_from_kernel(*self.kernel())


class SpanAttention(nn.Module):
    """SPAN's parameter-free attention around a conv: y = conv(x), out = (y + x) * (sigmoid(y) - 0.5).

    The attention map comes from the features themselves (no weights, no pooling), so it costs two
    element-wise passes; the conv is a RepConv while training and one 3x3 conv at inference. Keeps the width.
    """

    def __init__(self, conv: nn.Module) -> None:
        super().__init__()
        self.conv = conv

    def forward(self, x: torch.Tensor, in_mask: torch.Tensor | None = None,
                out_mask: torch.Tensor | None = None) -> torch.Tensor:
        y = self.conv(x)
        return (y + x) * (torch.sigmoid(y) - 0.5)


# ------------------------------------------------------------------------------------------- kinds

@register_op
class SkipKind(OpKind):
    name, keeps_width = "skip", True
    channel_roles: dict = {}

    def build(self, c_in: int, c_out: int) -> nn.Module:
        return Skip()

    def madds(self, c_in: int, c_out: int) -> int:
        return 0


class ConvKind(OpKind):
    """A plain kxk convolution with dilation d: reach d*(k-1)/2."""

    kernel, dilation = 3, 1
    channel_roles = {"": ("out", "in")}
    absorbs_residual = True

    def __init__(self) -> None:
        self.reach = self.dilation * (self.kernel - 1) / 2

    def build(self, c_in: int, c_out: int) -> nn.Module:
        return Conv(c_in, c_out, self.kernel, self.dilation)

    def madds(self, c_in: int, c_out: int) -> int:
        return self.kernel**2 * c_in * c_out


@register_op
class Conv3x3(ConvKind):
    name = "conv3x3"


@register_op
class Conv5x5(ConvKind):
    name, kernel = "conv5x5", 5


@register_op
class DilConv3x3(ConvKind):
    name, dilation = "dilconv3x3", 2


@register_op
class SepConv3x3(OpKind):
    name, reach = "sepconv3x3", 1
    channel_roles = {"depthwise": ("in", None), "pointwise": ("out", "in")}

    def build(self, c_in: int, c_out: int) -> nn.Module:
        return SepConv(c_in, c_out, 3)

    def madds(self, c_in: int, c_out: int) -> int:
        return 9 * c_in + c_in * c_out


@register_op
class ResBlock3x3(OpKind):
    name, reach, keeps_width = "resblock3x3", 2, True
    channel_roles = {"conv1": ("in", "in"), "conv2": ("in", "in")}

    def build(self, c_in: int, c_out: int) -> nn.Module:
        return ResBlock(c_in, 3)

    def madds(self, c_in: int, c_out: int) -> int:
        return 2 * 9 * c_in * c_in


class ReparameterisedConv3x3(OpKind):
    """A kind trained as several linear branches and folded into one 3x3 conv: a 3x3 conv's cost and reach."""

    reach = 1
    channel_roles = {"": ("out", "in")}  # folded: one conv
    absorbs_residual = True
    runs_as = "conv3x3"

    def madds(self, c_in: int, c_out: int) -> int:
        return 9 * c_in * c_out

    def fold(self, module: nn.Module) -> nn.Module:
        return module.folded()

    def unfold_into(self, module: nn.Module, folded: nn.Module) -> None:
        unfold_branches(module, folded)


@register_op
class Rep3x3(ReparameterisedConv3x3):
    """3x3 + 1x1 branches while training."""

    name = "rep3x3"

    def build(self, c_in: int, c_out: int) -> nn.Module:
        return RepConv(c_in, c_out)


@register_op
class Ecb3x3(ReparameterisedConv3x3):
    """ECBSR's edge-oriented block: five branches while training."""

    name = "ecb3x3"

    def build(self, c_in: int, c_out: int) -> nn.Module:
        return EdgeRepConv(c_in, c_out)


@register_op
class SpanAtt3x3(OpKind):
    """A re-parameterisable 3x3 conv inside SPAN's parameter-free attention; keeps the width."""

    name, reach, keeps_width = "spanatt3x3", 1, True
    channel_roles = {"conv": ("in", "in")}  # folded; the attention is per channel

    def build(self, c_in: int, c_out: int) -> nn.Module:
        return SpanAttention(RepConv(c_in, c_in))

    def madds(self, c_in: int, c_out: int) -> int:
        return 9 * c_in * c_in

    def fold(self, module: nn.Module) -> nn.Module:
        return SpanAttention(module.conv.folded()) if isinstance(module.conv, RepConv) else module

    def unfold_into(self, module: nn.Module, folded: nn.Module) -> None:
        unfold_branches(module.conv, folded.conv)

