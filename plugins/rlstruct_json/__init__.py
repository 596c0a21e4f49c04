"""Built-in JSON tasks: ``json-recipes`` and ``json-schema`` (docs/tasks/json-recipes.md, json-schema.md)."""

from __future__ import annotations

from typing import Callable

from rlstruct import Task, hookimpl

from .json_schema_task import JsonSchemaTask
from .recipes import JsonRecipesTask

__all__ = ["JsonRecipesTask", "JsonSchemaTask", "register_tasks"]


@hookimpl
def register_tasks(register: Callable[[Task], None]) -> None:
    """Register ``json-recipes`` and ``json-schema``."""
    register(JsonRecipesTask())
    register(JsonSchemaTask())
