"""Built-in plugin: the ``xml-records`` task (XML documents valid under an XSD).

See docs/tasks/xml-records.md. The code lives in :mod:`.task` (the task), :mod:`rlstruct.xml_safety`
(parsing untrusted XML), :mod:`.schemas` (XSDs), :mod:`.credit` and :mod:`.checks` (reward
components) and :mod:`.synthetic` (seeded records).
"""

from __future__ import annotations

from typing import Callable

from rlstruct import Task, hookimpl

from .task import XmlRecordsTask

__all__ = ["XmlRecordsTask", "register_tasks"]


@hookimpl
def register_tasks(register: Callable[[Task], None]) -> None:
    """Register the ``xml-records`` task."""
    register(XmlRecordsTask())
