"""What a search holds to a budget: the cost of a network, and its exact expectation under the distributions.

A cost is additive over a network's parts: a fixed part that depends on the trunk width only (head, upsamplers,
tail, and for latency the bicubic skip and the final add), plus one term per kept cell that depends on the
cell's operations, its inner widths, the trunk width and the resolution it runs at. So a `CostModel` is one
table per segment (the cost of one cell for every choice) and one vector (the fixed part per trunk width),
and its expectation under independent distributions is exact. Two models: multiply-adds per output pixel
(`madds_cost`) and predicted milliseconds per frame on a device (`latency_cost`, from `trinas.latency`).
A frame's time also grows with the network's reach, the context the engine reads around each tile
(`TileContext`): that factor is taken at the expected reach, exact once the distributions are one-hot.
"""

from __future__ import annotations

import itertools
import math
import string
from dataclasses import dataclass
from typing import Callable

import torch

from .cost import cell_madds, madds_per_output_pixel
from .latency import LatencyTable, cell_layers, layers_of
from .net import fixed_reach, least_radius, receptive_reach
from .operations import op_kind
from .space import Cell, Genotype, SearchSpace, Upsample, cell_widths, has_inner_width
from .supernet import ArchWeights


@dataclass
class TileContext:
    """How a frame's time grows with the context its tiles read. The engine cuts a frame into tiles that each
    read the network's receptive field around them, so a deeper network also works on more pixels: a
    twelve-cell x3 network (reach 50) reads 1.19x the pixels of a 1280x720 frame that one with the reach of
    four cells (8) does. `areas[p]` is the frame's tile area with p pixels of context over the area the
    layers were timed on; a network's reach picks it, interpolated between whole pixels so that the
    expected reach under the distributions has a gradient."""

    areas: torch.Tensor  # (most context + 1,): area with p pixels of context / area timed
    op_reach: torch.Tensor  # per operation of the space: pixels each side at its own resolution
    fixed: float  # the reach of the layers every network has (`trinas.net.fixed_reach`)
    least: int  # the least context a tile reads (`trinas.net.least_radius`)

    def factor(self, reach: torch.Tensor) -> torch.Tensor:
        """The area factor at a (possibly fractional) reach in input pixels."""
        areas = self.areas.to(dtype=reach.dtype, device=reach.device)
        reach = reach.clamp(min=self.least, max=len(areas) - 1)
        below = reach.detach().floor().clamp(max=len(areas) - 2).long()
        share = reach - below
        return areas[below] * (1 - share) + areas[below + 1] * share


@dataclass
class CostModel:
    name: str  # what it measures, for people: "multiply-adds per output pixel"
    key: str  # short name: "madds" or "latency_ms"
    space: SearchSpace
    cell_tables: list[torch.Tensor]  # per segment: (ops,)*length + (widths,)*(length-1) + (trunk widths,)
    fixed: torch.Tensor  # per trunk width
    unit: str = ""  # for numbers: "" (a count) or "ms"
    context: TileContext | None = None  # a frame time's growth with the network's reach (latency only)

    def of(self, genotype: Genotype) -> float:
        """The cost of one network of the space, read from the same tables: what `expected` gives once every
        distribution is one-hot on it. A network outside the space (a width or op it lacks) is a ValueError."""
        space = self.space
        t = space.widths.index(genotype.width)
        total, segment = float(self.fixed[t]), 0
        for step in genotype.path:
            if isinstance(step, Upsample):
                segment += 1
                continue
            ops = tuple(space.ops.index(op) for op in step.ops)
            # A position without an inner width has the trunk width; any index reads the same entry there.
            inner = tuple(space.widths.index(w) if has_inner_width(step.ops, i) else 0
                          for i, w in enumerate(step.widths[:-1]))
            total += float(self.cell_tables[segment][ops + inner + (t,)])
        if self.context is not None:
            total *= float(self.context.factor(torch.tensor(receptive_reach(genotype), dtype=torch.float64)))
        return total

    def format(self, value: float) -> str:
        return f"{value:,.1f} ms" if self.unit == "ms" else f"{value:,.0f}"

    def expected(self, weights: ArchWeights) -> torch.Tensor:
        """The expected cost under the architecture distributions (differentiable in them)."""
        length = self.space.ops_per_cell
        letters = iter(string.ascii_letters.replace("s", "").replace("t", ""))
        op_letters = [next(letters) for _ in range(length)]
        width_letters = [next(letters) for _ in range(length - 1)]
        spec = ",".join([f"s{c}" for c in op_letters] + [f"s{c}" for c in width_letters] + ["t"])
        spec += "," + "".join(op_letters + width_letters) + "t->s"
        dtype, device = weights.trunk.dtype, weights.trunk.device
        total = weights.trunk @ self.fixed.to(dtype=dtype, device=device)
        reach = torch.tensor(self.context.fixed if self.context else 0.0, dtype=dtype, device=device)
        slot = 0
        for keep, table, resolution in zip(weights.keep, self.cell_tables, resolutions(self.space)):
            ops = [weights.ops[slot : slot + len(keep), i] for i in range(length)]
            widths = [weights.widths[slot : slot + len(keep), i] for i in range(length - 1)]
            if len(keep):
                per_slot = torch.einsum(spec, *ops, *widths, weights.trunk, table.to(dtype=dtype, device=device))
                total = total + (keep * per_slot).sum()
                if self.context is not None:
                    op_reach = self.context.op_reach.to(dtype=dtype, device=device)
                    reach = reach + (keep * (torch.stack(ops, 1) @ op_reach).sum(1)).sum() / resolution
            slot += len(keep)
        return total * self.context.factor(reach) if self.context is not None else total

    def cheapest(self) -> tuple[float, Genotype]:
        """The cheapest network of the space under this cost: no cells, at the trunk width where that costs least."""
        return min(((self.of(g), g) for g in (_empty(self.space, w) for w in self.space.widths)),
                   key=lambda pair: pair[0])


def _empty(space: SearchSpace, width: int) -> Genotype:
    """The network of the space with no cells at this trunk width: what every network pays at least."""
    return Genotype(space.scale, width, tuple(Upsample(f) for f in space.factors), channels=space.channels,
                    tail=space.tail)


def _cell_table(space: SearchSpace, cost: Callable[[Cell, int], float]) -> torch.Tensor:
    """The cost of one cell for every (op per position, inner width per gap, trunk width)."""
    kops, widths, length = len(space.ops), space.widths, space.ops_per_cell
    table = torch.zeros([kops] * length + [len(widths)] * (length - 1) + [len(widths)], dtype=torch.float64)
    for t, trunk in enumerate(widths):
        for op_index in itertools.product(range(kops), repeat=length):
            ops = tuple(space.ops[i] for i in op_index)
            for w_index in itertools.product(range(len(widths)), repeat=length - 1):
                cell = Cell(ops, cell_widths(ops, tuple(widths[i] for i in w_index), trunk))
                table[op_index + w_index + (t,)] = cost(cell, trunk)
    return table


def resolutions(space: SearchSpace) -> list[int]:
    """The resolution factor of each segment: 1 before the first upsampler, then the running product."""
    factors, current = [1], 1
    for f in space.factors:
        current *= f
        factors.append(current)
    return factors


def madds_cost(space: SearchSpace) -> CostModel:
    """Multiply-adds per output pixel (`cost.madds_per_output_pixel`)."""
    per_input_pixel = _cell_table(space, lambda cell, trunk: cell_madds(cell, trunk))
    out = space.scale**2
    tables = [per_input_pixel * r * r / out for r in resolutions(space)]
    fixed = torch.tensor([madds_per_output_pixel(_empty(space, w))
                          for w in space.widths], dtype=torch.float64)
    return CostModel("multiply-adds per output pixel", "madds", space, tables, fixed)


def latency_cost(space: SearchSpace, table: LatencyTable, tiles: list[tuple[int, int]],
                 with_cells: bool = True, tiles_at: Callable[[int], list[tuple[int, int]]] | None = None
                 ) -> CostModel:
    """Predicted milliseconds for one frame that the engine cuts into `tiles` (input sizes with context);
    `tiles_at(p)`: the frame's tiles with p pixels of context, so the prediction follows each network's reach
    (`TileContext`) instead of the context `tiles` assume.

    Layers are timed on the largest tile only and the frame's time is that times the tiles' total area over
    its area: a frame's tiles differ by a few border pixels, and timing each shape would multiply the table.
    `with_cells=False` times only the fixed part (a few layers per trunk width): enough for `cheapest`, in
    seconds, before the whole table is measured."""
    h0, w0 = max(tiles, key=lambda shape: shape[0] * shape[1])
    share = sum(h * w for h, w in tiles) / (h0 * w0)
    empties = [_empty(space, w) for w in space.widths]
    needed = [layer for g in empties for layer in layers_of(g, h0, w0)]

    def ask(cell: Cell, trunk: int, r: int) -> float:
        needed.extend(cell_layers(cell, trunk, h0 * r, w0 * r))
        return 0.0

    if with_cells:  # every layer asked for first, so the table times them together (`LatencyTable.fill`)
        for r in resolutions(space):
            _cell_table(space, lambda cell, trunk, r=r: ask(cell, trunk, r))
    table.fill(needed)

    def cell_ms(cell: Cell, trunk: int, r: int) -> float:
        return share * sum(table.layer_ms(layer) for layer in cell_layers(cell, trunk, h0 * r, w0 * r))

    tables = [_cell_table(space, lambda cell, trunk, r=r: cell_ms(cell, trunk, r) if with_cells else 0.0)
              for r in resolutions(space)]
    fixed = torch.tensor([share * sum(table.layer_ms(layer) for layer in layers_of(g, h0, w0)) for g in empties],
                         dtype=torch.float64)
    return CostModel(f"per frame on {table.device.kind} ({len(tiles)} tiles of up to {h0}x{w0} input pixels)",
                     "latency_ms", space, tables, fixed, unit="ms",
                     context=tile_context(space, tiles, tiles_at) if tiles_at else None)


def tile_context(space: SearchSpace, tiles: list[tuple[int, int]],
                 tiles_at: Callable[[int], list[tuple[int, int]]]) -> TileContext:
    """The `TileContext` of a frame from its tiles at each context up to the reach of the space's deepest
    network."""
    op_reach = torch.tensor([float(op_kind(op).reach) for op in space.ops], dtype=torch.float64)
    fixed = fixed_reach(tuple(space.factors))
    deepest = fixed + sum(slots * space.ops_per_cell * float(op_reach.max()) / r
                          for slots, r in zip(space.segments, resolutions(space)))
    timed = sum(h * w for h, w in tiles)
    areas = torch.tensor([sum(h * w for h, w in tiles_at(p)) / timed for p in range(math.ceil(deepest) + 2)],
                         dtype=torch.float64)
    return TileContext(areas, op_reach, fixed, least_radius(space.tail))
