#!/usr/bin/env bash
# Train a finished model of jobs/ on: the same network from its weights, a new cosine schedule of STEPS steps
# at LR, resumable (run the same command again). Its card keeps the commands before it (`training.before`).
#   nohup bash jobs/continue.sh NAME RUN LR STEPS THREADS >> jobs/NAME.log 2>&1 &
# reads jobs/NAME/model (RUN 2) or jobs/NAME/model<RUN-1> and writes jobs/NAME/model<RUN>.
set -euo pipefail
# The body is one block, read whole before it runs: editing this file while a job runs it is then safe.
{
source "$(dirname "$0")/common.sh"
usage 5 "NAME RUN LR STEPS THREADS" "$@"
name=$1 run=$2 lr=$3 steps=$4 threads=$5
previous="jobs/$name/model$([ "$run" -gt 2 ] && echo $((run - 1)) || true)"
scale=$(python -c "import json, sys; print(json.load(open(sys.argv[1]))['scale'])" "$previous/config.json")
train_model --scale "$scale" --genotype "$previous" --init "$previous" --work "jobs/$name/train$run" \
  --steps "$steps" --lr "$lr" --threads "$threads" --out "jobs/$name/model$run"
exit
}
