#!/usr/bin/env bash
# The real-time x4 of issue 12 (shipped as weights/trinas-x4-rt): jobs/model.sh with its settings, a search to
# 24 ms per 1280x720 frame with a shuffle tail over skip and ecb3x3, pruned to the budget, then 40,000 steps.
# Resumable like model.sh; its search is finished (search/.done).
#   nohup bash jobs/x4-rt.sh >> jobs/x4-rt.log 2>&1 &
exec bash "$(dirname "$0")/model.sh" x4-rt 4 24 40000 --tail shuffle --ops skip,ecb3x3 --depth-finish mean
