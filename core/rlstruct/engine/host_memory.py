"""What happens to host (CPU) memory a training step frees: kept by the C library, or given back to the OS.

glibc serves blocks above its *mmap threshold* with their own mapping, returned to the OS when freed; smaller
ones come from the heap and stay resident after being freed. By default the threshold is dynamic: each time a
mapped block is freed it rises to that block's size (up to 32 MiB). A step over a real-size model frees
activations of tens of MB layer after layer, so the threshold climbs, later activations land in the heap, and
the resident set keeps hundreds of MB to GBs of freed memory: measured on the Qwen2.5-0.5B shape (W5 in
docs/benchmarks.md), peak RSS 4.4 GB with the default, 3.5 GB with the threshold fixed at 1 MiB, at the same
step time. On the demo's 0.5 M-parameter model the same setting costs 35% of a step (every MB-sized block is
then mapped and faulted in anew), hence ``run.host_memory = "auto"``: fixed only for models of 512 MiB or more.

Small models want the opposite, ``reuse``: glibc also *trims* the heap whenever more than twice the threshold
lies free at its top, which a backward pass does every step when it drops all activations at once, so each
step faults the same pages in again; and until the dynamic threshold has risen, every block past 128 KiB is a
fresh mapping. ``reuse`` keeps freed memory in the process (trimming only past 1 GiB free, mapping only blocks
past 32 MiB, glibc's largest threshold): on the demo's tiny model a step's decode and update each took 15-20%
less time (W1 in docs/benchmarks.md). ``auto`` picks it below 512 MiB of weights.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from typing import Literal

import torch

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (malloc.h)
RETURN_THRESHOLD = 1 << 20
"""Blocks of this many bytes or more are mapped, and unmapped when freed, under ``return``."""
REUSE_MMAP_THRESHOLD = 32 << 20
"""Under ``reuse`` only blocks of this many bytes or more are mapped (glibc's maximum on 64-bit systems)."""
REUSE_TRIM_THRESHOLD = 1 << 30
"""Under ``reuse`` the heap is trimmed only when this many bytes lie free at its top."""
AUTO_MIN_WEIGHT_BYTES = 512 << 20
"""``auto`` picks ``return`` for models whose parameters take at least this much, ``reuse`` below."""

HostMemory = Literal["auto", "return", "reuse", "keep"]


def weight_bytes(model: torch.nn.Module) -> int:
    """Bytes held by the model's parameters (shared ones counted once)."""
    seen, total = set(), 0
    for p in model.parameters():
        if p.data_ptr() not in seen:
            seen.add(p.data_ptr())
            total += p.numel() * p.element_size()
    return total


def resolve(policy: HostMemory, model: torch.nn.Module | None = None) -> HostMemory:
    """The policy ``auto`` stands for with this model (``return`` from 512 MiB of weights, else ``reuse``)."""
    if policy != "auto":
        return policy
    return "return" if model is not None and weight_bytes(model) >= AUTO_MIN_WEIGHT_BYTES else "reuse"


def set_host_memory(policy: HostMemory, model: torch.nn.Module | None = None) -> bool:
    """Apply ``run.host_memory`` to this process; returns whether the allocator's settings were changed.

    ``keep`` changes nothing (settings made earlier in the process stay). Without glibc (macOS, musl,
    Windows) it is a no-op that returns ``False``.
    """
    policy = resolve(policy, model)
    libc = _glibc() if policy != "keep" else None
    if libc is None:
        return False
    if policy == "return":  # a fixed threshold also stops the dynamic rise
        return bool(libc.mallopt(M_MMAP_THRESHOLD, RETURN_THRESHOLD))
    # reuse: both fixed (setting either one stops the dynamic threshold, so the other must be set too)
    return bool(libc.mallopt(M_MMAP_THRESHOLD, REUSE_MMAP_THRESHOLD)) and bool(
        libc.mallopt(M_TRIM_THRESHOLD, REUSE_TRIM_THRESHOLD)
    )


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
