"""The operation registry: one object per kind of operation, and everything else asks it.

An operation defined and registered only in this file runs through the search, derive, export, load, the
cost model and the receptive field with no other file touched; the re-parameterisable operation folds into
one conv with the same output; every kind's multiply-adds and reach agree with what its modules really do.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from torch import nn

from trinas.cost import madds_per_input_pixel, madds_per_output_pixel
from trinas.derive import derive
from trinas.export import load_model, save_model
from trinas.net import TriNet, fold
from trinas.operations import OPERATIONS, OpKind, op_kind, register_op, unregister_op
from trinas.search import SearchConfig, load_data, search
from trinas.space import Cell, Genotype, SearchSpace, Upsample, baseline_genotype
from trinas.sparsestmax import MAX_RADIUS
from trinas.supernet import Architecture, SuperNet


class CrossConv(nn.Module):
    """A 1x3 then a 3x1 convolution: a kind of operation no file of the package knows."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.across = nn.Conv2d(c_in, c_out, (1, 3), padding=(0, 1))
        self.down = nn.Conv2d(c_out, c_out, (3, 1), padding=(1, 0))

    def forward(self, x: torch.Tensor, in_mask: torch.Tensor | None = None,
                out_mask: torch.Tensor | None = None) -> torch.Tensor:
        y = self.across(x)  # its width is the output's: the supernet says which channels exist
        return self.down(y if out_mask is None else y * out_mask)


class Cross3(OpKind):
    name, reach = "test-cross3", 1

    def build(self, c_in: int, c_out: int) -> nn.Module:
        return CrossConv(c_in, c_out)

    def madds(self, c_in: int, c_out: int) -> int:
        return 3 * c_in * c_out + 3 * c_out * c_out


@pytest.fixture
def cross3():
    register_op(Cross3)
    yield Cross3.name
    unregister_op(Cross3.name)


def conv_madds(net: nn.Module, x: torch.Tensor) -> float:
    """Multiply-adds of every convolution in a forward pass, counted from the shapes it really ran at."""
    total = 0.0

    def count(module: nn.Conv2d, inputs, output) -> None:
        nonlocal total
        kh, kw = module.kernel_size
        total += output[0].numel() * (module.in_channels // module.groups) * kh * kw

    hooks = [m.register_forward_hook(count) for m in net.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        net(x)
    for hook in hooks:
        hook.remove()
    return total


def measured_reach(net: nn.Module, channels: int = 3, size: int = 41) -> int:
    """How far (input pixels) an output pixel really looks, from the input pixel it lies in: the largest
    offset with a gradient, over the output pixels of the centre input pixel."""
    x = torch.rand(1, channels, size, size, dtype=torch.float64, requires_grad=True)
    y = net(x)
    scale, centre = y.shape[-1] // size, size // 2
    reach = 0
    for dy in range(scale):
        for dx in range(scale):
            x.grad = None
            y[0, :, centre * scale + dy, centre * scale + dx].sum().backward(retain_graph=True)
            rows, cols = torch.nonzero(x.grad[0].abs().sum(0) > 0, as_tuple=True)
            reach = max(reach, int((rows - centre).abs().max()), int((cols - centre).abs().max()))
    return reach


def randomised(net: nn.Module) -> nn.Module:
    for p in net.parameters():
        nn.init.normal_(p, std=0.1)
    return net


GENOTYPES = {
    2: Genotype(2, 8, (Cell(("rep3x3", "rep3x3"), (6, 8)), Cell(("rep3x3", "resblock3x3"), (8, 8)), Upsample(2),
                       Cell(("rep3x3",), (8,)))),
    3: Genotype(3, 8, (Cell(("conv3x3", "rep3x3"), (12, 8)), Cell(("spanatt3x3", "ecb3x3"), (8, 8)), Upsample(3),
                       Cell(("ecb3x3",), (8,)))),
    4: Genotype(4, 6, (Cell(("ecb3x3", "sepconv3x3"), (4, 6)), Upsample(2), Cell(("skip", "rep3x3"), (6, 6)),
                       Upsample(2))),
}


@pytest.mark.parametrize("scale", sorted(GENOTYPES))
def test_a_folded_network_computes_what_its_branches_compute(scale, tmp_path):
    torch.manual_seed(scale)
    net = randomised(TriNet(GENOTYPES[scale])).eval()
    folded = fold(net)
    assert not any(type(m).__name__ in ("RepConv", "EdgeRepConv") for m in folded.modules())  # all folded
    single = [b for b in folded.body if getattr(b, "cell", None) is not None and len(b.cell.ops) == 1]
    assert all(not b.residual for b in single)  # a lone conv's residual is in its kernel
    x = torch.rand(2, 3, 13, 11)
    with torch.no_grad():
        expected = net(x)
        assert torch.allclose(folded(x), expected, rtol=0, atol=1e-5)
        save_model(net, tmp_path / "m")  # export folds
        assert torch.allclose(load_model(tmp_path / "m")(x), expected, rtol=0, atol=1e-5)
    # The cost model counts the folded network: one 3x3 conv per rep3x3.
    assert conv_madds(folded, x[:1]) == pytest.approx(madds_per_input_pixel(GENOTYPES[scale]) * 13 * 11)


@pytest.mark.parametrize("name", sorted(OPERATIONS))
def test_every_kind_costs_and_reaches_what_its_module_does(name):
    kind = op_kind(name)
    width = 6
    out = width if kind.keeps_width else 4
    genotype = Genotype(2, width, (Cell((name, "conv3x3") if not kind.keeps_width else (name,),
                                        (out, width) if not kind.keeps_width else (width,)), Upsample(2)))
    net = randomised(fold(TriNet(genotype))).double()
    x = torch.rand(1, 3, 9, 10, dtype=torch.float64)
    assert conv_madds(net, x) == pytest.approx(madds_per_input_pixel(genotype) * 9 * 10)
    assert measured_reach(net) <= net.receptive_field


def test_an_operation_registered_in_a_test_runs_through_search_derive_export_and_load(cross3, tmp_path):
    name = cross3
    assert name not in SearchSpace(2).ops  # a registered kind does not change the default search

    # Cost and receptive field: from the kind, and true of the module.
    genotype = Genotype(2, 6, (Cell((name, name), (4, 6)), Upsample(2), Cell((name,), (6,))))
    net = randomised(TriNet(genotype)).double()
    x = torch.rand(1, 3, 9, 10, dtype=torch.float64)
    assert conv_madds(net, x) == pytest.approx(madds_per_input_pixel(genotype) * 9 * 10)
    assert measured_reach(net) <= net.receptive_field

    # The supernet with one-hot choices is exactly the derived TriNet that holds the new operation.
    torch.manual_seed(0)
    space = SearchSpace(2, max_width=6, width_fractions=(0.5, 1.0), ops=(name, "conv3x3"), max_cells=2,
                        max_cells_upsampled=1)
    supernet, arch = randomised(SuperNet(space)).double(), Architecture(space).double()
    with torch.no_grad():
        arch.ops.zero_()
        arch.ops[..., 0] = 1.0  # every position chooses the new operation
        for depth in arch.depth:
            depth.zero_()
            depth[-1] = 1.0  # keep every slot
    weights = arch.weights(MAX_RADIUS)
    derived, _ = derive(supernet, weights)
    assert derived.genotype.cells and all(op == name for c in derived.genotype.cells for op in c.ops)
    with torch.no_grad():
        assert torch.allclose(supernet(x, weights), derived(x), rtol=0, atol=1e-10)

    # Export and load: the model folder holds it and loads it back to the same output.
    save_model(derived.float(), tmp_path / "model")
    loaded = load_model(tmp_path / "model")
    assert loaded.genotype == derived.genotype
    with torch.no_grad():
        assert torch.allclose(loaded(x.float()), derived.float()(x.float()), atol=1e-6)


def test_a_search_runs_with_an_operation_registered_in_a_test(cross3, tmp_path):
    from tests.test_search import shapes_image, tiny_config  # the search tests' images and tiny settings

    for i in range(4):
        shapes_image(tmp_path / "train" / f"{i}.png", i, 40)
    shapes_image(tmp_path / "val" / "0.png", 9, 24)
    base = tiny_config()
    config: SearchConfig = replace(base, space=replace(base.space, ops=(cross3, "skip")))
    data = load_data(config, [tmp_path / "train"], [tmp_path / "val"])
    run = search(config, data, tmp_path / "out", device="cpu", log=lambda line: None)
    assert run.phase == "train" and run.net is not None
    assert madds_per_output_pixel(run.net.genotype) > 0


def test_kind_names_are_unique_and_unknown_names_are_named():
    with pytest.raises(ValueError, match="unique name"):
        register_op(type("Again", (Cross3,), {"name": "conv3x3"}))
    with pytest.raises(ValueError, match="unknown operation 'nope'"):
        op_kind("nope")
    with pytest.raises(ValueError, match="unknown operations"):
        Genotype(2, 4, (Cell(("nope",), (4,)), Upsample(2)))
    assert baseline_genotype(2, 8).cells  # the built-in kinds are there without any registration
