"""rlstruct.splits: the shared train/validation/test scheme of every built-in synthetic generator."""

from __future__ import annotations

import random
from typing import Any

import pytest

from rlstruct.splits import (
    SPLIT_ALIASES,
    SPLIT_BUCKETS,
    canonical_split,
    generate_split,
    prompt_bucket,
    split_of,
)


def make_record(rng: random.Random) -> dict[str, Any]:
    """A toy generator with a vocabulary of 100 000 prompts."""
    number = rng.randrange(100_000)
    return {"prompt": f"What is {number} plus one?", "answer": number + 1}


def prompts(records: list[dict[str, Any]]) -> list[str]:
    return [record["prompt"] for record in records]


def test_buckets_cover_0_to_99_once_80_10_10():
    owned = sorted(bucket for buckets in SPLIT_BUCKETS.values() for bucket in buckets)
    assert owned == list(range(100))
    assert {name: len(buckets) for name, buckets in SPLIT_BUCKETS.items()} == {
        "train": 80,
        "validation": 10,
        "test": 10,
    }


def test_prompt_bucket_and_split_of_are_pinned():
    # the assignment must not change between runs, processes or releases: SHA-256 of the UTF-8
    # text, first 8 bytes big-endian, modulo 100
    assert [prompt_bucket(text) for text in ("", "a", "hello world", "h\u00e9llo")] == [52, 50, 0, 17]
    assert [split_of(f"prompt {number}") for number in (1, 2, 10)] == ["train", "test", "validation"]


def test_prompt_bucket_and_split_of_agree():
    for number in range(300):
        text = f"prompt {number} \u00e9\U0001f600"
        bucket = prompt_bucket(text)
        assert 0 <= bucket < 100
        assert bucket in SPLIT_BUCKETS[split_of(text)]
    assert prompt_bucket("\ud800 lone surrogate") in range(100)  # no UnicodeEncodeError


def test_split_of_spreads_prompts_roughly_80_10_10():
    counts = {name: 0 for name in SPLIT_BUCKETS}
    for number in range(10_000):
        counts[split_of(f"prompt {number}")] += 1
    assert 7_700 < counts["train"] < 8_300
    assert 850 < counts["validation"] < 1_150
    assert 850 < counts["test"] < 1_150


def test_generate_split_is_deterministic_seeded_and_extends():
    records = generate_split("toy", "train", 50, 3, make_record)
    assert records == generate_split("toy", "train", 50, 3, make_record)
    assert records != generate_split("toy", "train", 50, 4, make_record)
    assert records != generate_split("other-toy", "train", 50, 3, make_record)
    assert generate_split("toy", "train", 80, 3, make_record)[:50] == records


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_generate_split_records_belong_to_their_split_and_are_disjoint(seed):
    drawn = {name: prompts(generate_split("toy", name, 200, seed, make_record)) for name in SPLIT_BUCKETS}
    for name, texts in drawn.items():
        assert len(texts) == len(set(texts)) == 200  # distinct within a split
        assert all(split_of(text) == name for text in texts)
    assert not set(drawn["train"]) & set(drawn["validation"])
    assert not set(drawn["train"]) & set(drawn["test"])
    assert not set(drawn["validation"]) & set(drawn["test"])
    # assignment is by prompt text, so another seed's held-out prompts stay out of train too
    other_test = set(prompts(generate_split("toy", "test", 200, seed + 100, make_record)))
    assert not other_test & set(drawn["train"])


@pytest.mark.parametrize(("alias", "canonical"), sorted(SPLIT_ALIASES.items()))
def test_aliases_give_the_canonical_split_and_its_records(alias, canonical):
    assert canonical_split(alias) == canonical
    assert generate_split("toy", alias, 20, 5, make_record) == generate_split("toy", canonical, 20, 5, make_record)


def test_alias_table():
    assert SPLIT_ALIASES == {"val": "validation", "valid": "validation", "dev": "validation", "eval": "test"}
    for name in SPLIT_BUCKETS:
        assert canonical_split(name) == name


@pytest.mark.parametrize("split", ["holdout", "Train", "", "testing"])
def test_unknown_split_is_a_value_error_naming_the_known_ones(split):
    for call in (lambda: canonical_split(split), lambda: generate_split("toy", split, 3, 0, make_record)):
        with pytest.raises(ValueError, match="unknown split") as info:
            call()
        message = str(info.value)
        assert repr(split) in message
        for known in [*SPLIT_BUCKETS, *SPLIT_ALIASES]:
            assert known in message


def test_negative_size_is_a_value_error():
    with pytest.raises(ValueError, match="size"):
        generate_split("toy", "train", -1, 0, make_record)


def test_size_zero_gives_no_records_and_draws_nothing():
    def never(rng: random.Random) -> dict[str, Any]:
        raise AssertionError("make_record must not be called for size 0")

    assert generate_split("toy", "test", 0, 0, never) == []


@pytest.mark.parametrize("field", ["question", "query"])
def test_key_selects_the_prompt_field(field):
    def make(rng: random.Random) -> dict[str, Any]:
        return {field: f"Question number {rng.randrange(100_000)}?"}

    records = generate_split("toy", "validation", 30, 2, make, key=lambda record: record[field])
    texts = [record[field] for record in records]
    assert len(set(texts)) == 30
    assert all(split_of(text) == "validation" for text in texts)
    with pytest.raises(KeyError):  # the default key is the "prompt" field
        generate_split("toy", "validation", 1, 2, make)


def test_key_decides_distinctness():
    def make(rng: random.Random) -> dict[str, Any]:
        return {"prompt": f"p{rng.randrange(1_000_000)}", "group": f"g{rng.randrange(10_000)}"}

    records = generate_split("toy", "train", 40, 0, make, key=lambda record: record["group"])
    assert len({record["group"] for record in records}) == 40
    assert all(split_of(record["group"]) == "train" for record in records)


def test_runtime_error_when_the_vocabulary_runs_out():
    def tiny(rng: random.Random) -> dict[str, Any]:
        return {"prompt": f"item {rng.randrange(20)}"}

    available = sum(split_of(f"item {number}") == "train" for number in range(20))
    assert len(generate_split("tiny", "train", available, 0, tiny)) == available
    with pytest.raises(RuntimeError, match=rf"tiny: only {available} distinct train prompts, {available + 1} asked"):
        generate_split("tiny", "train", available + 1, 0, tiny)


def test_runtime_error_when_no_prompt_lands_in_the_split():
    def constant(rng: random.Random) -> dict[str, Any]:
        return {"prompt": "always the same"}

    other = next(name for name in SPLIT_BUCKETS if name != split_of("always the same"))
    with pytest.raises(RuntimeError, match="only 0 distinct"):
        generate_split("const", other, 1, 0, constant)
