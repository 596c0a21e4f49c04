"""Hierarchical reward: gating, weighting and error capture around a task's components.

The total reward is the weighted mean of the four hierarchical components (structure → format →
content → validity, each gated on the one before) and of any extra components a config adds::

    reward = Σ w_c · score_c / Σ w_c          (always in [0, 1])

A component that raises, returns NaN or a non-number scores 0 and its error is recorded; it never
propagates. Time and memory bounds are applied one level up, by :mod:`rlstruct.sandbox`.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Mapping

from .safety import clamp01
from .task import COMPONENTS, Record, RewardComponent, Task


class RewardConfigError(ValueError):
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

        ``extras`` maps a registered component name to ``{"weight": w, **params}``.
        """
        merged = dict(task.default_weights)
        for key, value in (weights or {}).items():
            if key not in COMPONENTS:
                raise RewardConfigError(
                    f"{where}.weights.{key}: unknown component (expected one of {', '.join(COMPONENTS)})"
                )
            merged[key] = _weight(value, f"{where}.weights.{key}")
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
    components: dict[str, float]
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
        """The ``rlstruct score`` output record."""
        return {"reward": self.reward, "components": dict(self.components), "error": self.error}


def _describe(exc: BaseException) -> str:
    frame = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    where = f" (at {frame.filename.rsplit('/', 1)[-1]}:{frame.lineno})" if frame else ""
    return f"{type(exc).__name__}: {str(exc)[:200]}{where}"


def iter_components(
    task: Task, spec: RewardSpec, record: Record, completion: str, skip: Iterable[int] = ()
) -> Iterator[tuple[str, float, str | None]]:
    """Yield ``(name, score, error)`` for every component in order (``spec.names``).

    Hierarchical components after a 0 are yielded as 0 without being run (gating). Components
    whose index is in ``skip`` (stopped by the sandbox's time bound on an earlier try) are yielded
    as 0 without being run; the sandbox records why.
    """
    skip = set(skip)
    parsed: Any = None
    gate_open = True
    for index, name in enumerate(COMPONENTS):
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
            score = clamp01(score)
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
            yield term.component.name, clamp01(term.component.score(record, completion, term.params)), None
        except (Exception, RecursionError, MemoryError) as exc:
            yield term.component.name, 0.0, _describe(exc)


def combine(spec: RewardSpec, components: Mapping[str, float]) -> float:
    """Weighted mean of the component scores (missing ones count as 0)."""
    total = weight_sum = 0.0
    for name in COMPONENTS:
        w = spec.weights.get(name, 0.0)
        total += w * components.get(name, 0.0)
        weight_sum += w
    for term in spec.extras:
        total += term.weight * components.get(term.component.name, 0.0)
        weight_sum += term.weight
    return total / weight_sum if weight_sum > 0 else 0.0


def score_inline(task: Task, spec: RewardSpec, record: Record, completion: str) -> Breakdown:
    """Score one completion in this thread, without a time bound (tests and debugging only)."""
    components: dict[str, float] = {}
    errors: dict[str, str] = {}
    for name, score, error in iter_components(task, spec, record, completion):
        components[name] = score
        if error:
            errors[name] = error
    return Breakdown(reward=combine(spec, components), components=components, errors=errors)
