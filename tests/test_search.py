"""The trilevel search as a user relies on it: the derived network is the supernet, a run is deterministic and
resumes exactly, bad input fails before any training, and a tiny search ends with a usable model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image, ImageDraw

from trinas import search as search_module
from trinas import search_data
from trinas.cost import madds_per_output_pixel
from trinas.derive import Choice, choose, derive, fit_budget, genotype_of
from trinas.export import load_model
from trinas.search import (SearchConfig, SearchInputError, check_inputs, load_data, parse_count, parse_duration,
                           search)
from trinas.space import Cell, SearchSpace
from trinas.sparsestmax import MAX_RADIUS, sparsestmax
from trinas.costs import madds_cost
from trinas.search_config import build_config
from trinas.search_losses import Budget
from trinas.supernet import Architecture, SuperNet
from upscale.cli import main


def shapes_image(path: Path, seed: int, size: int) -> None:
    """Flat colours with sharp rectangles and ellipses: edges that bicubic blurs and a network can restore."""
    rng = np.random.default_rng(seed)
    image = Image.new("RGB", (size, size), tuple(int(v) for v in rng.integers(0, 255, 3)))
    draw = ImageDraw.Draw(image)
    for _ in range(8):
        x, y = (int(v) for v in rng.integers(0, size, 2))
        w, h = (int(v) for v in rng.integers(4, size // 2, 2))
        shape = draw.rectangle if rng.random() < 0.5 else draw.ellipse
        shape([x, y, x + w, y + h], fill=tuple(int(v) for v in rng.integers(0, 255, 3)))
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("search-data")
    for i in range(6):
        shapes_image(root / "train" / f"{i}.png", i, 48)
    for i in range(2):
        shapes_image(root / "val" / f"{i}.png", 100 + i, 32)
    return root / "train", root / "val"


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors run fastest on one thread, above all on a machine that is busy with other work."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_config(**changes) -> SearchConfig:
    space = SearchSpace(2, max_width=6, width_fractions=(0.5, 1.0), max_cells=2, max_cells_upsampled=1)
    config = SearchConfig(space, steps=16, batch=4, patch=8, lr=3e-3, arch_lr=2e-2, val_every=8, log_every=4,
                          arch_start=0.15, sparsemax_phase=0.1, search_end=0.5)
    return replace(config, **changes)


@pytest.fixture(scope="module")
def data(folders):
    return load_data(tiny_config(), [folders[0]], [folders[1]])


# ------------------------------------------------------------------------------- supernet == derived TriNet

RE_PARAMETERISABLE = ("conv3x3", "rep3x3", "ecb3x3", "spanatt3x3", "skip")


@pytest.mark.parametrize("scale,ops_per_cell,tail,ops", [
    (2, 2, "conv", None), (3, 3, "conv", None), (4, 1, "conv", None), (4, 2, "conv", None), (6, 2, "conv", None),
    (4, 2, "shuffle", None), (3, 1, "shuffle", None), (2, 2, "conv", RE_PARAMETERISABLE)])
def test_one_hot_supernet_is_exactly_its_derived_trinet(scale, ops_per_cell, tail, ops, fake_clock):
    """... and each cost's expectation at one-hot distributions is that network's cost (the latency's with its
    reach's context, `TileContext`)."""
    from trinas.costs import latency_cost
    from trinas.latency import Device, LatencyTable
    from trinas.tiling import frame_tiles

    torch.manual_seed(scale * 10 + ops_per_cell)
    space = SearchSpace(scale, max_width=8, width_fractions=(0.25, 0.5, 1.0), ops_per_cell=ops_per_cell,
                        max_cells=3, max_cells_upsampled=1, max_upsampled_scale=scale,  # cells at every resolution
                        tail=tail, **({"ops": ops} if ops else {}))
    supernet, arch = SuperNet(space).double(), Architecture(space).double()
    for p in supernet.parameters():
        torch.nn.init.normal_(p, std=0.2)  # the zero tail of a fresh supernet would hide every difference
    costs = madds_cost(space)

    def tiles_at(pad):
        return frame_tiles("cpu", 30 * scale, 40 * scale, scale, pad, 16)

    latency = latency_cost(space, LatencyTable(Device.current("cpu", 1)), tiles_at(2), tiles_at=tiles_at)
    x = torch.rand(2, 3, 11, 9, dtype=torch.float64)
    for _ in range(4):
        for p in arch.parameters():
            torch.nn.init.normal_(p, std=2.0)
        weights = arch.weights(MAX_RADIUS)
        assert weights.one_hot()
        net, _ = derive(supernet, weights)
        assert torch.allclose(supernet(x, weights), net(x), rtol=0, atol=1e-10), net.genotype.describe()
        expected = float(costs.expected(weights.detach()))
        assert expected == pytest.approx(madds_per_output_pixel(net.genotype))
        assert costs.of(net.genotype) == pytest.approx(expected)
        assert latency.of(net.genotype) == pytest.approx(float(latency.expected(weights.detach())))


def test_a_cell_cannot_rescale_its_output_so_keep_and_op_weights_keep_their_meaning():
    """Scaling a cell's filters must not change what it adds: otherwise the cell can undo its keep weight, and
    at the weights' optimum the reconstruction gradient on the network level is 0 (the search kept no cells)."""
    torch.manual_seed(0)
    space = SearchSpace(2, max_width=8, width_fractions=(0.5, 1.0), max_cells=2)
    supernet, arch = SuperNet(space).double(), Architecture(space).double()
    for p in supernet.parameters():
        torch.nn.init.normal_(p, std=0.2)
    x = torch.rand(2, 3, 10, 10, dtype=torch.float64)
    weights = arch.weights(0.0)
    before = supernet(x, weights)
    with torch.no_grad():
        for name, p in supernet.named_parameters():
            if name.startswith("cells.") and name.endswith("weight"):
                p.mul_(3.0)
    assert torch.allclose(supernet(x, weights), before, rtol=0, atol=1e-10)


def test_expected_cost_lies_between_the_cheapest_and_the_largest_network():
    space = SearchSpace(2)
    arch = Architecture(space)
    costs = madds_cost(space)
    madds = float(costs.expected(arch.weights(0.0).detach()))
    cheapest, network = costs.cheapest()
    assert cheapest == madds_per_output_pixel(network) and not network.cells
    assert cheapest < madds < cheapest * 1000
    with torch.no_grad():
        arch.trunk.copy_(torch.tensor([0.0, 0.0, 0.0, 9.0]))  # the widest trunk only
    assert float(costs.expected(arch.weights(0.0).detach())) > madds


@pytest.mark.parametrize("mode", ["at-most", "target"])
def test_the_budget_is_a_constraint_held_by_a_multiplier(mode):
    """Over the budget the multiplier grows until the cost gradient pushes down. Under it, a ceiling has no
    say, and a target pulls the cost up to it."""
    space = SearchSpace(2)
    costs = madds_cost(space)
    arch = Architecture(space)
    run = search_module.new_run(SearchConfig(space, steps=1, order_weight=0.0, budget_mode=mode), torch.device("cpu"))
    uniform = float(costs.expected(arch.weights(0.0).detach()))
    budget = Budget(costs, 1.0)

    def trunk_gradient() -> torch.Tensor:
        trunk = torch.zeros(len(space.widths), requires_grad=True)
        weights = arch.weights(0.0)._replace(trunk=sparsestmax(trunk, 0.0))
        loss, expected = search_module.architecture_loss(run, weights, [budget], radius=0.0)
        if loss.requires_grad:
            loss.backward()
        search_module.update_multipliers(run, [budget], {k: float(v.detach()) for k, v in expected.items()})
        return trunk.grad if trunk.grad is not None else torch.zeros_like(trunk)

    budget.limit = uniform * 2  # under the budget
    if mode == "at-most":  # no cost force at all
        assert torch.count_nonzero(trunk_gradient()) == 0 and run.multipliers["madds"] == 0.0
    else:  # the multiplier turns negative and a descent step raises the widest trunk's logit
        for _ in range(3):
            trunk_gradient()
        assert run.multipliers["madds"] < 0 and trunk_gradient()[-1] < 0 < trunk_gradient()[0]
        run.multipliers["madds"] = 0.0
    budget.limit = uniform / 2  # over it: the multiplier builds up
    growth = []
    for _ in range(3):
        trunk_gradient()
        growth.append(run.multipliers["madds"])
    assert 0 < growth[0] < growth[1] < growth[2]
    gradient = trunk_gradient()
    assert gradient[-1] > 0 > gradient[0]  # a descent step lowers the widest trunk's logit
    budget.limit = uniform * 100  # far under it again
    for _ in range(10):
        trunk_gradient()
    assert run.multipliers["madds"] == 0.0 if mode == "at-most" else run.multipliers["madds"] < 0


def test_the_order_term_waits_for_the_radius():
    """Under plain sparsemax the depth follows reconstruction alone; once the radius grows, shorter wins ties."""
    space = SearchSpace(2)
    run = search_module.new_run(SearchConfig(space, steps=1, order_weight=1.0), torch.device("cpu"))

    def depth_gradient(radius: float) -> torch.Tensor:
        run.arch.zero_grad()
        loss, _ = search_module.architecture_loss(run, run.arch.weights(radius), [], radius)
        if loss.requires_grad:
            loss.backward()
        return torch.cat([d.grad if d.grad is not None else torch.zeros_like(d) for d in run.arch.depth])

    assert torch.count_nonzero(depth_gradient(0.0)) == 0
    # with logits favouring more cells (at zero logits a radius only pushes along a fixed direction)
    with torch.no_grad():
        for d in run.arch.depth:
            d.copy_(torch.linspace(-0.1, 0.1, len(d)))
    grad = depth_gradient(0.1)
    assert torch.count_nonzero(grad) > 0
    # descending the gradient lowers the keep weights: fewer cells
    before = [k.sum() for k in run.arch.weights(0.1).keep]
    with torch.no_grad():
        for d in run.arch.depth:
            d -= 0.05 * d.grad
    after = [k.sum() for k in run.arch.weights(0.1).keep]
    assert sum(after) < sum(before)


def test_a_choice_over_the_budget_is_shrunk_until_it_fits():
    space = SearchSpace(2)
    arch = Architecture(space)
    with torch.no_grad():
        for depth in arch.depth:
            depth[-1] = 5.0  # every slot kept, widest everywhere, conv5x5 everywhere: far over any small budget
        arch.trunk[-1] = 5.0
        arch.widths[..., -1] = 5.0
        arch.ops[..., space.ops.index("conv5x5")] = 5.0
    weights = arch.weights(MAX_RADIUS)
    full = madds_per_output_pixel(choose_genotype(space, weights))
    madds = madds_per_output_pixel
    for budget in (full, full * 0.95, 28_728, madds_cost(space).cheapest()[0]):
        net, _ = derive(SuperNet(space), weights, [(madds, budget)])
        assert madds(net.genotype) <= budget
        assert net(torch.rand(1, 3, 6, 6)).shape == (1, 3, 12, 12)
    near, _ = derive(SuperNet(space), weights, [(madds, full * 0.95)])
    assert madds(near.genotype) > full * 0.9  # a small overshoot costs little
    assert derive(SuperNet(space), weights, [(madds, full)])[0].genotype == choose_genotype(space, weights)
    # Two limits: the choice fits both (here a second, tighter cost that counts only the cells).
    cells_only = lambda g: madds(g) - madds_cost(space).cheapest()[0]  # noqa: E731
    both, _ = derive(SuperNet(space), weights, [(madds, full), (cells_only, 5_000)])
    assert madds(both.genotype) <= full and cells_only(both.genotype) <= 5_000


def test_the_fit_lands_near_the_budget_rather_than_take_one_big_step():
    """The x2 search v5 chose this at 31,032 multiply-adds on a 28,728 budget; taking the best single step that
    fits dropped its last cell (21,816). Narrowing one convolution twice fits at the budget itself."""
    space = SearchSpace(2)
    cell = lambda *ops: Cell(ops, (32, 32))  # noqa: E731
    argmax = Choice(32, (((0, cell("conv3x3", "resblock3x3")), (1, cell("conv3x3", "conv3x3")),
                          (2, cell("resblock3x3", "resblock3x3"))), ()))
    assert madds_per_output_pixel(genotype_of(space, argmax)) == 31_032
    fitted = genotype_of(space, fit_budget(space, argmax, [(madds_per_output_pixel, 28_728)]))
    assert fitted.describe() == "32w [conv3x3:32>resblock3x3:32] [conv3x3:16>conv3x3:32] " \
                                "[resblock3x3:32>resblock3x3:32] up2"
    assert madds_per_output_pixel(fitted) == 28_728
    # With no room to search, the best single step that fits is still taken.
    single = genotype_of(space, fit_budget(space, argmax, [(madds_per_output_pixel, 28_728)], max_visits=0))
    assert madds_per_output_pixel(single) == 21_816


def test_the_fit_changes_the_choice_as_little_as_it_can():
    """The x2 search v8 ended at 36,792 multiply-adds on a 28,728 budget. Keeping the most cost alone dropped
    both cells before the upsampler (and three skip cells) to land on the budget exactly; narrowing inner
    widths lands there too and keeps every cell the search chose."""
    space = SearchSpace(2, ops=("skip", "ecb3x3"))
    ecb = lambda inner: Cell(("ecb3x3", "ecb3x3"), (inner, 32))  # noqa: E731
    skip = Cell(("skip", "skip"), (32, 32))
    argmax = Choice(32, (((0, ecb(32)), (1, ecb(24)), (2, skip), (3, skip), (4, skip)), ((6, ecb(32)),)))
    assert madds_per_output_pixel(genotype_of(space, argmax)) == 36_792
    fitted = genotype_of(space, fit_budget(space, argmax, [(madds_per_output_pixel, 28_728)]))
    assert fitted.describe() == ("32w [ecb3x3:8>ecb3x3:32] [ecb3x3:24>ecb3x3:32] [skip:32>skip:32] "
                                 "[skip:32>skip:32] [skip:32>skip:32] up2 [ecb3x3:24>ecb3x3:32]")
    assert madds_per_output_pixel(fitted) == 28_728


def choose_genotype(space, weights):
    return genotype_of(space, choose(space, weights))


# ------------------------------------------------------------------------------ determinism and exact resume

def _same_result(a, b) -> None:
    assert a.net is not None and b.net is not None
    assert a.net.genotype == b.net.genotype
    sa, sb = a.net.state_dict(), b.net.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    assert [r["loss"] for r in a.history] == [r["loss"] for r in b.history]
    assert all(torch.equal(x, y) for x, y in zip(a.arch.parameters(), b.arch.parameters()))


def test_same_seed_same_search_and_a_killed_run_resumes_exactly(tmp_path, data):
    config, quiet = tiny_config(), (lambda line: None)
    whole = search(config, data, tmp_path / "a", device="cpu", log=quiet)
    assert whole.step == config.steps and whole.phase == "train"
    assert all(v == 0 for v in whole.history[-1]["entropy"].values())  # every distribution one-hot
    # Every level learnt: at the uniform start a radius > 0 has no gradient, so logits left at zero would
    # mean the choice fell to the first option everywhere (the collapse to the cheapest network).
    assert all(p.abs().max() > 0 for p in (whole.arch.trunk, whole.arch.ops, whole.arch.widths, *whole.arch.depth))

    again = search(config, data, tmp_path / "b", device="cpu", log=quiet)
    _same_result(whole, again)

    first = search(config, data, tmp_path / "c", device="cpu", until_step=5, log=quiet)
    assert first.phase == "search" and (tmp_path / "c" / search_module.CHECKPOINT).exists()
    second = search(config, data, tmp_path / "c", device="cpu", resume=True, until_step=11, log=quiet)
    assert second.phase == "train"  # killed once while searching, once while training the derived network
    last = search(config, data, tmp_path / "c", device="cpu", resume=True, log=quiet)
    _same_result(whole, last)

    with pytest.raises(SearchInputError, match="other settings"):
        search(replace(config, seed=1), data, tmp_path / "c", device="cpu", resume=True, log=quiet)


# --------------------------------------------------------------------------------------------- bad input

def test_bad_input_is_refused_before_any_training(tmp_path, folders, monkeypatch):
    train, val = folders
    config = tiny_config()
    with pytest.raises(ValueError, match="scale must be an integer from 2 to 8"):
        SearchSpace(9)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SearchInputError, match="no images in"):
        check_inputs(config, [empty], [val], tmp_path / "out", resume=False)
    with pytest.raises(SearchInputError, match="not found"):
        check_inputs(config, [tmp_path / "missing"], [val], tmp_path / "out", resume=False)
    minimum = madds_cost(config.space).cheapest()[0]
    with pytest.raises(SearchInputError, match=f"{minimum:,.0f}"):
        check_inputs(replace(config, budget_madds=minimum - 1), [train], [val], tmp_path / "out", resume=False)

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (broken / "b.jpg").write_bytes(b"")
    with pytest.raises(SearchInputError, match="no usable training image"):
        load_data(config, [broken], [val])

    monkeypatch.setattr(search_data.shutil, "disk_usage", lambda path: type("U", (), {"free": 1000})())
    with pytest.raises(SearchInputError, match="free disk space"):
        check_inputs(config, [train], [val], tmp_path / "deep" / "out", resume=False)


def test_durations_and_counts_read_like_people_write_them():
    assert parse_duration("2h") == 7200 and parse_duration("45m") == 2700 and parse_duration("90s") == 90
    assert parse_duration("1h30m") == 5400 and parse_duration("600") == 600
    assert parse_count("28728") == 28728 and parse_count("30k") == 30000 and parse_count("1.5M") == 1.5e6
    with pytest.raises(SearchInputError):
        parse_duration("two hours")
    with pytest.raises(SearchInputError):
        parse_count("lots")


def test_cli_names_the_problem(tmp_path, folders):
    train, val = folders
    result = CliRunner().invoke(main, ["search", "--scale", "2", "--train", str(train), "--val", str(val),
                                       "--out", str(tmp_path / "o"), "--budget-madds", "10", "--quiet"])
    assert result.exit_code == 1 and "below the cheapest network" in result.output
    result = CliRunner().invoke(main, ["search", "--scale", "9", "--train", str(train), "--val", str(val),
                                       "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "2<=x<=8" in result.output


# ----------------------------------------------------------------------------------- a whole tiny search

def test_tiny_search_from_the_cli_gives_a_model_that_beats_bicubic(tmp_path, folders):
    train, val = folders
    out = tmp_path / "found-x2"
    args = ["search", "--scale", "2", "--train", str(train), "--val", str(val), "--out", str(out),
            "--epochs", "6", "--max-width", "8", "--max-cells", "2", "--batch", "4", "--patch", "8",
            "--budget-madds", "2k", "--device", "cpu", "--quiet"]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "training images" in result.output  # quiet has no live view, but says what the run did
    config = json.loads((out / "config.json").read_text())
    assert config["searched"] is True and config["scale"] == 2
    history = json.loads((out / "search-history.json").read_text())
    assert all(v == 0 for v in history[-1]["entropy"].values())  # every distribution ended one-hot
    assert history[-1]["phase"] == "train"
    model = load_model(out)
    assert config["madds_per_output_pixel"] <= 2000
    for metrics in config["metrics"].values():
        assert metrics["psnr"] > metrics["bicubic_psnr"]
    for name in ("architecture.png", "curves.png", "report.md"):
        assert (out / name).stat().st_size > 0
    image = CliRunner().invoke(main, ["image", str(val / "0.png"), "-o", str(tmp_path / "big.png"),
                                      "--model", str(out), "--quiet"])
    assert image.exit_code == 0, image.output
    assert Image.open(tmp_path / "big.png").size == (64, 64) and model.scale == 2


@pytest.mark.slow
def test_distributed_search_with_two_cpu_processes(tmp_path, folders):
    train, val = folders
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               "-m", "upscale", "search", "--scale", "2", "--train", str(train), "--val", str(val), "--out", str(out),
               "--steps", "10", "--max-width", "4", "--max-cells", "1", "--batch", "4", "--patch", "8",
               "--val-every", "5", "--device", "cpu", "--threads", "1", "--quiet"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert load_model(out).scale == 2
    assert json.loads((out / "config.json").read_text())["training"]["steps"] == 10


def test_live_view_shows_the_numbers_of_a_step():
    from rich.console import Console

    from upscale.searching import render

    status = search_module.Status("search", 120, None, 0.4, 0.35, 0.0151, 0.0162, 30_500.0, 28_728.0, 36.21,
                                  "24w [conv3x3:24>conv3x3:24] up2", 2880.0, 4320.0,
                                  {"network": 0.8, "cell": 0.7, "kernel": 0.6}, {"madds": 0.0042})
    console = Console(width=160, record=True)
    console.print(render(status, ""))
    text = console.export_text()
    for expected in ("0.35 / 1.00", "L1 0.0151", "36.21 dB", "30,500 per output pixel (budget 28,728, its "
                     "multiplier 0.0042)", "network 0.80", "[conv3x3:24>conv3x3:24]", "0:48:00 elapsed",
                     "1:12:00 left"):
        assert expected in text, expected


@pytest.mark.parametrize("gradient", ["softmax", "exact"])
def test_the_budget_can_still_undo_a_depth_that_went_one_hot(gradient):
    """Under plain sparsemax the depth went one-hot at twice the budget in the x2 search of ee3f0fa, and the
    relaxation's own gradient is zero there: only the softmax gradient lets the multiplier move it back."""
    space = SearchSpace(2)
    costs = madds_cost(space)
    arch = Architecture(space)
    with torch.no_grad():
        arch.depth[0][-1] = 5.0  # every cell slot of the first segment kept
    weights = arch.weights(0.0, softmax_gradient=gradient == "softmax")
    assert weights.depth[0][-1] == 1.0
    cost = costs.expected(weights)
    torch.log(cost / (cost.item() / 2)).backward()
    pushes = arch.depth[0].grad
    if gradient == "exact":
        assert torch.count_nonzero(pushes) == 0
    else:  # a descent step lowers the longest depth's logit and raises the shorter ones
        assert pushes[-1] > 0 and (pushes[:-1] < 0).all()


@pytest.mark.parametrize("mode", ["at-most", "target"])
def test_the_quadratic_penalty_pulls_at_once_and_a_ceiling_only_from_above(mode):
    """With the multiplier still 0, the augmented Lagrangian's quadratic term already pushes an over-budget
    cost down; under the budget it pulls a target up and leaves a ceiling alone."""
    space = SearchSpace(2)
    costs = madds_cost(space)
    arch = Architecture(space)
    run = search_module.new_run(SearchConfig(space, steps=1, order_weight=0.0, budget_mode=mode), torch.device("cpu"))
    uniform = float(costs.expected(arch.weights(0.0).detach()))

    def trunk_gradient(limit: float) -> torch.Tensor:
        trunk = torch.zeros(len(space.widths), requires_grad=True)
        weights = arch.weights(0.0)._replace(trunk=sparsestmax(trunk, 0.0))
        loss, _ = search_module.architecture_loss(run, weights, [Budget(costs, limit)], radius=0.0)
        loss.backward()
        return trunk.grad

    assert run.multipliers.get("madds", 0.0) == 0.0
    over = trunk_gradient(uniform / 2)
    assert over[-1] > 0 > over[0]  # descent lowers the widest trunk
    under = trunk_gradient(uniform * 2)
    if mode == "at-most":
        assert torch.count_nonzero(under) == 0
    else:
        assert under[-1] < 0 < under[0]


def test_a_depth_split_between_its_extremes_is_finished_at_its_mean_not_at_the_cheap_end():
    """Search v6: the first segment's depth ended with half its weight on no cell and a quarter on six, and the
    argmax finished it at no cell (19,818 of 28,728 multiply-adds). "mean" finishes it at the expected count."""
    space = SearchSpace(2)  # six slots before the upsampler: depth 0..6
    for finish, expected_depth in (("argmax", 0), ("mean", 2)):
        arch = Architecture(space, depth_finish=finish)
        with torch.no_grad():
            arch.depth[0].copy_(torch.tensor([0.31, -0.13, -0.18, -0.24, -0.12, -0.17, 0.07]))  # v6's logits
        start = arch.weights(0.0).detach().depth[0]
        mean = float((start * torch.arange(7)).sum())
        assert start[0] > 0.5 and 1.5 < mean < 2.5
        halfway = arch.weights(MAX_RADIUS / 2).depth[0]
        assert halfway.sum().item() == pytest.approx(1.0) and (halfway >= 0).all()
        finished = arch.weights(MAX_RADIUS).depth[0]
        assert finished.tolist() == one_hot_list(expected_depth, 7), finish
    # Before the radius grows the two are the same distribution, and while it grows the logits still learn.
    mean_arch = Architecture(space, depth_finish="mean")
    assert torch.equal(mean_arch.weights(0.0).depth[0], Architecture(space, depth_finish="argmax").weights(0.0).depth[0])
    mean_arch.weights(MAX_RADIUS / 2, softmax_gradient=True).keep[0].sum().backward()
    assert mean_arch.depth[0].grad.abs().sum() > 0


def one_hot_list(index: int, size: int) -> list[float]:
    return [1.0 if i == index else 0.0 for i in range(size)]


def test_the_depth_finish_is_a_search_setting():
    assert build_config(2, steps=10).depth_finish == "mean"  # the default since search v10
    config = build_config(2, steps=10, depth_finish="argmax")
    assert config.depth_finish == "argmax"
    assert search_module.new_run(config, torch.device("cpu")).arch.depth_finish == "argmax"
    assert SearchConfig.from_dict(config.to_dict()).depth_finish == "argmax"
    assert SearchConfig.from_dict(build_config(2, steps=10).to_dict()).depth_finish == "mean"
    # A config stored before the setting existed ran with argmax, and loads so.
    assert SearchConfig.from_dict({k: v for k, v in build_config(2, steps=10).to_dict().items()
                                   if k != "depth_finish"}).depth_finish == "argmax"
    with pytest.raises(SearchInputError, match="depth finish"):
        build_config(2, steps=10, depth_finish="median")
