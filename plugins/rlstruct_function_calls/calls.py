"""Parse a completion into tool calls.

Accepted completion forms, and nothing more (surrounding white space is always allowed):

* a JSON list of call objects: ``[{"name": "f", "arguments": {...}}, ...]``;
* one call object: ``{"name": "f", "arguments": {...}}``;
* either of those inside one markdown fence (```` ```json ```` or bare ```` ``` ````) around the
  whole completion;
* one or more ``<tool_call>...</tool_call>`` tags as Hermes/Qwen chat templates emit them, with
  only white space between and around the tags; each tag holds one call object or a JSON list of
  them (no fence inside a tag, no fence around tags, no nested or unclosed tags).

A *call object* is a JSON object with exactly two keys: ``"name"`` (a non-empty string) and
``"arguments"`` (or its synonym ``"parameters"``), whose value is a JSON object or a string
holding a JSON-encoded object. Any other entry is kept as "not call-shaped" (``None``) so the
reward can charge for it. All JSON goes through :func:`rlstruct.safe_json_loads`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, NamedTuple

from rlstruct import MAX_COMPLETION_CHARS, UnsafeInput, safe_json_loads, strip_json_fence

__all__ = ["Call", "ParsedCalls", "MAX_CALLS", "as_call", "call_key", "parse_calls", "parse_completion"]

MAX_CALLS = 64
"""Completions with more entries than this are refused (structure 0)."""

OPEN_TAG = "<tool_call>"
CLOSE_TAG = "</tool_call>"


class Call(NamedTuple):
    """One tool call: the tool name and its arguments."""

    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class ParsedCalls:
    """A parsed completion: every entry in order, ``None`` where it is not call-shaped."""

    entries: tuple[Call | None, ...]

    @property
    def calls(self) -> list[Call]:
        """The call-shaped entries only."""
        return [entry for entry in self.entries if entry is not None]


def as_call(obj: Any) -> Call | None:
    """Return ``obj`` as a :class:`Call`, or ``None`` when it is not call-shaped."""
    if not isinstance(obj, dict) or len(obj) != 2 or "name" not in obj:
        return None
    name = obj["name"]
    if not isinstance(name, str) or not name:
        return None
    if "arguments" in obj:
        arguments = obj["arguments"]
    elif "parameters" in obj:
        arguments = obj["parameters"]
    else:
        return None
    if isinstance(arguments, str):
        try:
            arguments = safe_json_loads(arguments)
        except (ValueError, RecursionError):
            return None
    if not isinstance(arguments, dict):
        return None
    return Call(name, arguments)


def call_key(call: Call) -> str:
    """A canonical text key of a call (name plus sorted-key JSON of the arguments)."""
    return call.name + "\x00" + json.dumps(call.arguments, sort_keys=True, ensure_ascii=True)


def _tag_bodies(text: str) -> list[str] | None:
    """Bodies of ``<tool_call>`` tags; ``None`` if the tags are malformed or text lies outside."""
    bodies: list[str] = []
    pos, end = 0, len(text)
    while True:
        while pos < end and text[pos].isspace():
            pos += 1
        if pos == end:
            return bodies
        if not text.startswith(OPEN_TAG, pos):
            return None
        start = pos + len(OPEN_TAG)
        close = text.find(CLOSE_TAG, start)
        if close < 0:
            return None
        body = text[start:close]
        if OPEN_TAG in body:
            return None
        bodies.append(body.strip())
        pos = close + len(CLOSE_TAG)


def _json_entries(text: str) -> list[Any] | None:
    try:
        value = safe_json_loads(text)
    except (ValueError, RecursionError):  # UnsafeInput and JSONDecodeError are ValueErrors
        return None
    return value if isinstance(value, list) else [value]


def parse_completion(completion: str) -> list[Any] | None:
    """Return the raw JSON entries of a completion (see module docstring), or ``None``.

    ``None`` means the completion is not in an accepted form (or over the size bounds).
    """
    if not isinstance(completion, str) or len(completion) > MAX_COMPLETION_CHARS:
        return None
    if completion.lstrip().startswith(OPEN_TAG):
        bodies = _tag_bodies(completion)
        if not bodies:
            return None
        entries: list[Any] = []
        for body in bodies:
            found = _json_entries(body)
            if found is None:
                return None
            entries.extend(found)
            if len(entries) > MAX_CALLS:
                return None
        return entries
    return _json_entries(strip_json_fence(completion))


def parse_calls(completion: str) -> ParsedCalls | None:
    """Parse a completion into :class:`ParsedCalls`; ``None`` if unparsable or too many entries."""
    try:
        entries = parse_completion(completion)
    except UnsafeInput:
        return None
    if entries is None or len(entries) > MAX_CALLS:
        return None
    return ParsedCalls(tuple(as_call(entry) for entry in entries))
