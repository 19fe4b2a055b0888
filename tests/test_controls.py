"""The search controls: random genotypes of equal cost from the same space, the baseline at the closest cost,
every network trained under one schedule, and a table that says where the found genotype ranks."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from trinas.cost import madds_per_output_pixel
from trinas.space import SearchSpace, baseline_genotype

from tests.test_search import shapes_image

ROOT = Path(__file__).resolve().parents[1]


def load_script(name: str, folder: str = "benchmarks"):
    """A script of benchmarks/ (or another folder of the repository) as a module, with its folder on the path
    for the helpers it imports."""
    if str(ROOT / folder) not in sys.path:
        sys.path.insert(0, str(ROOT / folder))
    spec = importlib.util.spec_from_file_location(name, ROOT / folder / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


controls = load_script("search_controls")


def test_random_genotypes_come_from_the_space_within_the_cost_window_and_are_distinct():
    space = SearchSpace(2)
    target = 16_362
    genotypes = controls.random_at_cost(space, target, 0.1, 8, seed=3, exclude=set())
    assert len({g.describe() for g in genotypes}) == 8
    for g in genotypes:
        assert abs(madds_per_output_pixel(g) / target - 1) <= 0.1
        assert g.width in space.widths and all(op in space.ops for c in g.cells for op in c.ops)
    again = controls.random_at_cost(space, target, 0.1, 8, seed=3, exclude=set())
    assert [g.describe() for g in again] == [g.describe() for g in genotypes]  # the draw is seeded


def test_the_baseline_has_four_cells_at_the_closest_width_unless_none_is_near():
    assert controls.closest_baseline(2, madds_per_output_pixel(baseline_genotype(2, 24))) == baseline_genotype(2, 24)
    # v7 found 27,594: four cells at 32 wide cost 28,728 (+4%); one cell at 44 wide would be within 0.1%.
    assert controls.closest_baseline(2, 27_594) == baseline_genotype(2, 32)
    assert controls.closest_baseline(2, 27_594, "ecb3x3") == baseline_genotype(2, 32, 4, "ecb3x3")
    # No four-cell width within the tolerance: the closest of any cell count.
    costs = [madds_per_output_pixel(baseline_genotype(2, w, c)) for w in range(4, 129, 2) for c in range(1, 9)]
    target = 21_000
    chosen = controls.closest_baseline(2, target, tolerance=0.02)
    assert abs(madds_per_output_pixel(chosen) - target) == pytest.approx(min(abs(c - target) for c in costs))
    assert len(chosen.cells) != 4


def test_controls_train_every_network_alike_rank_the_found_one_and_resume(tmp_path):
    for i in range(4):
        shapes_image(tmp_path / "train" / f"{i}.png", i, 48)
    shapes_image(tmp_path / "set5" / "a.png", 50, 24)
    shapes_image(tmp_path / "set14" / "b.png", 51, 24)
    found = tmp_path / "found.json"
    found.write_text(json.dumps(baseline_genotype(2, 8, 2).to_dict() | {"path": [
        {"type": "cell", "ops": ["conv3x3", "skip"], "widths": [8, 8]},
        {"type": "cell", "ops": ["resblock3x3", "conv3x3"], "widths": [8, 8]}, {"type": "upsample", "factor": 2}]}))
    args = ["--found", str(found), "--train", str(tmp_path / "train"), "--val", str(tmp_path / "set5"),
            "--report", str(tmp_path / "set14"), "--out", str(tmp_path / "out"), "--random", "2",
            "--tolerance", "0.3", "--seeds", "0", "1", "--steps", "3", "--batch", "2", "--patch", "8",
            "--baseline-ops", "conv3x3", "ecb3x3"]
    controls.main(args)
    summary = json.loads((tmp_path / "out" / "controls.json").read_text())
    assert summary["complete"] == 5 and {r["role"] for r in summary["rows"]} == {"found", "baseline", "random"}
    results = sorted((tmp_path / "out").glob("*/seed*/result.json"))
    assert len(results) == 10
    assert {json.loads(p.read_text())["steps"] for p in results} == {3}
    assert 1 <= summary["found_rank"]["report"] <= 5
    rows = {r["name"]: r for r in summary["rows"]}
    # A baseline per --baseline-ops, the same layout and cost, only the operation differs.
    assert rows["baseline-ecb3x3"]["genotype"] == rows["baseline"]["genotype"].replace("conv3x3", "ecb3x3")
    assert rows["found"]["report_mean"] == pytest.approx(np.mean(rows["found"]["report"]))
    stamps = [p.stat().st_mtime_ns for p in results]
    controls.main(args)  # a second run finds every result and trains nothing
    assert [p.stat().st_mtime_ns for p in results] == stamps
    assert "rank" in (tmp_path / "out" / "controls.md").read_text()
    # Another found genotype into the same folder: refused in one line, not resumed on the wrong weights.
    found.write_text(found.read_text().replace('"ops": ["conv3x3", "skip"]', '"ops": ["conv3x3", "conv3x3"]'))
    with pytest.raises(SystemExit, match="holds a run of another network"):
        controls.main(args)


def test_record_puts_the_outcome_in_the_model_card_and_refuses_unfinished_controls(tmp_path, tiny_model_dir):
    import shutil

    from trinas.export import model_card, read_config

    folder = tmp_path / "found"
    shutil.copytree(tiny_model_dir, folder)
    row = {"val_mean": 30.0, "report_mean": 28.0}
    summary = {"command": "python benchmarks/search_controls.py --found x --summary-only --record",
               "schedule": {"steps": 10, "batch": 2, "patch": 8, "seeds": [0, 1]},
               "sets": {"val": "Set5", "report": "Set14"}, "found_rank": {"val": 1, "report": 2},
               "random_median_val": 29.0, "random_median_report": 27.5, "complete": 4,
               "rows": [{"role": "found", **row}, {"role": "baseline", "val_mean": 29.9, "report_mean": 28.1},
                        {"role": "baseline", "val_mean": 30.2, "report_mean": 28.3},
                        {"role": "random", "val_mean": 29.0, "report_mean": 27.5}]}
    controls.record(folder, summary, 0.1, ["conv3x3", "ecb3x3"])
    config = read_config(folder)
    assert config["controls"]["rank"] == {"val": 1, "report": 2}
    assert config["controls"]["command"] == "python benchmarks/search_controls.py --found x"
    card = (folder / "README.md").read_text()
    assert "ranks **1 of 4** on Set5 and **2 of 4** on Set14" in card
    assert "| median random genotype | 29.00 | 27.50 |" in card
    assert "| baseline of equal cost (conv3x3 cells) | 29.90 | 28.10 |" in card
    assert "| baseline of equal cost (ecb3x3 cells) | 30.20 | 28.30 |" in card
    with pytest.raises(SystemExit, match="not finished"):
        controls.record(folder, {**summary, "complete": 3}, 0.1, ["conv3x3", "ecb3x3"])
    del config["controls"]["random_median_val"]  # as recorded before 0.2.0
    assert "| median random genotype | not recorded | 27.50 |" in model_card(config)


def test_random_networks_come_from_the_found_models_own_search_space(tmp_path, tiny_model_dir):
    """A search over a narrower space (`--ops skip,ecb3x3`) is compared with random networks of that space."""
    import shutil

    from trinas.export import read_config, write_config

    folder = tmp_path / "found"
    shutil.copytree(tiny_model_dir, folder)
    config = read_config(folder)
    config["search"] = {**config.get("search", {}), "space": SearchSpace(2, ops=("skip", "ecb3x3")).to_dict()}
    write_config(folder, config)
    genotype, space = controls.load_found(folder)
    assert space.ops == ("skip", "ecb3x3")
    drawn = controls.random_at_cost(space, 16_362, 0.1, 8, seed=0, exclude=set())
    assert {op for g in drawn for c in g.cells for op in c.ops} <= {"skip", "ecb3x3"}
