"""Where a training step's time goes: wall-clock seconds per phase, with the device caught up at each mark."""

from __future__ import annotations

import time
from collections import defaultdict

import torch


class PhaseClock:
    """``mark(phase)`` adds the time since the previous mark to ``spent[phase]`` and returns the time now.

    On CUDA each mark waits for the device first (a handful per step), so work queued in one phase is not
    billed to the next.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.start = self._last = time.perf_counter()
        self.spent: defaultdict[str, float] = defaultdict(float)

    def mark(self, phase: str) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        now = time.perf_counter()
        self.spent[phase] += now - self._last
        self._last = now
        return now
