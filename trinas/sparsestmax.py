"""Sparsemax, sparsestmax and its sorted variant: relaxations whose outputs become exactly one-hot.

Every function works on the last axis and is batched over the others, so all the distributions of one
architecture level go through in one call. All are differentiable almost everywhere (torch autograd through
the closed forms). At radius 0 sparsestmax is sparsemax; from radius sqrt((K-1)/K) on (so from
`MAX_RADIUS` for every K) it is one-hot, so the final architecture needs no thresholding (Shao et al.,
"SSN", CVPR 2019).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

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
    """SSN's sparsestmax: the exact Euclidean projection of the logits onto the part of the simplex at least
    `radius` from its centre (the uniform point u), {p in simplex : ||p - u|| >= radius}.

    Where sparsemax already lies that far out it is the answer. Otherwise the projection lies on the sphere
    of `radius` around u, and on the sphere (fixed norm) it maximises <z, p>; its support is the top k
    logits for some k (swapping two coordinates against the logits' order lowers <z, p>), and on the face of
    the top k the sphere is the sphere around that face's centre c_k of radius s_k = sqrt(r^2 + 1/K - 1/k),
    whose point furthest along z is p_k = c_k + s_k (z_k - mean z_k) / ||z_k - mean z_k||. So the answer is
    the feasible (non-negative) p_k with the largest <z, p_k> = mean z_k + s_k ||z_k - mean z_k||: exact, in
    closed form, differentiable in the logits. A radius beyond sqrt((K-1)/K) (where only the vertices are left)
    gives the one-hot vertex of the largest logit; ties go to the first. Computed in float64.
    """
    p = sparsemax(logits)
    k_choices = logits.shape[-1]
    if radius <= 0 or k_choices < 2:
        return _exact_one_hot(p)
    vertex_radius = math.sqrt((k_choices - 1) / k_choices)
    first_best = F.one_hot(logits.argmax(dim=-1), k_choices).to(logits.dtype)
    if radius >= vertex_radius - 1e-9:
        return first_best
    z = logits.double()
    r2 = radius * radius + 1 / k_choices  # squared norm of every point of the sphere (within the simplex's plane)
    z_sorted, order = z.sort(dim=-1, descending=True, stable=True)
    k = torch.arange(1, k_choices + 1, device=z.device, dtype=z.dtype)
    in_top = (torch.arange(k_choices, device=z.device)[None, :] < k[:, None]).to(z.dtype)  # (k, i): i < k
    mean = z_sorted.cumsum(dim=-1) / k  # (..., k)
    deviation = (z_sorted.unsqueeze(-2) - mean.unsqueeze(-1)) * in_top  # (..., k, i)
    spread = deviation.norm(dim=-1)  # (..., k)
    s = (r2 - 1 / k).clamp(min=0).sqrt()
    # Where the top k logits are equal (at the start of a search: all zero) no direction is preferred: head
    # for the first of them, which the stable sort put first.
    ahead = torch.zeros_like(in_top)
    ahead[:, 0] = 1
    fallback = (ahead - in_top / k[:, None])  # (k, i)
    fallback = fallback / fallback.norm(dim=-1, keepdim=True).clamp(min=1e-300)
    flat = spread <= 1e-12 * (1 + z_sorted.abs().amax(dim=-1, keepdim=True))
    direction = torch.where(flat.unsqueeze(-1), fallback.expand_as(deviation),
                            deviation / spread.clamp(min=1e-300).unsqueeze(-1))
    candidates = in_top / k[:, None] + s.unsqueeze(-1) * direction  # (..., k, i): p_k in sorted order
    smallest = (candidates + (1 - in_top)).amin(dim=-1)
    feasible = (r2 - 1 / k >= -1e-12) & (smallest >= -1e-12)
    value = torch.where(feasible, (candidates * z_sorted.unsqueeze(-2)).sum(dim=-1), -math.inf)
    best = value.argmax(dim=-1, keepdim=True)  # the first largest: the smallest support among equals
    chosen = candidates.gather(-2, best.unsqueeze(-1).expand(*best.shape, k_choices)).squeeze(-2)
    sphere = torch.zeros_like(chosen).scatter(-1, order, chosen.clamp(min=0)).to(logits.dtype)
    far_enough = (p.double() - 1 / k_choices).norm(dim=-1, keepdim=True) >= radius
    return _exact_one_hot(torch.where(far_enough, p, sphere))


def sparsestmax_support_centred(logits: torch.Tensor, radius: float) -> torch.Tensor:
    """The variant the x2 searches up to 0.1 used: the sphere of the full `radius` around the centre of the
    current support (not SSN's sphere around the simplex's centre), pushing sparsemax out of it radially.

    Not a projection (it differs from `sparsestmax` on 14-49% of random rows for radii 0.2..0.8), but also
    one-hot from `MAX_RADIUS` on. Kept so a search can be run with it and compared (`SearchConfig.relaxation`).
    """
    p = sparsemax(logits)
    if radius <= 0:
        return _exact_one_hot(p)
    first_best = F.one_hot(logits.argmax(dim=-1), logits.shape[-1]).to(logits.dtype)
    for _ in range(logits.shape[-1]):
        support = (p > 0).to(logits.dtype)
        size = support.sum(dim=-1, keepdim=True)
        centre = support / size
        offset = p - centre
        distance = offset.norm(dim=-1, keepdim=True)
        inside = (distance < radius * (1 - 1e-6)) & (size > 1)
        if not bool(inside.any()):
            break
        fallback = first_best * support - centre
        fallback = fallback / fallback.norm(dim=-1, keepdim=True).clamp(min=1e-12)
        direction = torch.where(distance > 1e-9, offset / distance.clamp(min=1e-12), fallback)
        # Choices outside the support sit 2 below the rest, so the projection cannot revive them.
        pushed = centre + radius * direction - 2 * (1 - support)
        p = torch.where(inside, sparsemax(pushed), p)
    return _exact_one_hot(p)


RELAXATIONS = {"sparsestmax": sparsestmax, "support-centred": sparsestmax_support_centred}


def with_softmax_gradient(p: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """`p`'s values; in its one-hot rows, where the relaxation's own gradient is zero, the gradient of
    softmax(logits) instead (straight-through), so a choice that went one-hot can still be undone.

    Under plain sparsemax Adam moves every logit a full learning rate a step, and the x2 search of commit
    ee3f0fa put its depth one-hot within 200 architecture steps at twice its multiply-add budget, where the
    budget's growing multiplier could no longer move it. Rows inside the simplex keep their exact gradient.
    """
    soft = torch.softmax(logits, dim=-1)
    vertex = p.max(dim=-1, keepdim=True).values >= 1
    return p + torch.where(vertex, soft - soft.detach(), torch.zeros_like(soft)).to(p.dtype)


BUDGET_GRADIENTS = ("softmax", "exact")


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
