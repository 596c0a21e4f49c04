"""Small scoring helpers for reward components: partial credit and text comparison.

Pure functions with no parsing and no I/O, re-exported by ``rlstruct`` for plugin authors.
"""

from __future__ import annotations

from typing import Any


def clamp01(value: Any) -> float:
    """Coerce a component's return value into [0, 1]; NaN and non-numbers raise ``ValueError``."""
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ValueError(f"reward component returned {type(value).__name__}, not a number") from exc
    if number != number:
        raise ValueError("reward component returned NaN")
    return min(1.0, max(0.0, number))


def f1(predicted: set[Any] | list[Any], reference: set[Any] | list[Any]) -> float:
    """Set F1 between two collections (1.0 when both are empty)."""
    pred, ref = set(predicted), set(reference)
    if not pred and not ref:
        return 1.0
    if not pred or not ref:
        return 0.0
    hits = len(pred & ref)
    if hits == 0:
        return 0.0
    precision, recall = hits / len(pred), hits / len(ref)
    return 2 * precision * recall / (precision + recall)


def normalize_text(value: Any) -> str:
    """Lower-case, collapse white space, strip punctuation at the ends (for text comparison)."""
    return " ".join(str(value).lower().split()).strip(" .,;:!?")
