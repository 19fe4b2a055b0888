"""Session 30: `trinas-x2` becomes `jobs/x2-long` (the same network trained on); the model it replaces keeps its
card's figures in `jobs/x2-on/model`, the run that made it (the same weights, sha256 in both configs).

Copies the scores, self-ensemble scores, speed records and search controls of the packaged config given (the
replaced `weights/trinas-x2`, saved before packaging) into `jobs/x2-on/model`, named by that folder in its
card and in each speed command instead of by the packaged name, and redraws its card. Run once, from the
repository root, before `bash jobs/package.sh trinas-x2 jobs/x2-long/model` has replaced the files (or with a
saved copy of them):

    python jobs/x2-keep-card.py OLD_CONFIG_JSON
"""
import json
import sys
from pathlib import Path

from trinas.export import read_config, write_config

FOLDER = Path("jobs/x2-on/model")
KEPT = ("metrics", "metrics_tta", "speed", "controls")


def main(old_config: Path) -> None:
    old = json.loads(old_config.read_text())
    config = read_config(FOLDER)
    if old["weights_sha256"] != config["weights_sha256"]:
        sys.exit(f"{old_config} describes other weights than {FOLDER}")
    for key in KEPT:
        if key in old:
            config[key] = old[key]
    config["name"] = str(FOLDER)  # the card's commands (`upscale eval --model NAME`) then run as written
    for record in config.get("speed", []):
        record["command"] = record["command"].replace("--model trinas-x2 ", f"--model {FOLDER} ")
    write_config(FOLDER, config)
    print(f"{FOLDER}: kept {', '.join(k for k in KEPT if k in old)} of {old['name']}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
