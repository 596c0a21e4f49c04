"""The core's own plugin: the ``length`` reward component (the paper's fifth reward term).

Registered through the ``rlstruct`` entry point group exactly like a third-party plugin.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from .hookspecs import hookimpl
from .task import Record, RewardComponent


def length_score(record: Record, completion: str, params: Mapping[str, Any]) -> float:
    """1.0 up to ``max_chars`` characters, then falling linearly to 0 at ``zero_at`` × ``max_chars``."""
    limit = float(params["max_chars"])
    zero_at = float(params["zero_at"]) * limit
    size = len(completion)
    if size <= limit:
        return 1.0
    if size >= zero_at or zero_at <= limit:
        return 0.0
    return (zero_at - size) / (zero_at - limit)


LENGTH = RewardComponent(
    name="length",
    description="Penalise completions longer than max_chars characters (1 within, linear down to 0 at zero_at x max_chars).",
    score=length_score,
    defaults={"max_chars": 2000, "zero_at": 2.0},
)


@hookimpl
def register_rewards(register: Callable[[RewardComponent], None]) -> None:
    register(LENGTH)
