"""The comparison scripts built on `trinas.screen` (the recipe ablation, the data scaling): every arm trains
under one schedule, the table says what was compared, and a second run trains nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trinas.data import image_subset
from trinas.space import baseline_genotype

from tests.test_controls import load_script
from tests.test_search import shapes_image

recipe = load_script("recipe_ablation")
data_scaling = load_script("data_scaling")


def tiny_sets(root: Path, train_images: int = 4) -> list[str]:
    for i in range(train_images):
        shapes_image(root / "train" / f"{i}.png", i, 48)
    shapes_image(root / "set5" / "a.png", 50, 24)
    shapes_image(root / "set14" / "b.png", 51, 24)
    return ["--train", str(root / "train"), "--val", str(root / "set5"), "--report", str(root / "set14"),
            "--steps", "3", "--batch", "2", "--patch", "8", "--seeds", "0", "1"]


def tiny_model(root: Path) -> str:
    from trinas.export import save_model
    from trinas.net import TriNet

    save_model(TriNet(baseline_genotype(2, 8, 1)), root / "model")
    return str(root / "model")


def test_image_subsets_are_nested_stable_and_keep_their_order():
    paths = [Path(f"data/{name}.png") for name in "abcdefghijklmnopqrst"]
    quarter, half, whole = (image_subset(paths, f) for f in (0.25, 0.5, 1.0))
    assert (len(quarter), len(half), whole) == (5, 10, paths)
    assert set(quarter) <= set(half)
    assert half == sorted(half) and image_subset(list(reversed(paths)), 0.5) == list(reversed(half))
    assert image_subset(paths[:1], 0.01) == paths[:1]  # at least one image
    with pytest.raises(ValueError, match="fraction"):
        image_subset(paths, 0)


def test_data_scaling_trains_each_share_alike_and_fits_the_gain_per_doubling(tmp_path):
    args = tiny_sets(tmp_path) + ["--out", str(tmp_path / "out"), "--fractions", "0.5", "1",
                                  "--model", tiny_model(tmp_path), "--precision", "bf16"]
    data_scaling.main(args)
    table = json.loads((tmp_path / "out" / "data.json").read_text())
    assert all(json.loads(p.read_text())["schedule"]["precision"] == "bf16"
               for p in (tmp_path / "out").glob("*/seed*/result.json"))
    assert [(r["fraction"], r["images"]) for r in table["rows"]] == [(0.5, 2), (1.0, 4)]
    results = sorted((tmp_path / "out").glob("*/seed*/result.json"))
    assert len(results) == 4 and {json.loads(p.read_text())["steps"] for p in results} == {3}
    rows = table["rows"]  # two shares: the slope is the difference of their means, per one doubling
    assert table["gain_per_doubling_db"]["report"] == pytest.approx(rows[1]["report_mean"] - rows[0]["report_mean"])
    assert "| 0.5 | 2 |" in (tmp_path / "out" / "data.md").read_text()
    stamps = [p.stat().st_mtime_ns for p in results]
    data_scaling.main(args)  # a second run finds every result and trains nothing
    assert [p.stat().st_mtime_ns for p in results] == stamps


def test_data_scaling_refuses_a_share_outside_zero_to_one(tmp_path, capsys):
    with pytest.raises(SystemExit):
        data_scaling.main(tiny_sets(tmp_path) + ["--out", str(tmp_path / "out"), "--fractions", "1.5"])
    assert "(0, 1]" in capsys.readouterr().err


def test_recipe_ablation_trains_each_variant_alike_and_compares_with_plain(tmp_path):
    args = tiny_sets(tmp_path) + ["--out", str(tmp_path / "out"), "--variants", "plain", "ema", "bf16",
                                  "--model", tiny_model(tmp_path)]
    recipe.main(args)
    table = json.loads((tmp_path / "out" / "recipe.json").read_text())
    assert [r["variant"] for r in table["rows"]] == ["plain", "ema", "bf16"]
    plain, ema, bf16 = (r["schedule"] for r in table["rows"])
    assert ema == {**plain, "ema": 0.999} and bf16 == {**plain, "precision": "bf16"}  # one part differs
    assert all(r["minutes"] > 0 for r in table["rows"])
    results = sorted((tmp_path / "out").glob("*/seed*/result.json"))
    assert len(results) == 6 and {json.loads(p.read_text())["steps"] for p in results} == {3}
    assert "| ema |" in (tmp_path / "out" / "recipe.md").read_text()


def test_a_rerun_with_another_schedule_into_the_same_folder_is_refused(tmp_path):
    """Finished runs are reused only for the schedule they ran: other --steps (or another precision) into the
    same --out is one line, not the old results passed off as new ones."""
    args = tiny_sets(tmp_path) + ["--out", str(tmp_path / "out"), "--variants", "plain", "--model",
                                  tiny_model(tmp_path)]
    recipe.main(args)
    for change in (["--steps", "4"], ["--precision", "bf16"]):
        with pytest.raises(SystemExit, match="another schedule"):
            recipe.main(args + change)
    recipe.main(args)  # the same schedule again: reused


def test_the_recipe_ablation_in_bf16_has_every_arm_in_bf16_and_no_bf16_arm(tmp_path, capsys):
    common = tiny_sets(tmp_path) + ["--out", str(tmp_path / "out"), "--model", tiny_model(tmp_path),
                                    "--precision", "bf16"]
    recipe.main(common + ["--variants", "plain"])
    table = json.loads((tmp_path / "out" / "recipe.json").read_text())
    assert table["rows"][0]["schedule"]["precision"] == "bf16"
    with pytest.raises(SystemExit):
        recipe.main(common + ["--variants", "bf16"])
    assert "unknown variants ['bf16']" in capsys.readouterr().err
