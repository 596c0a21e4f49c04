"""The error taxonomy: one hostile completion per class, each mapped to its own error_type.

Completions are scored by the real built-in tasks (score_inline) and classified the way eval and
training do it (classify_completions: the core default, refined by the task in a bounded worker).
"""

from __future__ import annotations

import copy
import json
import time

import pytest

from rlstruct import Parsed, Prompt, Task
from rlstruct.engine.metrics import summarise_breakdowns
from rlstruct.error_types import (
    ERROR_TYPES,
    classify_completions,
    count_error_types,
    default_error_type,
    json_with_extra_text,
)
from rlstruct.plugins import PluginManager
from rlstruct.reward import RewardSpec, score_inline
from rlstruct.sandbox import SandboxLimits

PM = PluginManager()
RECIPES, GSM8K, CALLS, SCHEMA, XML = (PM.task(n) for n in ("json-recipes", "gsm8k-json", "function-calls", "json-schema", "xml-records"))
RECIPE = RECIPES.synthetic("test", 1, 0)[0]
REF = RECIPE["reference"]
GSM = GSM8K.synthetic("test", 1, 0)[0]
CALL = CALLS.synthetic("test", 1, 0)[0]
SHOP = SCHEMA.synthetic("test", 1, 0)[0]
ORDER = XML.synthetic("test", 1, 0)[0]


def _recipe(**changes) -> str:
    recipe = copy.deepcopy(REF)
    for key, value in changes.items():
        if value is None:
            del recipe[key]
        else:
            recipe[key] = value
    return json.dumps(recipe)


def _classify(task: Task, record: dict, completion: str, truncated: bool = False, limits=None) -> str | None:
    spec = RewardSpec.build(task, PM.rewards)
    breakdown = score_inline(task, spec, record, completion)
    return classify_completions(task, [record], [completion], [breakdown], [truncated], limits)[0]


class RaisingValidity(Task):
    """A task whose validity component always raises (a buggy plugin)."""

    name = "raising-validity"

    def build_prompt(self, record):
        return Prompt([{"role": "user", "content": "x"}])

    def structure(self, record, completion):
        return Parsed(1.0, completion)

    def format(self, record, parsed):
        return 1.0

    def validity(self, record, parsed):
        raise KeyError("boom")


def _gsm(reasoning: str, answer) -> str:
    return json.dumps({"reasoning": reasoning, "answer": answer})


GOOD_REASONING = f"Working it out step by step, the result is {GSM['final']}."

# One hostile fixture per class: (task, record, completion, truncated) -> the class it must get.
HOSTILE = {
    "empty": (RECIPES, RECIPE, "  \n\t ", False),
    "truncated": (RECIPES, RECIPE, _recipe()[:60], True),
    "not-parseable": (RECIPES, RECIPE, "{name: 'Chicken Curry', servings: 7", False),
    "extra-text": (RECIPES, RECIPE, "Sure! Here is the recipe:\n```json\n" + _recipe() + "\n```\nEnjoy your meal.", False),
    "missing-key": (RECIPES, RECIPE, _recipe(steps=None), False),
    "invented-key": (RECIPES, RECIPE, _recipe(author="a chef"), False),
    "wrong-type": (RECIPES, RECIPE, _recipe(servings="seven"), False),
    "schema-violation": (RECIPES, RECIPE, _recipe(ingredients=[{**REF["ingredients"][0], "unit": "handful"}, *REF["ingredients"][1:]]), False),
    "wrong-value": (RECIPES, RECIPE, _recipe(servings=2), False),
    "implausible": (GSM8K, GSM, _gsm("ok", json.loads(GSM8K.reference_completion(GSM))["answer"]), False),
    "reward-error": (RaisingValidity(), {"prompt": "x"}, "anything", False),
}


def test_every_class_has_a_hostile_fixture():
    assert set(HOSTILE) == set(ERROR_TYPES)


@pytest.mark.parametrize("expected", list(HOSTILE))
def test_hostile_fixture_gets_its_own_class(expected):
    task, record, completion, truncated = HOSTILE[expected]
    assert _classify(task, record, completion, truncated) == expected


def test_a_perfect_completion_has_no_error_type():
    for task, record in ((RECIPES, RECIPE), (GSM8K, GSM), (CALLS, CALL), (SCHEMA, SHOP), (XML, ORDER)):
        assert _classify(task, record, task.reference_completion(record)) is None, task.name


# -- each built-in task refines its own failures ----------------------------------------------------
@pytest.mark.parametrize(
    ("completion", "expected"),
    [
        ("The answer: " + _gsm("2 + 2 = 4", 4), "extra-text"),
        ('"42"', "wrong-type"),  # JSON, but not an object
        (json.dumps({"answer": 4}), "missing-key"),
        (json.dumps({"reasoning": "2 + 2 = 4", "answer": 4, "confidence": 0.9}), "invented-key"),
        (_gsm("2 + 2 = 4", "four"), "wrong-type"),
        (_gsm(GOOD_REASONING, 10**6 + 7), "wrong-value"),
    ],
)
def test_gsm8k_classes(completion, expected):
    assert _classify(GSM8K, GSM, completion) == expected


def _call(arguments: dict, name: str = "math_mean") -> str:
    return json.dumps([{"name": name, "arguments": arguments}])


@pytest.mark.parametrize(
    ("completion", "expected"),
    [
        ("I will call the tool now: " + _call({"numbers": [46, 400, 57]}), "extra-text"),
        (json.dumps([{"name": "math_mean"}]), "missing-key"),  # no arguments: not a call object
        (json.dumps([{"name": "math_mean", "arguments": {}, "id": 1}]), "invented-key"),
        (json.dumps(["math_mean"]), "wrong-type"),
        ("[]", "schema-violation"),
        (_call({"x": 1}, name="math_median"), "invented-key"),  # a tool that was not offered
        (_call({}), "missing-key"),
        (_call({"numbers": [46, 400, 57], "precision": 2}), "invented-key"),
        (_call({"numbers": "46, 400, 57"}), "wrong-type"),
        (_call({"numbers": [46, 400]}), "wrong-value"),
    ],
)
def test_function_calls_classes(completion, expected):
    assert CALL["answers"] == [{"name": "math_mean", "arguments": {"numbers": [46, 400, 57]}}]
    assert _classify(CALLS, CALL, completion) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ([{"item": "tomatoes"}], "missing-key"),
        ([{"item": "tomatoes", "quantity": 5, "aisle": 3}], "invented-key"),
        ([{"item": "tomatoes", "quantity": "5"}], "wrong-type"),
        ([{"item": "tomatoes", "quantity": 0}], "schema-violation"),  # minimum 1
        ({"item": "tomatoes", "quantity": 5}, "wrong-type"),  # an object where the schema wants a list
    ],
)
def test_json_schema_classes_follow_the_record_schema(value, expected):
    assert _classify(SCHEMA, SHOP, json.dumps(value)) == expected


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda ref: "Here is the XML you asked for:\n" + ref + "\nLet me know if you need changes.", "extra-text"),
        (lambda ref: ref.replace("<country>PL</country>", ""), "missing-key"),
        (lambda ref: ref.replace("<country>PL</country>", "<country>PL</country><floor>3</floor>"), "invented-key"),
        (lambda ref: ref.replace("<quantity>17</quantity>", "<quantity>seventeen</quantity>"), "wrong-type"),
        (lambda ref: "<invoice>" + ref + "</invoice>", "wrong-type"),  # a document of another kind
    ],
)
def test_xml_classes(change, expected):
    assert "<country>PL</country>" in ORDER["reference"] and "<quantity>17</quantity>" in ORDER["reference"]
    assert _classify(XML, ORDER, change(ORDER["reference"])) == expected


# -- the core default and the bounded refinement ------------------------------------------------------
def test_core_default_without_a_refining_task():
    assert default_error_type({"structure": 1.0, "format": None, "content": 0.5, "validity": 0.0}, {}, "x", False) == "wrong-value"
    assert default_error_type({"structure": 0.0, "format": 0.0}, {}, "abc", True) == "truncated"
    assert default_error_type({"structure": 1.0, "format": 0.9}, {"format": "timeout"}, "abc", False) == "reward-error"
    # only hierarchical components decide: an extra (length) below 1.0 is not an error
    assert default_error_type({"structure": 1.0, "format": 1.0, "length": 0.2}, {}, "abc", False) is None


class Misbehaving(RaisingValidity):
    """Refinements that raise, invent a class, or hang on a marker completion."""

    name = "misbehaving"

    def validity(self, record, parsed):
        return 0.0

    def error_type(self, record, completion, breakdown):
        if completion == "raise":
            raise RuntimeError("bug")
        if completion == "hang":
            time.sleep(60)
        if completion == "bogus":
            return "my-own-class"
        return "wrong-type"


def test_a_refinement_that_raises_hangs_or_invents_keeps_the_default():
    task = Misbehaving()
    spec = RewardSpec.build(task, {})
    completions = ["fine", "raise", "hang", "bogus", "fine"]
    breakdowns = [score_inline(task, spec, {}, c) for c in completions]
    limits = SandboxLimits(timeout_s=0.5, memory_mb=256, workers=1)
    began = time.monotonic()
    types = classify_completions(task, [{}] * 5, completions, breakdowns, [False] * 5, limits)
    assert time.monotonic() - began < 20  # the hanging refinement was stopped, not waited for
    # the ones before and after the hanging one are still refined
    assert types == ["wrong-type", "implausible", "implausible", "implausible", "wrong-type"]


def test_json_with_extra_text():
    assert json_with_extra_text('Answer: {"a": 1}')
    assert json_with_extra_text('{"a": 1}\nThat is the object.')
    assert json_with_extra_text('```json\n{"a": 1}\n```\nDone.')
    assert not json_with_extra_text('{"a": 1}')
    assert not json_with_extra_text('```json\n{"a": 1}\n```')
    assert not json_with_extra_text("no json here {")
    assert not json_with_extra_text("[" * 10_000)  # bounded: refused before decoding


def test_counts_go_to_summaries_and_training_metrics():
    types = ["missing-key", None, "missing-key", "truncated"]
    assert count_error_types(types) == {"truncated": 1, "missing-key": 2}
    spec = RewardSpec.build(RECIPES, PM.rewards)
    breakdowns = [score_inline(RECIPES, spec, RECIPE, c) for c in ("", _recipe(), _recipe(steps=None), "{")]
    line = summarise_breakdowns(breakdowns, classify_completions(RECIPES, [RECIPE] * 4, ["", _recipe(), _recipe(steps=None), "{"], breakdowns, [False] * 4))
    assert line["errors/empty"] == 1 and line["errors/missing-key"] == 1 and line["errors/not-parseable"] == 1
    assert line["errors/wrong-value"] == 0  # every class is present, zeros included: a continuous curve
    assert {k for k in line if k.startswith("errors/")} == {f"errors/{name}" for name in ERROR_TYPES}
