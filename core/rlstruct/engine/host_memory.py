"""What happens to host (CPU) memory a training step frees: kept by the C library, or given back to the OS.

glibc serves blocks above its *mmap threshold* with their own mapping, returned to the OS when freed; smaller
ones come from the heap and stay resident after being freed. By default the threshold is dynamic: each time a
mapped block is freed it rises to that block's size (up to 32 MiB). A step over a real-size model frees
activations of tens of MB layer after layer, so the threshold climbs, later activations land in the heap, and
the resident set keeps hundreds of MB to GBs of freed memory: measured on the Qwen2.5-0.5B shape (W5 in
docs/benchmarks.md), peak RSS 4.4 GB with the default, 3.5 GB with the threshold fixed at 1 MiB, at the same
step time. On the demo's 0.5 M-parameter model the same setting costs 35% of a step (every MB-sized block is
then mapped and faulted in anew), hence ``run.host_memory = "auto"``: fixed only for models of 512 MiB or more.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from typing import Literal

import torch

M_MMAP_THRESHOLD = -3  # mallopt parameter (malloc.h)
RETURN_THRESHOLD = 1 << 20
"""Blocks of this many bytes or more are mapped, and unmapped when freed, under ``return``."""
AUTO_MIN_WEIGHT_BYTES = 512 << 20
"""``auto`` turns ``return`` on for models whose parameters take at least this much."""

HostMemory = Literal["auto", "return", "keep"]


def weight_bytes(model: torch.nn.Module) -> int:
    """Bytes held by the model's parameters (shared ones counted once)."""
    seen, total = set(), 0
    for p in model.parameters():
        if p.data_ptr() not in seen:
            seen.add(p.data_ptr())
            total += p.numel() * p.element_size()
    return total


def set_host_memory(policy: HostMemory, model: torch.nn.Module | None = None) -> bool:
    """Apply ``run.host_memory`` to this process; returns whether freed large blocks now go back to the OS.

    ``keep`` changes nothing (a threshold fixed earlier in the process stays). Without glibc (macOS, musl,
    Windows) it is a no-op that returns ``False``.
    """
    if policy == "keep":
        return False
    if policy == "auto" and (model is None or weight_bytes(model) < AUTO_MIN_WEIGHT_BYTES):
        return False
    libc = _glibc()
    if libc is None:
        return False
    return bool(libc.mallopt(M_MMAP_THRESHOLD, RETURN_THRESHOLD))  # a fixed value also stops the dynamic rise


def _glibc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        if not hasattr(libc, "gnu_get_libc_version"):  # glibc only: musl has mallopt as a stub
            return None
        return libc if hasattr(libc, "mallopt") else None
    except (OSError, AttributeError):
        return None
