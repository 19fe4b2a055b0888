#!/usr/bin/env bash
# Train a finished model of jobs/ on: the same network from its weights, a new cosine schedule of STEPS steps
# at LR, Set5 validated every 2,000 steps, resumable (run the same command again). Its card keeps the
# commands before it (`training.before`).
#   nohup bash jobs/continue.sh NAME RUN LR STEPS THREADS >> jobs/NAME.log 2>&1 &
# reads jobs/NAME/model (RUN 2) or jobs/NAME/model<RUN-1> and writes jobs/NAME/model<RUN>.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -ne 5 ]; then
  echo "usage: bash jobs/continue.sh NAME RUN LR STEPS THREADS" >&2
  exit 2
fi
name=$1 run=$2 lr=$3 steps=$4 threads=$5
previous="jobs/$name/model$([ "$run" -gt 2 ] && echo $((run - 1)) || true)"
scale=$(python -c "import json, sys; print(json.load(open(sys.argv[1]))['scale'])" "$previous/config.json")
python -m trinas.train --scale "$scale" --train ../shared/data/train --val ../shared/data/val/Set5 \
  --genotype "$previous" --init "$previous" --work "jobs/$name/train$run" --steps "$steps" --lr "$lr" \
  --val-every 2000 --threads "$threads" --time-budget "${TIME_BUDGET:-36000}" --out "jobs/$name/model$run"
