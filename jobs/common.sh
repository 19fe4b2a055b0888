# Sourced by the scripts of jobs/: the repository root as working folder, the data every model here trains
# and validates on, and the training command they share (Set5 validated every 2,000 steps, a checkpoint
# that resumes, TIME_BUDGET seconds per sitting, TRAIN_OPTIONS added at the end, e.g. "--lr 2e-4").
cd "$(dirname "${BASH_SOURCE[0]}")/.."
TRAIN=../shared/data/train
VAL=../shared/data/val/Set5

# usage COUNT "ARGUMENTS" "$@": stop with the usage line unless there are COUNT arguments (COUNT+ : at least).
usage() {
  local count=$1 arguments=$2
  shift 2
  if { [[ $count == *+ ]] && [ $# -lt "${count%+}" ]; } || { [[ $count != *+ ]] && [ $# -ne "$count" ]; }; then
    echo "usage: bash $0 $arguments" >&2
    exit 2
  fi
}

# train_model OPTIONS...: python -m trinas.train with the shared options and OPTIONS (scale, genotype, ...).
train_model() {
  # shellcheck disable=SC2086  # TRAIN_OPTIONS is a list of options
  python -m trinas.train --train "$TRAIN" --val "$VAL" --val-every 2000 --time-budget "${TIME_BUDGET:-36000}" \
    "$@" ${TRAIN_OPTIONS:-}
}
