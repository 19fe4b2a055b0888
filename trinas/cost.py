"""Parameter and multiply-add counts, computed from the Genotype alone (no tracing, no device)."""

from __future__ import annotations

from .operations import op_kind
from .space import Cell, Genotype


def cell_madds(cell: Cell, trunk: int) -> int:
    """Multiply-adds per pixel of one cell at its own resolution, its input `trunk` channels wide."""
    total, cin = 0, trunk
    for op, cout in zip(cell.ops, cell.widths):
        total += op_kind(op).madds(cin, cout)
        cin = cout
    return total


def madds_per_input_pixel(genotype: Genotype) -> float:
    """Multiply-adds the network spends per LR input pixel (cost at resolution s counts s^2 times), as
    inference runs it (re-parameterisable operations folded)."""
    c, w = genotype.channels, genotype.width
    total = 9 * c * w  # head
    area = 1
    for step in genotype.path:
        if isinstance(step, Cell):
            total += area * cell_madds(step, w)
        else:
            total += area * 9 * w * w * step.factor**2
            area *= step.factor**2
    total += 9 * w * c * genotype.scale**2  # tail: at the output resolution, or to c x scale^2 before a shuffle
    return float(total)


def madds_per_output_pixel(genotype: Genotype) -> float:
    return madds_per_input_pixel(genotype) / genotype.scale**2


def count_params(model) -> int:
    return sum(p.numel() for p in model.parameters())
