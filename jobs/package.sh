#!/usr/bin/env bash
# Package a trained model of jobs/ as weights/NAME, a Hub model repository (trinas-upscale/NAME), and record
# its quality on the card with the published protocol, with and without self-ensemble. Speed is recorded
# separately, on an idle machine: upscale bench --model NAME --output 1280x720 --against trinas-x2-searched --record
# A model of the same genotype as the one it replaces keeps that one's search-controls record.
# NOTE="..." adds a sentence to the card's training section (e.g. a run that changed precision on the way).
#   bash jobs/package.sh NAME jobs/RUN/model
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -ne 2 ]; then
  echo "usage: bash jobs/package.sh NAME MODEL_FOLDER" >&2
  exit 2
fi
name=$1 source=$2
rm -rf "weights/.$name.new"
cp -r "$source" "weights/.$name.new"
rm -f "weights/.$name.new"/*.pt
python - "weights/.$name.new" "$name" "${NOTE:-}" <<'PY'
import sys
from pathlib import Path
from trinas.export import read_config, write_config
folder, name, note = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
config = read_config(folder)
config.update(name=name, hub={"repo": f"trinas-upscale/{name}", "revision": None})
if note:
    config["training"]["note"] = note
config.pop("metrics", None), config.pop("metrics_tta", None), config.pop("speed", None)
# The search controls rank a genotype against random ones, so a network of the same genotype, trained on,
# keeps the record of the model it replaces.
shipped = Path("weights", name)
if (shipped / "config.json").is_file():
    old = read_config(shipped)
    same = all(old.get(key) == config.get(key) for key in ("architecture", "genotype", "channels", "scale"))
    if same and "controls" in old:
        config["controls"] = old["controls"]
write_config(folder, config)
PY
rm -rf "weights/$name"
mv "weights/.$name.new" "weights/$name"
upscale eval --model "$name" --data ../shared/data/val/Set5 --data ../shared/data/val/Set14 --record
upscale eval --model "$name" --data ../shared/data/val/Set5 --data ../shared/data/val/Set14 --tta --record
