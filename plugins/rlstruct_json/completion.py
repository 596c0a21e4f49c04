"""Parsing a completion into a JSON value, shared by both tasks.

Accepted wrapping, and nothing more (see :func:`rlstruct.safety.strip_json_fence`): surrounding
white space and one markdown fence (```` ```json ```` or bare ```` ``` ````) around the *whole*
completion. Prose before or after the JSON fails to parse.
"""

from __future__ import annotations

from typing import Any

from rlstruct.safety import UnsafeInput, parse_json_completion


def parse_completion(completion: Any) -> Any:
    """The completion's JSON value, or raise ``ValueError`` (size, depth and numbers bounded)."""
    if not isinstance(completion, str):
        raise UnsafeInput("completion is not text")
    try:
        return parse_json_completion(completion)
    except RecursionError as exc:  # defensive: the depth bound should make this unreachable
        raise UnsafeInput("nesting too deep") from exc
