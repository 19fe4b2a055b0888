"""What a search holds to a budget: the cost of a network, and its exact expectation under the distributions.

A cost is additive over a network's parts: a fixed part that depends on the trunk width only (head, upsamplers,
tail, and for latency the bicubic skip and the final add), plus one term per kept cell that depends on the
cell's operations, its inner widths, the trunk width and the resolution it runs at. So a `CostModel` is one
table per segment (the cost of one cell for every choice) and one vector (the fixed part per trunk width),
and its expectation under independent distributions is exact. Two models: multiply-adds per output pixel
(`madds_cost`) and predicted milliseconds per frame on a device (`latency_cost`, from `trinas.latency`).
"""

from __future__ import annotations

import itertools
import string
from dataclasses import dataclass
from typing import Callable

import torch

from .cost import cell_madds, madds_per_output_pixel
from .latency import LatencyTable, cell_layers, layers_of
from .space import Cell, Genotype, SearchSpace, Upsample, cell_widths, has_inner_width
from .supernet import ArchWeights


@dataclass
class CostModel:
    name: str  # what it measures, for people: "multiply-adds per output pixel"
    key: str  # short name: "madds" or "latency_ms"
    space: SearchSpace
    cell_tables: list[torch.Tensor]  # per segment: (ops,)*length + (widths,)*(length-1) + (trunk widths,)
    fixed: torch.Tensor  # per trunk width
    unit: str = ""  # for numbers: "" (a count) or "ms"

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
        slot = 0
        for keep, table in zip(weights.keep, self.cell_tables):
            ops = [weights.ops[slot : slot + len(keep), i] for i in range(length)]
            widths = [weights.widths[slot : slot + len(keep), i] for i in range(length - 1)]
            if len(keep):
                per_slot = torch.einsum(spec, *ops, *widths, weights.trunk, table.to(dtype=dtype, device=device))
                total = total + (keep * per_slot).sum()
            slot += len(keep)
        return total

    def cheapest(self) -> tuple[float, Genotype]:
        """The cheapest network of the space under this cost (no cells, the trunk width where `fixed` is least)."""
        t = int(self.fixed.argmin())
        return float(self.fixed[t]), _empty(self.space, self.space.widths[t])


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
                 with_cells: bool = True) -> CostModel:
    """Predicted milliseconds for one frame that the engine cuts into `tiles` (input sizes with context).

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
                     "latency_ms", space, tables, fixed, unit="ms")
