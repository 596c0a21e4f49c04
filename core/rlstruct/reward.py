"""Hierarchical reward: gating, weighting and error capture around a task's components.

The total reward is the weighted mean of the four hierarchical components (structure → format →
content → validity, each gated on the one before) and of any extra components a config adds::

    reward = Σ w_c · score_c / Σ w_c          (always in [0, 1])

A component that raises, returns NaN or a non-number scores 0 and its error is recorded; it never
propagates. Time and memory bounds are applied one level up, by :mod:`rlstruct.sandbox`.

A hierarchical component the task does not implement (see :func:`rlstruct.task.applicable_components`)
is *not applicable*: its weight is 0, its score is ``None`` (``null`` in JSON), it is left out of
the weighted mean, and gating passes over it to the next component.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Mapping

from .errors import UsageError
from .score_check import checked_score
from .task import COMPONENTS, Record, RewardComponent, Task, applicable_components


class RewardConfigError(UsageError, ValueError):
    """A reward weight or extra component in a config is wrong; the message names the key."""


@dataclass(frozen=True)
class ExtraTerm:
    """An extra component as used by one run: the component, its weight and its parameters."""

    component: RewardComponent
    weight: float
    params: Mapping[str, Any]


@dataclass(frozen=True)
class RewardSpec:
    """How one run combines components: weights of the four, plus extra terms in order."""

    weights: Mapping[str, float]
    extras: tuple[ExtraTerm, ...] = ()

    @property
    def names(self) -> list[str]:
        """Every component name in evaluation order."""
        return [*COMPONENTS, *(e.component.name for e in self.extras)]

    @classmethod
    def build(
        cls,
        task: Task,
        rewards: Mapping[str, RewardComponent],
        weights: Mapping[str, float] | None = None,
        extras: Mapping[str, Mapping[str, Any]] | None = None,
        where: str = "reward",
    ) -> "RewardSpec":
        """Resolve task defaults, weight overrides and extra components; validate every key.

        ``extras`` maps a registered component name to ``{"weight": w, **params}``. A component
        the task does not implement gets weight 0; a config giving it a weight above 0 is an error.
        """
        applicable = applicable_components(task)
        merged = {
            name: float(task.default_weights.get(name, 0.0)) if name in applicable else 0.0
            for name in COMPONENTS
        }
        for key, value in (weights or {}).items():
            if key not in COMPONENTS:
                raise RewardConfigError(
                    f"{where}.weights.{key}: unknown component (expected one of {', '.join(COMPONENTS)})"
                )
            merged[key] = _weight(value, f"{where}.weights.{key}")
            if key not in applicable and merged[key] > 0:
                raise RewardConfigError(
                    f"{where}.weights.{key}: task {task.name!r} has no {key} component (not applicable, "
                    "so its weight must be 0)"
                )
        terms = []
        for name, table in (extras or {}).items():
            if name not in rewards:
                known = ", ".join(sorted(rewards)) or "none registered"
                raise RewardConfigError(f"{where}.extras.{name}: unknown reward component (known: {known})")
            if name in COMPONENTS:
                raise RewardConfigError(f"{where}.extras.{name}: clashes with a hierarchical component")
            component = rewards[name]
            table = dict(table)
            weight = _weight(table.pop("weight", 1.0), f"{where}.extras.{name}.weight")
            params = dict(component.defaults)
            for key, value in table.items():
                if key not in component.defaults:
                    known = ", ".join(sorted(component.defaults)) or "none"
                    raise RewardConfigError(
                        f"{where}.extras.{name}.{key}: unknown parameter (known: weight, {known})"
                    )
                params[key] = value
            terms.append(ExtraTerm(component, weight, params))
        if sum(merged.values()) + sum(t.weight for t in terms) <= 0:
            raise RewardConfigError(f"{where}.weights: all weights are 0")
        return cls(weights=merged, extras=tuple(terms))


def _weight(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise RewardConfigError(f"{key}: weight must be a number >= 0, got {value!r}")
    return float(value)


@dataclass
class Breakdown:
    """The reward of one completion: total, every component, and what went wrong."""

    reward: float
    components: dict[str, float | None]
    """Component name -> score in [0, 1], or ``None`` for a component the task does not implement."""
    errors: dict[str, str] = field(default_factory=dict)
    """Component name -> error text, for components that raised or timed out."""
    timeouts: list[str] = field(default_factory=list)
    """Names of components stopped by the time bound."""

    @property
    def error(self) -> str | None:
        """All errors as one line (``None`` when every component ran cleanly)."""
        if not self.errors:
            return None
        return "; ".join(f"{name}: {text}" for name, text in self.errors.items())

    def to_json(self) -> dict[str, Any]:
        """The ``rlstruct score`` output record (a not-applicable component is ``null``)."""
        return {"reward": self.reward, "components": dict(self.components), "error": self.error}


def _describe(exc: BaseException) -> str:
    frame = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    where = f" (at {frame.filename.rsplit('/', 1)[-1]}:{frame.lineno})" if frame else ""
    return f"{type(exc).__name__}: {str(exc)[:200]}{where}"


def iter_components(
    task: Task, spec: RewardSpec, record: Record, completion: str, skip: Iterable[int] = ()
) -> Iterator[tuple[str, float | None, str | None]]:
    """Yield ``(name, score, error)`` for every component in order (``spec.names``).

    Hierarchical components after a 0 are yielded as 0 without being run (gating). A component
    the task does not implement is yielded as ``None`` and does not close the gate. Components
    whose index is in ``skip`` (stopped by the sandbox's time bound on an earlier try) are yielded
    as 0 without being run; the sandbox records why.
    """
    skip = set(skip)
    applicable = applicable_components(task)
    parsed: Any = None
    gate_open = True
    for index, name in enumerate(COMPONENTS):
        if name not in applicable:
            yield name, None, None
            continue
        if not gate_open or index in skip:
            gate_open = False
            yield name, 0.0, None
            continue
        try:
            if name == "structure":
                result = task.structure(record, completion)
                score, parsed = (result.score, result.value) if isinstance(result, tuple) else (result, None)
            else:
                score = getattr(task, name)(record, parsed)
            score = checked_score(score, name)
            error = None
        except (Exception, RecursionError, MemoryError) as exc:  # untrusted input: never propagate
            score, error = 0.0, _describe(exc)
        gate_open = score > 0.0
        yield name, score, error
    for index, term in enumerate(spec.extras, start=len(COMPONENTS)):
        if index in skip:
            yield term.component.name, 0.0, None
            continue
        try:
            value = term.component.score(record, completion, term.params)
            yield term.component.name, checked_score(value, term.component.name), None
        except (Exception, RecursionError, MemoryError) as exc:
            yield term.component.name, 0.0, _describe(exc)


def combine(spec: RewardSpec, components: Mapping[str, float | None]) -> float:
    """Weighted mean of the component scores (missing ones count as 0; ``None``, not applicable,
    is left out with its weight)."""
    total = weight_sum = 0.0
    weighted = [(name, spec.weights.get(name, 0.0)) for name in COMPONENTS]
    weighted += [(term.component.name, term.weight) for term in spec.extras]
    for name, w in weighted:
        score = components.get(name, 0.0)
        if score is None:
            continue
        total += w * score
        weight_sum += w
    return total / weight_sum if weight_sum > 0 else 0.0


def score_inline(task: Task, spec: RewardSpec, record: Record, completion: str) -> Breakdown:
    """Score one completion in this thread, without a time bound (tests and debugging only)."""
    components: dict[str, float | None] = {}
    errors: dict[str, str] = {}
    for name, score, error in iter_components(task, spec, record, completion):
        components[name] = score
        if error:
            errors[name] = error
    return Breakdown(reward=combine(spec, components), components=components, errors=errors)
