"""Error taxonomy: one ``error_type`` per completion, saying *how* it failed, from a small fixed set.

A reward breakdown says how much each component scored; a user comparing checkpoints also wants to
know what kind of mistake a model makes (prose around the JSON? an invented key? a wrong number?).
Every completion gets one class from :data:`ERROR_TYPES`, or ``None`` when it scored 1.0 on every
hierarchical component the task implements:

- the core derives a default from the breakdown alone (:func:`default_error_type`): the first
  hierarchical component below 1.0 decides the group, and whether the completion was empty or cut
  off at ``max_new_tokens`` refines a structure failure;
- a task may refine it with ``Task.error_type(record, completion, breakdown)`` (see docs/plugins.md),
  e.g. a JSON task telling ``extra-text`` from ``not-parseable`` or naming ``missing-key``.

Extra reward components (``[reward.extras]``, e.g. ``length``) are shaping terms, not correctness, and
never decide the class. A component weighted 0 still does: it is scored like any other.

The refinement runs plugin code on untrusted model output, so :func:`classify_completions` runs it in
a worker bounded like reward components: the reward pool's long-lived workers when it is given one
(:meth:`rlstruct.sandbox.RewardPool.refine`; training and eval do), else a worker forked for the call
(:func:`rlstruct.sandbox.bounded_map`). A refinement that raises, hangs or returns a name outside the
set keeps the default.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from .json_safety import MAX_COMPLETION_CHARS, MAX_JSON_DEPTH, nesting_depth
from .task import COMPONENTS, Record, Task, overrides

if TYPE_CHECKING:  # sandbox imports this module (the workers refine with refine_error_type)
    from .sandbox import RewardPool

__all__ = [
    "ERROR_TYPES",
    "ErrorType",
    "classify_completions",
    "count_error_types",
    "default_error_type",
    "first_failing_component",
    "json_with_extra_text",
]


@dataclass(frozen=True)
class ErrorType:
    """One class of the taxonomy: the component group it belongs to and what it means."""

    name: str
    group: str
    meaning: str


_TYPES = (
    ErrorType("empty", "structure", "the completion is empty or only white space"),
    ErrorType("truncated", "structure", "cut off at the length cap (no end of sequence) before it parsed"),
    ErrorType("not-parseable", "structure", "does not parse in the task's format"),
    ErrorType("extra-text", "structure", "holds a parseable value, but with prose or other text around it"),
    ErrorType("missing-key", "format", "a required key, element, attribute or argument is missing"),
    ErrorType("invented-key", "format", "a key, element, attribute, argument or tool the schema does not declare"),
    ErrorType("wrong-type", "format", "a value of the wrong type (a string for a number, a list for an object)"),
    ErrorType("schema-violation", "format", "another schema constraint is broken (enum, range, pattern, length...)"),
    ErrorType("wrong-value", "content", "well formed, but disagrees with the reference"),
    ErrorType("implausible", "validity", "well formed, but fails a semantic plausibility check"),
    ErrorType("reward-error", "scoring", "the first failing component raised or timed out, so the class is unknown"),
)

ERROR_TYPES: dict[str, ErrorType] = {t.name: t for t in _TYPES}
"""Every ``error_type`` value, in documentation order (``None`` means no error)."""

DEFAULT_FOR_COMPONENT: Mapping[str, str] = {
    "structure": "not-parseable",
    "format": "schema-violation",
    "content": "wrong-value",
    "validity": "implausible",
}
"""The core's class when a component is the first below 1.0 (and the task does not refine it)."""

FINAL = frozenset({"empty", "truncated", "reward-error"})
"""Defaults a task is not asked to refine: the completion itself (or the scoring) already says why."""


def first_failing_component(components: Mapping[str, float | None]) -> str | None:
    """The first hierarchical component (gating order) scoring below 1.0; ``None`` when none does.

    A component the task does not implement (``None``) is passed over, like gating does.
    """
    for name in COMPONENTS:
        score = components.get(name)
        if score is not None and score < 1.0:
            return name
    return None


def default_error_type(
    components: Mapping[str, float | None], errors: Mapping[str, str], completion: str, truncated: bool
) -> str | None:
    """The core's class of one completion from its breakdown (see the module docstring).

    ``errors`` maps a component that raised or timed out to its message (``Breakdown.errors``).
    """
    failing = first_failing_component(components)
    if failing is None:
        return None
    if failing in errors:
        return "reward-error"
    if failing == "structure":
        if not completion.strip():
            return "empty"
        return "truncated" if truncated else "not-parseable"
    return DEFAULT_FOR_COMPONENT[failing]


def count_error_types(types: Sequence[str | None]) -> dict[str, int]:
    """``{error_type: count}`` for the classes present, in :data:`ERROR_TYPES` order (``None`` not counted)."""
    counts = {name: 0 for name in ERROR_TYPES}
    for value in types:
        if value is not None:
            counts[value] = counts.get(value, 0) + 1
    return {name: count for name, count in counts.items() if count}


def refine_error_type(task: Task, record: Record, completion: str, breakdown: Any, default: str) -> str:
    """``task.error_type(record, completion, breakdown)`` when it names a class of :data:`ERROR_TYPES`, else
    ``default`` (also when it raises). Unbounded: callers run it in a worker (:func:`classify_completions`)."""
    try:
        refined = task.error_type(record, completion, breakdown)
    except Exception:  # noqa: BLE001 - a refinement is advice: a failing one keeps the default
        return default
    return refined if isinstance(refined, str) and refined in ERROR_TYPES else default


def _refine(task: Task, item: tuple[Record, str, Any, str]) -> str:
    """:func:`refine_error_type` of one ``(record, completion, breakdown, default)`` item (for ``bounded_map``)."""
    return refine_error_type(task, *item)


def classify_completions(
    task: Task,
    records: Sequence[Record],
    completions: Sequence[str],
    breakdowns: Sequence[Any],
    truncated: Sequence[bool],
    limits: Any = None,
    *,
    pool: RewardPool | None = None,
    route: str | None = None,
) -> list[str | None]:
    """One ``error_type`` per completion: the core default, refined by ``task.error_type`` when the task has it.

    ``breakdowns`` are :class:`rlstruct.reward.Breakdown` objects; ``limits`` a
    :class:`rlstruct.sandbox.SandboxLimits` bounding each refinement call (default: 2 s, 1024 MiB, in
    one forked worker; ``workers = 0`` runs it inline, unbounded). A refinement that overruns keeps
    the default for that completion, and the others are still refined.

    ``pool``: a :class:`rlstruct.sandbox.RewardPool` holding ``task`` under ``route`` (default
    ``task.name``). The refinement then runs in the pool's long-lived workers (:meth:`RewardPool.refine`,
    bounded by the pool's limits; ``limits`` is not used) instead of a worker forked for this call: a
    fork after a large model is loaded copies its page tables and, while it lives, counts its memory
    again. A pool without that route is not used. ``ValueError`` when the route holds another task.
    """
    types = [
        default_error_type(b.components, b.errors, c, bool(t))
        for b, c, t in zip(breakdowns, completions, truncated, strict=True)
    ]
    if not overrides(task, "error_type"):
        return types
    todo = [i for i, value in enumerate(types) if value is not None and value not in FINAL]
    if not todo:
        return types
    if pool is not None and _refine_in_pool(pool, task.name if route is None else route, task, records, completions, breakdowns, types, todo):
        return types
    from functools import partial

    from .sandbox import BoundedCallError, SandboxLimits, bounded_map

    bounds = SandboxLimits(
        timeout_s=getattr(limits, "timeout_s", 2.0), memory_mb=getattr(limits, "memory_mb", 1024),
        workers=min(1, getattr(limits, "workers", 1)),
    )
    while todo:
        items = [(records[i], completions[i], breakdowns[i], types[i]) for i in todo]
        answered = 0
        try:
            for value in bounded_map(partial(_refine, task), items, bounds):
                types[todo[answered]] = value
                answered += 1
            break
        except BoundedCallError as exc:
            # that one keeps its default; the worker answers a batch at once, so the ones before it in the
            # batch may be unanswered: run them again, with everything after it
            todo = todo[answered : exc.index] + todo[exc.index + 1 :]
    return types


def _refine_in_pool(
    pool: RewardPool, route: str, task: Task, records: Sequence[Record], completions: Sequence[str],
    breakdowns: Sequence[Any], types: list[str | None], todo: list[int],
) -> bool:
    """Refine ``types[i]`` for every ``i`` in ``todo`` with ``pool.refine``; ``False`` (nothing done) when the
    pool does not hold ``route``."""
    held = pool.routes.get(route)
    if held is None:
        return False
    if held[0] is not task:  # the worker would refine with its own task: never silently another one
        raise ValueError(f"route {route!r} of the reward pool holds task {held[0].name!r}, not the task "
                         f"{task.name!r} being classified; pass the route that holds it")
    refined = pool.refine([(route, records[i], completions[i], breakdowns[i], types[i]) for i in todo])
    for i, value in zip(todo, refined, strict=True):
        types[i] = value
    return True


# --------------------------------------------------------------------------------------------
# Helpers for tasks refining JSON failures
# --------------------------------------------------------------------------------------------

MAX_EMBEDDED_STARTS = 16
"""How many opening brackets :func:`json_with_extra_text` tries as the start of the embedded value."""


def json_with_extra_text(text: str) -> bool:
    """Whether ``text`` holds a complete JSON object or array with other text before or after it.

    The usual way a structured-output model fails while "knowing" the format: ``Sure! {"a": 1}`` or
    a fenced block followed by an explanation. Bounded like :mod:`rlstruct.json_safety` (length and
    nesting checked before decoding; at most :data:`MAX_EMBEDDED_STARTS` start positions tried).
    """
    if not isinstance(text, str) or len(text) > MAX_COMPLETION_CHARS:
        return False
    if nesting_depth(text, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        return False
    decoder = json.JSONDecoder()
    tries = 0
    for index, char in enumerate(text):
        if char not in "{[":
            continue
        tries += 1
        if tries > MAX_EMBEDDED_STARTS:
            return False
        try:
            _, end = decoder.raw_decode(text, index)
        except (ValueError, RecursionError):
            continue
        return bool(_outside_fence(text[:index]).strip() or _outside_fence(text[end:]).strip())
    return False


def _outside_fence(text: str) -> str:
    """``text`` without markdown fence markers (```` ``` ```` / ```` ```json ````): a fence alone is not extra text."""
    return text.replace("```json", "").replace("```JSON", "").replace("```", "")
