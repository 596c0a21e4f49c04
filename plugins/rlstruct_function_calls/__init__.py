"""Built-in plugin: the ``function-calls`` task (tool calls for a request, BFCL-style matching)."""

from __future__ import annotations

from typing import Callable

from rlstruct import Task, hookimpl

from .task import FunctionCallsTask

__all__ = ["FunctionCallsTask", "register_tasks"]


@hookimpl
def register_tasks(register: Callable[[Task], None]) -> None:
    """Register the ``function-calls`` task."""
    register(FunctionCallsTask())
