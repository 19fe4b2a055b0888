"""The latency table: a network is cut into the layers it runs, each layer is timed once per device and kept
in the user's cache, and a prediction is the sum of its layers' times over the tiles of a frame."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import each_module, fake_frame_times
from PIL import Image

from trinas import latency
from trinas.latency import Device, LatencyTable, layer_module, layers_of, parts_of
from trinas.net import TriNet, fold
from trinas.space import Cell, Genotype, SearchSpace, Upsample, baseline_genotype, random_genotype

GENOTYPE = Genotype(4, 8, (Cell(("rep3x3", "conv3x3"), (6, 8)), Upsample(2), Cell(("spanatt3x3",), (8,)),
                           Upsample(2)))


def test_the_layers_are_what_the_network_runs():
    layers = layers_of(GENOTYPE, 10, 12)
    kinds = [layer.kind for layer in layers]
    assert kinds == ["head", "op", "relu", "op", "add", "up", "op", "add", "up", "tail", "bicubic", "add"]
    ops = [layer for layer in layers if layer.kind == "op"]
    # rep3x3 folds to a plain 3x3 conv, so it is timed as one (one table entry serves both kinds).
    assert [(o.args, o.height, o.width) for o in ops] == [(("conv3x3", 8, 6), 10, 12), (("conv3x3", 6, 8), 10, 12),
                                                          (("spanatt3x3", 8, 8), 20, 24)]
    assert layers[-3].height == 40 and layers[-3].width == 48  # the tail at the output resolution
    # Every layer builds and runs at its size, and the network's own output has the size the layers end at.
    for layer in layers:
        module, channels = layer_module(layer)
        with torch.inference_mode():
            module(torch.rand(1, channels, layer.height, layer.width))
    assert fold(TriNet(GENOTYPE))(torch.rand(1, 3, 10, 12)).shape[-2:] == (40, 48)


def test_the_parts_are_the_network_modules_in_order():
    """`parts_of` names the modules a diagnostic times inside the network: they must exist, in running order."""
    net = fold(TriNet(GENOTYPE))
    parts = parts_of(GENOTYPE, 10, 12)
    names = [name for name, _ in parts]
    assert names == ["head", "body.0", "body.1", "body.2", "body.3", "tail", "skip"]
    modules = dict(net.named_modules())
    assert all(name in modules for name in names[:-1])
    assert [layer.kind for layer in parts[-1][1]] == ["bicubic", "add"]
    shuffled = Genotype(2, 8, (Cell(("conv3x3",), (8,)),), tail="shuffle")
    assert [name for name, _ in parts_of(shuffled, 10, 12)] == ["head", "body.0", "tail", "skip"]


def test_operations_folded_to_the_same_module_share_their_timing():
    plain = Genotype(2, 16, (Cell(("conv3x3", "conv3x3"), (16, 16)), Upsample(2)))
    edge = Genotype(2, 16, (Cell(("ecb3x3", "rep3x3"), (16, 16)), Upsample(2)))
    assert [layer.key for layer in layers_of(edge, 32, 32)] == [layer.key for layer in layers_of(plain, 32, 32)]
    # ... which is right because inference runs the same module for them.
    timed = layer_module(next(layer for layer in layers_of(edge, 32, 32) if layer.kind == "op"))[0]
    for op in fold(TriNet(edge)).body[0].ops:
        assert type(op) is type(timed) and op.weight.shape == timed.weight.shape


def test_each_layer_is_timed_once_per_device_and_kept_in_the_cache(tmp_path, monkeypatch):
    timed = []

    def fake_time(module, channels, height, width, device, **kwargs):
        timed.append((type(module).__name__, channels, height, width))
        return 0.5 * channels + height * width / 100

    monkeypatch.setattr(latency, "time_modules", each_module(fake_time))
    device = Device("cpu", 2, False, "test cpu")
    table = LatencyTable(device, tmp_path)
    one = table.network_ms(GENOTYPE, 16, 16)
    distinct = len({layer.key for layer in layers_of(GENOTYPE, 16, 16)})
    assert table.measured == len(timed) == distinct  # the repeated residual add is timed once
    assert one == pytest.approx(sum(table.entries[layer.key] for layer in layers_of(GENOTYPE, 16, 16)))
    assert table.frame_ms(GENOTYPE, [(16, 16), (16, 16), (8, 16)]) > 2 * one
    table.save()

    again = LatencyTable(device, tmp_path)
    assert again.network_ms(GENOTYPE, 16, 16) == one and again.measured == 0  # read back, nothing timed
    other = LatencyTable(Device("cpu", 1, False, "test cpu"), tmp_path)  # other threads: another table
    assert other.path != table.path and not other.entries

    table.path.write_text("{not json")
    assert LatencyTable(device, tmp_path).entries == {}  # a damaged table is re-measured, not an error


def test_a_wider_network_is_predicted_slower_on_this_machine(tmp_path):
    table = LatencyTable(Device.current("cpu", threads=1), tmp_path)
    narrow, wide = baseline_genotype(2, 8, 1), baseline_genotype(2, 48, 4)
    assert table.network_ms(wide, 48, 48) > 3 * table.network_ms(narrow, 48, 48)


def test_devices_are_checked():
    with pytest.raises(ValueError, match="cpu, cpu-bf16, cuda"):
        Device.current("tpu")
    with pytest.raises(ValueError, match="GPU only"):
        Device.current("cpu", half=True)
    assert "/" not in Device("cpu", 2, False, "A/B cpu @ 2GHz").key
    # bf16 on the CPU: a table of its own, layers timed in bfloat16
    fp32, bf16 = Device.current("cpu", 1), Device.current("cpu-bf16", 1)
    assert bf16.bf16 and bf16.dtype == torch.bfloat16 and bf16.threads == 1 and bf16.kind == "cpu"
    assert bf16.key == fp32.key.replace("-fp32-", "-bf16-") and fp32.dtype == torch.float32


def test_a_latency_budget_below_the_fastest_network_is_refused_at_once(tmp_path, fake_clock):
    from tests.test_search import tiny_config
    from trinas.search import SearchInputError, check_inputs

    folder = tmp_path / "images"
    folder.mkdir()
    Image.new("RGB", (40, 40), (10, 200, 30)).save(folder / "a.png")
    config = tiny_config(latency_ms=1e-6, latency_at="64x64", latency_tile=0)
    with pytest.raises(SearchInputError, match=r"ms per frame.*below the cheapest network.*\(0\.\d+ ms: \d+w up2\)"):
        check_inputs(config, [folder], [folder], tmp_path / "out", resume=False)
    with pytest.raises(SearchInputError, match="--at WIDTHxHEIGHT"):
        tiny_config(latency_ms=10.0)
    # the same in bf16 on the CPU: its own table, the same refusal
    config = tiny_config(latency_ms=1e-6, latency_at="64x64", latency_tile=0, latency_device="cpu-bf16")
    with pytest.raises(SearchInputError, match="below the cheapest network"):
        check_inputs(config, [folder], [folder], tmp_path / "out", resume=False)
    assert any("-bf16-" in p.name for p in fake_clock.iterdir())
    with pytest.raises(SearchInputError, match="cpu, cpu-bf16, cuda"):
        tiny_config(latency_ms=1.0, latency_at="64x64", latency_device="tpu")


def test_a_budget_calibrates_the_table_first_once_per_device(fake_clock):
    """The search's latency model fits the table to whole random networks before it prices the space (the
    fake clock's networks run at 0.9x their layers plus 0.1 ms a call), keeps the fit, and never refits."""
    from tests.test_search import tiny_config
    from trinas.search_losses import latency_model

    config = tiny_config(latency_at="64x64", latency_tile=0, latency_ms=1.0)
    lines = []
    latency_model(config, log=lines.append, with_cells=False)  # the first-second check: no timing of networks
    assert not any("calibrated" in line for line in lines)
    latency_model(config, log=lines.append)
    assert sum("calibrated the latency table on 16 random networks" in line for line in lines) == 1
    table = LatencyTable(Device.current("cpu", config.latency_threads))
    assert table.calibration is not None and table.calibration["op"] < 1.0
    latency_model(config, log=lines.append)
    assert sum("calibrated" in line for line in lines) == 1


def test_a_latency_budgeted_search_ends_within_its_budget(tmp_path, fake_clock):
    from tests.test_search import shapes_image, tiny_config
    from trinas.costs import latency_cost
    from trinas.search import load_data, search
    from trinas.search_losses import latency_model

    for i in range(4):
        shapes_image(tmp_path / "train" / f"{i}.png", i, 40)
    shapes_image(tmp_path / "val" / "0.png", 9, 24)
    base = tiny_config(latency_at="64x64", latency_tile=0, latency_ms=1.0)
    model = latency_model(base, log=lambda line: None)
    fastest, _ = model.cheapest()
    budget = fastest * 1.5
    config = tiny_config(latency_at="64x64", latency_tile=0, latency_ms=budget)
    data = load_data(config, [tmp_path / "train"], [tmp_path / "val"])
    run = search(config, data, tmp_path / "out", device="cpu", log=lambda line: None)
    assert run.net is not None and model.of(run.net.genotype) <= budget
    assert all("expected_latency_ms" in row for row in run.history) and "latency_ms" in run.multipliers
    # The table's prediction of a network is the sum of its layers on the same tiles.
    table = LatencyTable(Device.current("cpu", config.latency_threads))
    direct = latency_cost(config.space, table, [(32, 32), (32, 16)]).of(run.net.genotype)
    assert direct == pytest.approx(1.5 * table.network_ms(run.net.genotype, 32, 32))


def test_a_frames_predicted_time_follows_the_context_each_network_reads(fake_clock):
    """The engine reads a network's receptive field around each tile, so a deep network works on more pixels
    per frame than a shallow one. The search's prediction follows each network's own tiles; one fixed context
    (8 pixels, the reach of about four cells) under-counts a twelve-cell network (the x3-d search's 122 ms
    for a network the table put at 145 ms over its own tiles)."""
    from trinas.costs import latency_cost
    from trinas.net import receptive_radius
    from trinas.tiling import frame_tiles

    space = SearchSpace(3, max_width=8, width_fractions=(0.5, 1.0), ops=("skip", "resblock3x3"), max_cells=12,
                        tail="shuffle")
    table = LatencyTable(Device.current("cpu", 1))

    def tiles_at(pad):
        return frame_tiles("cpu", 216, 384, 3, pad, 32)

    fixed_context = latency_cost(space, table, tiles_at(8))
    own_context = latency_cost(space, table, tiles_at(8), tiles_at=tiles_at)
    for cells in (1, 4, 12):
        genotype = Genotype(3, 8, tuple(Cell(("resblock3x3", "resblock3x3"), (8, 8)) for _ in range(cells)),
                            tail="shuffle")
        over_own_tiles = table.raw_frame_ms(genotype, tiles_at(receptive_radius(genotype)))
        assert own_context.of(genotype) == pytest.approx(over_own_tiles, rel=0.03), cells
    assert fixed_context.of(genotype) < 0.8 * over_own_tiles


def test_a_prediction_times_its_missing_layers_together_in_bounded_groups(tmp_path, monkeypatch):
    """Interleaved timing only helps if the layers come together: one call for a network's layers, none for
    layers already in the table, and groups no larger than FILL_GROUP."""
    calls = []

    def fake_times(items, device, **kwargs):
        calls.append(len(items))
        return [1.0] * len(items)

    monkeypatch.setattr(latency, "time_modules", fake_times)
    table = LatencyTable(Device("cpu", 2, False, "test cpu"), tmp_path)
    distinct = len({layer.key for layer in layers_of(GENOTYPE, 16, 16)})
    table.frame_ms(GENOTYPE, [(16, 16)])
    assert calls == [distinct]
    table.frame_ms(GENOTYPE, [(16, 16)])
    assert calls == [distinct]  # nothing timed twice
    monkeypatch.setattr(latency, "FILL_GROUP", 3)
    table.frame_ms(GENOTYPE, [(20, 20)])
    assert calls[1:] == [3] * (distinct // 3) + ([distinct % 3] if distinct % 3 else [])


def test_modules_are_timed_with_real_clocks_in_the_order_given():
    device = Device("cpu", 1, False, "test cpu")
    small, large = torch.nn.Conv2d(2, 2, 3, padding=1), torch.nn.Conv2d(32, 32, 3, padding=1)
    times = latency.time_modules([(small, 2, 8, 8), (large, 32, 128, 128)], device, min_seconds=0.01, rounds=3)
    assert len(times) == 2 and all(t > 0 for t in times)
    # about 65,000x the work (the fastest of three rounds each, so other work on the machine rarely decides it)
    assert times[1] > times[0]


def test_a_calibration_is_fitted_to_whole_networks_and_kept(tmp_path, monkeypatch):
    """Whole networks of two scales and both tails that run twice as fast as their layers' sum, plus 3 ms a
    call and 0.2 ms a layer: the fit finds that, the predictions follow it, and the table keeps it."""
    device = Device("cpu", 1, False, "test cpu")
    table = LatencyTable(device, tmp_path)
    monkeypatch.setattr(latency, "time_modules", each_module(lambda module, c, h, w, d: float(h * w * c) / 1e4))
    rng = np.random.default_rng(0)
    networks = [(random_genotype(SearchSpace(scale, max_width=16, tail=tail), rng), tiles)
                for scale, tiles in ((2, [(20, 24), (20, 18)]), (4, [(12, 12)]))
                for tail in ("conv", "shuffle") for _ in range(6)]
    kinds = len(latency.LAYER_KINDS)
    truth = []
    for g, tiles in networks:
        f = table.features(g, tiles)
        truth.append(sum(f[:kinds]) * 0.5 + 3.0 * f[kinds] + 0.2 * f[kinds + 1])
    table.calibrate(networks, truth, pull=1.0)
    assert all(table.calibration[kind] > 0.1 for kind in latency.LAYER_KINDS)  # none zeroed
    table.calibrate(networks, truth, pull=0.0)  # unpulled, the fit is exact here
    assert table.calibration[latency.LAYER] == pytest.approx(0.2, rel=1e-3)
    for (g, tiles), t in zip(networks, truth):
        assert table.frame_ms(g, tiles) == pytest.approx(t, rel=1e-6)
    table.save()
    again = LatencyTable(device, tmp_path)
    assert again.calibration == pytest.approx(table.calibration)
    assert again.frame_ms(*networks[0]) == pytest.approx(truth[0], rel=1e-6)


def test_a_fit_is_kept_only_when_it_beats_the_sums_clearly():
    """The errors of stored checks: session 18's Zen 3 fit won by a hair and then did worse on the checked
    networks (11 of 38 within 10% against the sums' 20); the Xeons' fits won by far and did better."""
    assert not latency.fit_pays(0.121, 0.122)  # a tie is noise: the sums are kept
    assert not latency.fit_pays(0.201, 0.199)
    assert latency.fit_pays(0.059, 0.093) and latency.fit_pays(0.029, 0.151)


def test_a_fit_that_does_not_predict_unseen_networks_better_than_the_sums_is_not_kept(tmp_path, monkeypatch):
    """Frame times that are the layers' sums give or take 8% of noise: a fit can only learn the noise, so each
    network predicted by a fit to the others misses by more than the sums do, and the sums are kept."""
    monkeypatch.setattr(latency, "time_modules", each_module(lambda module, c, h, w, d: float(h * w * c) / 1e4))
    table = LatencyTable(Device("cpu", 1, False, "test cpu"), tmp_path)
    rng = np.random.default_rng(3)
    networks = [(random_genotype(SearchSpace(2, max_width=16), rng), [(20, 24)]) for _ in range(12)]
    noise = np.random.default_rng(4).uniform(0.92, 1.08, len(networks))
    sums = [table.frame_ms(g, tiles) for g, tiles in networks]
    table.calibrate(networks, list(np.array(sums) * noise), pull=0.0)
    check = table.fit_check
    assert check["kept"] == "raw" and check["networks"] == 12 and check["fitted_error"] >= check["raw_error"]
    assert all(table.frame_ms(g, tiles) == pytest.approx(s) for (g, tiles), s in zip(networks, sums))
    table.calibrate(networks, [s * 0.5 for s in sums], pull=0.0)  # twice as fast as the sums: worth a fit
    assert table.fit_check["kept"] == "fitted" and table.fit_check["fitted_within"] == 12
    assert table.fit_check["raw_within"] == 0


def test_a_calibration_measures_networks_of_the_same_tiles_together(tmp_path, monkeypatch):
    monkeypatch.setattr(latency, "time_modules", each_module(lambda module, c, h, w, d: 1.0))
    groups = []

    def fake_frames(genotypes, tiles, device, **kwargs):
        groups.append((len(genotypes), tiles))
        return {name: 30.0 for name in genotypes}

    monkeypatch.setattr(latency, "measure_frames", fake_frames)
    table = LatencyTable(Device("cpu", 1, False, "test cpu"), tmp_path)
    rng = np.random.default_rng(1)
    networks = [(random_genotype(SearchSpace(2, max_width=8), rng), [(16, 16)]) for _ in range(3)]
    networks += [(random_genotype(SearchSpace(4, max_width=8), rng), [(8, 8), (8, 4)]) for _ in range(2)]
    table.calibrate(networks)
    assert groups == [(3, [(16, 16)]), (2, [(8, 8), (8, 4)])]
    assert table.calibration is not None


def test_timing_on_a_busy_machine_is_called_out(monkeypatch):
    monkeypatch.setattr(latency, "busy_cores", lambda: 1.9)
    monkeypatch.setattr(latency.os, "sched_getaffinity", lambda pid: {0, 1})
    assert "busy (other work on 1.9 of 2 cores)" in latency.busy_warning()
    assert "delete /tmp/t.json to measure again" in latency.busy_warning(Path("/tmp/t.json"))
    monkeypatch.setattr(latency, "busy_cores", lambda: 0.2)
    assert latency.busy_warning() is None
    monkeypatch.setattr(latency, "busy_cores", lambda: None)  # no /proc/stat: the load average
    monkeypatch.setattr(latency.os, "getloadavg", lambda: (3.0, 3.0, 3.0))
    assert "busy (other work on 3.0 of 2 cores)" in latency.busy_warning()


def test_busy_cores_are_read_from_proc_stat_while_this_process_sleeps(tmp_path, monkeypatch):
    """Busy cores are the non-idle share of the allowed CPUs' ticks over the wait (iowait counts as idle); a
    CPU outside the process's affinity is left out; without /proc/stat, None."""
    stat = tmp_path / "stat"
    counters = ["cpu  0 0 0 0 0 0 0 0", "cpu0 {0} 0 0 {1} 0 0 0 0", "cpu1 {2} 0 0 {3} 0 0 0 0", "cpu2 {4} 0 0 0 0"]
    ticks = iter([(100, 100, 100, 100, 100), (190, 110, 150, 150, 100)])  # cpu0 90% busy, cpu1 50%, cpu2 out

    def write(*_):
        stat.write_text("\n".join(counters).format(*next(ticks)) + "\nintr 1 2 3\n")

    write()
    monkeypatch.setattr(latency, "PROC_STAT", stat)
    monkeypatch.setattr(latency.time, "sleep", write)
    monkeypatch.setattr(latency.os, "sched_getaffinity", lambda pid: {0, 1})
    assert latency.busy_cores() == pytest.approx(1.4)
    monkeypatch.setattr(latency, "PROC_STAT", tmp_path / "missing")
    assert latency.busy_cores() is None


def test_a_table_filled_on_another_machine_is_measured_again(tmp_path, monkeypatch):
    speed = {"factor": 1.0}  # this machine's speed against the one that filled the table

    def fake_time(module, channels, height, width, device, **kwargs):
        return speed["factor"] * (channels + height * width / 100)

    monkeypatch.setattr(latency, "time_modules", each_module(fake_time))
    monkeypatch.setattr(latency, "busy_warning", lambda table=None: None)
    device = Device("cpu", 2, False, "test cpu")
    table = LatencyTable(device, tmp_path)
    assert table.verify() is None  # an empty table adopts this machine's reference times
    table.network_ms(GENOTYPE, 16, 16)
    table.calibration = dict.fromkeys(latency.FITTED, 1.0)
    table.save()

    speed["factor"] = 1.05  # within the tolerance: the same machine, a little noise
    same = LatencyTable(device, tmp_path)
    assert same.verify() is None and same.entries == table.entries and same.calibration

    speed["factor"] = 0.8  # a machine of the same name a fifth faster
    other = LatencyTable(device, tmp_path)
    reason = other.verify()
    assert "0.80x their stored time" in reason and "measured again" in reason
    assert other.entries == {} and other.calibration is None
    other.network_ms(GENOTYPE, 16, 16)
    other.save()
    assert LatencyTable(device, tmp_path).verify() is None  # refilled here, it now matches this machine

    speed["factor"] = 1.5  # slower, but the machine is busy: the new times are the suspect ones
    monkeypatch.setattr(latency, "busy_warning", lambda table=None: "busy")
    busy = LatencyTable(device, tmp_path)
    assert busy.verify() is None and busy.entries


def test_one_stray_timing_of_the_reference_layers_does_not_drop_a_table(tmp_path, monkeypatch):
    factors = iter([1.0, 1.4, 1.02, 1.4, 1.35])  # filled; a stray 1.4x then 1.02x; then 1.4x twice

    def fake_times(items, device, **kwargs):
        factor = next(factors) if len(items) == len(latency.REFERENCE_LAYERS) else 1.0
        return [factor * (1 + i) for i in range(len(items))]

    monkeypatch.setattr(latency, "time_modules", fake_times)
    monkeypatch.setattr(latency, "busy_warning", lambda table=None: None)
    device = Device("cpu", 2, False, "test cpu")
    table = LatencyTable(device, tmp_path)
    assert table.verify() is None
    table.network_ms(GENOTYPE, 16, 16)
    table.save()
    kept = LatencyTable(device, tmp_path)
    assert kept.verify() is None and kept.entries == table.entries  # the second timing, 1.02x, decides
    dropped = LatencyTable(device, tmp_path)
    assert "1.35x their stored time" in dropped.verify() and dropped.entries == {}  # two in a row: dropped


def test_a_table_from_before_references_adopts_this_machines(tmp_path, monkeypatch):
    monkeypatch.setattr(latency, "time_modules", each_module(lambda module, *args, **kwargs: 1.0))
    monkeypatch.setattr(latency, "busy_warning", lambda table=None: None)
    device = Device("cpu", 2, False, "test cpu")
    table = LatencyTable(device, tmp_path)
    table.network_ms(GENOTYPE, 16, 16)
    table.save()
    data = json.loads(table.path.read_text())
    del data["reference"]
    table.path.write_text(json.dumps(data))
    old = LatencyTable(device, tmp_path)
    assert old.reference is None
    assert old.verify() is None and old.entries and old.reference == [1.0] * len(latency.REFERENCE_LAYERS)


def test_the_latency_check_predicts_and_measures_alike_in_bf16(fake_clock, monkeypatch, capsys, tmp_path):
    """`benchmarks/latency_check.py --device cpu-bf16`: a table of its own, the packaged and random networks
    predicted and measured (here by the stand-in clocks), the share within 10% printed and written."""
    from tests.test_controls import load_script

    check = load_script("latency_check")
    monkeypatch.setattr(check, "measure_frames", fake_frame_times)
    slower = lambda groups, device: {name: 1.05 * ms for networks, tiles in groups  # noqa: E731
                                     for name, ms in fake_frame_times(networks, tiles, device).items()}
    monkeypatch.setattr(check, "measure_frames_in_fresh_process", slower)
    rows = tmp_path / "rows.json"
    check.main(["--frame", "128x64", "--random", "2", "--calibrate", "2", "--device", "cpu-bf16", "--threads", "1",
                "--json", str(rows)])
    out = capsys.readouterr().out
    assert "1 threads, bf16" in out and "calibrated: within 10% for" in out
    assert "calibration networks, each predicted by a fit to the others: within 10% for" in out
    assert "measured again in a fresh process: the two differ by 5.0% (median), 5.0% (largest)" in out
    assert "calibrated against the mean of both processes: within 10% for" in out
    assert any("-bf16-" in p.name for p in fake_clock.iterdir())
    checked = json.loads(rows.read_text())["checked"]
    assert {r["name"] for r in checked} >= {"trinas-x2", "random-x2-00", "random-x2-01"}
    assert json.loads(rows.read_text())["fit_check"]["networks"] == 2


def test_frames_are_measured_again_in_a_fresh_process():
    """The second measurement of a latency check runs in a new interpreter (spawned: none of this process's
    memory) and names every network of every group."""
    tiny = Genotype(2, 4, (Cell(("conv3x3",), (4,)), Upsample(2)))
    times = latency.measure_frames_in_fresh_process([({"a": tiny}, [(8, 8)]), ({"b": tiny}, [(8, 8), (8, 4)])],
                                                    Device("cpu", 1, False, "test cpu"))
    assert set(times) == {"a", "b"} and all(ms > 0 for ms in times.values())


def test_two_tables_of_one_machine_are_compared_on_stored_checks(fake_clock, capsys, tmp_path):
    """`benchmarks/latency_tables_compare.py`: the per-layer ratio of two tables, and each table's and their
    mean's predictions of a stored check (networks measured at exactly the first table's sums)."""
    from tests.test_controls import load_script

    compare = load_script("latency_tables_compare")
    table = LatencyTable(Device("cpu", 2, False, "test cpu"), tmp_path)
    rng = np.random.default_rng(0)
    space = SearchSpace(2)
    networks = [(random_genotype(space, rng), [(16, 16), (16, 8)]) for _ in range(6)]
    entries = [{"spec": g.to_dict(), "tiles": tiles, "measured_ms": table.frame_ms(g, tiles)} for g, tiles in networks]
    first, second = tmp_path / "first.json", tmp_path / "second.json"
    first.write_text(json.dumps({"entries": table.entries}))
    second.write_text(json.dumps({"entries": {k: 1.1 * v for k, v in table.entries.items()}}))
    check = tmp_path / "check.json"
    check.write_text(json.dumps({"fitted_on": entries[:4], "checked": entries[4:]}))
    compare.main(["--table", str(first), "--table", str(second), "--check", str(check)])
    out = capsys.readouterr().out
    assert "second / first" in out and "median 1.100" in out
    assert re.search(r"check\.json +first +2/2 +2/2 +0\.0%", out)  # the table the times were made from
    assert "mean of the tables" in out
    (tmp_path / "short.json").write_text(json.dumps({"entries": {}}))
    with pytest.raises(SystemExit, match="lacks"):
        compare.main(["--table", str(tmp_path / "short.json"), "--check", str(check)])


def test_layers_in_network_sets_each_module_beside_its_layers(fake_clock, monkeypatch, capsys):
    """`benchmarks/layers_in_network.py`: one row per module of the network (head, cells and upsampler, tail,
    skip) with its layers' table time, its time inside the network (here a stand-in clock that adds 2.5 ms per
    module call) and their ratio, and the frame's."""
    from tests.test_controls import load_script

    script = load_script("layers_in_network")
    now = [0.0]

    def clock():
        now[0] += 0.0025  # a module's two hooks read it one after the other: 2.5 ms a module call
        return now[0]

    monkeypatch.setattr(script.time, "perf_counter", clock)
    script.main(["--model", "trinas-x2", "--frame", "96x64", "--threads", "1", "--rounds", "2"])
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line[:1].isalpha() and len(line.split()) > 4}
    modules = ["head"] + [f"body.{i}" for i in range(4)] + ["tail", "skip"]
    assert all(name in rows for name in modules + ["frame"])
    assert all(float(rows[name][2]) == 2.5 for name in modules[:-1])  # one tile: one call of each module
    table = LatencyTable(Device.current("cpu", 1))
    assert float(rows["head"][1]) == round(table.raw_layer_ms(latency.Layer("head", (3, 24), 32, 48)), 1)
