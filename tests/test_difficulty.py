"""Difficulty of the built-in synthetic generators: each knob moves the way its docs say, the
default data stays what it was, splits stay apart and seeds stay reproducible at every level."""

from __future__ import annotations

import hashlib
import json
import re
import statistics
from typing import Any, Callable

import pytest
from lxml import etree

from rlstruct.curriculum import CurriculumError, call_synthetic, supports_difficulty
from rlstruct.data import DataError, load_records
from rlstruct.plugins import PluginManager
from rlstruct.reward import RewardSpec, score_inline
from rlstruct.task import Task

BUILTIN = ["function-calls", "gsm8k-json", "json-recipes", "json-schema", "xml-records"]
SIZE = 150


@pytest.fixture(scope="module")
def tasks() -> dict[str, Task]:
    return PluginManager().tasks


_CACHE: dict[tuple[str, float], list[dict[str, Any]]] = {}


def records(tasks: dict[str, Task], name: str, difficulty: float) -> list[dict[str, Any]]:
    """``SIZE`` train records of ``name`` at ``difficulty`` (seed 3), computed once per module."""
    key = (name, difficulty)
    if key not in _CACHE:
        _CACHE[key] = tasks[name].synthetic("train", SIZE, 3, difficulty=difficulty)
    return _CACHE[key]


# -- knob statistics ---------------------------------------------------------------------------------
def _json_depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_json_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_json_depth(v) for v in value), default=0)
    return 0


def _schema_nodes(schema: dict[str, Any]) -> list[dict[str, Any]]:
    out, stack = [], [schema]
    while stack:
        node = stack.pop()
        out.append(node)
        for key in ("properties", "$defs"):
            stack.extend(v for v in node.get(key, {}).values() if isinstance(v, dict))
        if isinstance(node.get("items"), dict):
            stack.append(node["items"])
    return out


def _enums_and_patterns(record: dict[str, Any]) -> int:
    return sum(("enum" in n) + ("pattern" in n) + ("format" in n) for n in _schema_nodes(record["schema"]))


def _schema_properties(record: dict[str, Any]) -> int:
    return sum(len(n.get("properties", {})) for n in _schema_nodes(record["schema"]))


def _xml_root(record: dict[str, Any]) -> etree._Element:
    return etree.fromstring(record["reference"].encode("utf-8"))


def _xml_depth(record: dict[str, Any]) -> int:
    return max(sum(1 for _ in element.iterancestors()) + 1 for element in _xml_root(record).iter())


def _largest_number(record: dict[str, Any]) -> int:
    return max(int(n) for n in re.findall(r"\d+", record["question"]))


def _optional_arguments(record: dict[str, Any]) -> int:
    from rlstruct_function_calls.synthetic import LIBRARY

    return sum(
        1
        for call in record["answers"]
        for arg in call["arguments"]
        if not next(p for p in LIBRARY[call["name"]].params if p.name == arg).required
    )


KNOBS: list[tuple[str, str, Callable[[dict[str, Any]], float], tuple[float, ...]]] = [
    # (task, knob, statistic of one record, difficulties at which its mean must strictly rise)
    ("json-recipes", "ingredients", lambda r: len(r["reference"]["ingredients"]), (0, 0.5, 1)),
    ("json-recipes", "steps", lambda r: len(r["reference"]["steps"]), (0.5, 1)),
    ("json-schema", "enums and patterns", _enums_and_patterns, (0, 0.5, 1)),
    ("json-schema", "number of properties", _schema_properties, (0.5, 1)),
    ("json-schema", "schema depth", lambda r: _json_depth(r["reference"]), (0.5, 1)),
    ("gsm8k-json", "number of operations", lambda r: r["answer"].count("<<"), (0, 0.5, 1)),
    ("gsm8k-json", "size of numbers", _largest_number, (0, 0.5, 1)),
    ("xml-records", "repeated elements", lambda r: sum(1 for _ in _xml_root(r).iter()), (0, 0.5, 1)),
    ("xml-records", "attributes", lambda r: sum(len(e.attrib) for e in _xml_root(r).iter()), (0, 0.5, 1)),
    ("xml-records", "depth", _xml_depth, (0.5, 1)),
    ("function-calls", "parallel calls", lambda r: len(r["answers"]), (0, 0.5, 1)),
    ("function-calls", "tools offered", lambda r: len(r["tools"]), (0, 0.5, 1)),
    ("function-calls", "optional parameters", _optional_arguments, (0, 0.5, 1)),
]


@pytest.mark.parametrize("name,knob,statistic,levels", KNOBS, ids=[f"{t}:{k}" for t, k, _, _ in KNOBS])
def test_higher_difficulty_moves_the_knob(tasks, name, knob, statistic, levels):
    means = [statistics.mean(statistic(r) for r in records(tasks, name, d)) for d in levels]
    assert all(a < b for a, b in zip(means, means[1:])), f"{name} {knob}: means {means} at {levels}"


def test_easiest_and_hardest_settings_are_what_the_docs_say(tasks):
    easy_recipes, hard_recipes = records(tasks, "json-recipes", 0), records(tasks, "json-recipes", 1)
    assert all(not any(s.startswith("Prepare the ") for s in r["reference"]["steps"]) for r in easy_recipes)
    assert any(r["reference"]["steps"][0].startswith("Prepare the ") for r in hard_recipes)
    assert all(_enums_and_patterns(r) == 0 for r in records(tasks, "json-schema", 0))  # all loosened
    assert {len(r["answers"]) for r in records(tasks, "function-calls", 0)} == {1}
    assert max(len(r["answers"]) for r in records(tasks, "function-calls", 1)) == 4
    assert all(_optional_arguments(r) == 0 for r in records(tasks, "function-calls", 0))
    outlines = [r for r in records(tasks, "xml-records", 1) if r["xsd"].lstrip().startswith("<xs:schema")]
    assert outlines and max(_xml_depth(r) for r in outlines) >= 6
    assert not any(r["xsd"].lstrip().startswith("<") for r in records(tasks, "xml-records", 0.5))


# -- default data unchanged ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", BUILTIN)
def test_default_difficulty_is_the_records_without_one(tasks, name):
    task = tasks[name]
    default = task.synthetic("train", 40, 11)
    assert task.synthetic("train", 40, 11, difficulty=0.5) == default
    assert call_synthetic(task, "train", 40, 11, None) == default
    assert task.synthetic("train", 40, 11, difficulty=0.6) != default


# sha256 of json.dumps(generator("train", 40, 5)) from the generators as they were before difficulty
PINNED = {
    ("rlstruct_json.recipes.synthetic", "synthetic_recipes"): "7af5a3f9f4f874e1216596f3e216c446729875d747fef8367c69f12a1c76a126",
    # json-schema pinned when its tables moved to JSON files (issue 14): the records stayed byte-identical
    ("rlstruct_json.schema.synthetic", "synthetic_schema_records"): "10a092b1b56a2440d73a9827b11520dd177734f9aac0d54329228b26a0e4d550",
    ("rlstruct_gsm8k.synthetic", "generate"): "b41f5a9001141630021a549ee3c33dbdcffe64e1f42e551be2859c7ccc62a052",
    ("rlstruct_xml.synthetic", "generate"): "020bf0652266ae7a7a96e7f1e0562fef99c29cdb4df079ea44f9233c78bc40dd",
    ("rlstruct_function_calls.synthetic", "generate"): "4e51f37231fbf7263cf3a22714f75379e51e988daf19be4627b69a154b6aebba",
}


@pytest.mark.parametrize("module,function", sorted(PINNED))
def test_default_records_are_byte_identical_to_the_original_generators(module, function):
    import importlib

    generate = getattr(importlib.import_module(module), function)
    for difficulty in (None, 0.5):
        text = json.dumps(generate("train", 40, 5, difficulty), ensure_ascii=False)
        assert hashlib.sha256(text.encode()).hexdigest() == PINNED[(module, function)]


# -- splits, seeds, validity -------------------------------------------------------------------------
@pytest.mark.parametrize("name", BUILTIN)
def test_splits_stay_disjoint_at_every_difficulty(tasks, name):
    task = tasks[name]
    prompts: dict[tuple[str, float], set[str]] = {}
    for difficulty in (0, 0.5, 1):
        for split in ("train", "validation", "test"):
            drawn = task.synthetic(split, 60 if split == "train" else 20, 4, difficulty=difficulty)
            prompts[split, difficulty] = {task.prompt_text(r) for r in drawn}
    for (split_a, d_a), a in prompts.items():
        for (split_b, d_b), b in prompts.items():
            if split_a != split_b:  # a held-out prompt never shows up in training, whatever the levels
                assert not a & b, f"{name}: {split_a}@{d_a} shares prompts with {split_b}@{d_b}"


@pytest.mark.parametrize("name", BUILTIN)
@pytest.mark.parametrize("difficulty", [0.0, 0.3, 1.0])
def test_same_seed_same_records_and_larger_size_extends(tasks, name, difficulty):
    task = tasks[name]
    first = task.synthetic("validation", 30, 9, difficulty=difficulty)
    assert task.synthetic("validation", 30, 9, difficulty=difficulty) == first
    assert task.synthetic("validation", 45, 9, difficulty=difficulty)[:30] == first
    assert task.synthetic("validation", 30, 10, difficulty=difficulty) != first


@pytest.mark.parametrize("name", BUILTIN)
@pytest.mark.parametrize("difficulty", [0.0, 1.0])
def test_records_at_the_extremes_are_valid_and_their_references_score_full_marks(tasks, name, difficulty):
    task = tasks[name]
    spec = RewardSpec.build(task, {})
    for raw in task.synthetic("test", 25, 2, difficulty=difficulty):
        record = task.normalize_record(raw)
        breakdown = score_inline(task, spec, record, task.reference_completion(record))
        assert breakdown.reward == 1.0, (breakdown.components, breakdown.errors)


@pytest.mark.parametrize("name", BUILTIN)
@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan"), True, "0.3"])
def test_out_of_range_difficulty_is_refused(tasks, name, bad):
    with pytest.raises(ValueError, match="difficulty"):
        tasks[name].synthetic("train", 3, 0, difficulty=bad)


# -- the optional Task API extension -----------------------------------------------------------------
class NoDifficulty(Task):
    name = "no-difficulty"

    def synthetic(self, split: str, size: int, seed: int) -> list[dict[str, Any]]:
        return [{"prompt": f"{split} {seed} {i}"} for i in range(size)]


class KwargsDifficulty(NoDifficulty):
    name = "kwargs-difficulty"

    def synthetic(self, split: str, size: int, seed: int, **options: Any) -> list[dict[str, Any]]:
        return [{"prompt": f"{split} {seed} {i} {options}"} for i in range(size)]


def test_a_task_without_the_extension_still_works_and_refuses_a_difficulty_clearly():
    task = NoDifficulty()
    assert not supports_difficulty(task)
    assert call_synthetic(task, "train", 2, 0) == [{"prompt": "train 0 0"}, {"prompt": "train 0 1"}]
    with pytest.raises(CurriculumError, match=r"^difficulty: task 'no-difficulty' does not support a difficulty"):
        call_synthetic(task, "train", 2, 0, 0.3)
    with pytest.raises(DataError, match="does not support a difficulty"):
        load_records(task, "synthetic", "train", 2, 0, difficulty=0.3)
    assert load_records(task, "synthetic", "train", 1, 0) == [{"prompt": "train 0 0"}]


def test_a_task_taking_keywords_gets_the_difficulty(tasks):
    assert supports_difficulty(KwargsDifficulty())
    assert call_synthetic(KwargsDifficulty(), "train", 1, 0, 0.25) == [{"prompt": "train 0 0 {'difficulty': 0.25}"}]
    assert all(supports_difficulty(tasks[name]) for name in BUILTIN)


def test_call_synthetic_checks_the_range_before_calling_the_task():
    with pytest.raises(CurriculumError, match=r"^difficulty: expected a number from 0 to 1"):
        call_synthetic(KwargsDifficulty(), "train", 1, 0, 2)


# -- rlstruct data --difficulty -----------------------------------------------------------------------
def test_cli_data_prints_records_at_the_difficulty(tasks, run_cli):
    easy = run_cli("data", "--task", "function-calls", "--limit", "20", "--difficulty", "0")
    hard = run_cli("data", "--task", "function-calls", "--limit", "20", "--difficulty", "0.8")
    default = run_cli("data", "--task", "function-calls", "--limit", "20")
    assert easy.returncode == hard.returncode == default.returncode == 0, easy.stderr + hard.stderr
    calls = [[len(json.loads(line)["answers"]) for line in out.stdout.splitlines()] for out in (easy, hard)]
    assert set(calls[0]) == {1} and statistics.mean(calls[1]) > 1.5
    expected = tasks["function-calls"].synthetic("train", 20, 0, difficulty=0.8)
    assert [json.loads(line) for line in hard.stdout.splitlines()] == expected
    assert default.stdout == run_cli("data", "--task", "function-calls", "--limit", "20", "--difficulty", "0.5").stdout


@pytest.mark.parametrize("value", ["1.5", "-0.1", "nan", "hard"])
def test_cli_data_refuses_a_bad_difficulty_naming_the_flag(run_cli, value):
    result = run_cli("data", "--task", "json-recipes", "--limit", "1", "--difficulty", value)
    assert result.returncode == 2
    assert "argument --difficulty: must be a number from 0 to 1" in result.stderr


def test_cli_data_refuses_a_difficulty_for_a_file(run_cli, tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text('{"question": "1+1?", "answer": "#### 2"}\n')
    result = run_cli("data", "--task", "gsm8k-json", "--source", str(path), "--difficulty", "0.3")
    assert result.returncode == 1
    assert result.stderr.strip() == f"rlstruct: error: difficulty: only synthetic data has a difficulty, not source {str(path)!r}"
