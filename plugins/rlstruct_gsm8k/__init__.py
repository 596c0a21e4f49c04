"""Built-in plugin: the ``gsm8k-json`` task (GSM8K math answered as a JSON object)."""

from __future__ import annotations

from typing import Callable

from rlstruct import Task, hookimpl

from .task import Gsm8kJsonTask

__all__ = ["Gsm8kJsonTask", "register_tasks"]


@hookimpl
def register_tasks(register: Callable[[Task], None]) -> None:
    """Register the ``gsm8k-json`` task."""
    register(Gsm8kJsonTask())
