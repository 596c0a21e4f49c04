"""The ``json-schema`` task: any JSON Schema becomes a task, with no code.

Records are ``{"prompt": str, "schema": JSON Schema object (or a JSON string of one),
"reference": optional JSON value}``. Reward components (see docs/tasks/json-schema.md):

* structure: 1.0 when the completion is one JSON value of any kind (bare, or inside a single
  fence around the whole completion, surrounding white space allowed), else 0;
* format: :func:`rlstruct_json.schema_credit.format_credit` (1.0 iff valid under Draft 2020-12);
* content: with a reference, F1 over (path, normalised leaf) pairs
  (:func:`.structural_match.structural_f1`); without one, 1.0 (content is not measured);
* validity: share of semantic checks that pass: strings under a checked ``format`` (date,
  date-time, time, email, uri, hostname, ipv4, ipv6, uuid) and arrays under ``uniqueItems``;
  1.0 when the schema asks for none.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar, Mapping

from jsonschema.exceptions import SchemaError
from referencing.exceptions import Unresolvable

from rlstruct import Parsed, Prompt, RecordError, Task, safe_json_loads

from ..completion import checked_record, parse_completion
from ..error_classes import json_error_type
from ..schema_credit import (
    SchemaValidator,
    embedded_ids,
    first_error,
    format_credit,
    json_path,
    semantic_credit,
    semantic_failures,
)
from ..schema_refs import outside_references
from .public_rows import from_public_row
from .structural_match import structural_f1
from .synthetic import synthetic_schema_records

SYSTEM_PROMPT = (
    "Reply with ONLY a JSON value that validates against the JSON Schema (Draft 2020-12) below: "
    "no prose before or after it and no markdown. String formats such as date, date-time, email "
    "and uri must be well formed.\nSchema: {schema}"
)
"""The system message; ``{schema}`` is the record's schema as compact JSON."""


def has_reference(record: Mapping[str, Any]) -> bool:
    """Whether the record carries a reference (a missing key or ``null`` means none)."""
    return record.get("reference") is not None


def parse_schema(value: Any) -> dict[str, Any]:
    """Return the record's schema as a checked dict, or raise :class:`RecordError` naming ``schema``."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise RecordError(f"schema: not valid JSON ({exc})") from None
        except RecursionError:
            raise RecordError("schema: nested too deeply") from None
    if not isinstance(value, dict):
        raise RecordError(f"schema: expected a JSON Schema object, got {type(value).__name__}")
    try:
        SchemaValidator.check_schema(value)
    except SchemaError as exc:
        where = json_path(exc.absolute_path, "schema")
        raise RecordError(f"{where}: not a valid Draft 2020-12 schema: {exc.message[:200]}") from None
    except RecursionError:
        raise RecordError("schema: nested too deeply") from None
    nested_ids = embedded_ids(value)
    if nested_ids:
        raise RecordError(f"{nested_ids[0].replace('$', 'schema', 1)}: $id is only supported at the schema's root")
    outside = outside_references(value)
    if outside:
        path, keyword, ref = outside[0]
        raise RecordError(
            f"{json_path((*path, keyword), 'schema')}: {ref!r} does not resolve inside the schema "
            "(references must stay in the record's own schema: JSON pointers like '#/$defs/name' or "
            "anchors like '#name'; remote and file references are refused, nothing is fetched)"
        )
    return value


class JsonSchemaTask(Task):
    """Emit a JSON value valid under the record's JSON Schema (Draft 2020-12).

    Public data set (``--source hf``): NousResearch/json-mode-eval (one split, ``train``), a schema and a
    reference per row (:mod:`.public_rows`). Or bring a JSON Lines file of records, or use the
    synthetic generator (contact cards, product listings, events, shopping lists).
    """

    name: ClassVar[str] = "json-schema"
    description: ClassVar[str] = "Any JSON Schema as a task: valid JSON per record schema, partial credit per constraint."
    hf_dataset: ClassVar[str | None] = "NousResearch/json-mode-eval"

    # -- data ---------------------------------------------------------------------------------
    def normalize_record(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        """Check ``prompt``, parse and check ``schema``, check ``reference`` against it if present.

        Rows of public JSON-Schema sets (json-mode-eval, JSONSchemaBench) are read too (:mod:`.public_rows`).
        """
        if isinstance(raw, Mapping):
            raw = from_public_row(raw)
        record = checked_record(raw)
        if "schema" not in record:
            raise RecordError("schema: missing (a JSON Schema object is required)")
        record["schema"] = schema = parse_schema(raw["schema"])
        if has_reference(record):
            reference = record["reference"]
            try:
                problem = first_error(schema, reference, root="reference")
                failures = [] if problem else semantic_failures(schema, reference)
            except RecursionError:
                raise RecordError("schema: recursion without end while checking reference") from None
            except Unresolvable as exc:
                raise RecordError(f"schema: a reference does not resolve ({exc})") from None
            if problem is not None:
                raise RecordError(f"{problem} (reference does not validate against schema)")
            if failures:
                where = failures[0].replace("$", "reference", 1)
                raise RecordError(f"{where}: reference fails a semantic check")
        return record

    def synthetic(self, split: str, size: int, seed: int, difficulty: float | None = None) -> list[dict[str, Any]]:
        """Seeded records over the built-in schemas (splits never share a prompt).

        ``difficulty`` in [0, 1] sets schema depth, number of properties, enums and patterns
        (``None``: the default, 0.5, the built-in records unchanged); see :mod:`.synthetic`.
        """
        return synthetic_schema_records(split, size, seed, difficulty)

    # -- prompting ----------------------------------------------------------------------------
    def build_prompt(self, record: dict[str, Any]) -> Prompt:
        """System message with the rules and the compact schema; the record's prompt as user message."""
        schema = json.dumps(record["schema"], ensure_ascii=False, separators=(",", ":"))
        return Prompt(
            messages=[
                {"role": "system", "content": SYSTEM_PROMPT.format(schema=schema)},
                {"role": "user", "content": record["prompt"]},
            ]
        )

    def reference_completion(self, record: dict[str, Any]) -> str | None:
        """The reference as compact JSON, or ``None`` when the record has none."""
        if not has_reference(record):
            return None
        return json.dumps(record["reference"], ensure_ascii=False, separators=(",", ":"))

    # -- reward -------------------------------------------------------------------------------
    def structure(self, record: dict[str, Any], completion: str) -> Parsed:
        """1.0 and the value when the completion is one JSON value of any type; 0 otherwise."""
        try:
            return Parsed(1.0, parse_completion(completion))
        except ValueError:
            return Parsed(0.0, None)

    def format(self, record: dict[str, Any], parsed: Any) -> float:
        """Share of schema constraints met; 1.0 exactly when the value validates."""
        return format_credit(record["schema"], parsed)

    def content(self, record: dict[str, Any], parsed: Any) -> float:
        """Structural F1 against the reference; 1.0 when there is no reference (not measured)."""
        if not has_reference(record):
            return 1.0
        return structural_f1(parsed, record["reference"])

    def validity(self, record: dict[str, Any], parsed: Any) -> float:
        """Share of checked ``format`` strings and ``uniqueItems`` arrays that pass (1.0 if none)."""
        return semantic_credit(record["schema"], parsed)

    # -- evaluation aids ------------------------------------------------------------------------
    def error_type(self, record: dict[str, Any], completion: str, breakdown: Any) -> str | None:
        """extra-text for structure; missing-key, invented-key, wrong-type or schema-violation for format
        (the record schema's complaints, see :mod:`rlstruct_json.error_classes`)."""
        return json_error_type(completion, breakdown, record["schema"])

    def json_schema(self, record: dict[str, Any]) -> dict[str, Any] | None:
        """The record's own schema (also when a record that skipped normalising still holds it as a JSON string)."""
        schema = record.get("schema")
        if isinstance(schema, str):
            try:
                schema = safe_json_loads(schema, max_chars=len(schema) + 1)
            except ValueError:
                return None
        return schema if isinstance(schema, dict) else None
