"""The trilevel supernet: every network of a SearchSpace at once, mixed by three levels of distributions.

It mirrors TriNet (head conv -> cells and upsamplers -> tail conv, plus the global bicubic skip) with the
largest choice everywhere, so a derived TriNet is a slice of it:

- network level: cell slots in segments, one per resolution (before the first upsampler, after each one);
  each segment has a distribution over how many of its slots are kept, turned into sorted keep weights
  (`sorted_sparsestmax`), and a slot's residual is scaled by its keep weight. The upsampler positions are
  the cumulative segment lengths, so "where the x2 sits" is searched by how long each segment is.
- cell level: each position of a slot's cell mixes the candidate operations by their weights.
- kernel level: the trunk width and each width between cell positions are distributions over widths,
  applied as soft channel masks on convolutions of the maximum width (slimmable convolutions).

Weights below zero never run, so the supernet gets cheaper as sparsestmax makes the distributions sparse;
once every distribution is one-hot, its output is exactly that of the derived TriNet.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .net import UpsampleBlock
from .operations import add_to_subpixels
from .ops import as_channels, make_candidate, width_mask
from .space import SearchSpace, changes_width
from .sparsestmax import MAX_RADIUS, RELAXATIONS, entropy, tail_sums, with_softmax_gradient

# How a segment's depth (a count of kept cells) is finished as the radius grows: "argmax", like every other
# choice, at its most likely count; or "mean", at its expected count rounded, the count the budget held the
# expected cost at. Under an expected-cost budget a depth can split between its extremes (x2 search v6: half on
# no cell, a quarter on six), and the argmax then finishes at the cheap end, far under the budget.
DEPTH_FINISHES = ("argmax", "mean")
# "mean" since search v10: v6 and v7 (argmax) stopped far under their budgets, v7 with "mean" spent it, and
# v10, the first search to win its controls, finished with it (CHANGELOG).
DEFAULT_DEPTH_FINISH = "mean"


class ArchWeights(NamedTuple):
    """The architecture distributions at one radius (all rows on the simplex)."""

    trunk: torch.Tensor  # (widths,)
    depth: tuple[torch.Tensor, ...]  # per segment: (slots + 1,) over how many slots are kept
    ops: torch.Tensor  # (slots, ops_per_cell, ops)
    widths: torch.Tensor  # (slots, ops_per_cell - 1, widths)

    @property
    def keep(self) -> tuple[torch.Tensor, ...]:
        """Per segment, the sorted keep weight of each slot: P(more than n slots are kept)."""
        return tuple(tail_sums(d) for d in self.depth)

    def detach(self) -> "ArchWeights":
        return ArchWeights(self.trunk.detach(), tuple(d.detach() for d in self.depth), self.ops.detach(),
                           self.widths.detach())

    def rows(self) -> dict[str, list[torch.Tensor]]:
        """Every distribution, grouped by level."""
        return {"network": list(self.depth),
                "cell": list(self.ops.reshape(-1, self.ops.shape[-1])),
                "kernel": [self.trunk] + list(self.widths.reshape(-1, self.widths.shape[-1]))}

    def one_hot(self) -> bool:
        return all(bool((row.max() >= 1 - 1e-6)) for level in self.rows().values() for row in level)

    def entropies(self) -> dict[str, float]:
        """Mean normalised entropy per level: 1 while uniform, 0 once every choice is made."""
        return {level: float(torch.stack([entropy(r.detach()) for r in rows]).mean()) if rows else 0.0
                for level, rows in self.rows().items()}


class Architecture(nn.Module):
    """The architecture parameters (logits) of all three levels; zeros make every distribution uniform."""

    def __init__(self, space: SearchSpace, relaxation: str = "sparsestmax", depth_finish: str = DEFAULT_DEPTH_FINISH) -> None:
        super().__init__()
        if relaxation not in RELAXATIONS:
            raise ValueError(f"unknown relaxation {relaxation!r}; known: {', '.join(RELAXATIONS)}")
        if depth_finish not in DEPTH_FINISHES:
            raise ValueError(f"unknown depth finish {depth_finish!r}; known: {', '.join(DEPTH_FINISHES)}")
        self.relaxation = RELAXATIONS[relaxation]
        self.depth_finish = depth_finish
        kw, kops, length = len(space.widths), len(space.ops), space.ops_per_cell
        self.trunk = nn.Parameter(torch.zeros(kw))
        self.depth = nn.ParameterList([nn.Parameter(torch.zeros(n + 1)) for n in space.segments])
        self.ops = nn.Parameter(torch.zeros(space.slots, length, kops))
        self.widths = nn.Parameter(torch.zeros(space.slots, length - 1, kw))

    def weights(self, radius: float, softmax_gradient: bool = False) -> ArchWeights:
        """The distributions at `radius`; with `softmax_gradient`, their gradient is softmax's (never zero,
        see `with_softmax_gradient`), for the terms that must always be able to move a choice."""
        def relax(logits: torch.Tensor, radius: float) -> torch.Tensor:
            p = self.relaxation(logits, radius)
            return with_softmax_gradient(p, logits) if softmax_gradient else p

        def finish_depth(logits: torch.Tensor) -> torch.Tensor:
            if self.depth_finish == "argmax" or radius <= 0:
                return relax(logits, radius)
            # "mean": from the radius-0 distribution toward the one-hot at its rounded mean, reaching it at
            # MAX_RADIUS as the other choices reach their vertices.
            p = relax(logits, 0.0)
            mean = (p.detach() * torch.arange(len(p), dtype=p.dtype, device=p.device)).sum()
            target = F.one_hot(mean.round().long(), len(p)).to(p)
            t = min(1.0, radius / MAX_RADIUS)
            return (1 - t) * p + t * target

        return ArchWeights(relax(self.trunk, radius), tuple(finish_depth(d) for d in self.depth),
                           relax(self.ops, radius), relax(self.widths, radius))


class SuperCell(nn.Module):
    """One cell slot: `ops_per_cell` positions, each holding every candidate at the maximum width."""

    def __init__(self, space: SearchSpace) -> None:
        super().__init__()
        self.names = space.ops
        self.positions = nn.ModuleList(
            nn.ModuleDict({"candidates": nn.ModuleDict({n: make_candidate(n, space.max_width) for n in space.ops})})
            for _ in range(space.ops_per_cell))

    def forward(self, x: torch.Tensor, op_weights: torch.Tensor, inner_masks: torch.Tensor,
                trunk_mask: torch.Tensor) -> torch.Tensor:
        """The cell body (without its residual). A width-changing op's output is masked to the inner width
        only where the next op changes width too; otherwise it is the trunk width (see `cell_widths`)."""
        trunk = as_channels(trunk_mask)
        narrow_in = keep_in = x
        in_mask = trunk_mask
        changed = kept = None
        shares = [sum(w for w, n in zip(row, self.names) if changes_width(n)) for row in op_weights]
        for i, position in enumerate(self.positions):
            a = op_weights[i]
            # The width a changing op's output has: inner where the next op changes width too, else the trunk.
            out_mask = (trunk_mask if i + 1 == len(self.positions)
                        else shares[i + 1] * inner_masks[i] + (1 - shares[i + 1]) * trunk_mask)
            active = (a > 0).tolist()
            uses_narrow = any(on and changes_width(n) for on, n in zip(active, self.names))
            uses_keep = any(on and not changes_width(n) for on, n in zip(active, self.names))
            if i > 0:
                inner = inner_masks[i - 1]
                if uses_narrow:
                    narrow_in = F.relu(_sum(as_channels(inner) * changed if changed is not None else None,
                                            trunk * kept if kept is not None else None))
                    in_mask = shares[i - 1] * inner + (1 - shares[i - 1]) * trunk_mask
                if uses_keep:
                    keep_in = F.relu(trunk * _sum(changed, kept))
            changed = kept = None
            for weight, on, name in zip(a, active, self.names):
                if not on:
                    continue
                module = position["candidates"][name]
                if changes_width(name):
                    changed = _sum(changed, weight * module(narrow_in, as_channels(in_mask), as_channels(out_mask)))
                else:
                    kept = _sum(kept, weight * module(keep_in, trunk, trunk))
        return trunk * _sum(changed, kept)


def _sum(a: torch.Tensor | None, b: torch.Tensor | None) -> torch.Tensor:
    return b if a is None else (a if b is None else a + b)


class SuperNet(nn.Module):
    """head -> segments of cell slots with an upsampler after each but the last -> tail, + bicubic skip (or
    one segment -> shuffle tail with its nearest skip, as the space says)."""

    def __init__(self, space: SearchSpace) -> None:
        super().__init__()
        self.space = space
        width, channels = space.max_width, space.channels
        self.head = nn.Conv2d(channels, width, 3, padding=1)
        self.cells = nn.ModuleList(SuperCell(space) for _ in range(space.slots))
        self.upsamplers = nn.ModuleList(UpsampleBlock(width, f) for f in space.factors)
        shuffled = space.tail == "shuffle"
        self.tail = nn.Conv2d(width, channels * (space.scale**2 if shuffled else 1), 3, padding=1)
        self.shuffle = nn.PixelShuffle(space.scale) if shuffled else None
        # Start as the skip alone (bicubic, or nearest with a shuffle tail), so early architecture gradients
        # are not drowned in noise.
        nn.init.zeros_(self.tail.weight)
        nn.init.zeros_(self.tail.bias)

    def forward(self, x: torch.Tensor, weights: ArchWeights) -> torch.Tensor:
        space = self.space
        trunk_mask = width_mask(weights.trunk, space.widths, space.max_width)
        trunk = as_channels(trunk_mask)
        inner_masks = width_mask(weights.widths, space.widths, space.max_width)
        h = self.head(x) * trunk
        slot = 0
        for k, keep in enumerate(weights.keep):
            for n, on in enumerate((keep > 0).tolist()):
                if on:
                    cell = self.cells[slot + n]
                    h = h + keep[n] * cell(h, weights.ops[slot + n], inner_masks[slot + n], trunk_mask)
            slot += len(keep)
            if k < len(self.upsamplers):
                h = self.upsamplers[k](h) * trunk
        if self.shuffle is not None:  # as TriNet: the input repeated into the sub-pixel channels, then shuffled
            return self.shuffle(add_to_subpixels(self.tail(h), x, space.scale))
        skip = F.interpolate(x, scale_factor=space.scale, mode="bicubic", align_corners=False)
        return skip + self.tail(h)
