"""`benchmarks/routes.py`: every model's route to each factor, scored and timed side by side."""

from __future__ import annotations

import json

from conftest import make_tiny_model
from test_cli_eval import make_dataset
from test_controls import load_script

routes = load_script("routes")


def test_each_factor_lists_every_route_with_its_own_model_first_in_time(tmp_path, capsys):
    x2, x4 = make_tiny_model(tmp_path / "x2", bicubic=True), make_tiny_model(tmp_path / "x4", scale=4, bicubic=True)
    data = make_dataset(tmp_path / "Tiny", size=(64, 48))
    out = tmp_path / "routes.json"
    routes.main(["--data", str(data), "--factor", "4", "--factor", "2", "--model", str(x2), "--model", str(x4),
                 "--time", "48x24", "--threads", "1", "--json", str(out)])
    rows = json.loads(out.read_text())
    assert [(r["factor"], r["model"], r["own"]) for r in rows] == [(4, str(x2), False), (4, str(x4), True),
                                                                   (2, str(x2), True), (2, str(x4), False)]
    assert all(r["ms"] > 0 and 0 < r["Tiny"] < 100 for r in rows)
    printed = capsys.readouterr().out
    assert "### to x4" in printed and f"{x2} (x2) and a resize" in printed and "| 1.00x |" in printed


def test_a_route_is_timed_as_a_user_runs_it_on_the_input_of_its_factor(tmp_path):
    """At x4 on a 48x24 frame, the x2 model's route starts from the 12x6 input of x4 (not the 24x12 of its own
    frame) and ends in a resize to 48x24: the time is the route's, and GFLOP/s count the model's own output."""
    from trinas.cost import madds_per_output_pixel
    from upscale.bench import bench_models
    from upscale.engine import Upscaler
    from upscale.models import load

    x2, x4 = make_tiny_model(tmp_path / "x2", bicubic=True), make_tiny_model(tmp_path / "x4", scale=4, bicubic=True)
    upscalers = {str(m): Upscaler(load(str(m)), device="cpu") for m in (x4, x2)}
    calls = []
    for up in upscalers.values():
        run = up.upscale_array
        up.upscale_array = lambda image, outscale=None, run=run: calls.append((image.shape, outscale)) or run(
            image, outscale)
    rows, _ = bench_models(upscalers, 0, 0, repeats=1, rounds=1, output=(48, 24), factor=4)
    assert [row.input for row in rows] == ["12x6", "12x6"]
    assert set(calls) == {((6, 12, 3), 4)}
    assert all(abs(row.megapixels_per_s - 48 * 24 / 1e6 / row.seconds) < 1e-9 for row in rows)
    own, route = rows
    madds = [madds_per_output_pixel(up.model.genotype) for up in upscalers.values()]
    assert abs(own.gflops - 2 * madds[0] * 48 * 24 / own.seconds / 1e9) < 1e-6
    assert abs(route.gflops - 2 * madds[1] * 24 * 12 / route.seconds / 1e9) < 1e-6  # the x2 made 24x12
