"""Deterministic, disjoint train/validation/test assignment for synthetic records.

The scheme every built-in task uses, and the one the default ``Task.synthetic`` applies to a task's
``random_record`` (keyed by the prompt's user message):

- a record's split is decided by its prompt alone: a SHA-256 of the prompt text picks one of 100
  buckets (:func:`prompt_bucket`), and buckets 0-79 are ``train``, 80-89 ``validation`` and
  90-99 ``test`` (:data:`SPLIT_BUCKETS`), so two splits can never hold the same prompt, whatever
  the seed or size, and the assignment is the same in every process;
- ``val``, ``valid`` and ``dev`` mean ``validation`` and ``eval`` means ``test``
  (:data:`SPLIT_ALIASES`); any other name is a ``ValueError`` naming the known ones;
- :func:`generate_split` draws candidate records from a ``random.Random`` seeded with
  ``"{namespace}:{seed}:{split}"`` (``split`` canonical, so an alias gives the same records) and
  keeps the first ``size`` distinct prompts of the asked split, so a larger ``size`` extends a
  smaller one.

Example, in a task plugin whose records come from its own maker (a task that defines
``random_record`` gets this without writing ``synthetic`` at all)::

    def synthetic(self, split, size, seed):
        return generate_split("my-task", split, size, seed, make_record)
"""

from __future__ import annotations

import hashlib
import random
from typing import Any, Callable, TypeVar

__all__ = [
    "SPLIT_ALIASES",
    "SPLIT_BUCKETS",
    "canonical_split",
    "generate_split",
    "prompt_bucket",
    "split_of",
]

R = TypeVar("R", bound=dict[str, Any])

SPLIT_BUCKETS: dict[str, range] = {
    "train": range(0, 80),
    "validation": range(80, 90),
    "test": range(90, 100),
}
"""Share of the 100 prompt-hash buckets owned by each split (80 / 10 / 10)."""

SPLIT_ALIASES: dict[str, str] = {"val": "validation", "valid": "validation", "dev": "validation", "eval": "test"}
"""Other names accepted for the three splits."""


def canonical_split(split: str) -> str:
    """Return the canonical split name for ``split`` or raise ``ValueError`` naming the known ones."""
    name = SPLIT_ALIASES.get(split, split)
    if name not in SPLIT_BUCKETS:
        known = ", ".join([*SPLIT_BUCKETS, *SPLIT_ALIASES])
        raise ValueError(f"unknown split {split!r} (known: {known})")
    return name


def prompt_bucket(text: str) -> int:
    """The bucket in [0, 100) of a prompt, from a SHA-256 of its text (stable across runs)."""
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") % 100


def split_of(text: str) -> str:
    """The one split (``train``, ``validation`` or ``test``) that owns a prompt."""
    bucket = prompt_bucket(text)
    return next(name for name, buckets in SPLIT_BUCKETS.items() if bucket in buckets)


def _prompt(record: dict[str, Any]) -> str:
    return record["prompt"]


def generate_split(
    namespace: str,
    split: str,
    size: int,
    seed: int,
    make_record: Callable[[random.Random], R],
    key: Callable[[R], str] = _prompt,
) -> list[R]:
    """Draw records from ``make_record`` until ``size`` distinct prompts belong to ``split``.

    ``make_record`` receives a ``random.Random`` seeded from (namespace, seed, split) and returns
    one candidate record; ``key`` gives the text that decides its split and its distinctness
    (the ``prompt`` field by default; pass e.g. ``key=lambda r: r["question"]``). ``namespace``
    (usually the task name) keeps two tasks with the same seed from sharing a random stream.
    Raises ``ValueError`` for an unknown split or a negative size, and ``RuntimeError`` if the
    generator runs out of distinct prompts of the split.
    """
    name = canonical_split(split)
    if size < 0:
        raise ValueError(f"size must be >= 0, got {size}")
    buckets = SPLIT_BUCKETS[name]
    rng = random.Random(f"{namespace}:{seed}:{name}")
    records: list[R] = []
    seen: set[str] = set()
    budget = 100 * size + 1000
    while len(records) < size:
        budget -= 1
        if budget < 0:
            raise RuntimeError(f"{namespace}: only {len(records)} distinct {name} prompts, {size} asked")
        record = make_record(rng)
        prompt = key(record)
        if prompt in seen or prompt_bucket(prompt) not in buckets:
            continue
        seen.add(prompt)
        records.append(record)
    return records
