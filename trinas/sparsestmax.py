"""Sparsemax, sparsestmax and its sorted variant: relaxations whose outputs become exactly one-hot.

Every function works on the last axis and is batched over the others, so all the distributions of one
architecture level go through in one call. All are differentiable almost everywhere (torch autograd through
the closed forms). At radius 0 sparsestmax is sparsemax; from radius 1 on it is one-hot for any number of
choices, so the final architecture needs no thresholding (Shao et al., "SSN", CVPR 2019).
"""

from __future__ import annotations

import torch

MAX_RADIUS = 1.0  # beyond sqrt((K-1)/K) for every K: the sphere leaves every face of the simplex


def sparsemax(logits: torch.Tensor) -> torch.Tensor:
    """Euclidean projection of the logits onto the probability simplex (Martins & Astudillo, 2016)."""
    z_sorted = logits.sort(dim=-1, descending=True).values
    cumsum = z_sorted.cumsum(dim=-1)
    k = torch.arange(1, logits.shape[-1] + 1, device=logits.device, dtype=logits.dtype)
    support = (1 + k * z_sorted > cumsum).sum(dim=-1, keepdim=True)
    tau = (cumsum.gather(-1, support - 1) - 1) / support.to(logits.dtype)
    return (logits - tau).clamp(min=0)


def sparsestmax(logits: torch.Tensor, radius: float) -> torch.Tensor:
    """Sparsemax, pushed out of the sphere of `radius` around the uniform point of its own support.

    While the point lies inside the sphere it is moved radially onto it and projected back onto the simplex;
    each projection that leaves the face drops at least one choice, so this ends within K rounds. The larger
    the radius, the sparser the result; at `MAX_RADIUS` every row is one-hot (ties go to the first largest
    logit).
    """
    p = sparsemax(logits)
    if radius <= 0:
        return _exact_one_hot(p)
    first_best = torch.nn.functional.one_hot(logits.argmax(dim=-1), logits.shape[-1]).to(logits.dtype)
    for _ in range(logits.shape[-1]):
        support = (p > 0).to(logits.dtype)
        size = support.sum(dim=-1, keepdim=True)
        centre = support / size
        offset = p - centre
        distance = offset.norm(dim=-1, keepdim=True)
        inside = (distance < radius * (1 - 1e-6)) & (size > 1)
        if not bool(inside.any()):
            break
        # At the centre itself no direction is preferred: head for the largest logit.
        fallback = first_best * support - centre
        fallback = fallback / fallback.norm(dim=-1, keepdim=True).clamp(min=1e-12)
        direction = torch.where(distance > 1e-9, offset / distance.clamp(min=1e-12), fallback)
        # Choices outside the support sit 2 below the rest, so the projection cannot revive them.
        pushed = centre + radius * direction - 2 * (1 - support)
        p = torch.where(inside, sparsemax(pushed), p)
    return _exact_one_hot(p)


def _exact_one_hot(p: torch.Tensor) -> torch.Tensor:
    """Rows with a single choice become exactly one-hot (not 1 - 1e-16); their gradient is zero anyway."""
    support = p > 0
    return torch.where(support.sum(dim=-1, keepdim=True) == 1, support.to(p.dtype), p)


def tail_sums(p: torch.Tensor) -> torch.Tensor:
    """For a distribution over counts 0..K-1, P(count >= n) for n = 1..K-1: non-increasing by construction."""
    return p.flip(-1).cumsum(dim=-1).flip(-1)[..., 1:]


def sorted_sparsestmax(logits: torch.Tensor, radius: float) -> torch.Tensor:
    """Keep weights of K-1 ordered slots from sparsestmax over how many are kept (0..K-1).

    The weights are sorted (non-increasing), so a slot is only on if every earlier one is: the network
    level can only drop cells from the end, which is what compresses depth. Binary at `MAX_RADIUS`.
    """
    return tail_sums(sparsestmax(logits, radius))


def entropy(p: torch.Tensor) -> torch.Tensor:
    """Entropy of each row divided by log K: 1 for uniform, 0 for one-hot."""
    k = p.shape[-1]
    if k < 2:
        return torch.zeros(p.shape[:-1], dtype=p.dtype, device=p.device)
    logs = torch.where(p > 0, p.clamp(min=1e-30).log(), torch.zeros_like(p))
    return -(p * logs).sum(dim=-1) / torch.log(torch.tensor(float(k), dtype=p.dtype))
