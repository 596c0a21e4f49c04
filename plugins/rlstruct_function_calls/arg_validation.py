"""Check one call's arguments against its tool's parameter schema (JSON Schema Draft 2020-12).

A call is checked key by key over the union of the argument names it gives and the tool's
required parameter names. A key passes when the argument is present, is a declared parameter
(not invented) and its value validates against that parameter's schema; a required parameter
that is missing fails. The call's score is the share of keys that pass (1.0 for a call with no
arguments to a tool without required parameters). A call to a tool that was not provided
scores 0.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any, Mapping

from jsonschema import Draft202012Validator

from .calls import Call

__all__ = ["call_format_score"]


@lru_cache(maxsize=2048)
def _validator(schema_json: str) -> Draft202012Validator:
    return Draft202012Validator(json.loads(schema_json))


def _valid(value: Any, schema: Mapping[str, Any]) -> bool:
    if not schema:
        return True
    try:
        validator = _validator(json.dumps(schema, sort_keys=True))
        return bool(validator.is_valid(value))
    except (ValueError, TypeError, RecursionError):
        return False


def call_format_score(call: Call, tool: Mapping[str, Any] | None) -> float:
    """Share of the call's argument checks that pass (see module docstring); 0 for no tool."""
    if tool is None:
        return 0.0
    parameters = tool.get("parameters") or {}
    props = parameters.get("properties") or {}
    required = parameters.get("required") or []
    keys = list(dict.fromkeys([*call.arguments, *required]))
    if not keys:
        return 1.0
    passed = 0
    for key in keys:
        if key in call.arguments and key in props and _valid(call.arguments[key], props[key]):
            passed += 1
    return passed / len(keys)
