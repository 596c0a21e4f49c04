"""Structural agreement of two JSON values: F1 over their (path, leaf value) pairs.

Both values are flattened to ``{"/a/0/b": leaf}`` maps (JSON-pointer paths, array positions
included, so order inside arrays matters). Leaves are normalised before comparison: strings by
:func:`rlstruct.normalize_text` (case, spacing, end punctuation), numbers by value
(``2 == 2.0``, compared to 9 significant digits), booleans and ``null`` kept apart from numbers,
empty objects and arrays as leaves of their own.
"""

from __future__ import annotations

from typing import Any

from rlstruct import f1, normalize_text

MAX_PAIRS = 50_000
"""Flattening stops after this many leaves (a completion is at most 100 000 characters anyway)."""


def leaf_key(value: Any) -> tuple[str, Any]:
    """The normalised, hashable form of a leaf value."""
    if value is True or value is False:
        return ("bool", value)
    if value is None:
        return ("null", None)
    if isinstance(value, (int, float)):
        return ("number", f"{float(value):.9g}")
    if isinstance(value, str):
        return ("string", normalize_text(value))
    if isinstance(value, dict):
        return ("object", None)
    if isinstance(value, list):
        return ("array", None)
    return ("other", repr(value)[:100])


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def flatten(value: Any) -> dict[str, tuple[str, Any]]:
    """``{json-pointer path: leaf_key}`` for every leaf of ``value`` (iterative, bounded)."""
    out: dict[str, tuple[str, Any]] = {}
    stack: list[tuple[str, Any]] = [("", value)]
    while stack and len(out) < MAX_PAIRS:
        path, node = stack.pop()
        if isinstance(node, dict) and node:
            stack.extend((f"{path}/{_escape(str(key))}", item) for key, item in node.items())
        elif isinstance(node, list) and node:
            stack.extend((f"{path}/{index}", item) for index, item in enumerate(node))
        else:
            out[path] = leaf_key(node)
    return out


def structural_f1(predicted: Any, reference: Any) -> float:
    """F1 between the (path, normalised leaf) pair sets of ``predicted`` and ``reference``."""
    return f1(set(flatten(predicted).items()), set(flatten(reference).items()))
