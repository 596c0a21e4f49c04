"""The json-recipes task: records, prompts, the four reward components and hostile model output."""

from __future__ import annotations

import copy
import json
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from rlstruct import COMPONENTS, RecordError
from rlstruct.reward import RewardSpec, score_inline
from rlstruct_json.recipes import JsonRecipesTask
from rlstruct_json.recipes.schema import RECIPE_KEYS, RECIPE_SCHEMA, SCHEMA_PATH, UNITS
from rlstruct_json.recipes.scoring import CONTENT_WEIGHTS, VALIDITY_CHECKS, content_parts, validity_checks

TASK = JsonRecipesTask()
SPEC = RewardSpec.build(TASK, {})
RECORDS = TASK.synthetic("train", 200, seed=7)
RECORD = RECORDS[0]
REFERENCE = RECORD["reference"]


def score(completion: str, record: dict = RECORD):
    return score_inline(TASK, SPEC, record, completion)


def dumps(value) -> str:
    return json.dumps(value, ensure_ascii=False)


def assert_gated(components: dict[str, float]) -> None:
    for before, after in zip(COMPONENTS, COMPONENTS[1:]):
        if components[before] == 0.0:
            assert components[after] == 0.0, components


# -- schema and records ---------------------------------------------------------------------------
def test_shipped_schema_is_valid_draft_2020_12_and_strict():
    Draft202012Validator.check_schema(RECIPE_SCHEMA)
    assert SCHEMA_PATH.name == "recipe.schema.json"
    assert RECIPE_KEYS == ("name", "servings", "prep_minutes", "cook_minutes", "ingredients", "steps")
    assert RECIPE_SCHEMA["additionalProperties"] is False
    assert set(RECIPE_SCHEMA["required"]) == set(RECIPE_KEYS)
    ingredient = RECIPE_SCHEMA["$defs"]["ingredient"]
    assert ingredient["additionalProperties"] is False
    assert set(ingredient["required"]) == {"name", "quantity", "unit"}
    assert {"g", "kg", "ml", "l", "tsp", "tbsp", "cup", "piece", "pinch", "clove"} == set(UNITS)


# That reference completions score 1.0, that records round-trip through JSON and normalize_record,
# that splits are seeded, disjoint and sized, and that generic hostile output is bounded is checked
# for every built-in task by the contract kit (tests/test_contract_kit.py).
def test_synthetic_references_are_valid_under_the_shipped_schema():
    validator = Draft202012Validator(RECIPE_SCHEMA)
    assert all(validator.is_valid(record["reference"]) for record in RECORDS)


def test_reference_completion_is_compact_json_in_schema_key_order():
    text = TASK.reference_completion(RECORD)
    assert ": " not in text and ", " not in text.split('"steps"')[0]
    assert list(json.loads(text)) == list(RECIPE_KEYS)
    assert list(json.loads(text)["ingredients"][0]) == ["name", "quantity", "unit"]


def test_larger_size_extends_smaller_and_aliases_match():
    assert RECORDS[:30] == TASK.synthetic("train", 30, seed=7)
    assert TASK.synthetic("eval", 10, seed=7) == TASK.synthetic("test", 10, seed=7)
    assert TASK.synthetic("dev", 10, seed=7) == TASK.synthetic("validation", 10, seed=7)


SALAD = {
    "name": "Crunchy Lettuce Salad with Cucumber", "servings": 6, "prep_minutes": 15, "cook_minutes": 0,
    "ingredients": [{"name": "lettuce", "quantity": 360, "unit": "g"}, {"name": "olive oil", "quantity": 6, "unit": "tbsp"},
                    {"name": "lemon juice", "quantity": 3, "unit": "tbsp"}, {"name": "honey", "quantity": 3, "unit": "tsp"},
                    {"name": "salt", "quantity": 1, "unit": "pinch"}, {"name": "cucumber", "quantity": 360, "unit": "g"}],
    "steps": ["Wash and dry the lettuce.", "Chop the cucumber.",
              "Whisk the olive oil, lemon juice, honey and salt into a dressing.",
              "Combine the lettuce and the cucumber in a bowl, pour over the dressing and toss."],
}


def test_documented_example_scores():
    record = TASK.normalize_record({"prompt": "Write a recipe for Crunchy Lettuce Salad with Cucumber.", "reference": SALAD})
    flawed = copy.deepcopy(SALAD)
    flawed["servings"] = 7
    flawed["ingredients"][1]["unit"] = "cups"
    flawed["steps"] = flawed["steps"][:2] + ["Serve."]
    flawed["notes"] = "Serve warm."
    cucumber = {"name": "Cucumber Salad", "servings": 6, "prep_minutes": 10, "cook_minutes": 0,
                "ingredients": [{"name": "cucumbers", "quantity": 2, "unit": "piece"},
                                {"name": "salt", "quantity": 1, "unit": "pinch"}],
                "steps": ["Slice the cucumbers.", "Season with salt and serve."]}
    cases = [
        (json.dumps(flawed, indent=2), (1, 0.962, 0.717, 0.667)),
        (dumps({**SALAD, "notes": "x"}), (1, 0.968, 1, 1)),
        (dumps({**SALAD, "servings": 7}), (1, 1, 0.85, 1)),
        (dumps({k: v for k, v in SALAD.items() if k != "steps"}), (1, 0.839, 0.75, 0.667)),
        (dumps(cucumber), (1, 1, 0.442, 1)),
        ("{}", (1, 0.032, 0, 0)),
    ]
    for completion, expected in cases:
        got = score(completion, record).components
        assert [round(got[name], 3) for name in COMPONENTS] == pytest.approx(expected, abs=1e-3), completion
    assert score(json.dumps(flawed, indent=2), record).reward == pytest.approx(0.836, abs=1e-3)


def test_synthetic_prompt_states_dish_servings_and_every_ingredient():
    for record in RECORDS[:50]:
        prompt, ref = record["prompt"], record["reference"]
        assert ref["name"] in prompt
        assert str(ref["servings"]) in prompt
        for ingredient in ref["ingredients"]:
            assert ingredient["name"] in prompt


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"reference": REFERENCE}, "prompt"),
        ({"prompt": "  ", "reference": REFERENCE}, "prompt"),
        ({"prompt": 5, "reference": REFERENCE}, "prompt"),
        ({"prompt": "Write a recipe."}, "reference"),
        ({"prompt": "Write a recipe.", "reference": "pasta"}, "reference"),
        ({"prompt": "Write a recipe.", "reference": {}}, "reference"),
    ],
)
def test_malformed_records_raise_record_error_naming_the_key(raw, key):
    with pytest.raises(RecordError, match=key):
        TASK.normalize_record(raw)


def test_invalid_reference_error_names_the_failing_path():
    bad = copy.deepcopy(REFERENCE)
    bad["ingredients"][1]["unit"] = "handful"
    with pytest.raises(RecordError, match=r"reference\.ingredients\[1\]\.unit"):
        TASK.normalize_record({"prompt": "p", "reference": bad})
    bad = copy.deepcopy(REFERENCE)
    bad["servings"] = 0
    with pytest.raises(RecordError, match=r"reference\.servings"):
        TASK.normalize_record({"prompt": "p", "reference": bad})
    bad = copy.deepcopy(REFERENCE)
    bad["calories"] = 500
    with pytest.raises(RecordError, match="reference"):
        TASK.normalize_record({"prompt": "p", "reference": bad})


def test_prompt_has_strict_system_message_and_record_prompt():
    prompt = TASK.build_prompt(RECORD)
    system, user = prompt.messages
    assert system["role"] == "system" and user == {"role": "user", "content": RECORD["prompt"]}
    assert "ONLY" in system["content"]
    for key in (*RECIPE_KEYS, "quantity", "unit", *UNITS):
        assert key in system["content"]
    assert prompt.tools is None


def test_no_hf_dataset_and_docstring_says_why():
    assert TASK.hf_dataset is None
    assert "food.com" in (JsonRecipesTask.__doc__ or "")


# -- structure ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "completion",
    [
        "[1, 2]",
        '"a recipe"',
        "42",
        "null",
        "true",
        "Here is your recipe: " + dumps(REFERENCE),
        dumps(REFERENCE) + "\nEnjoy!",
        "```json\nthis is not json\n```",
        "```json\n[" + dumps(REFERENCE) + "]\n```",
        "```json\n" + dumps(REFERENCE) + "\n```\n```json\n{}\n```",
        "{'name': 'single quotes'}",
        dumps(REFERENCE)[:-1],
    ],
)
def test_structure_is_zero_for_anything_but_one_json_object(completion):
    breakdown = score(completion)
    assert breakdown.components == {name: 0.0 for name in COMPONENTS}
    assert breakdown.reward == 0.0 and breakdown.errors == {}


@pytest.mark.parametrize(
    "wrap",
    [
        lambda text: text,
        lambda text: "\n  " + text + "\n\n",
        lambda text: "```json\n" + text + "\n```",
        lambda text: "```\n" + text + "\n```",
        lambda text: "  ```JSON\r\n" + text + "\r\n```  ",
        lambda text: json.dumps(json.loads(text), indent=2),
    ],
)
def test_tolerated_wrapping_scores_like_the_bare_object(wrap):
    assert score(wrap(TASK.reference_completion(RECORD))).reward == 1.0


# -- format ---------------------------------------------------------------------------------------
def test_empty_object_gets_low_format_credit():
    breakdown = score("{}")
    assert breakdown.components["structure"] == 1.0
    assert 0.0 < breakdown.components["format"] < 0.2


def test_invented_keys_lower_format_and_more_lower_it_further():
    one = copy.deepcopy(REFERENCE)
    one["notes"] = "tasty"
    two = copy.deepcopy(one)
    two["ingredients"][0]["brand"] = "Acme"
    three = copy.deepcopy(two)
    three["difficulty"] = "easy"
    scores = [score(dumps(value)).components["format"] for value in (REFERENCE, one, two, three)]
    assert scores[0] == 1.0
    assert scores[0] > scores[1] > scores[2] > scores[3]


def test_invented_keys_are_penalised_not_just_ignored():
    partial = {"name": REFERENCE["name"], "servings": REFERENCE["servings"]}
    padded = {**partial, **{f"extra{i}": i for i in range(5)}}
    assert score(dumps(padded)).components["format"] < score(dumps(partial)).components["format"]
    lots = {f"k{i}": i for i in range(200)}
    assert score(dumps(lots)).components["format"] == 0.0


def test_format_partial_credit_orders_sensibly():
    missing_steps = {k: v for k, v in REFERENCE.items() if k != "steps"}
    wrong_unit = copy.deepcopy(REFERENCE)
    wrong_unit["ingredients"][0]["unit"] = "cups"
    only_name = {"name": REFERENCE["name"]}
    many_ingredients = {"ingredients": REFERENCE["ingredients"] * 50}
    f = {name: score(dumps(value)).components["format"] for name, value in {
        "full": REFERENCE, "wrong_unit": wrong_unit, "missing_steps": missing_steps,
        "many_ingredients": many_ingredients, "only_name": only_name, "empty": {},
    }.items()}
    assert f["full"] == 1.0
    assert f["full"] > f["wrong_unit"] > f["missing_steps"] > f["many_ingredients"] > f["only_name"] > f["empty"]
    assert f["many_ingredients"] < 0.6  # a long list of good items cannot outweigh missing keys


def test_format_is_one_exactly_when_draft_2020_12_validates():
    validator = Draft202012Validator(RECIPE_SCHEMA)
    minimal = {"name": "a", "servings": 1, "prep_minutes": 0, "cook_minutes": 0,
               "ingredients": [{"name": "a", "quantity": 0.5, "unit": "g"}], "steps": ["a"]}
    variants = [minimal, REFERENCE, {**minimal, "servings": 1.0}, {**minimal, "servings": True},
                {**minimal, "steps": [""]}, {**minimal, "ingredients": []},
                {**minimal, "ingredients": [{"name": "a", "quantity": 0, "unit": "g"}]},
                {**minimal, "prep_minutes": -1}, {**minimal, "name": ""}]
    for value in variants:
        fmt = score(dumps(value)).components["format"]
        assert (fmt == 1.0) == validator.is_valid(value), value
        assert 0.0 <= fmt <= 1.0


# -- content --------------------------------------------------------------------------------------
def test_content_weights_sum_to_one_and_parts_are_perfect_for_reference():
    assert sum(CONTENT_WEIGHTS.values()) == pytest.approx(1.0)
    assert content_parts(REFERENCE, REFERENCE) == {name: 1.0 for name in CONTENT_WEIGHTS}


def test_wrong_servings_costs_exactly_its_weight():
    changed = {**REFERENCE, "servings": REFERENCE["servings"] + 1}
    assert score(dumps(changed)).components["content"] == pytest.approx(1.0 - CONTENT_WEIGHTS["servings"])


def test_content_rewards_agreement_with_the_reference():
    mine = {i["name"] for i in REFERENCE["ingredients"]}
    other = next(r["reference"] for r in RECORDS if r["reference"]["name"] != REFERENCE["name"]
                 and len({i["name"] for i in r["reference"]["ingredients"]} & mine) <= 1)
    assert score(dumps(other)).components["content"] < 0.4
    renamed = copy.deepcopy(REFERENCE)
    for item in renamed["ingredients"]:
        item["name"] = item["name"].upper() + "  "
    assert score(dumps(renamed)).components["content"] == pytest.approx(1.0)
    fewer = copy.deepcopy(REFERENCE)
    fewer["ingredients"] = fewer["ingredients"][:2]
    fewer["steps"] = fewer["steps"][:1]
    assert 0.2 < score(dumps(fewer)).components["content"] < 0.8


def test_step_coverage_tolerates_rewording_but_not_unrelated_steps():
    reworded = copy.deepcopy(REFERENCE)
    reworded["steps"] = [step.upper().replace(".", "!") for step in reworded["steps"]]
    assert content_parts(REFERENCE, reworded)["steps"] == 1.0
    unrelated = copy.deepcopy(REFERENCE)
    unrelated["steps"] = ["Do something nice."]
    assert content_parts(REFERENCE, unrelated)["steps"] == 0.0
    merged = copy.deepcopy(REFERENCE)
    merged["steps"] = [" ".join(merged["steps"][:2]), *merged["steps"][2:]]
    assert content_parts(REFERENCE, merged)["steps"] == 1.0
    catch_all = copy.deepcopy(REFERENCE)
    catch_all["steps"] = [" ".join(catch_all["steps"] * 3)]
    assert content_parts(REFERENCE, catch_all)["steps"] == 0.0


# -- validity -------------------------------------------------------------------------------------
def _broken(mutate) -> dict:
    value = copy.deepcopy(REFERENCE)
    mutate(value)
    return value


@pytest.mark.parametrize(
    ("check", "mutate"),
    [
        ("quantities_positive", lambda r: r["ingredients"][0].update(quantity=-1)),
        ("units_known", lambda r: r["ingredients"][0].update(unit="bucket")),
        ("steps_non_empty", lambda r: r["steps"].append("   ")),
        ("names_distinct", lambda r: r["ingredients"].append({**r["ingredients"][0], "name": r["ingredients"][0]["name"].title()})),
        ("ingredients_used", lambda r: r["ingredients"].append({"name": "saffron", "quantity": 1, "unit": "pinch"})),
        ("time_plausible", lambda r: r.update(cook_minutes=2000)),
    ],
)
def test_each_validity_check_fails_alone(check, mutate):
    value = _broken(mutate)
    verdicts = validity_checks(value)
    assert verdicts[check] is False
    assert sum(verdicts.values()) == len(VALIDITY_CHECKS) - 1
    assert score(dumps(value)).components["validity"] == pytest.approx(1 - 1 / len(VALIDITY_CHECKS))


@pytest.mark.parametrize(
    "parsed",
    [None, [], "x", 3, {}, {"ingredients": "x", "steps": 5}, {"ingredients": [1, None, "a", {"name": 5}]},
     {"steps": [None, 3, ["a"]], "prep_minutes": "5", "cook_minutes": None},
     {"ingredients": [{"name": "a", "quantity": True, "unit": ["g"]}], "servings": {"n": 1}, "name": ["x"]},
     {"prep_minutes": 10**99, "cook_minutes": 1e308, "servings": 10**99,
      "ingredients": [{"name": "\udcff", "quantity": 1e308, "unit": "g"}], "steps": ["\ud800 \udcff"]}],
)
def test_components_tolerate_any_parsed_shape(parsed):
    for name in ("format", "content", "validity"):
        value = getattr(TASK, name)(RECORD, parsed)
        assert 0.0 <= value <= 1.0


# -- hostile model output -------------------------------------------------------------------------
# Generic hostile output (10 MB strings, deep nesting, number bombs, NaN, invalid UTF-8, empty) is
# checked by the contract kit; these are the cases shaped like a recipe.
HOSTILE = {
    "empty": "",
    "whitespace": " \n\t  \r\n",
    "deep_arrays": "[" * 100_000 + "]" * 100_000,
    "deep_in_fence": "```json\n" + "[" * 100_000 + "\n```",
    "ten_mb_string": '{"name": "' + "a" * 10_000_000 + '"}',
    "huge_float": '{"servings": 1e999}',
    "five_thousand_digits": '{"servings": ' + "9" * 5000 + "}",
    "nan": '{"servings": NaN, "prep_minutes": Infinity, "cook_minutes": -Infinity}',
    "surrogate_text": "\udcff\ud800",
    "surrogate_json": '{"name": "\udcff", "steps": ["\ud800"]}',
    "escaped_surrogate": '{"name": "\\ud800", "steps": ["\\udcff"], "ingredients": [{"name": "\\udfff", "quantity": 1, "unit": "g"}]}',
    "big_but_allowed": json.dumps({"name": "x", "steps": ["a b"] * 20_000})[:99_999] + "]}",
    "many_ingredients": json.dumps({"ingredients": [{"name": f"i{n}", "quantity": 1, "unit": "g"} for n in range(2000)],
                                    "steps": [f"use i{n}" for n in range(2000)]}),
}
RECIPE_SHAPED = ["big_but_allowed", "escaped_surrogate", "many_ingredients", "surrogate_json"]


@pytest.mark.parametrize("name", RECIPE_SHAPED)
def test_recipe_shaped_hostile_output_is_scored_fast_in_range_without_errors(name):
    start = time.perf_counter()
    breakdown = score(HOSTILE[name])
    elapsed = time.perf_counter() - start
    assert elapsed < 1.0, elapsed
    assert breakdown.errors == {}
    assert 0.0 <= breakdown.reward <= 1.0
    assert all(0.0 <= value <= 1.0 for value in breakdown.components.values())
    assert_gated(breakdown.components)


@pytest.mark.parametrize("name", ["deep_arrays", "ten_mb_string", "huge_float", "five_thousand_digits", "nan",
                                  "surrogate_text", "empty", "whitespace", "deep_in_fence"])
def test_hostile_output_earns_nothing(name):
    assert score(HOSTILE[name]).reward == 0.0


# -- property tests (random text and edited references are fuzzed by the contract kit) -------------
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**30), 10**30) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@st.composite
def recipe_like(draw):
    value = copy.deepcopy(draw(st.sampled_from(RECORDS[:20]))["reference"])
    for _ in range(draw(st.integers(1, 3))):
        target = value
        items = value.get("ingredients")
        if draw(st.booleans()) and isinstance(items, list) and items and isinstance(items[0], dict):
            target = items[0]
        key = draw(st.sampled_from([*target, "extra"]))
        if draw(st.booleans()):
            target.pop(key, None)
        else:
            target[key] = draw(JSON_VALUES)
    return value


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(recipe_like())
def test_format_is_one_iff_valid_for_mutated_recipes(value):
    fmt = TASK.format(RECORD, value)
    assert 0.0 <= fmt <= 1.0
    assert (fmt == 1.0) == Draft202012Validator(RECIPE_SCHEMA).is_valid(value)
    breakdown = score(dumps(value))
    assert breakdown.errors == {}
    assert_gated(breakdown.components)
