#!/usr/bin/env bash
# A model of issue 13 made from the searched x2 network: its genotype's cells (jobs/NAME/genotype.json, cells
# added to reach the latency budget, a shuffle tail at the new scale) start from trinas-x2-searched's weights
# (`--init`: every layer whose name and shape match; new cells and the tail start fresh), then train for STEPS
# steps on THREADS threads, Set5 validated every 2,000 steps, resumable: run the same command again.
#   nohup bash jobs/transfer.sh NAME SCALE STEPS THREADS >> jobs/NAME.log 2>&1 &
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -ne 4 ]; then
  echo "usage: bash jobs/transfer.sh NAME SCALE STEPS THREADS" >&2
  exit 2
fi
name=$1 scale=$2 steps=$3 threads=$4
python -m trinas.train --scale "$scale" --train ../shared/data/train --val ../shared/data/val/Set5 \
  --genotype "jobs/$name/genotype.json" --init weights/trinas-x2-searched --work "jobs/$name/train" \
  --steps "$steps" --val-every 2000 --threads "$threads" --time-budget "${TIME_BUDGET:-36000}" \
  --out "jobs/$name/model" ${TRAIN_OPTIONS:-}
