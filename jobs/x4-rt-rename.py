"""Session 29: `trinas-x4-rt` becomes the network pruned to 25+ frames/s on the Zen 3 EPYC (`jobs/x4-rt-mid`);
the earlier `trinas-x4-rt` keeps its card, figures and weights in `jobs/x4-rt-kd/model`, the run that made it.

Records that named the earlier model by its packaged name now name its folder, so every command on a card
still points at the files it ran on: `weights/trinas-x4-rt` before `x4-rt-kd` was `jobs/x4-rt/model` (the
same weights, sha256 c1accc...), and `trinas-x4-rt` after it is `jobs/x4-rt-kd/model`: in the configs (and so
the cards) of both packaged real-time models and of `jobs/x4-rt-mid` (its two folders were added to the list
after the first run and rewritten with the same `renamed`). Run once (the note it appends is not idempotent),
from the repository root, after `bash jobs/package.sh trinas-x4-rt jobs/x4-rt-mid/model`:

    python jobs/x4-rt-rename.py OLD_CONFIG_JSON
"""
import json
import re
import sys
from pathlib import Path

from trinas.export import read_config, write_config

EARLIER = "jobs/x4-rt-kd/model"
START_OF_EARLIER = "jobs/x4-rt/model"
NAME = re.compile(r"(?<![\w/-])trinas-x4-rt(?![\w-])")


def renamed(value):
    """Every string (and key) that names the earlier model, pointed at its folder."""
    if isinstance(value, dict):
        return {renamed(k): renamed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [renamed(v) for v in value]
    if isinstance(value, str):
        value = value.replace("weights/trinas-x4-rt ", START_OF_EARLIER + " ")
        return NAME.sub(EARLIER, value.replace("the earlier trinas-x4-rt ", f"the earlier {START_OF_EARLIER} "))
    return value


def main(old_config: Path) -> None:
    old = json.loads(old_config.read_text())
    earlier = renamed({k: v for k, v in old.items() if k not in ("name", "hub")})
    earlier.update(name="x4-rt-kd", hub=None)
    earlier["training"]["note"] += (" Shipped as trinas-x4-rt from 2026-12-03 until session 29 (2026-12-05), "
                                    "when a network pruned from it to 25+ frames/s on a Zen 3 EPYC took the name.")
    assert earlier["weights_sha256"] == read_config(Path(EARLIER))["weights_sha256"]
    write_config(Path(EARLIER), earlier)
    for folder in map(Path, ("weights/trinas-x4-rt", "weights/trinas-x4-rt-lite", "jobs/x4-rt-mid/pruned",
                             "jobs/x4-rt-mid/model")):
        config = read_config(folder)
        kept = {k: config[k] for k in ("name", "hub")}
        config = renamed(config)
        config.update(kept)
        write_config(folder, config)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
