"""The contract kit (rlstruct.testing): every built-in task passes it, and each check catches the
defect it is there for.

The broken tasks below are module-level classes so that the hash-seed check can rebuild them in a
fresh interpreter (it imports this module there).
"""

from __future__ import annotations

import json
import time

import pytest

from rlstruct import Parsed, Prompt, Task, hookimpl, parse_json_completion
from rlstruct.plugins import PluginManager, UnknownTaskError
from rlstruct.testing import (
    CHECKS,
    ContractFailure,
    check_bounds,
    check_hash_seed,
    check_hostile,
    check_prompts,
    check_records,
    check_reference,
    check_splits,
    check_task,
    registered_plugin,
    score_completions,
    smoke_train,
)


def _built_in_tasks() -> list[str]:
    """Tasks registered by rlstruct's own distribution (plugins/), found as any plugin is found."""
    pm = PluginManager()
    return sorted(name for name in pm.tasks if pm.task_plugin(name).distribution == "rlstruct")


BUILT_IN_TASKS = _built_in_tasks()
WORDS = ("apple", "birch", "cedar", "daisy", "ember", "fjord", "grove", "heron", "iris", "jade")


class WordCountTask(Task):
    """A small, correct task written with the API defaults: no build_prompt, no synthetic, and
    only two of the four components (format and validity are not applicable)."""

    name = "toy-word-count"
    description = "Answer {word, count} as JSON."
    system_prompt = 'Reply with one JSON object {"word": ..., "count": ...} and nothing else.'

    def random_record(self, rng):
        return {"word": rng.choice(WORDS), "count": rng.randint(1, 500)}

    def user_prompt(self, record):
        return f"The word is {record['word']} and the count is {record['count']}."

    def reference_completion(self, record):
        return json.dumps({"word": record["word"], "count": record["count"]})

    def structure(self, record, completion):
        try:
            value = parse_json_completion(completion)
        except ValueError:
            return Parsed(0.0)
        return Parsed(1.0, value) if isinstance(value, dict) else Parsed(0.0)

    def content(self, record, parsed):
        return 0.5 * (parsed.get("word") == record["word"]) + 0.5 * (parsed.get("count") == record["count"])


class WordCountPlugin:
    @hookimpl
    def register_tasks(self, register):
        register(WordCountTask())


RECORDS = WordCountTask().synthetic("train", 6, 0)


# -- broken variants, one defect each ---------------------------------------------------------------
class WrongReference(WordCountTask):
    def reference_completion(self, record):
        return json.dumps({"word": record["word"], "count": record["count"] + 1})


class OverOne(WordCountTask):
    def content(self, record, parsed):
        return 1.5  # the core would clamp this to 1.0 and hide the bug


class RaisesOnMissingKey(WordCountTask):
    def content(self, record, parsed):
        return float(parsed["word"] == record["word"])  # KeyError when the model leaves "word" out


class SlowOnLongOutput(WordCountTask):
    def structure(self, record, completion):
        if len(completion) > 1_000_000:
            time.sleep(30)
        return super().structure(record, completion)


class MemoryHungry(WordCountTask):
    def structure(self, record, completion):
        if len(completion) > 1_000_000:
            bytearray(4 * 2**30)  # 4 GiB for one long completion
        return super().structure(record, completion)


class RepeatsPrompts(WordCountTask):
    def synthetic(self, split, size, seed):
        return [super().synthetic(split, 1, seed)[0]] * size if size else []


class ResolvesEntities(WordCountTask):
    """Parses XML with lxml's defaults plus entity resolution: the classic XXE hole."""

    def structure(self, record, completion):
        from lxml import etree

        if len(completion) > 100_000 or completion.count("<") > 1000:
            return Parsed(0.0)
        try:
            parser = etree.XMLParser(resolve_entities=True, no_network=True, huge_tree=False)
            root = etree.fromstring(completion.encode("utf-8"), parser)
        except (etree.XMLSyntaxError, ValueError, UnicodeEncodeError):
            return super().structure(record, completion)
        return Parsed(1.0, root)

    def content(self, record, parsed):
        return 1.0 if not isinstance(parsed, dict) else super().content(record, parsed)


class HashSplits(WordCountTask):
    """Decides splits with the built-in ``hash()``, which changes with PYTHONHASHSEED."""

    def synthetic(self, split, size, seed):
        buckets = {"train": range(0, 8), "validation": range(8, 9), "test": range(9, 10)}
        if split not in buckets:
            raise ValueError(f"unknown split {split!r} (known: train, validation, test)")
        out, i = [], 0
        while len(out) < size:
            record = {"word": WORDS[i % len(WORDS)], "count": seed * 1000 + i}
            i += 1
            if hash(self.user_prompt(record)) % 10 in buckets[split]:
                out.append(record)
        return out


class IgnoresSize(WordCountTask):
    def synthetic(self, split, size, seed):
        return super().synthetic(split, size + 1, seed)


class SameRecordsEverySplit(WordCountTask):
    def synthetic(self, split, size, seed):
        known = split in ("train", "validation", "test")
        return super().synthetic("train" if known else split, size, seed)


class TupleRecord(WordCountTask):
    def random_record(self, rng):
        return {**super().random_record(rng), "pair": (1, 2)}


class NormalizeChangesRecords(WordCountTask):
    def normalize_record(self, raw):
        return {**raw, "word": str(raw["word"]).upper()}


class NumberContent(WordCountTask):
    def build_prompt(self, record):
        return Prompt(messages=[{"role": "user", "content": record["count"]}])


# -- every built-in task ------------------------------------------------------------------------
def test_the_parametrised_contract_test_sees_every_built_in_task():
    assert set(BUILT_IN_TASKS) >= {"function-calls", "gsm8k-json", "json-recipes", "json-schema", "xml-records"}


@pytest.mark.parametrize("name", BUILT_IN_TASKS)
def test_built_in_task_meets_the_contract(name, rlstruct_check_task):
    report = rlstruct_check_task(name)
    assert list(report.passed) == list(CHECKS)


def test_example_plugin_meets_the_contract(example_plugin_module, rlstruct_check_task):
    with registered_plugin(example_plugin_module, "example-kv"):
        report = rlstruct_check_task("key-value")
    assert list(report.passed) == list(CHECKS)


def test_a_task_written_with_the_api_defaults_meets_the_contract(rlstruct_check_task):
    report = rlstruct_check_task(WordCountTask)
    assert "structure, content" in report.passed["reference"]  # format and validity: not applicable


# -- each check catches its defect ----------------------------------------------------------------
def failed_checks(run) -> dict[str, list[str]]:
    with pytest.raises(ContractFailure) as caught:
        run()
    return caught.value.problems


def test_reference_check_names_the_record_and_the_component():
    problems = failed_checks(lambda: check_reference(WrongReference(), RECORDS))
    assert list(problems) == ["reference"]
    assert problems["reference"][0].startswith("records[0]: the reference completion scores content=0.5")


def test_reference_check_needs_at_least_one_reference():
    class NoReference(WordCountTask):
        def reference_completion(self, record):
            return None

    problems = failed_checks(lambda: check_reference(NoReference(), RECORDS))
    assert "no reference completion for any of 6 records" in problems["reference"][0]


def test_bounds_check_sees_scores_the_core_would_clamp():
    problems = failed_checks(lambda: check_bounds(OverOne(), RECORDS, cases=20))
    assert "content returned 1.5, not a number in [0, 1]" in problems["bounds"][0]


def test_bounds_check_sees_a_component_that_raises_on_near_misses():
    problems = failed_checks(lambda: check_bounds(RaisesOnMissingKey(), RECORDS, cases=200))
    assert any("raised KeyError" in line for line in problems["bounds"])


def test_hostile_check_reports_a_component_over_its_time_bound():
    start = time.monotonic()
    problems = failed_checks(lambda: check_hostile(SlowOnLongOutput(), RECORDS[:1], timeout_s=0.5))
    assert any("'ten-mb-bare' on records[0]: structure: timeout" in line for line in problems["hostile"])
    assert time.monotonic() - start < 60  # each slow case was cut at the bound, not waited for


def test_hostile_check_reports_a_component_over_its_memory_bound():
    problems = failed_checks(lambda: check_hostile(MemoryHungry(), RECORDS[:1], memory_mb=256))
    assert any("'ten-mb-bare' on records[0]: structure: MemoryError" in line for line in problems["hostile"])


def test_hostile_check_catches_an_xml_parser_that_resolves_entities():
    problems = failed_checks(lambda: check_hostile(ResolvesEntities(), RECORDS[:1]))
    assert problems["hostile"] == [
        "'xml-xxe-file': the parsed value holds a local file's text (entities or XInclude resolved)"
    ]


def test_hash_seed_check_catches_splits_decided_by_hash():
    HashSplits().synthetic("test", 5, 0)  # consistent within one interpreter...
    problems = failed_checks(lambda: check_hash_seed(HashSplits(), size=10))
    assert "change with PYTHONHASHSEED" in problems["hash-seed"][0]  # ...but not across two


def test_hash_seed_check_passes_for_a_hashlib_based_task():
    assert "fresh interpreter" in check_hash_seed(WordCountTask(), size=10)


@pytest.mark.parametrize(
    "task, expected",
    [
        (IgnoresSize(), "synthetic('train', 40, 0) gave 41 records, not 40"),
        (SameRecordsEverySplit(), "train and validation share 40 prompts"),
    ],
)
def test_splits_check_catches_size_and_overlap(task, expected):
    problems = failed_checks(lambda: check_splits(task, size=40))
    assert any(line.startswith(expected) for line in problems["splits"]), problems


def test_splits_check_catches_a_prompt_repeated_within_a_split():
    problems = failed_checks(lambda: check_splits(RepeatsPrompts(), size=10))
    assert "train[0] and train[1] have the same prompt" in problems["splits"]


def test_splits_check_catches_an_ignored_seed_and_a_silent_unknown_split():
    class Unseeded(WordCountTask):
        def synthetic(self, split, size, seed):
            return super().synthetic(split, size, 0) if split != "no-such-split" else []

    problems = failed_checks(lambda: check_splits(Unseeded(), size=20))["splits"]
    assert "seed 1 gives the same train records as seed 0 (the seed is ignored)" in problems
    assert "synthetic('no-such-split', ...) returned instead of raising ValueError" in problems


def test_records_check_catches_tuples_and_a_normalize_record_that_changes_records():
    tuples = failed_checks(lambda: check_records(TupleRecord(), TupleRecord().synthetic("train", 2, 0)))
    assert tuples["records"][0].startswith("records[0]: changes through JSON")
    changed = failed_checks(lambda: check_records(NormalizeChangesRecords(), RECORDS))
    assert changed["records"][0].startswith("records[0]: normalize_record changes it")


def test_prompts_check_renders_through_the_chat_template(rlstruct_tokenizer):
    assert check_prompts(WordCountTask(), RECORDS, rlstruct_tokenizer) == "6 prompts render through the chat template"
    problems = failed_checks(lambda: check_prompts(NumberContent(), RECORDS, rlstruct_tokenizer))
    assert problems["prompts"][0] == "records[0]: messages[0]['content'] is int, not str"


def test_breakdowns_are_checked_for_gating_and_not_applicable_components():
    from rlstruct.reward import Breakdown
    from rlstruct.testing.reward_checks import breakdown_problems

    ungated = Breakdown(reward=0.25, components={"structure": 0.0, "format": None, "content": 0.5, "validity": None})
    assert breakdown_problems(WordCountTask(), ungated) == ["content = 0.5 after a 0 (gating)"]
    scored = Breakdown(reward=0.5, components={"structure": 1.0, "format": 0.0, "content": 1.0, "validity": None})
    assert breakdown_problems(WordCountTask(), scored) == ["format is not implemented but scored 0.0 (want None)"]


def test_check_task_reports_every_failed_check_at_once(rlstruct_tokenizer):
    with pytest.raises(ContractFailure) as caught:
        check_task(TupleRecord, split_size=20, tokenizer=rlstruct_tokenizer, skip=["hostile"])
    assert list(caught.value.problems) == ["records"]
    with pytest.raises(ContractFailure) as caught:
        check_task(WrongReference(), split_size=20, tokenizer=rlstruct_tokenizer, skip=["hash-seed", "hostile"])
    message = str(caught.value)
    assert message.startswith("task 'toy-word-count' fails the contract check reference:")
    assert "  reference: train[0]: the reference completion scores content=0.5" in message
    with pytest.raises(ValueError, match="unknown check"):
        check_task(WordCountTask(), skip=["speed"])


# -- registering, scoring, training ----------------------------------------------------------------
def test_registered_plugin_is_seen_by_every_plugin_manager_and_the_cli_until_the_block_ends(capsys):
    from rlstruct import cli

    with registered_plugin(WordCountPlugin(), "toy") as pm:
        assert [i.name for i in pm.plugins()] == ["toy"]  # only this plugin by default
        assert isinstance(PluginManager().task("toy-word-count"), WordCountTask)
        assert cli.main(["data", "--task", "toy-word-count", "--limit", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line) for line in lines] == WordCountTask().synthetic("train", 2, 0)
    with pytest.raises(UnknownTaskError):
        PluginManager().task("toy-word-count")


def test_registered_plugin_replaces_an_installed_plugin_of_the_same_name():
    with registered_plugin(WordCountPlugin(), "json", installed=True) as pm:
        assert "toy-word-count" in pm.tasks and "gsm8k-json" in pm.tasks  # installed plugins are there too
        assert "json-recipes" not in PluginManager().tasks  # the installed 'json' plugin is replaced
    assert "json-recipes" in PluginManager().tasks and "toy-word-count" not in PluginManager().tasks


def test_registered_plugin_refuses_a_broken_plugin():
    class Misspelled:
        @hookimpl
        def register_task(self, register):  # not a hook: register_tasks
            register(WordCountTask())

    with pytest.raises(ValueError, match="unknown hook register_task"):
        with registered_plugin(Misspelled(), "broken"):
            pass
    assert "toy-word-count" not in PluginManager().tasks


def test_rlstruct_plugin_fixture_registers_for_the_test(rlstruct_plugin):
    pm = rlstruct_plugin(WordCountPlugin(), "toy")
    assert pm.task("toy-word-count").name == "toy-word-count"


def test_score_completions_bounded_and_inline_agree_and_not_applicable_is_none():
    record = RECORDS[0]
    completions = [WordCountTask().reference_completion(record), json.dumps({"word": record["word"]}), "nope"]
    bounded = score_completions(WordCountTask(), record, completions)
    inline = score_completions(WordCountTask(), [record] * 3, completions, bounded=False)
    assert [b.to_json() for b in bounded] == [b.to_json() for b in inline]
    assert [b.components["content"] for b in bounded] == [1.0, 0.5, 0.0]
    assert bounded[0].components["format"] is None and bounded[0].components["validity"] is None


def test_score_completions_bounds_a_slow_component():
    breakdown = score_completions(SlowOnLongOutput(), RECORDS[0], ["x" * 2_000_000], timeout_s=0.5)[0]
    assert breakdown.timeouts == ["structure"] and breakdown.reward == 0.0


@pytest.mark.slow
def test_smoke_train_runs_a_few_grpo_steps_on_the_tiny_model(rlstruct_tiny_model, tmp_path):
    lines = smoke_train(WordCountTask(), rlstruct_tiny_model, tmp_path / "run", steps=2)
    assert [line["step"] for line in lines] == [1, 2]
    assert lines[0]["reward/format"] is None and 0.0 <= lines[-1]["reward_mean"] <= 1.0
    assert (tmp_path / "run" / "final" / "config.json").is_file()
