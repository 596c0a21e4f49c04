"""Deterministic, disjoint train/validation/test assignment for synthetic records.

A synthetic record belongs to a split when a hash of its prompt falls in that split's share of
100 buckets, so two splits can never hold the same prompt, whatever the seed or size.
"""

from __future__ import annotations

import hashlib
import random
from typing import Any, Callable

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


def prompt_bucket(prompt: str) -> int:
    """The prompt's bucket in [0, 100), from a SHA-256 of its text (stable across runs)."""
    digest = hashlib.sha256(prompt.encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") % 100


def generate_split(
    namespace: str,
    split: str,
    size: int,
    seed: int,
    make_record: Callable[[random.Random], dict[str, Any]],
) -> list[dict[str, Any]]:
    """Draw records from ``make_record`` until ``size`` distinct prompts belong to ``split``.

    ``make_record`` receives a ``random.Random`` seeded from (namespace, seed, split) and must
    return a record with a ``prompt`` key. Raises ``RuntimeError`` if the vocabulary runs out.
    """
    name = canonical_split(split)
    if size < 0:
        raise ValueError(f"size must be >= 0, got {size}")
    buckets = SPLIT_BUCKETS[name]
    rng = random.Random(f"{namespace}:{seed}:{name}")
    records: list[dict[str, Any]] = []
    seen: set[str] = set()
    budget = 100 * size + 1000
    while len(records) < size:
        budget -= 1
        if budget < 0:
            raise RuntimeError(f"{namespace}: only {len(records)} distinct {name} prompts, {size} asked")
        record = make_record(rng)
        prompt = record["prompt"]
        if prompt in seen or prompt_bucket(prompt) not in buckets:
            continue
        seen.add(prompt)
        records.append(record)
    return records
