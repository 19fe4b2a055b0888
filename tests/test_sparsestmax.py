"""sparsemax / sparsestmax / sorted sparsestmax: sparsestmax is SSN's exact projection (checked against a brute
force search), on the simplex, sparser as the radius grows, one-hot at the maximal radius, and gradients that
agree with finite differences."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from trinas.sparsestmax import (MAX_RADIUS, entropy, sorted_sparsestmax, sparsemax, sparsestmax,
                               sparsestmax_support_centred, with_softmax_gradient)

RADII = [0.0, 0.1, 0.3, 0.5, 0.65, 0.72, 0.8, 0.9, MAX_RADIUS]


def logits(rows: int = 500, k: int = 6, seed: int = 0) -> torch.Tensor:
    return torch.randn(rows, k, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 1.5


def test_sparsemax_is_the_projection_onto_the_simplex():
    p = sparsemax(torch.tensor([0.5, 0.2, 0.1], dtype=torch.float64))
    assert torch.allclose(p, torch.tensor([0.5667, 0.2667, 0.1667], dtype=torch.float64), atol=1e-4)
    assert torch.equal(sparsemax(torch.tensor([3.0, 0.0, -1.0])), torch.tensor([1.0, 0.0, 0.0]))


@pytest.mark.parametrize("k", [2, 3, 6, 9])
def test_every_radius_gives_distributions_on_the_simplex(k):
    z = logits(k=k)
    for radius in RADII:
        p = sparsestmax(z, radius)
        assert p.shape == z.shape
        assert (p >= 0).all()
        assert torch.allclose(p.sum(-1), torch.ones(len(z), dtype=z.dtype))
    assert torch.allclose(sparsestmax(z, 0.0), sparsemax(z), rtol=0, atol=1e-15)


@pytest.mark.parametrize("k", [2, 4, 6])
def test_sparsity_grows_with_the_radius_until_one_hot(k):
    z = logits(k=k, seed=k)
    support = (sparsemax(z) > 0).sum(-1)
    peak = sparsemax(z).max(-1).values
    for radius in RADII[1:]:
        p = sparsestmax(z, radius)
        assert ((p > 0).sum(-1) <= support).all(), radius  # never revives a choice
        assert (p.max(-1).values >= peak - 1e-9).all(), radius  # the leader only gains
        support, peak = (p > 0).sum(-1), p.max(-1).values
    one_hot = sparsestmax(z, MAX_RADIUS)
    assert ((one_hot == 0) | (one_hot == 1)).all() and (one_hot.sum(-1) == 1).all()
    assert torch.equal(one_hot.argmax(-1), z.argmax(-1))  # the final choice is the leading logit
    assert float(entropy(one_hot).max()) == 0.0


def test_ties_resolve_to_the_first_choice():
    p = sparsestmax(torch.zeros(3, 5), MAX_RADIUS)
    assert torch.equal(p, torch.eye(5)[[0, 0, 0]])
    assert torch.allclose(sparsestmax(torch.zeros(4), 0.0), torch.full((4,), 0.25))


def test_sorted_variant_keeps_a_prefix_of_slots():
    z = logits(k=5, seed=3)
    for radius in RADII:
        keep = sorted_sparsestmax(z, radius)
        assert keep.shape == (len(z), 4)
        assert ((keep >= -1e-12) & (keep <= 1 + 1e-12)).all()
        assert (keep[:, 1:] <= keep[:, :-1] + 1e-12).all()  # sorted: slot n+1 never outweighs slot n
        counts = torch.arange(5, dtype=z.dtype)
        assert torch.allclose(keep.sum(-1), (sparsestmax(z, radius) * counts).sum(-1))  # = expected depth
    final = sorted_sparsestmax(z, MAX_RADIUS)
    assert ((final == 0) | (final == 1)).all()
    assert torch.equal(final.sum(-1).long(), z.argmax(-1))


@pytest.mark.parametrize("radius", [0.0, 0.3, 0.55, 0.8])
def test_gradients_match_finite_differences(radius):
    z = logits(rows=6, k=4, seed=11).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: sparsestmax(t, radius), (z,), eps=1e-6, atol=1e-5)
    assert torch.autograd.gradcheck(lambda t: sorted_sparsestmax(t, radius), (z,), eps=1e-6, atol=1e-5)


GRID_STEPS = {3: 600, 4: 70}


def feasible_points(k: int, radius: float) -> torch.Tensor:
    """A dense sample of {p in simplex : ||p - u|| >= radius}: a grid of the simplex, and the sphere of
    `radius` around u (in the simplex's plane) where it lies in the simplex."""
    steps = GRID_STEPS[k]
    grid = torch.tensor([c for c in itertools.product(range(steps + 1), repeat=k - 1) if sum(c) <= steps],
                        dtype=torch.float64) / steps
    grid = torch.cat([grid, 1 - grid.sum(-1, keepdim=True)], dim=-1)
    basis = torch.linalg.qr(torch.eye(k, dtype=torch.float64) - 1 / k)[0][:, : k - 1]  # the plane sum = 0
    if k == 3:
        angle = torch.linspace(0, 2 * math.pi, 200_000, dtype=torch.float64)
        unit = torch.stack([angle.cos(), angle.sin()], dim=-1)
    else:  # a Fibonacci sphere
        i = torch.arange(300_000, dtype=torch.float64) + 0.5
        polar, azimuth = torch.acos(1 - 2 * i / len(i)), math.pi * (1 + 5**0.5) * i
        unit = torch.stack([polar.sin() * azimuth.cos(), polar.sin() * azimuth.sin(), polar.cos()], dim=-1)
    sphere = 1 / k + radius * unit @ basis.T
    points = torch.cat([grid, sphere.clamp(min=0) / sphere.clamp(min=0).sum(-1, keepdim=True)])
    return points[(points - 1 / k).norm(dim=-1) >= radius - 1e-12]


@pytest.mark.parametrize("k", [3, 4])
def test_sparsestmax_is_the_exact_projection_found_by_brute_force(k):
    z = logits(rows=40, k=k, seed=20 + k) * torch.rand(40, 1, dtype=torch.float64,
                                                        generator=torch.Generator().manual_seed(k))
    z = z - z.mean(-1, keepdim=True) + 1 / k  # in the simplex's plane, so distances are comparable
    worse = 0
    for radius in (0.1, 0.2, 0.35, 0.5, 0.6, 0.7, 0.8):
        if radius >= math.sqrt((k - 1) / k):
            continue
        points = feasible_points(k, radius)
        p = sparsestmax(z, radius)
        assert torch.allclose(p.sum(-1), torch.ones(len(z), dtype=z.dtype)) and (p >= 0).all()
        assert ((p - 1 / k).norm(dim=-1) >= radius - 1e-9).all()  # feasible
        ours = (p - z).norm(dim=-1)
        brute = torch.cdist(z, points).min(dim=-1).values
        assert (ours <= brute + 1e-9).all(), radius  # no feasible point is nearer
        assert (brute - ours <= 1.5 / GRID_STEPS[k]).all(), radius  # and the sample gets close to it
        worse += int(((sparsestmax_support_centred(z, radius) - z).norm(dim=-1) > ours + 1e-6).sum())
    assert worse > 0  # the support-centred variant is not the projection


def test_a_radius_past_the_vertices_is_one_hot_at_the_largest_logit():
    z = logits(rows=50, k=3, seed=5)
    p = sparsestmax(z, math.sqrt(2 / 3))
    assert torch.equal(p, torch.nn.functional.one_hot(z.argmax(-1), 3).to(z.dtype))


@pytest.mark.parametrize("radius", [0.0, 0.5, MAX_RADIUS])
def test_the_softmax_gradient_keeps_the_values_and_never_vanishes_at_a_vertex(radius):
    z = torch.tensor([[3.0, 0.5, 0.0, -1.0]], dtype=torch.float64, requires_grad=True)
    exact = sparsestmax(z, radius)
    assert torch.equal(exact, torch.tensor([[1.0, 0.0, 0.0, 0.0]], dtype=torch.float64))  # a vertex
    mixed = with_softmax_gradient(exact, z)
    assert torch.equal(mixed, exact)
    cost = torch.tensor([4.0, 1.0, 1.0, 1.0], dtype=torch.float64)  # the chosen one is the dear one
    g_exact = (torch.autograd.grad((exact * cost).sum(), z, retain_graph=True)[0] if exact.requires_grad
               else torch.zeros_like(z))  # at the maximal radius the vertex is not even a function of z
    (g_mixed,) = torch.autograd.grad((mixed * cost).sum(), z)
    assert torch.count_nonzero(g_exact) == 0
    assert g_mixed[0, 0] > 0 and (g_mixed[0, 1:] < 0).all()  # descent lowers the dear choice, raises the rest
