"""Channel pruning: removing a channel is exactly zeroing it wherever it is produced, the groups follow the
genotype's width rules, and pruning to a latency budget ends within it."""

from __future__ import annotations

import pytest
import torch

from trinas.data import Pair, PatchSampler
from trinas.latency import Device, LatencyTable
from trinas.metrics import make_lr
from trinas.net import TriNet, fold
from trinas.prune import Group, gated, groups_of, prune_to_latency, select_channels, shrunk, width_of
from trinas.space import Cell, Genotype, Upsample

GENOTYPE = Genotype(4, 12, (Cell(("conv3x3", "sepconv3x3"), (8, 12)), Cell(("rep3x3", "resblock3x3"), (12, 12)),
                            Upsample(2), Cell(("spanatt3x3", "skip"), (12, 12)), Cell(("conv5x5", "dilconv3x3"), (6, 12)),
                            Upsample(2)))


def random_net(genotype: Genotype) -> TriNet:
    torch.manual_seed(1)
    net = TriNet(genotype)
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.15)
    return fold(net).double().eval()


def random_patches() -> PatchSampler:
    """x2 training patches of 8 pixels from three random 40x40 images: enough for importances and a few steps."""
    rng = torch.Generator().manual_seed(0)
    images = [(torch.rand(3, 40, 40, generator=rng) * 255).byte().permute(1, 2, 0).numpy() for _ in range(3)]
    return PatchSampler([Pair(make_lr(hr, 2), hr) for hr in images], 2, 8, seed=0)


def test_the_groups_are_the_trunk_and_every_inner_width():
    groups = groups_of(GENOTYPE)
    assert groups == [Group(), Group(0, 0), Group(4, 0)]
    assert [width_of(GENOTYPE, g) for g in groups] == [12, 8, 6]
    smaller = shrunk(GENOTYPE, {Group(): 8, Group(4, 0): 4})
    assert smaller.width == 8 and smaller.path[0].widths == (8, 8) and smaller.path[4].widths == (4, 8)


@pytest.mark.parametrize("group", [Group(), Group(0, 0), Group(4, 0)])
def test_removing_channels_is_zeroing_them_wherever_they_are_produced(group):
    net = random_net(GENOTYPE)
    width = width_of(GENOTYPE, group)
    removed = torch.tensor([1, width - 2])
    kept = torch.tensor([c for c in range(width) if c not in removed.tolist()])
    gate = torch.ones(width, dtype=torch.float64)
    gate[removed] = 0
    x = torch.rand(2, 3, 9, 11, dtype=torch.float64)
    hooks = gated(net, {group: gate})
    with torch.no_grad():
        expected = net(x)
    for hook in hooks:
        hook.remove()
    pruned = select_channels(net, {group: kept})
    assert width_of(pruned.genotype, group) == width - 2
    with torch.no_grad():
        assert torch.allclose(pruned(x), expected, rtol=0, atol=1e-10)
        assert not torch.allclose(net(x), expected)  # the channels mattered


def test_pruning_to_a_latency_budget_ends_within_it(tmp_path, fake_clock):
    table = LatencyTable(Device("cpu", 1, False, "test"), tmp_path)
    genotype = Genotype(2, 16, (Cell(("conv3x3", "conv3x3"), (16, 16)), Cell(("conv3x3", "conv3x3"), (16, 16)),
                                Upsample(2)))
    net = TriNet(genotype)
    sampler = random_patches()
    tiles = [(16, 16)]
    before = table.frame_ms(genotype, tiles)
    budget = before * 0.6
    pruned, steps = prune_to_latency(net, table, tiles, budget, sampler, batches=2, recover_steps=2,
                                     log=lambda line: None)
    assert table.frame_ms(pruned.genotype, tiles) <= budget and steps
    assert pruned(torch.rand(1, 3, 8, 8)).shape == (1, 3, 16, 16)
    with pytest.raises(ValueError, match="cannot prune"):
        prune_to_latency(net, table, tiles, 1e-9, sampler, batches=1, recover_steps=0, log=lambda line: None)


def test_a_smaller_step_stops_closer_to_the_budget(tmp_path, fake_clock):
    """A budget just under the network's time: steps of 4 overshoot it, steps of 2 (`upscale prune --step 2`)
    take 2 channels and keep more of the network."""
    table = LatencyTable(Device("cpu", 1, False, "test"), tmp_path)
    genotype = Genotype(2, 16, (Cell(("conv3x3", "conv3x3"), (16, 16)), Upsample(2)))
    tiles = [(16, 16)]
    budget = 0.99 * table.frame_ms(genotype, tiles)
    kept = {}
    for step in (2, 4):
        lines = []
        pruned, _ = prune_to_latency(TriNet(genotype), table, tiles, budget, random_patches(), step=step,
                                     batches=1, recover_steps=0, log=lines.append)
        assert table.frame_ms(pruned.genotype, tiles) <= budget
        assert len(lines) == 1 and f"pruned {step} channels" in lines[0]
        kept[step] = table.frame_ms(pruned.genotype, tiles)
    assert kept[2] > kept[4]


def test_a_cut_of_one_step_that_saves_nothing_is_widened_until_it_saves(tmp_path, fake_clock, monkeypatch):
    """Convolutions on a vector unit of 8 channels cost as if every width were rounded up to 8: taking 4 of 16
    channels saves nothing, 8 does. Pruning takes the 8 rather than stopping short of the budget."""
    from trinas import latency

    from tests.conftest import each_module

    def blocked_time(module, channels, height, width, device, **kwargs):
        convs = [m for m in module.modules() if isinstance(m, torch.nn.Conv2d)]
        rounded = sum(-(-m.in_channels // 8) * 8 * -(-m.out_channels // 8) * 8 * m.kernel_size[0] ** 2
                      for m in convs)
        return 0.01 + rounded * height * width * 1e-6

    monkeypatch.setattr(latency, "time_modules", each_module(blocked_time))
    table = LatencyTable(Device("cpu", 1, False, "blocked"), tmp_path)
    genotype = Genotype(2, 16, (Cell(("conv3x3", "conv3x3"), (16, 16)), Upsample(2)))
    net = TriNet(genotype)
    sampler = random_patches()
    tiles = [(16, 16)]
    assert table.frame_ms(shrunk(genotype, {Group(0, 0): 12}), tiles) == table.frame_ms(genotype, tiles)
    budget = table.frame_ms(shrunk(genotype, {Group(0, 0): 8}), tiles) + 1e-9
    lines = []
    pruned, steps = prune_to_latency(net, table, tiles, budget, sampler, batches=1, recover_steps=0,
                                     log=lines.append)
    assert table.frame_ms(pruned.genotype, tiles) <= budget
    assert any("pruned 8 channels" in line for line in lines)
    assert all(width % 8 == 0 for width in (pruned.genotype.width, *pruned.genotype.path[0].widths))


def test_upscale_prune_writes_a_smaller_model_within_the_budget(tmp_path, fake_clock):
    from click.testing import CliRunner
    from PIL import Image

    from tests.conftest import make_tiny_model
    from trinas.export import load_model, model_card, read_config
    from upscale.cli import main

    model = make_tiny_model(tmp_path / "tiny", width=16, cells=2)
    train = tmp_path / "train"
    train.mkdir()
    rng = torch.Generator().manual_seed(0)
    for i in range(3):
        pixels = (torch.rand(80, 80, 3, generator=rng) * 255).byte().numpy()
        Image.fromarray(pixels).save(train / f"{i}.png")
    args = ["prune", str(model), "--latency-ms", "2.0", "--at", "64x64", "--train", str(train), "--out",
            str(tmp_path / "pruned"), "--steps", "3", "--threads", "1"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    config = read_config(tmp_path / "pruned")
    record = config["training"]["pruned"]
    assert record["predicted_ms_after"] <= 2.0 < record["predicted_ms_before"]
    assert record["command"] == (f"upscale prune {model} --latency-ms 2 --at 64x64 --train {train} "
                                 f"--out {tmp_path / 'pruned'} --threads 1 --steps 3")  # as typed, not pytest's argv
    assert load_model(tmp_path / "pruned").genotype.width < 16
    card = (tmp_path / "pruned" / "README.md").read_text()  # the command that made it, and from what
    assert f"pruned from `{load_model(model).genotype.describe()}`" in card and "`upscale prune " in card
    trained_on = {**config, "training": {"command": "python -m trinas.train --init pruned", "steps": 5,
                                         "before": [{"command": "earlier", "steps": 9, "pruned": record}]}}
    assert "- then pruned from" in model_card(trained_on) and "`upscale prune " in model_card(trained_on)
    assert "chosen by hand" not in card and "baseline" in card  # a baseline pruned is still a baseline
    again = CliRunner().invoke(main, args)
    assert again.exit_code != 0 and "not empty" in again.output


def test_a_pruned_model_keeps_how_its_network_was_made(tmp_path, monkeypatch):
    """A hand-made model pruned is still hand-made: its card says so, not "baseline" (what pruning once wrote,
    keeping only the `searched` flag), and a searched one stays searched. The pruning itself is the test above;
    here it hands back the network unchanged, so only what the command writes around it is checked."""
    import json

    from click.testing import CliRunner

    import trinas.prune
    from tests.conftest import make_tiny_model
    from trinas.export import CONFIG, read_config
    from upscale.cli import main

    monkeypatch.setattr(trinas.prune, "prune_for_frame", lambda net, dirs, budget, frame, kind, *args, step, **kwargs:
                        trinas.prune.PruneResult(net, [], 3.0, 1.5, 0, step, budget, frame, kind))
    made = {"hand": {"design": "the x2 search's cells, repeated", "derived_from": "trinas-x2-searched"},
            "searched": {"searched": True, "search": {"steps": 7}}}
    for name, keys in made.items():
        model = make_tiny_model(tmp_path / name)
        config = json.loads((model / CONFIG).read_text())
        (model / CONFIG).write_text(json.dumps({**config, **keys}))
        result = CliRunner().invoke(main, ["prune", str(model), "--latency-ms", "2.0", "--at", "64x64", "--train",
                                           str(tmp_path), "--out", str(tmp_path / f"{name}-pruned")])
        assert result.exit_code == 0, result.output
        pruned = read_config(tmp_path / f"{name}-pruned")
        assert {k: pruned.get(k) for k in keys} == keys
        card = (tmp_path / f"{name}-pruned" / "README.md").read_text()
        assert "baseline" not in card.split("## ")[0]
        assert ("chosen by hand" in card) == (name == "hand") and ("found by the TriNAS" in card) == (name != "hand")


def test_upscale_prune_passes_its_channel_step(tmp_path, monkeypatch):
    from click.testing import CliRunner

    import trinas.prune
    from tests.conftest import make_tiny_model
    from trinas.export import read_config
    from upscale.cli import main

    asked = {}

    def record(net, dirs, budget, frame, kind, *args, step, **kwargs):
        asked["step"] = step
        return trinas.prune.PruneResult(net, [], 3.0, 1.5, 0, step, budget, frame, kind)

    monkeypatch.setattr(trinas.prune, "prune_for_frame", record)
    model = make_tiny_model(tmp_path / "model")
    args = ["prune", str(model), "--latency-ms", "2.0", "--at", "64x64", "--train", str(tmp_path)]
    assert CliRunner().invoke(main, [*args, "--out", str(tmp_path / "a")]).exit_code == 0 and asked["step"] == 4
    assert CliRunner().invoke(main, [*args, "--out", str(tmp_path / "b"), "--step", "2"]).exit_code == 0
    assert asked["step"] == 2 and read_config(tmp_path / "b")["training"]["pruned"]["channel_step"] == 2
    # the budget is recorded as the pruning read it: the frame written the one way
    assert CliRunner().invoke(main, [*args[:5], "64X48", *args[6:], "--out", str(tmp_path / "d")]).exit_code == 0
    pruned = read_config(tmp_path / "d")["training"]["pruned"]
    assert (pruned["latency_ms"], pruned["at"], pruned["device"]) == (2.0, "64x48", "cpu")
    refused = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "c"), "--step", "0"])
    assert refused.exit_code != 0 and "--step" in refused.output and not (tmp_path / "c").exists()


def test_a_failed_pruning_leaves_no_folder_behind(tmp_path, monkeypatch):
    """Bad input is refused before anything is written, and a pruning that fails (or is stopped) half-way leaves
    neither OUT nor its staging folder: a rerun with the same OUT is not refused as "not empty"."""
    from click.testing import CliRunner

    import trinas.prune
    from tests.conftest import make_tiny_model
    from upscale.cli import main

    model = make_tiny_model(tmp_path / "model")
    out = tmp_path / "runs" / "pruned"
    args = ["prune", str(model), "--latency-ms", "2.0", "--train", str(tmp_path), "--out", str(out)]
    bad_frame = CliRunner().invoke(main, [*args, "--at", "12x"])
    assert bad_frame.exit_code != 0 and "WIDTHxHEIGHT" in bad_frame.output and not (tmp_path / "runs").exists()

    def fails(net, *args, checkpoint, **kwargs):
        checkpoint.write_bytes(b"half a fine-tuning")
        raise KeyboardInterrupt

    monkeypatch.setattr(trinas.prune, "prune_for_frame", fails)
    stopped = CliRunner().invoke(main, [*args, "--at", "64x64"])
    assert stopped.exit_code != 0 and list((tmp_path / "runs").iterdir()) == []
    (tmp_path / "a-file").write_text("mine")
    on_a_file = CliRunner().invoke(main, [*args[:-1], str(tmp_path / "a-file"), "--at", "64x64"])
    assert on_a_file.exit_code != 0 and "is a file" in on_a_file.output
    assert (tmp_path / "a-file").read_text() == "mine"


def test_search_then_prune_from_the_command_line(tmp_path, fake_clock):
    from click.testing import CliRunner

    from tests.test_search import shapes_image
    from trinas.export import load_model, read_config
    from trinas.operations import DEFAULT_OPS
    from trinas.search_config import build_config
    from trinas.search_losses import latency_model
    from upscale.cli import main

    for i in range(4):
        shapes_image(tmp_path / "train" / f"{i}.png", i, 48)
    shapes_image(tmp_path / "val" / "0.png", 9, 24)
    space = dict(max_width=6, max_cells=2, max_cells_upsampled=1, ops=",".join(DEFAULT_OPS))  # room to prune
    fastest, _ = latency_model(build_config(2, steps=16, latency_ms=1.0, latency_at="64x64", latency_tile=0,
                                            latency_threads=1, **space)).cheapest()
    budget = fastest * 1.6
    out = tmp_path / "found"
    args = ["search", "--scale", "2", "--train", str(tmp_path / "train"), "--val", str(tmp_path / "val"),
            "--out", str(out), "--steps", "16", "--max-width", "6", "--max-cells", "2", "--max-cells-upsampled", "1",
            "--ops", space["ops"], "--batch", "4", "--patch", "8",
            "--latency-ms", f"{budget:.6f}", "--at", "64x64", "--latency-tile", "0", "--threads", "1", "--prune",
            "--prune-steps", "2", "--prune-step", "1", "--device", "cpu", "--quiet"]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    pruned = read_config(out)["training"]["pruned"]
    assert pruned["predicted_ms_after"] <= budget + 1e-6
    assert pruned["channel_step"] == 1  # --prune-step reached the pruning
    assert pruned["latency_ms"] == pytest.approx(budget) and (pruned["at"], pruned["device"]) == ("64x64", "cpu")
    # The found network's predicted time is recorded and shown beside its budget (searched to 1.3x it, pruned
    # into it), with the command that measures it.
    found = read_config(out / "unpruned")["search"]["predicted_latency_ms"]
    assert pruned["predicted_ms_before"] == pytest.approx(found, rel=1e-3) and found <= 1.3 * budget + 1e-6
    assert f"{pruned['predicted_ms_after']:,.1f} ms per 64x64 frame on cpu (budget {budget:,.1f})" in result.output
    assert f"upscale bench --model {out} --output 64x64" in result.output.replace("\n", "")
    assert "predicted time per 64x64 frame on cpu" in (out / "report.md").read_text()
    assert load_model(out).scale == 2 and load_model(out / "unpruned").scale == 2


def test_a_found_network_over_the_budget_is_pruned_into_it(tmp_path, fake_clock):
    from tests.test_search import shapes_image, tiny_config
    from trinas.export import load_model, read_config, save_model
    from trinas.search import load_data
    from trinas.search_result import SearchResult, prune_found

    for i in range(3):
        shapes_image(tmp_path / "train" / f"{i}.png", i, 48)
    shapes_image(tmp_path / "val" / "0.png", 9, 24)
    genotype = Genotype(2, 16, (Cell(("conv3x3", "conv3x3"), (16, 16)), Upsample(2)))
    save_model(TriNet(genotype), tmp_path / "out", searched=True)
    table = LatencyTable(Device.current("cpu", 1), fake_clock)
    before = table.network_ms(genotype, 32, 32)
    config = tiny_config(latency_ms=before * 0.6, latency_at="64x64", latency_tile=0, latency_threads=1, prune=True,
                         prune_steps=2)
    data = load_data(config, [tmp_path / "train"], [tmp_path / "val"])
    result = SearchResult(tmp_path / "out", genotype, 0, 0.0, None, {}, 0, 0.0, [], [])
    result = prune_found(result, data, [tmp_path / "train"], config, log=lambda line: None)
    record = read_config(tmp_path / "out")["training"]["pruned"]
    assert record["predicted_ms_after"] <= before * 0.6 < record["predicted_ms_before"]
    assert result.genotype.width < 16 and load_model(tmp_path / "out").genotype == result.genotype
    assert load_model(tmp_path / "out" / "unpruned").genotype == genotype
    assert "Set5" not in result.metrics and "val" in result.metrics  # measured on the search's validation set
