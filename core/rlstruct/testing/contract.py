"""``check_task``: run every standard contract check on one task and report them all at once."""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

from ..task import Task
from .data_checks import check_hash_seed, check_prompts, check_records, check_splits, draw_splits
from .inprocess import resolve_task
from .report import ContractFailure, ContractReport, describe_exception
from .reward_checks import Sample, check_bounds, check_hostile, check_reference

CHECKS: tuple[str, ...] = ("splits", "hash-seed", "records", "prompts", "reference", "bounds", "hostile")
"""Every check :func:`check_task` runs, in order; names for its ``skip`` argument."""
PROMPTS_CHECKED_PER_SPLIT = 8
"""Prompts rendered through the chat template per split (rendering is the slow part)."""


def _samples(task: Task, records: Sequence[Mapping[str, Any]] | None, size: int, seed: int) -> list[Sample]:
    if records is not None:
        return [(f"records[{i}]", task.normalize_record(r)) for i, r in enumerate(records)]
    return [(f"{split}[{i}]", r) for split, rs in draw_splits(task, size, seed).items() for i, r in enumerate(rs)]


def check_task(
    task: Task | type[Task] | str,
    *,
    records: Sequence[Mapping[str, Any]] | None = None,
    seed: int = 0,
    split_size: int = 100,
    fuzz_cases: int = 200,
    timeout_s: float = 5.0,
    memory_mb: int = 1024,
    tokenizer: Any = None,
    skip: Iterable[str] = (),
) -> ContractReport:
    """Run the contract checks (:data:`CHECKS`) on ``task`` (an instance, a class or a registered
    name) and raise :class:`ContractFailure` listing every problem of every failed check.

    - ``splits``: ``synthetic`` honours ``size``, is deterministic and seeded, splits are disjoint
      (also across seeds), no prompt repeats within a split, an unknown split is a ``ValueError``;
    - ``hash-seed``: the same records, prompts and references in a fresh interpreter with another
      ``PYTHONHASHSEED``;
    - ``records``: records are strict JSON and unchanged by JSON, ``normalize_record`` and a
      ``.jsonl`` file;
    - ``prompts``: prompts are well-formed and render through ``tokenizer``'s chat template (default:
      the kit's tiny ChatML tokenizer, built once per process);
    - ``reference``: every reference completion scores 1.0 on every applicable component;
    - ``bounds``: components called directly return numbers in [0, 1], and breakdowns are gated,
      on references, ``fuzz_cases`` edited references and random text;
    - ``hostile``: hostile output (deep nesting, 10 MB strings, number bombs, NaN, XML entity
      attacks, invalid UTF-8, empty) is scored in the reward pool within ``timeout_s`` and
      ``memory_mb`` per component, without errors, and never leaks a local file.

    Records are ``split_size`` synthetic records of each split for ``seed``, or ``records`` (raw,
    normalised here) for a task without a generator (then skip ``splits`` and ``hash-seed``).
    Returns a :class:`ContractReport` of what passed.
    """
    task = resolve_task(task)
    skipped = set(skip)
    unknown = skipped - set(CHECKS)
    if unknown:
        raise ValueError(f"unknown check(s) {', '.join(sorted(unknown))} (checks: {', '.join(CHECKS)})")
    report = ContractReport(task=task.name, skipped=[c for c in CHECKS if c in skipped])
    problems: dict[str, list[str]] = {}
    try:
        samples = _samples(task, records, split_size, seed)
    except ContractFailure as exc:
        raise ContractFailure(task.name, exc.problems) from None
    except Exception as exc:
        raise ContractFailure(task.name, {"records": [f"normalize_record raised {describe_exception(exc)}"]}) from None
    runs = {
        "splits": lambda: check_splits(task, split_size, seed),
        "hash-seed": lambda: check_hash_seed(task, min(split_size, 20), seed),
        "records": lambda: check_records(task, samples),
        "prompts": lambda: check_prompts(task, _per_split(samples), tokenizer),
        "reference": lambda: check_reference(task, samples),
        "bounds": lambda: check_bounds(task, samples, fuzz_cases, seed),
        "hostile": lambda: check_hostile(task, samples, timeout_s, memory_mb),
    }
    for name in CHECKS:
        if name in skipped:
            continue
        try:
            report.passed[name] = runs[name]()
        except ContractFailure as exc:
            for check, items in exc.problems.items():
                problems.setdefault(check, []).extend(items)
        except Exception as exc:  # the task raised where the contract says it must not
            problems.setdefault(name, []).append(f"raised {describe_exception(exc)}")
    if problems:
        raise ContractFailure(task.name, problems)
    return report


def _per_split(samples: list[Sample]) -> list[Sample]:
    """The first few samples of each split (or of the given records)."""
    chosen: dict[str, list[Sample]] = {}
    for label, record in samples:
        group = chosen.setdefault(label.split("[", 1)[0], [])
        if len(group) < PROMPTS_CHECKED_PER_SPLIT:
            group.append((label, record))
    return [s for group in chosen.values() for s in group]

