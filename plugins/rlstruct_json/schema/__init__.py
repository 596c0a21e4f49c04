"""The ``json-schema`` task (docs/tasks/json-schema.md): any JSON Schema becomes a task.

Modules: :mod:`.task` (the task), :mod:`.synthetic` (the seeded generator and its difficulty) over
:mod:`.examples` (the built-in schemas and records, data in ``builtin_schemas.json`` and
``vocabulary.json``), :mod:`.structural_match` (content) and :mod:`.public_rows` (public data sets).
"""

from .task import JsonSchemaTask

__all__ = ["JsonSchemaTask"]
