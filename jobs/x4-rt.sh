#!/usr/bin/env bash
# The real-time x4 of issue 12, start to finish, resumable: run it again and it goes on where it stopped.
#   1. search to a latency budget (1280x720 output in 24 ms of network time on this CPU, 2 threads), pruning
#      channels down to it at the end (`--prune`), with its latency table kept beside it (TRINAS_CACHE);
#   2. train the found network on from the search's weights (`--init`: the same network, every branch alive).
# Start it on an idle machine: the latency table is timed at the search's start.
#   nohup bash jobs/x4-rt.sh >> jobs/x4-rt.log 2>&1 &
set -euo pipefail
cd "$(dirname "$0")/.."
export TRINAS_CACHE=jobs/cache
TRAIN=../shared/data/train
VAL=../shared/data/val/Set5
SEARCH=jobs/x4-rt/search
if [ ! -f "$SEARCH/config.json" ]; then
  resume=()
  [ -f "$SEARCH/search-checkpoint.pt" ] && resume=(--resume)
  upscale search --scale 4 --tail shuffle --ops skip,ecb3x3 --depth-finish mean --train "$TRAIN" --val "$VAL" \
    --out "$SEARCH" --latency-ms 24 --at 1280x720 --prune --steps 12000 --threads 2 --quiet "${resume[@]}"
fi
python -m trinas.train --scale 4 --train "$TRAIN" --val "$VAL" --genotype "$SEARCH" --init "$SEARCH" \
  --work jobs/x4-rt/train --steps 40000 --val-every 2000 --threads 2 --time-budget "${TIME_BUDGET:-36000}" \
  --out jobs/x4-rt/model
