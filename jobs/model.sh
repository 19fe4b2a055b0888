#!/usr/bin/env bash
# One model of issue 13, start to finish, resumable: run the same command again and it goes on where it stopped.
#   1. search to a latency budget (LATENCY_MS per 1280x720 output frame of network time on this CPU, 2 threads),
#      pruning channels down to it at the end (`--prune`), its latency table kept in jobs/cache (TRINAS_CACHE);
#   2. train the found network on from the search's weights for STEPS steps (`--init`: the same network, every
#      branch alive; jobs/common.sh), the curve kept in its checkpoint.
# Start it on an idle machine (the latency table is timed at the search's start):
#   nohup bash jobs/model.sh NAME SCALE LATENCY_MS STEPS [more search options] >> jobs/NAME.log 2>&1 &
# TRAIN_OPTIONS adds options to the training (e.g. TRAIN_OPTIONS="--lr 2e-4"); PRUNE=no searches straight to
# the budget, without the pruning (for a space whose width is capped, where pruning would narrow it further).
set -euo pipefail
# The body is one block, read whole before it runs: editing this file while a job runs it is then safe.
{
source "$(dirname "$0")/common.sh"
usage 4+ "NAME SCALE LATENCY_MS STEPS [more search options]" "$@"
name=$1 scale=$2 latency_ms=$3 steps=$4
shift 4
export TRINAS_CACHE=jobs/cache
SEARCH=jobs/$name/search
# .done, not config.json, says the search is over: the folder is a model (config.json) before its pruning ends,
# and a rerun with --resume finishes the pruning.
if [ ! -f "$SEARCH/.done" ]; then
  resume=() prune=(--prune)
  [ "${PRUNE:-yes}" = no ] && prune=()
  [ -f "$SEARCH/search-checkpoint.pt" ] && resume=(--resume)
  upscale search --scale "$scale" --train "$TRAIN" --val "$VAL" --out "$SEARCH" --latency-ms "$latency_ms" \
    --at 1280x720 "${prune[@]}" --steps 12000 --threads 2 --quiet "$@" "${resume[@]}"
  touch "$SEARCH/.done"
fi
train_model --scale "$scale" --genotype "$SEARCH" --init "$SEARCH" --work "jobs/$name/train" --steps "$steps" \
  --threads 2 --out "jobs/$name/model"
exit
}
