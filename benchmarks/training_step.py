"""How long does one training step take? Adam steps of a few networks (a forward, L1 loss, backward and update on
one fixed batch), in the default memory layout and in channels-last as `trinas.train` runs them, interleaved
over rounds (each round's fastest of three steps), with the median per case and its ratio to the first.

    python benchmarks/training_step.py --threads 1 --batch 16 --patch 32
    python benchmarks/training_step.py --model trinas-x2 --model trinas-x4 --layouts channels-last \
        --precisions fp32 bf16 --patch 48

The networks: 32 wide, four cells of two operations of one kind (conv3x3, ecb3x3, rep3x3), x2; `--ops supernet`
times a step of the x2 search's supernet instead; `--model` the networks of model folders or packaged names.
`--precisions fp32 bf16` times the forward pass in bfloat16 autocast beside fp32 (`trinas.train --precision`).
Training time decides how many steps a session buys, so it is measured here, not assumed from the multiply-adds.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from interleaved import interleaved_medians
from trinas.net import TriNet
from trinas.space import Cell, Genotype, SearchSpace, Upsample
from trinas.supernet import Architecture, SuperNet
from trinas.train import PRECISIONS, forward_in


def network(op: str, width: int = 32, cells: int = 4) -> Genotype:
    return Genotype(2, width, (Cell((op, op), (width, width)),) * cells + (Upsample(2),))


def step_call(op: str | Genotype, channels_last: bool, batch: int, patch: int, precision: str = "fp32"):
    """One Adam step of the network of `op` (or of a genotype), or of the x2 search's supernet (default space,
    every candidate weighted as at the start of a search) for op "supernet"."""
    torch.manual_seed(0)
    scale = 2
    if op == "supernet":
        space = SearchSpace(2)
        net, weights = SuperNet(space), Architecture(space).weights(0.0).detach()
        model = lambda x: net(x, weights)  # noqa: E731
    else:
        net = TriNet(op if isinstance(op, Genotype) else network(op))
        model, scale = net, net.scale
    x, y = torch.rand(batch, 3, patch, patch), torch.rand(batch, 3, scale * patch, scale * patch)
    if channels_last:
        net, x = net.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-4)

    def step() -> None:
        loss = F.l1_loss(forward_in(model, x, precision), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ops", nargs="+", default=["conv3x3", "ecb3x3", "rep3x3"],
                        help='operations to build the networks of; "supernet" times the x2 search\'s supernet')
    parser.add_argument("--model", action="append", default=[], metavar="SPEC",
                        help="time this model's network instead of --ops (repeatable)")
    parser.add_argument("--layouts", nargs="+", choices=["default", "channels-last"],
                        default=["default", "channels-last"])
    parser.add_argument("--precisions", nargs="+", choices=PRECISIONS, default=["fp32"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--patch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    networks: dict[str, str | Genotype] = {op: op for op in args.ops}
    if args.model:
        from upscale.models import load  # packaged names belong to the application

        networks = {spec: load(spec).module.genotype for spec in args.model}
    calls = {f"{name} {layout}{'' if len(args.precisions) == 1 else ' ' + precision}":
             step_call(net, layout == "channels-last", args.batch, args.patch, precision)
             for name, net in networks.items() for layout in args.layouts for precision in args.precisions}
    medians = interleaved_medians(calls, args.rounds)
    print(f"training step (the networks: see --help); batch {args.batch} of {args.patch}px LR patches, "
          f"{args.threads} thread(s), median of {args.rounds} rounds (fastest of 3 steps each)")
    first = None
    for name, ms in medians.items():
        first = first or ms
        print(f"{name:40s} {ms:8.1f} ms  {first / ms:5.2f}x the speed of the first")


if __name__ == "__main__":
    main()
