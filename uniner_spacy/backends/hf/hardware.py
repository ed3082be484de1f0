"""What this machine computes fast, read from the CPU's own flags (never guessed from its vendor).

A bf16 matmul is faster than float32 on a CPU with AVX512-BF16 or AMX, and far slower on one
without (it is emulated there), so the weights' dtype is chosen per machine (docs/speed.md).

How the process gets its memory matters on a CPU too: see `keep_freed_memory`.
"""
from __future__ import annotations

import ctypes
import platform
from pathlib import Path
from typing import FrozenSet, List, Optional

NATIVE_BF16 = ("amx_bf16", "avx512_bf16")


def cpu_flags() -> FrozenSet[str]:
    """The flags of the first CPU in /proc/cpuinfo; empty where there is none (macOS, Windows)."""
    try:
        with Path("/proc/cpuinfo").open() as fh:
            line = next((line for line in fh if line.startswith("flags")), "")
    except OSError:
        return frozenset()
    return frozenset(line.partition(":")[2].split())


def speed_flags(flags: Optional[FrozenSet[str]] = None) -> List[str]:
    """The vector and matrix flags that decide speed: recorded with every speed figure."""
    return sorted(f for f in (cpu_flags() if flags is None else flags) if f.startswith(("avx", "amx", "fma")))


def native_bf16(flags: Optional[FrozenSet[str]] = None) -> bool:
    flags = cpu_flags() if flags is None else flags
    return any(f in flags for f in NATIVE_BF16)


def auto_dtype(device: str, flags: Optional[FrozenSet[str]] = None) -> str:
    """`dtype = "auto"`: bfloat16 on a GPU and on a CPU with native bf16, float32 elsewhere."""
    return "bfloat16" if device.startswith("cuda") or native_bf16(flags) else "float32"


# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
# the largest mmap threshold glibc accepts on a 64-bit machine (HEAP_MAX_SIZE / 2)
_MMAP_THRESHOLD = 32 << 20


def keep_freed_memory() -> bool:
    """Let glibc's malloc keep freed memory for reuse instead of returning it to the system.

    Each forward allocates its activations afresh. glibc serves blocks over a
    threshold (128 KB, rising as such blocks are freed) from new mappings and
    trims the heap when much of it is free, so forwards fault in new, zeroed
    pages, each a fault the kernel must serve. With blocks up to 32 MB from the
    heap and no trimming, later forwards reuse the same pages (figures in
    docs/speed.md and benchmarks/NOTES.md). Process-wide and lasting, like
    `torch.set_num_threads`: memory freed after a run stays with the process.
    False, and nothing changed, without glibc.
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # both: setting either one fixes the other at its value (trimming alone would map more, not less)
    return bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
