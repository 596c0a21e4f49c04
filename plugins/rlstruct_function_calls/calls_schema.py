"""The JSON Schema of a function-calls completion, and the error class of a failed one.

:func:`calls_schema` is what ``rlstruct eval --constrained`` enforces (``Task.json_schema``);
:func:`calls_error_type` refines the core's error class (``Task.error_type``).
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any, Mapping, Sequence

from jsonschema import Draft202012Validator

from rlstruct.error_types import first_failing_component, json_with_extra_text

from .calls import MAX_CALLS, as_call, parse_completion

__all__ = ["calls_error_type", "calls_schema"]

_PRECEDENCE = ("missing-key", "invented-key", "wrong-type", "schema-violation")


def calls_schema(tools: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A non-empty JSON list of ``{"name", "arguments"}`` objects, each naming one of ``tools`` with
    arguments valid under that tool's ``parameters`` (and no undeclared argument: the reward charges
    for invented ones). Tools may be plain ``{"name", "parameters"}`` or OpenAI-style."""
    options = []
    for tool in tools:
        fn = tool.get("function", tool) if tool.get("type") == "function" else tool
        params = fn.get("parameters")
        arguments = dict(params) if isinstance(params, Mapping) else {"type": "object"}
        if "properties" in arguments and "additionalProperties" not in arguments:
            arguments["additionalProperties"] = False
        options.append(
            {
                "type": "object",
                "properties": {"name": {"const": fn["name"]}, "arguments": arguments},
                "required": ["name", "arguments"],
                "additionalProperties": False,
            }
        )
    return {"type": "array", "minItems": 1, "maxItems": MAX_CALLS, "items": {"anyOf": options}}


@lru_cache(maxsize=2048)
def _validator(schema_json: str) -> Draft202012Validator:
    return Draft202012Validator(json.loads(schema_json))


def _entry_kind(entry: Any) -> str | None:
    """Why a raw entry is not a call object (``None`` when it is one)."""
    if as_call(entry) is not None:
        return None
    if not isinstance(entry, dict):
        return "wrong-type"
    if "name" not in entry or not ({"arguments", "parameters"} & set(entry)):
        return "missing-key"
    if len(entry) > 2:
        return "invented-key"
    return "wrong-type"  # a name that is not a non-empty string, or arguments that are not an object


def _arguments_kinds(arguments: Mapping[str, Any], tool: Mapping[str, Any]) -> set[str]:
    parameters = tool.get("parameters") or {}
    props = parameters.get("properties") or {}
    kinds = set()
    if any(key not in arguments for key in parameters.get("required") or []):
        kinds.add("missing-key")
    for key, value in arguments.items():
        if key not in props:
            kinds.add("invented-key")
            continue
        try:
            errors = list(_validator(json.dumps(props[key], sort_keys=True)).iter_errors(value))
        except (ValueError, TypeError, RecursionError):
            continue
        if errors:
            kinds.add("wrong-type" if any(e.validator == "type" for e in errors) else "schema-violation")
    return kinds


def calls_error_type(record: Mapping[str, Any], completion: str, breakdown: Any) -> str | None:
    """Structure: ``extra-text`` (calls inside prose), else the class of the first entry that is not a call
    object (``wrong-type``, ``missing-key``, ``invented-key``), ``schema-violation`` for an empty or
    too long list. Format: a call to a tool not offered is ``invented-key``; otherwise the arguments'
    problems, in the order missing-key, invented-key, wrong-type, schema-violation."""
    failing = first_failing_component(breakdown.components)
    if failing not in ("structure", "format"):
        return None
    try:
        entries = parse_completion(completion)
    except ValueError:
        entries = None
    if failing == "structure":
        if entries is None:
            return "extra-text" if json_with_extra_text(completion) else None
        if not entries or len(entries) > MAX_CALLS:
            return "schema-violation"
        return next((kind for kind in map(_entry_kind, entries) if kind is not None), None)
    if not entries:
        return None
    tools = {tool.get("name"): tool for tool in record.get("tools", []) if isinstance(tool, Mapping)}
    kinds: set[str] = set()
    for entry in entries:
        call = as_call(entry)
        if call is None:
            kinds.add(_entry_kind(entry) or "schema-violation")
        elif call.name not in tools:
            kinds.add("invented-key")
        else:
            kinds |= _arguments_kinds(call.arguments, tools[call.name])
    return next((kind for kind in _PRECEDENCE if kind in kinds), None)
