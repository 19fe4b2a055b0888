"""`benchmarks/checkouts_compare.py` times the earlier commit in a worktree of its own and the work tree as it
is, each in a fresh process whose own `upscale` package is the one imported."""

from __future__ import annotations

import subprocess

from tests.test_controls import load_script

compare = load_script("checkouts_compare")

FAKE_BENCH = '''import json
from pathlib import Path
seconds = float(Path("speed.txt").read_text())
print(json.dumps({"rows": [{"name": "channels-last", "seconds": seconds}, {"name": "other", "seconds": 9.0}]}))
'''


def git(repo, *args):
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


def test_each_side_runs_its_own_checkout_and_the_ratio_is_the_work_trees_over_the_commits(tmp_path, capsys):
    repo = tmp_path / "repo"
    (repo / "upscale").mkdir(parents=True)
    (repo / "upscale" / "__init__.py").write_text("")
    (repo / "upscale" / "__main__.py").write_text(FAKE_BENCH)
    (repo / "speed.txt").write_text("0.2")
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "slow")
    (repo / "speed.txt").write_text("0.1")  # the change, uncommitted: twice as fast

    compare.main(["--repo", str(repo), "--base", "HEAD", "--rounds", "2", "--", "--model", "any"])

    out = capsys.readouterr().out
    assert out.count("round ") == 2 and "HEAD 200.0 ms, work tree 100.0 ms" in out
    assert "takes 0.500x" in out
    worktrees = subprocess.run(["git", "-C", str(repo), "worktree", "list"], capture_output=True, text=True).stdout
    assert len(worktrees.strip().splitlines()) == 1  # the temporary worktree is gone
