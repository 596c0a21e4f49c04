"""Ctrl-C during training: the first SIGINT asks the loop to stop after the current step and save a
checkpoint there; a second one stops at once (KeyboardInterrupt, as without the handler).

A step is never cut in the middle by the first SIGINT: an optimiser update half applied, or metrics
written for a step whose weights were not saved, would make the checkpoint unresumable exactly.
Reward workers ignore SIGINT themselves (the pool owns them), so scoring finishes too.
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from ..errors import RunError


class TrainingInterrupted(RunError):
    """Training stopped on Ctrl-C after a complete step; ``checkpoint`` holds that step."""

    def __init__(self, step: int, total: int, checkpoint: Path) -> None:
        self.step, self.total, self.checkpoint = step, total, checkpoint
        super().__init__(f"interrupted at step {step} of {total}; checkpoint saved in {checkpoint}")


class StopAfterStep:
    """Context manager: while active, the first SIGINT sets :attr:`requested` instead of raising.

    Outside the main thread signals cannot be handled, and the manager does nothing.
    """

    def __init__(self, message: str = "finishing the current step, then saving a checkpoint") -> None:
        self.requested = False
        self._message = message
        self._previous: object = None
        self._installed = False

    def __enter__(self) -> "StopAfterStep":
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
            self._installed = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)  # type: ignore[arg-type]
            self._installed = False

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:  # the second Ctrl-C: stop now, without a checkpoint of this step
            self.__exit__()
            raise KeyboardInterrupt
        self.requested = True
        print(f"\nrlstruct: interrupt: {self._message} (Ctrl-C again to stop at once)", file=sys.stderr, flush=True)
