"""Compare predicted tool calls with the expected ones, in the spirit of the BFCL AST checker.

Rules (documented in docs/tasks/function-calls.md):

* Calls match only when the tool names are identical.
* Numbers: an integer is accepted where a float is expected (``3`` for ``3.0``); a float is
  *not* accepted where the parameter is declared ``integer`` (``3.0`` for ``3``). Booleans are
  never numbers.
* Strings compare after normalisation: case-folded, white space and the punctuation
  ``, . ; : ! ? ' " ` - _ / ( ) * ^`` removed (``"New York, NY"`` == ``"new york ny"``).
* Lists compare element-wise, in order, with equal length; objects compare key by key,
  recursively, with the same optional-parameter rule as the top level.
* A parameter that is not required may be left out when the value on the other side equals its
  schema ``default`` (or is ``null`` when there is no default), in both directions.
* Parallel calls are matched order-insensitively by the best one-to-one assignment.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

from .calls import Call

__all__ = ["best_assignment_total", "call_pair_score", "normalize_string", "objects_match", "values_match"]

_DROP = frozenset(",.;:!?'\"`-_/()*^")
MAX_EXACT_ASSIGNMENT = 8
"""Exact best assignment when the smaller side has at most this many calls, greedy above."""


def normalize_string(text: str) -> str:
    """Case-fold and drop white space and light punctuation (see module docstring)."""
    folded = text.casefold()
    reduced = "".join(ch for ch in folded if not ch.isspace() and ch not in _DROP)
    return reduced if reduced else folded.strip()


def _types(schema: Mapping[str, Any]) -> set[str]:
    kind = schema.get("type")
    if isinstance(kind, str):
        return {kind}
    if isinstance(kind, list):
        return {k for k in kind if isinstance(k, str)}
    return set()


def _numbers_equal(expected: int | float, predicted: int | float) -> bool:
    if expected == predicted:
        return True
    try:
        return math.isclose(float(expected), float(predicted), rel_tol=1e-9, abs_tol=1e-12)
    except OverflowError:
        return False


def _defaults_equal(value: Any, schema: Mapping[str, Any]) -> bool:
    """Whether ``value`` equals the schema default (``null`` counts as default when none is set)."""
    if "default" not in schema:
        return value is None
    default = schema["default"]
    if values_match(default, value, schema):
        return True
    # Some data sets write scalar defaults as strings ("10" for an int parameter).
    if isinstance(default, str) and len(default) <= 40:
        if isinstance(value, bool):
            return default.strip().lower() == str(value).lower()
        if isinstance(value, (int, float)):
            try:
                return _numbers_equal(float(default), value)
            except (ValueError, OverflowError):
                return False
    return False


def objects_match(
    expected: Mapping[str, Any], predicted: Mapping[str, Any], schema: Mapping[str, Any]
) -> tuple[int, int]:
    """Compare two argument objects key by key; return ``(matching keys, keys compared)``."""
    props = schema.get("properties") if isinstance(schema.get("properties"), Mapping) else {}
    required = schema.get("required") if isinstance(schema.get("required"), list) else []
    extra = schema.get("additionalProperties")
    extra_schema = extra if isinstance(extra, Mapping) else {}
    keys = list(dict.fromkeys([*expected, *predicted]))
    matched = 0
    for key in keys:
        sub = props.get(key, extra_schema)
        sub = sub if isinstance(sub, Mapping) else {}
        if key in expected and key in predicted:
            ok = values_match(expected[key], predicted[key], sub)
        elif key in required:
            ok = False
        elif key in expected:
            ok = _defaults_equal(expected[key], sub)
        else:
            ok = _defaults_equal(predicted[key], sub)
        matched += ok
    return matched, len(keys)


def values_match(expected: Any, predicted: Any, schema: Mapping[str, Any] | None = None) -> bool:
    """Whether ``predicted`` matches ``expected`` under the rules in the module docstring."""
    schema = schema if isinstance(schema, Mapping) else {}
    if isinstance(expected, bool) or isinstance(predicted, bool):
        return isinstance(expected, bool) and isinstance(predicted, bool) and expected == predicted
    if expected is None or predicted is None:
        return expected is None and predicted is None
    if isinstance(expected, (int, float)):
        if not isinstance(predicted, (int, float)):
            return False
        if isinstance(expected, int) and isinstance(predicted, float):
            kinds = _types(schema)
            if kinds and "number" not in kinds:
                return False  # a float where an integer is declared
        return _numbers_equal(expected, predicted)
    if isinstance(expected, str):
        return isinstance(predicted, str) and normalize_string(expected) == normalize_string(predicted)
    if isinstance(expected, list):
        if not isinstance(predicted, list) or len(expected) != len(predicted):
            return False
        prefix = schema.get("prefixItems") if isinstance(schema.get("prefixItems"), list) else []
        items = schema.get("items") if isinstance(schema.get("items"), Mapping) else {}
        for index, (exp, pred) in enumerate(zip(expected, predicted)):
            sub = prefix[index] if index < len(prefix) and isinstance(prefix[index], Mapping) else items
            if not values_match(exp, pred, sub):
                return False
        return True
    if isinstance(expected, dict):
        if not isinstance(predicted, dict):
            return False
        matched, total = objects_match(expected, predicted, schema)
        return matched == total
    return expected == predicted


def call_pair_score(expected: Call, predicted: Call, parameters: Mapping[str, Any] | None) -> float:
    """Score one predicted call against one expected call.

    1.0 when the call matches fully; for the same tool with some arguments wrong, half the share
    of argument keys that match; 0.0 for a different tool.
    """
    if expected.name != predicted.name:
        return 0.0
    matched, total = objects_match(expected.arguments, predicted.arguments, parameters or {})
    if matched == total:
        return 1.0
    return 0.5 * matched / total


def best_assignment_total(scores: Sequence[Sequence[float]]) -> float:
    """Largest total score of a one-to-one assignment between rows and columns.

    Exact (dynamic programming over the smaller side) when that side has at most
    :data:`MAX_EXACT_ASSIGNMENT` items, greedy by descending score otherwise.
    """
    if not scores or not scores[0]:
        return 0.0
    if len(scores) > len(scores[0]):
        scores = [list(column) for column in zip(*scores)]
    rows, cols = len(scores), len(scores[0])
    if rows > MAX_EXACT_ASSIGNMENT:
        pairs = sorted(
            ((scores[i][j], i, j) for i in range(rows) for j in range(cols) if scores[i][j] > 0),
            reverse=True,
        )
        used_rows: set[int] = set()
        used_cols: set[int] = set()
        total = 0.0
        for score, i, j in pairs:
            if i not in used_rows and j not in used_cols:
                used_rows.add(i)
                used_cols.add(j)
                total += score
        return total
    best: dict[int, float] = {0: 0.0}
    for j in range(cols):
        column = [(i, scores[i][j]) for i in range(rows) if scores[i][j] > 0]
        if not column:
            continue
        updated = dict(best)
        for mask, value in best.items():
            for i, score in column:
                bit = 1 << i
                if not mask & bit:
                    candidate = value + score
                    if candidate > updated.get(mask | bit, -1.0):
                        updated[mask | bit] = candidate
        best = updated
    return max(best.values())
