"""How strongly each term of the architecture loss pulls, level by level, on a supernet from a search checkpoint.

The architecture step adds the reconstruction loss (L1 on held-out patches) and the cost term. If the cost's
gradient dwarfs the reconstruction's, the search picks by cost rank instead of quality: this measures both, as
mean absolute gradients of the architecture logits at the uniform point (radius 0), so a cost weight or the
budget's multiplier can be judged against the reconstruction signal.

    python benchmarks/architecture_gradients.py runs/search-x2/search-checkpoint.pt --train ../shared/data/train/T91

With `--own-logits` it measures at the checkpoint's own architecture logits (at `--radius`) instead, and prints
the network level's signed reconstruction gradient (mean and spread over the batches) next to the order term's:
whether the data asks for more or fewer cells, and whether the radius has already frozen the choice (a gradient
near 0 at radius > 0).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F

from trinas.data import PatchSampler
from trinas.search import order_term
from trinas.search_data import load_pairs
from trinas.space import SearchSpace
from trinas.costs import madds_cost
from trinas.supernet import Architecture, SuperNet


def gradients(loss: torch.Tensor, arch: Architecture) -> dict[str, torch.Tensor | None]:
    names, params = zip(*arch.named_parameters())
    return dict(zip(names, torch.autograd.grad(loss, params, allow_unused=True)))


def mean_abs(grads: dict[str, torch.Tensor | None]) -> dict[str, float]:
    return {n: 0.0 if g is None else float(g.abs().mean()) for n, g in grads.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--train", type=Path, required=True, help="HR images for the patches")
    parser.add_argument("--cost-weight", type=float, default=0.03, help="weight on log(expected madds)")
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--own-logits", action="store_true", help="the checkpoint's logits, not the uniform point")
    parser.add_argument("--radius", type=float, default=0.0, help="sparsestmax radius (with --own-logits)")
    args = parser.parse_args()

    state = torch.load(args.checkpoint, map_location="cpu", weights_only=True)
    space = SearchSpace.from_dict(state["config"]["space"])
    patch = int(state["config"]["patch"])
    supernet = SuperNet(space)
    supernet.load_state_dict(state["supernet"])
    arch = Architecture(space)  # zero logits: the uniform point where the search starts choosing
    radius = 0.0
    if args.own_logits:
        arch.load_state_dict(state["arch"])
        radius = args.radius
    pairs, _ = load_pairs([args.train], space.scale, patch, 2048)
    sampler = PatchSampler(pairs, space.scale, patch, seed=12345)

    reconstruction = {n: 0.0 for n, _ in arch.named_parameters()}
    depth_grads = []
    for step in range(args.batches):
        x, y = sampler.batch(step, args.batch)
        grads = gradients(F.l1_loss(supernet(x, arch.weights(radius)), y), arch)
        depth_grads.append([grads[f"depth.{k}"] for k in range(len(arch.depth))])
        for name, value in mean_abs(grads).items():
            reconstruction[name] += value / args.batches
    madds = madds_cost(space).expected(arch.weights(radius))
    cost = mean_abs(gradients(args.cost_weight * torch.log(madds), arch))
    if args.own_logits:
        print_network_level(arch, arch.weights(radius), depth_grads, float(state["config"]["order_weight"]))

    print(f"{'logits':10} {'L1 |grad|':>12} {'cost |grad|':>12} {'cost / L1':>10}")
    for name in reconstruction:
        ratio = cost[name] / reconstruction[name] if reconstruction[name] else float("inf")
        print(f"{name:10} {reconstruction[name]:12.2e} {cost[name]:12.2e} {ratio:10.1f}")


def print_network_level(arch: Architecture, weights, depth_grads: list, order_weight: float) -> None:
    """Per segment: the distribution over how many cells are kept, and the signed gradients on its logits
    (gradient descent moves a logit against its gradient, so a negative entry asks for that depth)."""
    order_grads = torch.autograd.grad(order_term(weights, order_weight), list(arch.depth), allow_unused=True)
    for k, distribution in enumerate(weights.depth):
        grads = torch.stack([torch.zeros_like(distribution) if g[k] is None else g[k] for g in depth_grads])
        order_grad = torch.zeros_like(distribution) if order_grads[k] is None else order_grads[k]
        print(f"segment {k}: cells kept 0..{len(distribution) - 1}")
        for label, row in (("distribution", distribution), ("L1 grad mean", grads.mean(0)),
                           ("L1 grad std", grads.std(0) if len(grads) > 1 else torch.zeros_like(distribution)),
                           ("order grad", order_grad)):
            print(f"  {label:13}" + " ".join(f"{float(v):10.2e}" for v in row.detach()))


if __name__ == "__main__":
    main()
