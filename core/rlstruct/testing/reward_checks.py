"""Contract checks on a task's reward: reference scores 1.0, components gated and bounded, hostile
output scored fast and safely.

Each check takes the task and labelled records (``("train[3]", record)``), returns a one-line
summary of what it verified, and raises :class:`~rlstruct.testing.report.ContractFailure` listing
every problem otherwise.
"""

from __future__ import annotations

import math
import numbers
import secrets
import tempfile
from pathlib import Path
from typing import Any, Iterator, Sequence

from ..reward import Breakdown, RewardSpec, score_inline
from ..sandbox import RewardPool, SandboxLimits
from ..task import COMPONENTS, Record, Task, applicable_components
from .fuzz import fuzz_completions
from .hostile import generic_hostile_outputs, reference_mutations
from .inprocess import labelled, resolve_task
from .report import describe_exception, fail_if, short

Sample = tuple[str, Record]
"""A record with a label for messages, e.g. ``("test[4]", {...})``."""


def _references(task: Task, samples: Sequence[Sample], problems: list[str]) -> list[tuple[str, Record, str]]:
    found = []
    for label, record in samples:
        try:
            text = task.reference_completion(record)
        except Exception as exc:  # a task bug, reported like any other problem
            problems.append(f"{label}: reference_completion raised {describe_exception(exc)}")
            continue
        if text is None:
            continue
        if not isinstance(text, str):
            problems.append(f"{label}: reference_completion returned {type(text).__name__}, not str")
            continue
        found.append((label, record, text))
    return found


def breakdown_problems(task: Task, breakdown: Breakdown) -> list[str]:
    """What is wrong with one scored completion: errors, time-outs, scores out of [0, 1], broken
    gating (a component after a 0 that is not 0), a not-applicable component that is not ``None``."""
    problems = [f"{name}: {text}" for name, text in breakdown.errors.items()]
    applicable = applicable_components(task)
    gate_open = True
    for name in COMPONENTS:
        value = breakdown.components.get(name)
        if name not in applicable:
            if value is not None:
                problems.append(f"{name} is not implemented but scored {value!r} (want None)")
            continue
        if not _in_unit_interval(value):
            problems.append(f"{name} = {value!r} is outside [0, 1]")
            continue
        if not gate_open and value != 0.0:
            problems.append(f"{name} = {value} after a 0 (gating)")
        gate_open = gate_open and value > 0.0
    if not _in_unit_interval(breakdown.reward):
        problems.append(f"reward = {breakdown.reward!r} is outside [0, 1]")
    return problems


def _in_unit_interval(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not math.isnan(value) and 0.0 <= value <= 1.0


def check_reference(task: Task | str, samples: Sequence[Sample] | Sequence[Record]) -> str:
    """Every record's reference completion scores exactly 1.0 on every applicable component, with
    no error; at least one record must have a reference."""
    task, samples = resolve_task(task), labelled(samples)
    problems: list[str] = []
    references = _references(task, samples, problems)
    spec = RewardSpec.build(task, {})
    applicable = applicable_components(task)
    for label, record, text in references:
        breakdown = score_inline(task, spec, record, text)
        below = {n: breakdown.components[n] for n in applicable if breakdown.components[n] != 1.0}
        if below or breakdown.errors:
            scores = ", ".join(f"{n}={v}" for n, v in below.items()) or "1.0"
            errors = f"; errors: {breakdown.error}" if breakdown.errors else ""
            problems.append(f"{label}: the reference completion scores {scores} (want 1.0){errors}")
    if not references and not problems:
        problems.append(f"no reference completion for any of {len(samples)} records (reference_completion returns None)")
    fail_if(task.name, "reference", problems)
    return f"{len(references)} reference completions score 1.0 on {', '.join(applicable)}"


def _direct_scores(task: Task, record: Record, completion: str) -> Iterator[tuple[str, Any]]:
    """Call the task's components directly (no clamping, no catching), gated like the core;
    ``structure`` must return ``Parsed(score, value)`` (a ``TypeError`` otherwise)."""
    result = task.structure(record, completion)
    if not (isinstance(result, tuple) and len(result) == 2):
        raise TypeError(f"structure returned {type(result).__name__}, not Parsed(score, value)")
    score, parsed = result
    yield "structure", score
    gate_open = _in_unit_interval(score) and score > 0
    for name in COMPONENTS[1:]:
        if not gate_open or name not in applicable_components(task):
            continue
        score = getattr(task, name)(record, parsed)
        yield name, score
        gate_open = _in_unit_interval(score) and score > 0


def _spread(samples: Sequence[Sample], count: int) -> list[Sample]:
    """Up to ``count`` samples spread evenly over the list (so every split is represented)."""
    step = max(1, len(samples) // count)
    return list(samples[::step][:count])


def check_bounds(task: Task | str, samples: Sequence[Sample] | Sequence[Record], cases: int = 200, seed: int = 0) -> str:
    """On reference completions, edited references and random text: every component, called
    directly, returns a number in [0, 1] (the core would silently clamp 1.7 or hide a raise), and
    the core's breakdown is gated, bounded and error-free."""
    task, samples = resolve_task(task), labelled(samples)
    if not samples:
        fail_if(task.name, "bounds", ["no records to score completions against"])
    problems: list[str] = []
    spec = RewardSpec.build(task, {})
    chosen = _spread(samples, 10)
    references = {label: text for label, _, text in _references(task, chosen, problems)}
    per_record = max(1, cases // len(chosen))
    scored = 0
    for label, record in chosen:
        own = [references[label]] if label in references else []
        for completion in own + fuzz_completions(own, per_record, f"{seed}:{label}"):
            scored += 1
            where = f"{label}, completion {short(completion, 60)}"
            try:
                for name, value in _direct_scores(task, record, completion):
                    if not _in_unit_interval(value):
                        problems.append(f"{where}: {name} returned {short(value)}, not a number in [0, 1]")
            except Exception as exc:
                problems.append(f"{where}: raised {describe_exception(exc)}")
                continue
            breakdown = score_inline(task, spec, record, completion)
            problems.extend(f"{where}: {p}" for p in breakdown_problems(task, breakdown))
    fail_if(task.name, "bounds", problems)
    return f"{scored} reference, edited and random completions are gated and in [0, 1]"


def _reachable_text(value: Any, budget: int = 10_000) -> str:
    """Text a parsed value exposes (strings, containers, XML trees), bounded, to look for leaks."""
    parts: list[str] = []
    stack = [value]
    while stack and budget > 0:
        budget -= 1
        item = stack.pop()
        if isinstance(item, (str, bytes)):
            parts.append(item if isinstance(item, str) else item.decode("utf-8", "replace"))
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple, set, frozenset)):
            stack.extend(item)
        elif hasattr(item, "itertext"):  # an lxml or ElementTree element
            parts.extend(str(t) for t in item.itertext())
            parts.extend(str(v) for node in item.iter() for v in getattr(node, "attrib", {}).values())
        elif item is not None:
            parts.append(repr(item)[:10_000])
    return "\n".join(parts)


def check_hostile(
    task: Task | str,
    samples: Sequence[Sample] | Sequence[Record],
    timeout_s: float = 5.0,
    memory_mb: int = 1024,
    workers: int = 2,
) -> str:
    """Hostile completions (see :mod:`rlstruct.testing.hostile`) scored in the bounded reward pool:
    no component raises, runs over ``timeout_s`` or allocates over ``memory_mb``; every breakdown
    is gated and in [0, 1]; an XML entity or XInclude never exposes a local file's text."""
    task, samples = resolve_task(task), labelled(samples)
    if not samples:
        fail_if(task.name, "hostile", ["no records to score hostile output against"])
    problems: list[str] = []
    label, record = samples[0]
    references = _references(task, samples[:1], problems)
    with tempfile.TemporaryDirectory(prefix="rlstruct-kit-") as tmp:
        marker = f"SECRET-{secrets.token_hex(8)}"
        secret = Path(tmp) / "secret.txt"
        secret.write_text(marker)
        cases = generic_hostile_outputs(secret.as_uri())
        if references:
            cases.update(reference_mutations(references[0][2]))
        spec = RewardSpec.build(task, {})
        limits = SandboxLimits(timeout_s=timeout_s, memory_mb=memory_mb, workers=workers)
        with RewardPool(task, spec, limits) as pool:
            breakdowns = pool.score([record] * len(cases), list(cases.values()))
        for name, breakdown in zip(cases, breakdowns):
            problems.extend(f"{name!r} on {label}: {p}" for p in breakdown_problems(task, breakdown))
            if marker in str(breakdown.to_json()):
                problems.append(f"{name!r} on {label}: the score output shows a local file's text")
        if not problems:  # bounded in the pool, so safe to parse here and look at the parsed value
            for name in ("xml-xxe-file", "xml-xinclude"):
                parsed = task.structure(record, cases[name])
                if marker in _reachable_text(parsed[1] if isinstance(parsed, tuple) else parsed):
                    problems.append(f"{name!r}: the parsed value holds a local file's text (entities or XInclude resolved)")
    fail_if(task.name, "hostile", problems)
    return f"{len(cases)} hostile completions scored within {timeout_s:g} s and {memory_mb} MiB each, without error"
