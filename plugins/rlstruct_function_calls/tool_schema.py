"""Normalise tool definitions of several real-world shapes into one JSON-Schema form.

Every tool becomes::

    {"name": str, "description": str,
     "parameters": {"type": "object", "properties": {...}, "required": [...]}}

Accepted input shapes (see docs/tasks/function-calls.md for the full type table):

1. OpenAI style: ``{"type": "function", "function": {"name", "description", "parameters"}}``
   where ``parameters`` is a JSON Schema object.
2. Plain: ``{"name", "description", "parameters": <JSON Schema>}``.
3. Salesforce xLAM as released: ``parameters`` is a flat map from parameter name to
   ``{"description", "type", "default"}`` with a Python-style type string (``"int"``,
   ``"List[str]"``, ``"Dict[str, Any]"``, ``"str, optional"`` ...). ``", optional"`` marks the
   parameter optional; without it the parameter is required.

Berkeley Function Calling Leaderboard documents (``"type": "dict"`` at the top, ``float``,
``tuple``, ``any`` ... as property types) are JSON-Schema-like and go through shape 1/2.

Type names that cannot be mapped are replaced by "any value" (no ``type`` constraint) and
counted; the count is returned so the loader can report it. Nothing here raises on an unknown
type; :class:`ToolShapeError` is raised only when a tool is not a tool at all.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

__all__ = ["ToolShapeError", "normalize_tool", "type_string_schema"]

MAX_TYPE_DEPTH = 8
"""Nesting bound for Python-style type strings and schema recursion."""

# Type names (lower-cased) and the JSON Schema type they stand for; ``None`` means "any value".
_SIMPLE_TYPES: dict[str, str | None] = {
    "string": "string", "str": "string", "char": "string", "text": "string",
    "integer": "integer", "int": "integer", "long": "integer", "short": "integer",
    "byte": "integer", "bigint": "integer",
    "number": "number", "float": "number", "double": "number", "decimal": "number",
    "boolean": "boolean", "bool": "boolean",
    "array": "array", "list": "array", "tuple": "array", "set": "array", "frozenset": "array",
    "sequence": "array", "iterable": "array", "arraylist": "array",
    "object": "object", "dict": "object", "map": "object", "mapping": "object",
    "hashmap": "object",
    "null": "null", "none": "null", "nonetype": "null",
    "any": None,
}

# JSON Schema keywords kept from JSON-Schema-like tool documents; anything else is dropped.
_KEPT_KEYWORDS = {
    "description", "default", "enum", "const", "title", "examples", "format",
    "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf",
    "minLength", "maxLength", "pattern", "minItems", "maxItems", "uniqueItems",
    "minProperties", "maxProperties", "required",
}

_NAME = re.compile(r"\A\s*([A-Za-z_][\w.]*)\s*(?:\[(.*)\])?\s*\Z", re.S)
_INT_LITERAL = re.compile(r"\A-?\d{1,18}\Z")


class ToolShapeError(ValueError):
    """A tool definition is not usable (no name, parameters of the wrong kind...)."""


def _split_top(text: str) -> list[str]:
    """Split ``text`` on commas that are not inside square brackets or quotes."""
    parts, depth, quote, start = [], 0, "", 0
    for index, ch in enumerate(text):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:index])
            start = index + 1
    parts.append(text[start:])
    return [part.strip() for part in parts]


def _literal_schema(args: list[str]) -> dict[str, Any] | None:
    values: list[Any] = []
    for arg in args:
        if len(arg) >= 2 and arg[0] == arg[-1] and arg[0] in "'\"":
            values.append(arg[1:-1])
        elif _INT_LITERAL.match(arg):
            values.append(int(arg))
        else:
            return None
    return {"enum": values} if values else None


def _type_expr_schema(expr: str, depth: int) -> tuple[dict[str, Any], int]:
    """Schema for one Python-style type expression (no ``, optional`` flags)."""
    match = _NAME.match(expr)
    if depth > MAX_TYPE_DEPTH or not match:
        return {}, 1
    name = match.group(1).rsplit(".", 1)[-1].lower()
    inner = match.group(2)
    args = _split_top(inner) if inner is not None and inner.strip() else []
    unknown = 0

    def sub(arg: str) -> dict[str, Any]:
        nonlocal unknown
        schema, count = _type_expr_schema(arg, depth + 1)
        unknown += count
        return schema

    if name == "optional" and len(args) == 1:
        return _with_null(sub(args[0])), unknown
    if name == "union" and args:
        return _union([sub(arg) for arg in args]), unknown
    if name == "literal":
        schema = _literal_schema(args)
        return (schema, 0) if schema else ({}, 1)
    if name not in _SIMPLE_TYPES:
        return {}, 1
    json_type = _SIMPLE_TYPES[name]
    if json_type is None:
        return {}, 0
    schema: dict[str, Any] = {"type": json_type}
    if json_type == "array" and args:
        if name == "tuple" and not (len(args) == 2 and args[1] == "..."):
            schema["prefixItems"] = [sub(arg) for arg in args]
            schema["minItems"] = schema["maxItems"] = len(args)
        else:
            items = sub(args[0])
            if items:
                schema["items"] = items
    elif json_type == "object" and len(args) == 2:
        sub(args[0])  # keys are always strings in JSON; still count unknown key types
        values = sub(args[1])
        if values:
            schema["additionalProperties"] = values
    return schema, unknown


def _with_null(schema: dict[str, Any]) -> dict[str, Any]:
    if not schema:
        return {}
    kind = schema.get("type")
    if isinstance(kind, str):
        return {**schema, "type": [kind, "null"]} if kind != "null" else schema
    return {"anyOf": [schema, {"type": "null"}]}


def _union(options: list[dict[str, Any]]) -> dict[str, Any]:
    if any(not option for option in options):
        return {}
    if all(set(option) == {"type"} and isinstance(option["type"], str) for option in options):
        kinds = list(dict.fromkeys(option["type"] for option in options))
        return {"type": kinds[0] if len(kinds) == 1 else kinds}
    return {"anyOf": options}


def type_string_schema(text: str) -> tuple[dict[str, Any], bool, int]:
    """Map a type string (``"int"``, ``"List[int], optional"``, ``"dict"``...) to JSON Schema.

    Returns ``(schema, optional, unknown_count)``. ``schema`` is ``{}`` (any value) for an
    unknown type; ``optional`` is true when a ``, optional`` flag follows the type. Other
    flags after a top-level comma (``default=...``) are ignored.
    """
    parts = _split_top(text[:500])
    optional = any(part.lower() == "optional" for part in parts[1:])
    schema, unknown = _type_expr_schema(parts[0], 0)
    return schema, optional, unknown


def _map_type_field(value: Any) -> tuple[dict[str, Any], int]:
    """Schema fragment for a JSON-Schema-like ``type`` field (string or list of strings)."""
    names = value if isinstance(value, list) else [value]
    kinds: list[str] = []
    extra: dict[str, Any] = {}
    unknown = 0
    permissive = False
    for name in names:
        if not isinstance(name, str):
            unknown += 1
            permissive = True
            continue
        fragment, _, count = type_string_schema(name)
        unknown += count
        if not fragment or "type" not in fragment:
            permissive = True
            if "enum" in fragment and len(names) == 1:
                return fragment, unknown
            continue
        kind = fragment["type"]
        kinds.extend(kind if isinstance(kind, list) else [kind])
        for key, item in fragment.items():
            if key != "type":
                extra.setdefault(key, item)
    if permissive or not kinds:
        return {}, unknown
    kinds = list(dict.fromkeys(kinds))
    return {"type": kinds[0] if len(kinds) == 1 else kinds, **extra}, unknown


def _normalize_schema(node: Any, depth: int = 0) -> tuple[dict[str, Any], int]:
    """Normalise one JSON-Schema-like node (BFCL type names mapped, unknown keys dropped)."""
    if isinstance(node, str):
        schema, _, unknown = type_string_schema(node)
        return schema, unknown
    if not isinstance(node, dict) or depth > MAX_TYPE_DEPTH:
        return {}, 0 if node is None or node is True else 1
    unknown = 0
    out: dict[str, Any] = {}
    if "type" in node:
        fragment, unknown = _map_type_field(node["type"])
        out.update(fragment)
    if node.get("nullable") is True and out:
        out = _with_null(out)
    for key in node:  # the document's own key order: iterating the set would depend on PYTHONHASHSEED
        if key in _KEPT_KEYWORDS:
            out[key] = node[key]
    if isinstance(out.get("required"), list):
        out["required"] = [name for name in dict.fromkeys(out["required"]) if isinstance(name, str)]
    elif "required" in out:
        del out["required"]
    if isinstance(node.get("properties"), dict):
        props = {}
        for name, sub in node["properties"].items():
            props[str(name)], count = _normalize_schema(sub, depth + 1)
            unknown += count
        out["properties"] = props
    if isinstance(node.get("items"), dict):
        out["items"], count = _normalize_schema(node["items"], depth + 1)
        unknown += count
    elif isinstance(node.get("items"), list):  # old-style tuple validation
        out["prefixItems"] = []
        for sub in node["items"]:
            schema, count = _normalize_schema(sub, depth + 1)
            out["prefixItems"].append(schema)
            unknown += count
    if isinstance(node.get("prefixItems"), list):
        out["prefixItems"] = []
        for sub in node["prefixItems"]:
            schema, count = _normalize_schema(sub, depth + 1)
            out["prefixItems"].append(schema)
            unknown += count
    extra = node.get("additionalProperties")
    if isinstance(extra, bool):
        out["additionalProperties"] = extra
    elif isinstance(extra, dict):
        out["additionalProperties"], count = _normalize_schema(extra, depth + 1)
        unknown += count
    for key in ("anyOf", "oneOf", "allOf"):
        if isinstance(node.get(key), list) and node[key]:
            options = []
            for sub in node[key]:
                schema, count = _normalize_schema(sub, depth + 1)
                options.append(schema)
                unknown += count
            out[key] = options
    return out, unknown


def _is_json_schema(params: dict[str, Any]) -> bool:
    """Tell a JSON Schema object from an xLAM flat parameter map."""
    if isinstance(params.get("type"), str):
        return True
    props = params.get("properties")
    # A flat map may hold a parameter called "properties": its value then has a string "type".
    return isinstance(props, dict) and not isinstance(props.get("type"), str)


def _from_json_schema(params: dict[str, Any]) -> tuple[dict[str, Any], list[str], int]:
    schema, unknown = _normalize_schema(params)
    top = params.get("type")
    if isinstance(top, str) and top.lower() not in ("object", "dict"):
        raise ToolShapeError(f"parameters: top-level type must be object, got {top!r}")
    props = schema.get("properties", {})
    required = [name for name in schema.get("required", []) if name in props]
    return props, required, unknown


def _from_flat_map(params: dict[str, Any]) -> tuple[dict[str, Any], list[str], int]:
    props: dict[str, Any] = {}
    required: list[str] = []
    unknown = 0
    for name, spec in params.items():
        if not isinstance(spec, dict):
            raise ToolShapeError(f"parameters.{name}: expected an object with description and type")
        kind = spec.get("type")
        schema: dict[str, Any]
        optional = False
        if isinstance(kind, str):
            schema, optional, count = type_string_schema(kind)
            unknown += count
        elif kind is None:
            schema = {}
        else:
            schema, count = _map_type_field(kind)
            unknown += count
        if isinstance(spec.get("description"), str):
            schema["description"] = spec["description"]
        if "default" in spec:
            schema["default"] = spec["default"]
        props[str(name)] = schema
        if not optional:
            required.append(str(name))
    return props, required, unknown


@lru_cache(maxsize=8192)
def _schema_problem(schema_json: str) -> str:
    """Why a parameter schema (as canonical JSON) is not valid Draft 2020-12, or ``""`` (cached:
    data sets repeat the same tools many times)."""
    try:
        Draft202012Validator.check_schema(json.loads(schema_json))
    except SchemaError as exc:
        return exc.message[:120]
    return ""


def normalize_tool(raw: Any) -> tuple[dict[str, Any], int]:
    """Normalise one tool of any accepted shape; return ``(tool, unknown_type_count)``.

    Raises :class:`ToolShapeError` when ``raw`` is not a tool (the message names the field).
    """
    if not isinstance(raw, dict):
        raise ToolShapeError("expected an object")
    body = raw
    if raw.get("type") == "function" and isinstance(raw.get("function"), dict):
        body = raw["function"]
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ToolShapeError("name: expected a non-empty string")
    description = body.get("description", "")
    if description is None:
        description = ""
    if not isinstance(description, str):
        raise ToolShapeError("description: expected a string")
    params = body.get("parameters")
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise ToolShapeError("parameters: expected an object")
    if _is_json_schema(params):
        props, required, unknown = _from_json_schema(params)
    else:
        props, required, unknown = _from_flat_map(params)
    parameters = {"type": "object", "properties": props, "required": required}
    try:
        problem = _schema_problem(json.dumps(parameters, sort_keys=True))
    except (TypeError, ValueError):
        problem = "not JSON-serialisable"
    if problem:
        raise ToolShapeError(f"parameters: not a valid JSON Schema ({problem})")
    return {"name": name, "description": description, "parameters": parameters}, unknown
