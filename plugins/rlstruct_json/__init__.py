"""Built-in JSON tasks: ``json-recipes`` and ``json-schema`` (docs/tasks/json-recipes.md, json-schema.md).

Each task is a sub-package laid out like the other built-in plugins (``task.py``, ``synthetic.py``, ...):
:mod:`.recipes` and :mod:`.schema`. What both use lives here: :mod:`.completion` (reading a completion),
:mod:`.error_classes` (error types), :mod:`.schema_credit` (JSON Schema partial credit) with
:mod:`.schema_refs` and :mod:`.string_formats`.
"""

from __future__ import annotations

from typing import Callable

from rlstruct import Task, hookimpl

from .recipes import JsonRecipesTask
from .schema import JsonSchemaTask

__all__ = ["JsonRecipesTask", "JsonSchemaTask", "register_tasks"]


@hookimpl
def register_tasks(register: Callable[[Task], None]) -> None:
    """Register ``json-recipes`` and ``json-schema``."""
    register(JsonRecipesTask())
    register(JsonSchemaTask())
