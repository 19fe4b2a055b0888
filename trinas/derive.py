"""Supernet -> Genotype -> TriNet, the TriNet inheriting the trained weights by slicing.

The choice is the most likely entry of every distribution (ties go to the first: fewer cells, the earlier
operation, the narrower width). Once every distribution is one-hot that is the only entry, and the derived
TriNet computes exactly what the supernet computes (tested), so training simply goes on with it. Cell filters
are taken normalised, as the supernet runs them (`ops.FixedNorm`). Parameters are matched by module
structure (`module_pairs`), so any registered operation is inherited without a table of names.
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from .net import TRAIN_LAYOUT, TriNet
from .ops import runs_at_fixed_norm
from .space import Cell, Genotype, SearchSpace, Step, Upsample, cell_widths, has_inner_width
from .supernet import ArchWeights, SuperNet


@dataclass(frozen=True)
class Choice:
    """The discrete architecture: trunk width and, per segment, the kept slots with their ops and widths."""

    width: int
    segments: tuple[tuple[tuple[int, Cell], ...], ...]  # per segment: (slot index, cell) for each kept slot


def choose(space: SearchSpace, weights: ArchWeights) -> Choice:
    """The leading architecture under `weights` (argmax of every distribution)."""
    width = space.widths[int(weights.trunk.argmax())]
    segments, slot = [], 0
    for size, depth in zip(space.segments, weights.depth):
        cells = []
        for n in range(int(depth.argmax())):
            ops = tuple(space.ops[int(i)] for i in weights.ops[slot + n].argmax(dim=-1))
            inner = tuple(space.widths[int(i)] for i in weights.widths[slot + n].argmax(dim=-1))
            cells.append((slot + n, Cell(ops, cell_widths(ops, inner, width))))
        segments.append(tuple(cells))
        slot += size
    return Choice(width, tuple(segments))


Limit = tuple[Callable[[Genotype], float], float]  # (the cost of a network, the most it may be)


def fit_budget(space: SearchSpace, choice: Choice, limits: list[Limit], max_visits: int = 5000,
               near: float = 0.9) -> Choice:
    """Shrink a choice that lands over a budget until it fits every limit: drop as few of its cells as
    possible, and keep as much of the first limit's cost as it can.

    The cost term holds the *expected* cost at the budget, but the one-hot choice can land either side of
    it. The steps are: drop the last cell of a segment, narrow one inner width, narrow the trunk. While no
    single step fits, take the one that leaves the smallest excess, so the expensive parts (high-resolution
    cells, wide layers) go first. Once one does, search the choices reachable by steps, fewest dropped cells
    first and then highest cost, for the first that fits and keeps at least `near` of the first limit (else
    the fitting one of highest cost seen; after `max_visits` choices, the best single fitting step).

    Cells first, because the cells are the layout, the level the search decides last and most dearly: keeping
    the most cost alone took the x2 search v8 from `32w [two cells, three skips] up2 [one cell]` at 36,792
    multiply-adds to `32w up2 [one cell]` at exactly its 28,728 budget, dropping every cell before the
    upsampler (the family at the bottom of every controls table), where narrowing widths fits at the budget
    too. Cost second, because one step can drop a whole cell: the best single fitting step cut the x2 search
    v5 from 31,032 to 21,816, where narrowing one convolution twice fits at 28,728.
    """

    def priced(c: Choice) -> tuple[float, float, Choice]:
        genotype = genotype_of(space, c)
        return max(cost(genotype) / limit for cost, limit in limits), limits[0][0](genotype), c

    current = priced(choice)
    while current[0] > 1:
        options = [priced(c) for c in _smaller(space, current[2])]
        if not options:
            break
        fitting = [option for option in options if option[0] <= 1]
        if fitting:
            found = _fewest_drops_fit(space, current, priced, near * limits[0][1], max_visits)
            return found or max(fitting, key=lambda o: o[1])[2]
        current = min(options, key=lambda o: o[0])
    return current[2]


def _cells(choice: Choice) -> int:
    return sum(len(cells) for cells in choice.segments)


def _fewest_drops_fit(space: SearchSpace, start: tuple[float, float, Choice],
                      priced: Callable[[Choice], tuple[float, float, Choice]], floor: float,
                      max_visits: int) -> Choice | None:
    """Best-first from `start` by (cells dropped, -cost): every step drops cells or lowers the cost, so the
    first fitting choice of first cost >= `floor` popped is the one the docstring of `fit_budget` asks for.
    A fitting one under the floor is kept as the fallback and not shrunk further."""
    order = itertools.count()  # ties go to the choice reached first
    cells = _cells(start[2])
    frontier = [(0, -start[1], next(order), start)]
    seen, fallback = {start[2]}, None
    while frontier and len(seen) <= max_visits:
        _, _, _, (excess, cost, choice) = heapq.heappop(frontier)
        if excess <= 1:
            if cost >= floor:
                return choice
            if fallback is None or cost > fallback[1]:
                fallback = (excess, cost, choice)
            continue
        for smaller in _smaller(space, choice):
            if smaller not in seen:
                seen.add(smaller)
                option = priced(smaller)
                heapq.heappush(frontier, (cells - _cells(smaller), -option[1], next(order), option))
    return fallback[2] if fallback else None


def _smaller(space: SearchSpace, choice: Choice):
    """Every choice one step smaller than `choice`."""
    narrower = [w for w in space.widths if w < choice.width]
    if narrower:
        yield Choice(narrower[-1], tuple(tuple((slot, _retrunk(cell, choice.width, narrower[-1]))
                                               for slot, cell in cells) for cells in choice.segments))
    for k, cells in enumerate(choice.segments):
        if cells:
            yield Choice(choice.width, choice.segments[:k] + (cells[:-1],) + choice.segments[k + 1:])
        for n, (slot, cell) in enumerate(cells):
            for i, width in enumerate(cell.widths):
                smaller = [w for w in space.widths if w < width]
                if has_inner_width(cell.ops, i) and smaller:
                    widths = cell.widths[:i] + (smaller[-1],) + cell.widths[i + 1:]
                    new_cells = cells[:n] + ((slot, Cell(cell.ops, widths)),) + cells[n + 1:]
                    yield Choice(choice.width, choice.segments[:k] + (new_cells,) + choice.segments[k + 1:])


def _retrunk(cell: Cell, old: int, new: int) -> Cell:
    """The cell at a narrower trunk: inner widths stay, trunk-width positions follow the trunk."""
    return Cell(cell.ops, tuple(w if has_inner_width(cell.ops, i) else new for i, w in enumerate(cell.widths)))


def genotype_of(space: SearchSpace, choice: Choice, **extra) -> Genotype:
    path: list[Step] = []
    for k, cells in enumerate(choice.segments):
        path += [cell for _, cell in cells]
        if k < len(space.factors):
            path.append(Upsample(space.factors[k]))
    return Genotype(scale=space.scale, width=choice.width, path=tuple(path), channels=space.channels,
                    extra=extra, tail=space.tail)


@dataclass(frozen=True)
class Inherited:
    """One parameter of a derived TriNet and where it comes from in the supernet."""

    target: torch.nn.Parameter
    value: torch.Tensor  # what the supernet computes with (normalised filters), before slicing
    source: torch.nn.Parameter | None  # the supernet parameter behind it; None if reparametrised (fixed norm)


def module_pairs(supernet: SuperNet, net: TriNet, choice: Choice) -> list[tuple[nn.Module, nn.Module]]:
    """(TriNet module, SuperNet module) for every part of the derived network: built alike, so they match."""
    space = supernet.space
    pairs: list[tuple[nn.Module, nn.Module]] = [(net.head, supernet.head)]
    body = 0
    for k, cells in enumerate(choice.segments):
        for slot, cell in cells:
            for i, op in enumerate(cell.ops):
                pairs.append((net.body[body].ops[i], supernet.cells[slot].positions[i]["candidates"][op]))
            body += 1
        if k < len(space.factors):
            pairs.append((net.body[body], supernet.upsamplers[k]))
            body += 1
    pairs.append((net.tail, supernet.tail))
    return pairs


def inherited(supernet: SuperNet, net: TriNet, choice: Choice) -> list[Inherited]:
    """Every parameter of the derived TriNet with the supernet value it takes, found by module structure."""
    found = []
    for target_module, source_module in module_pairs(supernet, net, choice):
        for name, target in target_module.named_parameters():
            path, _, leaf = name.rpartition(".")
            owner = source_module.get_submodule(path)
            value = getattr(owner, leaf)  # a parametrised weight reads as the normalised filters
            found.append(Inherited(target, value, None if runs_at_fixed_norm(owner, leaf) else value))
    return found


def slice_to(source: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """The leading corner of `source` with `shape`: a slimmable layer's first filters and input channels."""
    return source[tuple(slice(0, n) for n in shape)]


def derive(supernet: SuperNet, weights: ArchWeights, limits: list[Limit] | None = None) -> tuple[TriNet, Choice]:
    """The TriNet of the leading architecture (shrunk to fit the limits), its weights sliced from the supernet's."""
    space = supernet.space
    choice = choose(space, weights)
    if limits:
        choice = fit_budget(space, choice, limits)
    like = next(supernet.parameters())
    net = TriNet(genotype_of(space, choice)).to(device=like.device, dtype=like.dtype, memory_format=TRAIN_LAYOUT)
    with torch.no_grad():
        for part in inherited(supernet, net, choice):
            part.target.copy_(slice_to(part.value, part.target.shape))
    return net, choice
