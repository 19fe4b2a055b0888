"""`upscale bench`: every variant timed in one run, reported with its ratio to the first row."""

from __future__ import annotations

import json

from click.testing import CliRunner

from conftest import make_tiny_model
from upscale.cli import main

QUICK = ["--size", "32x24", "--repeats", "1", "--rounds", "1", "--device", "cpu", "--json"]


def bench_json(*args: str) -> dict:
    result = CliRunner().invoke(main, ["bench", *args, *QUICK])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_layouts_are_compared_with_ratios_to_the_first(tiny_model_dir):
    result = bench_json("--model", str(tiny_model_dir))
    assert [row["name"] for row in result["rows"]] == ["contiguous", "channels-last"]
    first, second = result["rows"]
    assert first["ratio"] == 1.0
    assert second["ratio"] == first["seconds"] / second["seconds"]
    assert first["megapixels_per_s"] == 32 * 24 * 4 / 1e6 / first["seconds"]
    assert result["input"] == "32x24" and result["scale"] == 2 and result["peak_memory_mb"] > 0
    # Frames per second, and the achieved GFLOP/s from the model's multiply-adds, beside the references
    # timed in the same run: a plain 3x3 conv at the model's width (8) and OpenCV's bicubic.
    madds = 9 * 3 * 8 + 2 * 9 * 8 * 8 + 9 * 8 * 8 * 4 + 9 * 8 * 3 * 4  # head, one cell, upsampler, tail
    assert first["fps"] == 1 / first["seconds"]
    assert abs(first["gflops"] - 2 * madds * 32 * 24 / first["seconds"] / 1e9) < 1e-9
    reference = result["reference"]
    assert reference["conv_width"] == 8 and reference["conv_gflops"] > 0 and reference["bicubic_seconds"] > 0


def test_tile_sides(tiny_model_dir):
    result = bench_json("--model", str(tiny_model_dir), "--tiles", "0,16")
    assert [row["name"] for row in result["rows"]] == ["tile 0", "tile 16"]


def test_models_against_each_other(tmp_path):
    small = make_tiny_model(tmp_path / "small", width=4)
    large = make_tiny_model(tmp_path / "large", width=16, cells=3)
    result = bench_json("--model", str(small), "--against", str(large))
    assert [row["name"] for row in result["rows"]] == [str(small), str(large)]
    assert result["rows"][0]["ratio"] == 1.0 and result["rows"][1]["ratio"] > 0


def test_models_of_other_scales_or_two_comparisons_are_one_line_errors(tmp_path, tiny_model_dir, tiny_model_x4_dir):
    for extra in (["--against", str(tiny_model_x4_dir)], ["--against", str(tiny_model_dir), "--tiles", "0,16"]):
        result = CliRunner().invoke(main, ["bench", "--model", str(tiny_model_dir), *extra, *QUICK])
        assert result.exit_code == 1
        assert result.output.startswith("error: ") and len(result.output.strip().splitlines()) == 1
