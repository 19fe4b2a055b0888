"""Timing several calls fairly on a noisy machine: every call once per round, interleaved, so drift hits all
of them alike; each round keeps a call's fastest of `tries` (other work only ever adds time); the result is
the median over rounds, in milliseconds."""

from __future__ import annotations

import statistics
import time
from typing import Callable


def interleaved_medians(calls: dict[str, Callable[[], object]], rounds: int, tries: int = 3) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name in calls}
    for call in calls.values():
        call(), call()  # warm-up
    for _ in range(rounds):
        for name, call in calls.items():
            best = float("inf")
            for _ in range(tries):
                start = time.perf_counter()
                call()
                best = min(best, time.perf_counter() - start)
            times[name].append(best * 1000)
    return {name: statistics.median(t) for name, t in times.items()}
