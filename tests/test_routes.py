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
