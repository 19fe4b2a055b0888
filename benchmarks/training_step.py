"""How long does one training step take? Adam steps of a few networks (a forward, L1 loss, backward and update on
one fixed batch), in the default memory layout and in channels-last as `trinas.train` runs them, interleaved
over rounds (each round's fastest of three steps), with the median per case and its ratio to the first.

    python benchmarks/training_step.py --threads 1 --batch 16 --patch 32

The networks: 32 wide, four cells of two operations of one kind (conv3x3, ecb3x3, rep3x3), x2; `--ops supernet`
times a step of the x2 search's supernet instead. Training time
decides how many steps a session buys, so it is measured here, not assumed from the multiply-adds.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from interleaved import interleaved_medians
from trinas.net import TriNet
from trinas.space import Cell, Genotype, SearchSpace, Upsample
from trinas.supernet import Architecture, SuperNet


def network(op: str, width: int = 32, cells: int = 4) -> Genotype:
    return Genotype(2, width, (Cell((op, op), (width, width)),) * cells + (Upsample(2),))


def step_call(op: str, channels_last: bool, batch: int, patch: int):
    """One Adam step of the network of `op`, or of the x2 search's supernet (default space, every candidate
    weighted as at the start of a search) for op "supernet"."""
    torch.manual_seed(0)
    if op == "supernet":
        space = SearchSpace(2)
        net, weights = SuperNet(space), Architecture(space).weights(0.0).detach()
        model = lambda x: net(x, weights)  # noqa: E731
    else:
        net = TriNet(network(op))
        model = net
    x, y = torch.rand(batch, 3, patch, patch), torch.rand(batch, 3, 2 * patch, 2 * patch)
    if channels_last:
        net, x = net.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-4)

    def step() -> None:
        loss = F.l1_loss(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ops", nargs="+", default=["conv3x3", "ecb3x3", "rep3x3"],
                        help='operations to build the networks of; "supernet" times the x2 search\'s supernet')
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--patch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    calls = {f"{op} {'channels-last' if last else 'default layout'}": step_call(op, last, args.batch, args.patch)
             for op in args.ops for last in (False, True)}
    medians = interleaved_medians(calls, args.rounds)
    print(f"training step at x2 (the networks: see --help); batch {args.batch} of {args.patch}px LR patches, "
          f"{args.threads} thread(s), median of {args.rounds} rounds (fastest of 3 steps each)")
    first = None
    for name, ms in medians.items():
        first = first or ms
        print(f"{name:32s} {ms:8.1f} ms  {first / ms:5.2f}x the speed of the first")


if __name__ == "__main__":
    main()
