"""Keep freed memory for reuse: glibc's defaults make large activations cost page faults on every call.

PyTorch on the CPU allocates each activation with malloc. Under glibc's defaults, memory freed at the top of
the heap above 128 KiB is handed back to the system and a block above the (adaptive) mmap threshold is
mapped afresh, so a network whose activations are tens of megabytes takes page faults and zeroes new pages
on every forward pass. On our 2-core CPU (with a training job on it), one 32-wide residual block on a 446x380
input took 114 ms where its two convolutions alone take 16 ms each; with the settings below, 51 ms.
`python benchmarks/allocator_compare.py` times whole frames both ways, interleaved (CHANGELOG).

`keep_freed_memory()` raises glibc's trim threshold (freed memory stays in the process) and fixes the mmap
threshold at its maximum (blocks up to 32 MiB come from the heap and are reused). The cost is memory the
process keeps after a peak, which an upscaler or a training run reuses at once. It changes nothing off glibc,
and `TRINAS_MALLOC=default` turns it off.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
TRIM_THRESHOLD = 1 << 30
MMAP_THRESHOLD = 32 << 20  # glibc's upper limit on 64-bit systems

_applied: bool | None = None


def keep_freed_memory() -> bool:
    """Apply the settings once per process; True where they are in force (Linux with glibc, not turned off)."""
    global _applied
    if _applied is None:
        _applied = _apply()
    return _applied


def _apply() -> bool:
    if os.environ.get("TRINAS_MALLOC", "").lower() == "default" or platform.system() != "Linux":
        return False
    if platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)) and bool(
            libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))
    except (OSError, AttributeError):
        return False


def allocator_name() -> str:
    """How this process allocates so far, for records of measured times: "glibc-kept" or "default"."""
    return "glibc-kept" if _applied else "default"
