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


def test_precisions_of_one_model(tiny_model_dir):
    """bf16 on the CPU beside fp32 in one run (fast where the processor has AMX: a ratio, not a promise)."""
    result = bench_json("--model", str(tiny_model_dir), "--precisions", "fp32,bf16")
    assert [row["name"] for row in result["rows"]] == ["fp32", "bf16"]
    assert result["rows"][0]["ratio"] == 1.0 and result["rows"][1]["ratio"] > 0
    for extra in (["--precisions", "fp32,fp8"], ["--precisions", "fp32,fp16"], ["--precisions", "fp32,bf16",
                                                                               "--tiles", "0,16"]):
        wrong = CliRunner().invoke(main, ["bench", "--model", str(tiny_model_dir), *extra, *QUICK])
        assert wrong.exit_code == 1 and len(wrong.output.strip().splitlines()) == 1, wrong.output


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


def test_models_of_other_scales_are_compared_on_one_output_frame(tmp_path):
    """`--output 48x24`: the x2 model gets 24x12, the x3 16x8, the x4 12x6; each row says its input, and
    output megapixels per second and GFLOP/s count the frame each one made."""
    x2, x3, x4 = (make_tiny_model(tmp_path / f"x{s}", scale=s) for s in (2, 3, 4))
    args = ["bench", "--model", str(x2), "--against", str(x3), "--against", str(x4), "--output", "48x24",
            "--repeats", "1", "--rounds", "1", "--device", "cpu"]
    result = CliRunner().invoke(main, [*args, "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert [row["input"] for row in data["rows"]] == ["24x12", "16x8", "12x6"]
    assert data["input"] == "24x12" and data["output"] == "48x24"
    for row in data["rows"]:
        assert abs(row["megapixels_per_s"] - 48 * 24 / 1e6 / row["seconds"]) < 1e-9
    table = CliRunner().invoke(main, args)
    assert table.exit_code == 0 and "16x8" in table.output
    # Written to a file or a pipe, the table keeps its full width: every model's name whole, never "x…".
    assert all(str(model) in table.output for model in (x2, x3, x4)) and "…" not in table.output
    both = CliRunner().invoke(main, [*args, "--size", "8x8"])
    assert both.exit_code == 1 and "not both" in both.output


def test_record_against_keeps_the_others_times_of_the_same_run(tmp_path):
    from trinas.export import read_config

    x3, x2 = make_tiny_model(tmp_path / "x3", scale=3), make_tiny_model(tmp_path / "x2")
    result = CliRunner().invoke(main, ["bench", "--model", str(x3), "--against", str(x2), "--output", "48x24",
                                       "--repeats", "1", "--rounds", "1", "--device", "cpu", "--record"])
    assert result.exit_code == 0, result.output
    entry = read_config(x3)["speed"][0]
    assert entry["input"] == "16x8" and entry["output"] == "48x24" and set(entry["against"]) == {str(x2)}
    assert f"--output 48x24 --device cpu --against {x2}" in entry["command"]
    ratio = entry["ms_per_frame"] / entry["against"][str(x2)]
    assert f"takes {ratio:.2f}x its time" in (x3 / "README.md").read_text()


def test_record_keeps_the_default_engine_time_with_its_command_and_a_rerun_replaces_it(tmp_path):
    from trinas.export import read_config, write_config

    model = make_tiny_model(tmp_path / "m")
    result = bench_json("--model", str(model), "--record")
    default = next(row for row in result["rows"] if row["name"] == "channels-last")  # the CPU engine's layout
    (entry,) = read_config(model)["speed"]
    assert entry["how"] == "engine" and entry["device"] == "cpu" and entry["precision"] == "float32"
    assert entry["input"] == "32x24" and entry["output"] == "64x48"
    assert entry["ms_per_frame"] == round(default["seconds"] * 1000, 2)
    assert entry["command"] == f"upscale bench --model {model} --size 32x24 --device cpu"
    card = (model / "README.md").read_text()
    assert "## Measured speed" in card and entry["command"] in card and f"{entry['ms_per_frame']:.1f}" in card
    bench_json("--model", str(model), "--record")  # the same measurement again: replaced, not appended
    assert len(read_config(model)["speed"]) == 1
    other_size = [a if a != "32x24" else "16x16" for a in QUICK]
    assert CliRunner().invoke(main, ["bench", "--model", str(model), "--record", *other_size]).exit_code == 0
    assert [e["input"] for e in read_config(model)["speed"]] == ["32x24", "16x16"]
    config = read_config(model)  # a figure of another machine, or of another day, stays beside today's
    config["speed"][0] = {**config["speed"][0], "device_name": "another CPU, 2 threads"}
    config["speed"][1] = {**config["speed"][1], "date": "2026-01-01"}
    write_config(model, config)
    assert bench_json("--model", str(model), "--record") and len(read_config(model)["speed"]) == 3


def test_record_refuses_what_is_not_the_default_engine_or_not_a_local_folder(tiny_model_dir):
    for extra in (["--model", str(tiny_model_dir), "--tiles", "0,16"], ["--model", "hf:someone/model"],
                  ["--model", str(tiny_model_dir), "--precisions", "fp32,bf16"]):
        result = CliRunner().invoke(main, ["bench", *extra, "--record", *QUICK])
        assert result.exit_code == 1 and result.output.startswith("error: "), result.output
        assert len(result.output.strip().splitlines()) == 1
