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

Huge pages: PyTorch backs its large CPU tensors with transparent huge pages (2 MiB) when
`THP_MEM_ALLOC_ENABLE=1` is set before its first allocation, which `request_huge_pages()` does when `trinas`
is imported (unless the variable is set already or `TRINAS_MALLOC=default`). Fewer TLB misses on activations
of tens of megabytes: whole 1280x720 frames, fresh processes, interleaved, idle machine, 7 rounds in two runs
of `benchmarks/allocator_compare.py`: `trinas-x4-baseline` 1.37x and 1.42x faster than with freed memory kept
alone, `trinas-x2` 1.07x and 1.02x, `trinas-x2-searched` 0.92x and 1.03x. A process that allocated tensors before
importing `trinas` runs without them; `huge_pages_in_force()` says which.
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

HUGE_PAGES_ENV = "THP_MEM_ALLOC_ENABLE"  # read by PyTorch once, at its first CPU allocation
HUGE_PAGE = 2 << 20

_applied: bool | None = None
_huge: bool | None = None


def request_huge_pages() -> None:
    """Ask PyTorch for huge pages on large CPU tensors, unless the user chose (either way) or turned the
    allocator settings off. Only effective before PyTorch's first allocation: called on `import trinas`."""
    if _turned_off() or platform.system() != "Linux":
        return
    os.environ.setdefault(HUGE_PAGES_ENV, "1")


def _turned_off() -> bool:
    return os.environ.get("TRINAS_MALLOC", "").lower() == "default"


def huge_pages_in_force() -> bool:
    """Whether large CPU tensors get huge pages in this process: the memory of a 4 MiB probe tensor is then
    advised for them (its mapping's `hg` flag in /proc/self/smaps)."""
    global _huge
    if _huge is None:
        import torch

        probe = torch.empty(2 * HUGE_PAGE, dtype=torch.uint8)
        _huge = _advised_for_huge_pages(probe.data_ptr())
    return _huge


def _advised_for_huge_pages(address: int) -> bool:
    try:
        with open("/proc/self/smaps") as smaps:
            inside = False
            for line in smaps:
                fields = line.split()
                if fields and "-" in fields[0] and not fields[0].endswith(":"):  # a mapping's first line
                    low, high = (int(v, 16) for v in fields[0].split("-"))
                    inside = low <= address < high
                elif inside and fields and fields[0] == "VmFlags:":
                    return "hg" in fields[1:]
    except (OSError, ValueError):
        pass
    return False


def keep_freed_memory() -> bool:
    """Apply the settings once per process; True where they are in force (Linux with glibc, not turned off)."""
    global _applied
    if _applied is None:
        _applied = _apply()
    return _applied


def _apply() -> bool:
    if _turned_off() or platform.system() != "Linux":
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
    """How this process allocates so far, for records of measured times: "glibc-kept" or "default", with
    "+thp" where large tensors get huge pages."""
    return ("glibc-kept" if _applied else "default") + ("+thp" if huge_pages_in_force() else "")
