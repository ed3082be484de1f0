"""What this machine computes fast, read from the CPU's own flags (never guessed from its vendor).

A bf16 matmul is about 2× faster than float32 on a CPU with AVX512-BF16 or AMX, and about 50×
slower on one without (it is emulated there), so the weights' dtype is chosen per machine.
"""
from __future__ import annotations

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
