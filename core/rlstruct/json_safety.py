"""Bounded JSON parsing for untrusted model output, shared by task plugins.

Model output is hostile input. These helpers never ``eval``, bound size and nesting *before*
handing text to a recursive parser, and reject non-standard JSON literals (NaN, Infinity).
The XML counterpart is :mod:`rlstruct.xml_safety`; the public names are re-exported by ``rlstruct``.
"""

from __future__ import annotations

import json
import re
from typing import Any

MAX_COMPLETION_CHARS = 100_000
"""Completions longer than this are not parsed at all (structure 0)."""
MAX_JSON_DEPTH = 64
"""Deeper JSON nesting is rejected before parsing (structure 0)."""
MAX_INT_DIGITS = 100
"""Integers with more digits than this are rejected (they are never a plausible answer)."""


class UnsafeInput(ValueError):
    """The text was refused before parsing (too long, too deep, bad literal...)."""


def nesting_depth(text: str, limit: int) -> int:
    """Return the bracket nesting depth of ``text`` (ignoring brackets inside JSON strings).

    Stops counting once ``limit`` is exceeded, so it is linear time and constant memory.
    """
    depth = best = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > best:
                best = depth
                if best > limit:
                    return best
        elif ch in "]}":
            depth -= 1
    return best


def _reject_constant(name: str) -> Any:
    raise UnsafeInput(f"non-standard JSON literal {name}")


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise UnsafeInput(f"integer with {len(text)} digits")
    return int(text)


def _bounded_float(text: str) -> float:
    if len(text) > MAX_INT_DIGITS + 20:
        raise UnsafeInput(f"number literal of {len(text)} characters")
    value = float(text)
    if value != value or value in (float("inf"), float("-inf")):
        raise UnsafeInput(f"number {text[:20]} overflows")
    return value


def safe_json_loads(
    text: str, *, max_chars: int = MAX_COMPLETION_CHARS, max_depth: int = MAX_JSON_DEPTH
) -> Any:
    """Parse strict JSON from untrusted text, or raise :class:`UnsafeInput` / ``ValueError``.

    Refuses text over ``max_chars``, nesting over ``max_depth``, ``NaN``/``Infinity`` literals,
    integers over :data:`MAX_INT_DIGITS` digits and floats that overflow to infinity.
    """
    if not isinstance(text, str):
        raise UnsafeInput("completion is not text")
    if len(text) > max_chars:
        raise UnsafeInput(f"text of {len(text)} characters exceeds {max_chars}")
    if nesting_depth(text, max_depth) > max_depth:
        raise UnsafeInput(f"nesting deeper than {max_depth}")
    return json.loads(
        text,
        parse_constant=_reject_constant,
        parse_int=_bounded_int,
        parse_float=_bounded_float,
    )


_FENCE = re.compile(r"\A\s*```[ \t]*(?:json|JSON)?[ \t]*\r?\n(.*?)\r?\n?[ \t]*```\s*\Z", re.S)


def strip_json_fence(text: str) -> str:
    """Return the body of a completion that is one fenced code block, else the stripped text.

    Accepted wrapping, and nothing more: surrounding white space, and a single markdown fence
    (```` ```json ```` or a bare ```` ``` ````) around the whole completion. Prose before or after
    the JSON is *not* accepted: a structured-output model should emit the object alone.
    """
    if len(text) > MAX_COMPLETION_CHARS:
        return text
    match = _FENCE.match(text)
    if match:
        return match.group(1).strip()
    return text.strip()


def parse_json_completion(text: str, **kwargs: Any) -> Any:
    """:func:`strip_json_fence` then :func:`safe_json_loads`."""
    return safe_json_loads(strip_json_fence(text), **kwargs)
