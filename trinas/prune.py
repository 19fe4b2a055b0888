"""Channel pruning to a latency budget: remove the channels that cost the most time for the least quality.

The network is pruned as inference runs it (folded). Channels come in groups that must go together: the
trunk (one width shared by the head, every cell's input and output, the residual additions, the upsamplers
and the tail, so a trunk channel is removed everywhere at once) and each inner width between two operations
of a cell. A channel's importance is first-order (Fisher) Taylor: a gate of ones multiplies every place
where the group's channels are produced, and the squared gradient of the loss at the gate, averaged over
batches, estimates how much the loss grows when the channel is removed (Molchanov et al., CVPR 2019;
Theis et al., 2018). Each round takes `step` channels from the group whose least important channels cost
the least importance per millisecond saved (the saving read from the device's latency table), fine-tunes a
little, and re-estimates, until the predicted frame time is within the budget; then the network fine-tunes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .data import PatchSampler, list_images, make_pairs
from .latency import Device, LatencyTable, calibrate_if_needed
from .net import TriNet, UpsampleBlock, fold
from .operations import op_kind
from .search_config import PRUNE_CHANNEL_STEP, SearchInputError
from .space import Cell, Genotype, SearchSpace, cell_widths, has_inner_width
from .tiling import frame_tiles
from .train import TrainConfig, train


@dataclass(frozen=True)
class Group:
    """Channels removed together: the trunk, or the inner width after position `position` of cell `cell`
    (an index into the TriNet's body)."""

    cell: int | None = None
    position: int | None = None

    @property
    def trunk(self) -> bool:
        return self.cell is None

    def describe(self) -> str:
        return "trunk" if self.trunk else f"cell {self.cell} after op {self.position}"


def prunable(op: str) -> bool:
    return op_kind(op).channel_roles is not None


def groups_of(genotype: Genotype) -> list[Group]:
    """The channel groups pruning may shrink: the trunk if every operation says how its channels are laid out,
    and every inner width between two such operations."""
    groups = []
    cells = [(b, s) for b, s in enumerate(genotype.path) if isinstance(s, Cell)]
    if all(prunable(op) for _, cell in cells for op in cell.ops):
        groups.append(Group())
    for b, cell in cells:
        for i in range(len(cell.ops)):
            if has_inner_width(cell.ops, i) and prunable(cell.ops[i]) and prunable(cell.ops[i + 1]):
                groups.append(Group(b, i))
    return groups


def width_of(genotype: Genotype, group: Group) -> int:
    return genotype.width if group.trunk else genotype.path[group.cell].widths[group.position]


def shrunk(genotype: Genotype, widths: dict[Group, int]) -> Genotype:
    """The genotype with new widths for some groups."""
    trunk = widths.get(Group(), genotype.width)
    path = []
    for b, step in enumerate(genotype.path):
        if isinstance(step, Cell):
            inner = tuple(widths.get(Group(b, i), w) for i, w in enumerate(step.widths))
            step = Cell(step.ops, cell_widths(step.ops, inner, trunk))
        path.append(step)
    return Genotype(genotype.scale, trunk, tuple(path), channels=genotype.channels, tail=genotype.tail)


# ------------------------------------------------------------------------------------------ importance

def _production_points(net: TriNet, group: Group) -> list[nn.Module]:
    """Every module whose output channels are the group's channels: zeroing a channel at all of them gives
    exactly the network without that channel (tested), so their gates measure what removing it costs."""
    genotype = net.genotype
    points: list[nn.Module] = [net.head] if group.trunk else []
    for b, (block, step) in enumerate(zip(net.body, genotype.path)):
        if isinstance(block, UpsampleBlock):
            points += [block] if group.trunk else []
            continue
        for i, (name, op) in enumerate(zip(step.ops, block.ops)):
            side = {"in": Group() if i == 0 or not has_inner_width(step.ops, i - 1) else Group(b, i - 1),
                    "out": Group() if not has_inner_width(step.ops, i) else Group(b, i)}
            for path, (rows, _) in (op_kind(name).channel_roles or {}).items():
                if rows is not None and side[rows] == group:
                    points.append(op.get_submodule(path))
    return points


def gated(net: TriNet, gates: dict[Group, torch.Tensor]) -> list:
    """Multiply every production point of each group by its gate (forward hooks; remove them when done)."""
    hooks = []
    for group, gate in gates.items():
        for module in _production_points(net, group):
            hooks.append(module.register_forward_hook(lambda m, args, out, gate=gate: out * gate.view(1, -1, 1, 1)))
    return hooks


def importances(net: TriNet, groups: list[Group], sampler: PatchSampler, batches: int = 8,
                device: torch.device | str = "cpu") -> dict[Group, torch.Tensor]:
    """Per group, each channel's Fisher importance: the mean over batches of (dL/d gate)^2 at gate = 1."""
    gates = {g: torch.ones(width_of(net.genotype, g), device=device, requires_grad=True) for g in groups}
    hooks = gated(net, gates)
    totals = {g: torch.zeros_like(gate) for g, gate in gates.items()}
    net.eval()
    try:
        for step in range(batches):
            lr, hr = sampler.batch(10_000_000 + step, 16)
            loss = F.l1_loss(net(lr.to(device)), hr.to(device))
            grads = torch.autograd.grad(loss, list(gates.values()))
            for group, grad in zip(gates, grads):
                totals[group] += grad.detach() ** 2 / batches
    finally:
        for hook in hooks:
            hook.remove()
    return totals


# ------------------------------------------------------------------------------------------ surgery

def _copy_conv(target: nn.Conv2d, source: nn.Conv2d, rows: torch.Tensor | None, cols: torch.Tensor | None) -> None:
    weight = source.weight
    if rows is not None:
        weight = weight.index_select(0, rows)
    if cols is not None:
        weight = weight.index_select(1, cols)
    target.weight.copy_(weight)
    if source.bias is not None:
        target.bias.copy_(source.bias if rows is None else source.bias.index_select(0, rows))


def select_channels(net: TriNet, keep: dict[Group, torch.Tensor]) -> TriNet:
    """A folded TriNet with only the kept channels of each group (sorted indices), weights copied."""
    source = fold(net)
    genotype = shrunk(source.genotype, {g: len(idx) for g, idx in keep.items()})
    target = TriNet(genotype, folded=True).to(next(source.parameters()))
    old = source.genotype
    trunk = keep.get(Group(), torch.arange(old.width))
    with torch.no_grad():
        _copy_conv(target.head, source.head, trunk, None)
        _copy_conv(target.tail, source.tail, None, trunk)
        for b, (new_block, old_block) in enumerate(zip(target.body, source.body)):
            if isinstance(old_block, UpsampleBlock):
                f2 = old_block[1].upscale_factor ** 2
                rows = (trunk[:, None] * f2 + torch.arange(f2)[None, :]).reshape(-1)
                _copy_conv(new_block[0], old_block[0], rows, trunk)
                continue
            cell = old.path[b]
            for i, (name, new_op, old_op) in enumerate(zip(cell.ops, new_block.ops, old_block.ops)):
                index = {"in": trunk if i == 0 or not has_inner_width(cell.ops, i - 1)
                         else keep.get(Group(b, i - 1), torch.arange(cell.widths[i - 1])),
                         "out": trunk if not has_inner_width(cell.ops, i)
                         else keep.get(Group(b, i), torch.arange(cell.widths[i])), None: None}
                for path, (rows, cols) in (op_kind(name).channel_roles or {}).items():
                    _copy_conv(new_op.get_submodule(path), old_op.get_submodule(path), index[rows], index[cols])
    return target


# ------------------------------------------------------------------------------------------ the search

@dataclass
class PruneStep:
    group: str
    width: int
    predicted_ms: float


def prune_to_latency(net: TriNet, table: LatencyTable, tiles: list[tuple[int, int]], budget_ms: float,
                     sampler: PatchSampler, step: int = PRUNE_CHANNEL_STEP, min_width: int = 4, batches: int = 8,
                     recover_steps: int = 50, lr: float = 1e-4, device: torch.device | str = "cpu",
                     log: Callable[[str], None] = print) -> tuple[TriNet, list[PruneStep]]:
    """Remove channels, `step` at a time, until the predicted frame time over `tiles` is within `budget_ms`.

    Raises SearchInputError (a user error: the budget is out of reach) when no group can shrink further, or
    none saves time, and the network is still over the budget."""
    net = fold(net).to(device)
    history: list[PruneStep] = []
    current = table.frame_ms(net.genotype, tiles)
    while current > budget_ms:
        genotype = net.genotype
        groups = [g for g in groups_of(genotype) if width_of(genotype, g) - step >= min_width]
        if not groups:
            raise SearchInputError(f"cannot prune {genotype.describe()} below {current:,.1f} ms (every width is "
                                   f"at its minimum of {min_width}); the budget is {budget_ms:,.1f} ms: raise it")
        scores = importances(net, groups, sampler, batches, device)
        best = None
        for group in groups:
            found = _smallest_cut_that_saves(genotype, group, table, tiles, current, step, min_width)
            if found is None:
                continue
            cut, saved = found
            order = torch.argsort(scores[group])
            cost = float(scores[group][order[:cut]].sum())
            if best is None or cost / saved < best[0]:
                best = (cost / saved, group, order[cut:].sort().values)
        if best is None:
            raise SearchInputError(f"no channel of {genotype.describe()} saves time on this device's latency "
                                   f"table; it stays at {current:,.1f} ms against a budget of {budget_ms:,.1f} ms: "
                                   f"raise the budget (or time the table again on an idle machine)")
        _, group, kept = best
        cut = width_of(genotype, group) - len(kept)
        net = select_channels(net, {group: kept.cpu()}).to(device)
        current = table.frame_ms(net.genotype, tiles)
        history.append(PruneStep(group.describe(), len(kept), current))
        log(f"pruned {cut} channels of the {group.describe()} (now {len(kept)}): {current:,.1f} ms predicted")
        _fine_tune(net, sampler, recover_steps, lr, device)
    return net, history


def _smallest_cut_that_saves(genotype: Genotype, group: Group, table: LatencyTable, tiles: list[tuple[int, int]],
                             current: float, step: int, min_width: int) -> tuple[int, float] | None:
    """The fewest channels, a multiple of `step`, whose removal from `group` makes the network predicted faster,
    and the milliseconds saved; None if no cut down to `min_width` does. One step alone may save nothing: on
    an AMD EPYC (AVX2) a 3x3 convolution from 24 to 12 channels took longer than from 24 to 16, and the
    pruning of the first `trinas-x4-rt` stopped at 47 ms, twice its budget, with every single step of 4 saving
    nothing."""
    width = width_of(genotype, group)
    for cut in range(step, width - min_width + 1, step):
        saved = current - table.frame_ms(shrunk(genotype, {group: width - cut}), tiles)
        if saved > 0:
            return cut, saved
    return None


def _fine_tune(net: TriNet, sampler: PatchSampler, steps: int, lr: float, device: torch.device | str) -> None:
    """A few steps so the next importance estimate sees a network that has adapted to its last cut."""
    if steps <= 0:
        return
    net.train()
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    for s in range(steps):
        x, y = sampler.batch(20_000_000 + s, 16)
        loss = F.l1_loss(net(x.to(device)), y.to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    net.eval()


@dataclass
class PruneResult:
    net: TriNet
    steps: list[PruneStep]
    before_ms: float
    after_ms: float
    fine_tune_steps: int
    channel_step: int
    budget_ms: float
    frame: tuple[int, int]  # (width, height) of the output frame the budget is for
    device_kind: str

    def record(self) -> dict:
        """What a pruned model's config keeps of its pruning, the same from `upscale prune` and `search --prune`."""
        width, height = self.frame
        return {"latency_ms": self.budget_ms, "at": f"{width}x{height}", "device": self.device_kind,
                "predicted_ms_before": round(self.before_ms, 2), "predicted_ms_after": round(self.after_ms, 2),
                "fine_tune_steps": self.fine_tune_steps, "channel_step": self.channel_step}


def prune_for_frame(net: TriNet, train_dirs: list[Path], budget_ms: float, frame: tuple[int, int],
                    device_kind: str = "cpu", threads: int | None = None, tile: int | None = None,
                    fine_tune_steps: int = 2000, batch: int = 16, patch: int = 32, lr: float = 1e-4, seed: int = 0,
                    checkpoint: Path | None = None, step: int = PRUNE_CHANNEL_STEP,
                    log: Callable[[str], None] = print) -> PruneResult:
    """Prune `net` until an output frame of `frame` (width, height) is predicted within `budget_ms` on the
    device, as the engine cuts it into tiles, `step` channels at a time, then fine-tune; the data are HR
    folders (LR by bicubic)."""
    table = LatencyTable(Device.current(device_kind, threads, half=device_kind == "cuda"))
    if stale := table.verify():
        log(stale)
    width, height = frame
    tiles = frame_tiles(device_kind, height, width, net.scale, net.receptive_field, tile)
    pairs = make_pairs(list_images(train_dirs), net.scale, patch)
    sampler = PatchSampler(pairs, net.scale, patch, seed)
    calibrate_if_needed(table, SearchSpace(net.scale, tail=net.genotype.tail), tiles, log)
    before = table.frame_ms(net.genotype, tiles)
    log(f"{net.genotype.describe()}: {before:,.1f} ms predicted per {width}x{height} frame; budget {budget_ms:,.1f} ms")
    pruned, steps = prune_to_latency(net, table, tiles, budget_ms, sampler, step=step, log=log)
    table.save()
    if steps and fine_tune_steps:
        config = TrainConfig(scale=net.scale, steps=fine_tune_steps, batch=batch, patch=patch, lr=lr, seed=seed,
                             warmup=0, val_every=fine_tune_steps)
        train(pruned, sampler, [], config, Path(checkpoint) if checkpoint else Path("prune-checkpoint.pt"),
              log=log)
    return PruneResult(pruned.eval(), steps, before, table.frame_ms(pruned.genotype, tiles),
                       fine_tune_steps if steps else 0, step, budget_ms, frame, device_kind)
