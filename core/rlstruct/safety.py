"""Compatibility module: the bounded JSON parsing and scoring helpers that used to live here.

Parsing moved to :mod:`rlstruct.json_safety`, the scoring helpers (:func:`clamp01`, :func:`f1`,
:func:`normalize_text`) to :mod:`rlstruct.scoring_helpers`. Plugins should import them from
``rlstruct`` itself (the public API); this module keeps ``rlstruct.safety`` imports working.
"""

from __future__ import annotations

from .json_safety import (
    MAX_COMPLETION_CHARS,
    MAX_INT_DIGITS,
    MAX_JSON_DEPTH,
    UnsafeInput,
    nesting_depth,
    parse_json_completion,
    safe_json_loads,
    strip_json_fence,
)
from .scoring_helpers import clamp01, f1, normalize_text

__all__ = [
    "MAX_COMPLETION_CHARS",
    "MAX_INT_DIGITS",
    "MAX_JSON_DEPTH",
    "UnsafeInput",
    "clamp01",
    "f1",
    "nesting_depth",
    "normalize_text",
    "parse_json_completion",
    "safe_json_loads",
    "strip_json_fence",
]
