"""The operation registry: one object per kind of operation, and everything else asks it.

An operation defined and registered only in this file runs through the search, derive, export, load, the
cost model and the receptive field with no other file touched; the re-parameterisable operation folds into
one conv with the same output; every kind's multiply-adds and reach agree with what its modules really do.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trinas.cost import madds_per_input_pixel, madds_per_output_pixel
from trinas.derive import derive
from trinas.export import load_model, save_model
from trinas.net import TriNet, fold, unfold_into
from trinas.operations import EDGE_FILTERS, OPERATIONS, EdgeRepConv, OpKind, RepConv, op_kind, register_op, unregister_op
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


SKIPPING = {  # cells whose ops hand the cell's input back: the in-place ReLU and add must leave it alone
    "conv tail": Genotype(2, 6, (Cell(("skip", "conv3x3"), (6, 6)), Cell(("skip", "skip"), (6, 6)),
                                 Cell(("conv3x3", "skip"), (6, 6)), Cell(("skip",), (6,)), Upsample(2),
                                 Cell(("resblock3x3", "skip"), (6, 6)))),
    "shuffle tail": Genotype(3, 6, (Cell(("skip", "resblock3x3"), (6, 6)), Cell(("sepconv3x3", "skip"), (6, 6)),
                                    Cell(("spanatt3x3",), (6,))), tail="shuffle"),
}


@pytest.mark.parametrize("name", sorted(SKIPPING))
@pytest.mark.parametrize("folded", [False, True])
def test_inference_writing_in_place_computes_what_training_computes(name, folded):
    """Without gradients the ReLUs and residual adds write into tensors just made (`relu_new`): the output is
    the training forward's, and the input is untouched, also where a skip hands a cell its own input."""
    torch.manual_seed(0)
    net = randomised(TriNet(SKIPPING[name]))
    net = fold(net) if folded else net
    x = torch.rand(2, 3, 9, 10) - 0.3  # negative values too: a ReLU applied to a shared tensor would show
    original = x.clone()
    with torch.inference_mode():
        inference = net(x)
    assert torch.equal(x, original)
    assert torch.allclose(inference, net(x), rtol=0, atol=1e-6)


@pytest.mark.parametrize("scale", sorted(GENOTYPES))
def test_a_folded_network_starts_a_training_network_that_computes_the_same(scale):
    """`unfold_into` inverts `fold` (a model folder, stored folded, starts a training run): same output, and
    the extra branches keep their own weights rather than being zeroed."""
    torch.manual_seed(scale)
    folded = fold(randomised(TriNet(GENOTYPES[scale])).eval())
    torch.manual_seed(100 + scale)
    net = randomised(TriNet(GENOTYPES[scale])).eval()
    branches = {name: m for name, m in net.named_modules() if isinstance(m, (RepConv, EdgeRepConv))}
    before = {f"{name}.{k}": v.clone() for name, m in branches.items() for k, v in m.state_dict().items()
              if not k.startswith("conv3.")}  # every branch but the 3x3 one
    unfold_into(net, folded)
    x = torch.rand(2, 3, 13, 11)
    with torch.no_grad():
        assert torch.allclose(net(x), folded(x), rtol=0, atol=1e-5)
    assert before and all(torch.equal(net.state_dict()[k], v) for k, v in before.items())
    with pytest.raises(ValueError, match="same genotype"):
        unfold_into(TriNet(GENOTYPES[2]), fold(TriNet(GENOTYPES[3])))


def edge_branches(m: EdgeRepConv, x: torch.Tensor, out_mask: torch.Tensor | None) -> torch.Tensor:
    """ECBSR's five branches, each run on its own (what the one summed kernel must equal)."""
    middle = F.conv2d(x, m.expand.weight)
    if out_mask is not None:
        middle = middle * out_mask.repeat_interleave(2, dim=1)
    y = F.conv2d(x, m.conv3.weight, m.conv3.bias, padding=1) + F.conv2d(middle, m.squeeze.weight, m.squeeze.bias,
                                                                          padding=1)
    for conv, edge in zip(m.edges, EDGE_FILTERS.to(x)):
        c = conv.out_channels
        y = y + F.conv2d(F.conv2d(x, conv.weight), edge.expand(c, 1, 3, 3), padding=1, groups=c)
    return y


def rep_branches(m: RepConv, x: torch.Tensor, out_mask: torch.Tensor | None) -> torch.Tensor:
    return F.conv2d(x, m.conv3.weight, m.conv3.bias, padding=1) + F.conv2d(x, m.conv1.weight, m.conv1.bias)


@pytest.mark.parametrize("module, branches", [(EdgeRepConv, edge_branches), (RepConv, rep_branches)])
@pytest.mark.parametrize("masked", [False, True])
def test_training_through_the_summed_kernel_is_training_the_branches(module, branches, masked):
    """Training runs one conv with the branches' summed kernel (online re-parameterisation): the same outputs
    and the same gradients for every branch's weights as running the branches, borders and masks included."""
    torch.manual_seed(0)
    m = randomised(module(5, 6)).double()
    x = torch.rand(2, 5, 9, 7, dtype=torch.float64)
    out_mask = torch.tensor([1, 1, 1, 0, 0, 0], dtype=torch.float64).reshape(1, 6, 1, 1) if masked else None
    target = torch.rand(2, 6, 9, 7, dtype=torch.float64)
    grads = []
    for run in (lambda: m(x, out_mask=out_mask), lambda: branches(m, x, out_mask)):
        m.zero_grad()
        y = run()
        (y * target).sum().backward()
        grads.append((y.detach(), {n: p.grad.clone() for n, p in m.named_parameters()}))
    (summed, summed_grads), (branched, branched_grads) = grads
    assert torch.allclose(summed, branched, rtol=0, atol=1e-10)
    for name, grad in branched_grads.items():
        assert torch.allclose(summed_grads[name], grad, rtol=0, atol=1e-10), name
    if masked and module is EdgeRepConv:  # the masked expansion channels get no gradient
        assert summed_grads["expand.weight"][6:].abs().sum() == 0 and summed_grads["expand.weight"][:6].abs().sum() > 0


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
