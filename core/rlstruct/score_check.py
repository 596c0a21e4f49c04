"""Checking what a reward component returns.

A component's score must be a real number in [0, 1]. Anything else (5.0, ``inf``, NaN, ``True``,
the string ``"0.5"``, ``None``) is a bug in the component; it used to be clamped or coerced
without a word. :func:`checked_score` raises :class:`BadComponentScore` instead, and the reward
core handles it like any exception a component raises: that component scores 0 and the error,
naming the component and the value, is counted and reported.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

ROUNDING_SLACK = 1e-9
"""How far outside [0, 1] a score may stray by float rounding; such a score is clamped back in."""


class BadComponentScore(ValueError):
    """A reward component returned something other than a number in [0, 1]."""


def checked_score(value: Any, component: str) -> float:
    """``value`` as a float in [0, 1], or :class:`BadComponentScore` naming ``component`` and the value.

    Accepts ``int`` and ``float`` (and other real number types such as numpy scalars), but not
    ``bool``: a component returning ``True`` has almost certainly forgotten to compute a score.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise BadComponentScore(
            f"{component} returned {_shown(value)} ({type(value).__name__}), not a number in [0, 1]"
        )
    number = float(value)
    if math.isnan(number):
        raise BadComponentScore(f"{component} returned NaN, not a number in [0, 1]")
    if not (math.isfinite(number) and -ROUNDING_SLACK <= number <= 1.0 + ROUNDING_SLACK):
        raise BadComponentScore(f"{component} returned {_shown(value)}, outside [0, 1]")
    return min(1.0, max(0.0, number))


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
