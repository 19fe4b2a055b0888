#!/usr/bin/env bash
# A model of issue 13 made from the searched x2 network: its genotype's cells (jobs/NAME/genotype.json, cells
# added to reach the latency budget, a shuffle tail at the new scale) start from trinas-x2-searched's weights
# (`--init`: every layer whose name and shape match; new cells and the tail start fresh), then train for STEPS
# steps on THREADS threads, resumable: run the same command again.
# INIT=FOLDER starts from another model's weights instead; jobs/NAME/design.txt, if there, is the sentence
# that says on the card how the network was chosen (`--design`).
#   nohup bash jobs/transfer.sh NAME SCALE STEPS THREADS >> jobs/NAME.log 2>&1 &
set -euo pipefail
# The body is one block, read whole before it runs: editing this file while a job runs it is then safe.
{
source "$(dirname "$0")/common.sh"
usage 4 "NAME SCALE STEPS THREADS" "$@"
name=$1 scale=$2 steps=$3 threads=$4
design=()
[ -f "jobs/$name/design.txt" ] && design=(--design "$(cat "jobs/$name/design.txt")")
train_model --scale "$scale" --genotype "jobs/$name/genotype.json" --init "${INIT:-weights/trinas-x2-searched}" \
  --work "jobs/$name/train" --steps "$steps" --threads "$threads" --out "jobs/$name/model" \
  "${design[@]}"
exit
}
