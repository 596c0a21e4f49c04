"""Parsing a completion into a JSON value, and the record checks both tasks share.

Accepted wrapping, and nothing more (see :func:`rlstruct.strip_json_fence`): surrounding
white space and one markdown fence (```` ```json ```` or bare ```` ``` ````) around the *whole*
completion. Prose before or after the JSON fails to parse.
"""

from __future__ import annotations

from typing import Any, Mapping

from rlstruct import UnsafeInput, parse_json_completion
from rlstruct.task import RecordError


def parse_completion(completion: Any) -> Any:
    """The completion's JSON value, or raise ``ValueError`` (size, depth and numbers bounded)."""
    if not isinstance(completion, str):
        raise UnsafeInput("completion is not text")
    try:
        return parse_json_completion(completion)
    except RecursionError as exc:  # defensive: the depth bound should make this unreachable
        raise UnsafeInput("nesting too deep") from exc


def checked_record(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``raw`` after checking it is an object with a non-empty ``prompt`` string."""
    if not isinstance(raw, Mapping):
        raise RecordError(f"record: expected an object, got {type(raw).__name__}")
    prompt = raw.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise RecordError("prompt: missing or not a non-empty string")
    return dict(raw)
