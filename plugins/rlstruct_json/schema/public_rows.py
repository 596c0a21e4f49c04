"""Rows of public JSON-Schema data sets, read as json-schema records.

``normalize_record`` accepts, besides its own ``{"prompt", "schema", "reference"?}`` shape:

* **NousResearch/json-mode-eval** (the task's ``--source hf``): ``prompt`` is a list of chat
  messages (the system message restates the schema), ``schema`` a JSON string and ``completion``
  the reference as a JSON string. The prompt becomes the last user message; ``completion`` becomes
  ``reference`` (the task's own system message states the schema again).
* **epfl-dlab/JSONSchemaBench**-style rows: ``json_schema`` (a JSON string) and no prompt. The
  schema becomes ``schema`` and the prompt a generic request (:data:`SCHEMA_ONLY_PROMPT`): the
  system message carries the schema, which is the whole task.

Anything else passes through unchanged, so the record checks report what is missing.
"""

from __future__ import annotations

from typing import Any, Mapping

from rlstruct import RecordError, safe_json_loads

SCHEMA_ONLY_PROMPT = "Write one JSON value that satisfies the schema."
"""The user message of a row that carries a schema and nothing else."""

MAX_FIELD_CHARS = 2_000_000
"""Bound on a JSON-string ``completion`` of a row."""


def _last_user_message(messages: list[Any]) -> str | None:
    for message in reversed(messages):
        if isinstance(message, Mapping) and message.get("role") == "user" and isinstance(message.get("content"), str):
            return message["content"]
    return None


def from_public_row(raw: Mapping[str, Any]) -> Mapping[str, Any]:
    """``raw`` in the task's own shape when it is a row of a public set described above; else ``raw``."""
    row = dict(raw)
    if isinstance(row.get("prompt"), list):
        text = _last_user_message(row["prompt"])
        if text is None:
            raise RecordError("prompt: a list of chat messages without a user message")
        row["prompt"] = text
        if "reference" not in row and isinstance(row.get("completion"), str):
            try:
                row["reference"] = safe_json_loads(row.pop("completion"), max_chars=MAX_FIELD_CHARS)
            except ValueError as exc:
                raise RecordError(f"completion: the reference is not valid JSON ({str(exc)[:120]})") from None
    if "schema" not in row and "json_schema" in row:
        row["schema"] = row.pop("json_schema")
        row.setdefault("prompt", SCHEMA_ONLY_PROMPT)
    return row
