"""The json-schema task (any JSON Schema as a task), its schema walker and hostile model output."""

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
from rlstruct_json.schema import JsonSchemaTask
from rlstruct_json.schema.examples import BUILTIN_SCHEMAS, CONTACT_SCHEMA
from rlstruct_json.schema.structural_match import flatten, structural_f1
from rlstruct_json.schema_credit import (
    INVALID_CAP,
    MAX_REF_DEPTH,
    format_credit,
    is_valid,
    semantic_credit,
    tally,
)
from rlstruct_json.string_formats import FORMAT_CHECKS

TASK = JsonSchemaTask()
SPEC = RewardSpec.build(TASK, {})
RECORDS = TASK.synthetic("train", 200, seed=11)
CONTACT = next(r for r in RECORDS if r["schema"]["title"] == "Contact card")
EVENT = next(r for r in RECORDS if r["schema"]["title"] == "Calendar event")
SHOPPING = next(r for r in RECORDS if r["schema"]["title"] == "Shopping list")


def score(completion: str, record: dict = CONTACT):
    return score_inline(TASK, SPEC, record, completion)


def dumps(value) -> str:
    return json.dumps(value, ensure_ascii=False)


def record_for(schema, reference=None, prompt="Answer in JSON.") -> dict:
    raw = {"prompt": prompt, "schema": schema}
    if reference is not None:
        raw["reference"] = reference
    return TASK.normalize_record(raw)


def assert_gated(components: dict[str, float]) -> None:
    for before, after in zip(COMPONENTS, COMPONENTS[1:]):
        if components[before] == 0.0:
            assert components[after] == 0.0, components


# -- records and synthetic data -------------------------------------------------------------------
def test_builtin_schemas_are_valid_and_every_kind_is_generated():
    for schema in BUILTIN_SCHEMAS.values():
        Draft202012Validator.check_schema(schema)
    assert {r["schema"]["title"] for r in RECORDS} == {s["title"] for s in BUILTIN_SCHEMAS.values()}


# That reference completions score 1.0, that records round-trip through JSON and normalize_record,
# that splits are seeded, disjoint and sized, and that generic hostile output is bounded is checked
# for every built-in task by the contract kit (tests/test_contract_kit.py).
def test_synthetic_references_are_valid_under_their_schema():
    assert all(Draft202012Validator(r["schema"]).is_valid(r["reference"]) for r in RECORDS)


def test_larger_size_extends_smaller_and_aliases_match():
    assert TASK.synthetic("train", 200, seed=11)[:30] == TASK.synthetic("train", 30, seed=11)
    assert TASK.synthetic("eval", 10, seed=11) == TASK.synthetic("test", 10, seed=11)


def test_documented_example_scores():
    record = TASK.normalize_record({
        "prompt": "Make a contact card for Maria Lopez: email maria.lopez@example.com, phone +34 612 345 678, "
                  "born 1990-04-12, tagged friend and work.",
        "schema": CONTACT_SCHEMA,
        "reference": {"name": "Maria Lopez", "email": "maria.lopez@example.com", "phone": "+34 612 345 678",
                      "birthday": "1990-04-12", "tags": ["friend", "work"]},
    })
    ref = record["reference"]
    cases = [
        ({**ref, "email": "maria.lopez at example.com"}, (1, 1, 0.833, 0.667)),
        ({**ref, "company": "Acme"}, (1, 0.938, 0.923, 1)),
        ({k: v for k, v in ref.items() if k != "tags"}, (1, 0.786, 0.8, 1)),
        ({}, (1, 0.071, 0, 0)),
    ]
    for value, expected in cases:
        got = score(dumps(value), record).components
        assert [round(got[name], 3) for name in COMPONENTS] == pytest.approx(expected, abs=1e-3), value
    assert score(dumps(ref), record).reward == 1.0


def test_synthetic_prompts_state_the_reference_values():
    for record in RECORDS[:60]:
        for path, (kind, value) in flatten(record["reference"]).items():
            if kind == "string":
                assert value in record["prompt"].lower(), (path, value)


def test_schema_given_as_json_string_is_parsed():
    record = TASK.normalize_record({"prompt": "p", "schema": json.dumps(CONTACT_SCHEMA)})
    assert record["schema"] == CONTACT_SCHEMA
    assert "reference" not in record
    assert TASK.reference_completion(record) is None


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"schema": {"type": "object"}}, "prompt"),
        ({"prompt": "", "schema": {"type": "object"}}, "prompt"),
        ({"prompt": "p"}, "schema"),
        ({"prompt": "p", "schema": "{not json"}, "schema"),
        ({"prompt": "p", "schema": 5}, "schema"),
        ({"prompt": "p", "schema": [{"type": "object"}]}, "schema"),
        ({"prompt": "p", "schema": {"type": "strng"}}, "schema"),
        ({"prompt": "p", "schema": {"minItems": -1}}, "schema"),
        ({"prompt": "p", "schema": {"$ref": "https://example.com/other.json"}}, "schema"),
        ({"prompt": "p", "schema": {"$ref": "#/$defs/missing"}}, "schema"),
        ({"prompt": "p", "schema": {"properties": {"a": {"$id": "http://example.com/a", "$ref": "#/$defs/b"}},
                                    "$defs": {"b": {"type": "integer"}}}}, r"schema\.properties\.a: \$id"),
        ({"prompt": "p", "schema": {"type": "integer"}, "reference": "seven"}, "reference"),
        ({"prompt": "p", "schema": CONTACT_SCHEMA, "reference": {**CONTACT["reference"], "email": "nope"}},
         "reference"),
        ({"prompt": "p", "schema": CONTACT_SCHEMA, "reference": {**CONTACT["reference"], "tags": ["a", "a"]}},
         "reference"),
    ],
)
def test_malformed_records_raise_record_error_naming_the_key(raw, key):
    with pytest.raises(RecordError, match=key):
        TASK.normalize_record(raw)


def test_schema_error_names_the_problem():
    with pytest.raises(RecordError, match=r"schema\.properties\.age\.type: .*'strng'"):
        TASK.normalize_record({"prompt": "p", "schema": {"properties": {"age": {"type": "strng"}}}})
    with pytest.raises(RecordError, match=r"reference\.age"):
        TASK.normalize_record({"prompt": "p", "schema": {"properties": {"age": {"type": "integer"}}},
                               "reference": {"age": "x"}})


def test_prompt_carries_the_schema_and_the_record_prompt():
    prompt = TASK.build_prompt(CONTACT)
    system, user = prompt.messages
    assert user == {"role": "user", "content": CONTACT["prompt"]}
    assert "ONLY" in system["content"]
    schema_text = system["content"].split("Schema: ", 1)[1]
    assert json.loads(schema_text) == CONTACT["schema"]


# -- structure ------------------------------------------------------------------------------------
@pytest.mark.parametrize("completion", ["[1, 2]", '"text"', "3.5", "null", "true", "```json\n{}\n```", " {} "])
def test_structure_accepts_any_json_value(completion):
    assert TASK.structure(CONTACT, completion).score == 1.0


@pytest.mark.parametrize(
    "completion",
    ["", "   ", "Sure! " + "{}", "{} and more", "```json\nnot json\n```", "```json\n{}\n```\ntrailing",
     "{'a': 1}", "NaN", "Infinity", "1e999", "9" * 5000],
)
def test_structure_refuses_prose_junk_and_bad_literals(completion):
    breakdown = score(completion)
    assert breakdown.components == {name: 0.0 for name in COMPONENTS}
    assert breakdown.errors == {}


# -- format ---------------------------------------------------------------------------------------
def test_empty_object_gets_low_format_credit():
    for record in (CONTACT, EVENT):
        assert 0.0 < score("{}", record).components["format"] < 0.2


def test_invented_keys_lower_format():
    ref = CONTACT["reference"]
    one = {**ref, "nickname": "Mo"}
    two = {**one, "age": 40}
    scores = [score(dumps(v)).components["format"] for v in (ref, one, two)]
    assert scores[0] == 1.0 and scores[0] > scores[1] > scores[2]
    nested = copy.deepcopy(EVENT["reference"])
    nested["location"]["street"] = "Main St"
    assert score(dumps(nested), EVENT).components["format"] < 1.0


def test_keys_allowed_by_the_schema_are_not_invented():
    schema = {"type": "object", "required": ["a"], "properties": {"a": {"type": "integer"}}}
    assert format_credit(schema, {"a": 1, "b": 2}) == 1.0
    strict = {**schema, "additionalProperties": False, "patternProperties": {"^x_": {"type": "string"}}}
    assert format_credit(strict, {"a": 1, "x_note": "ok"}) == 1.0
    assert format_credit(strict, {"a": 1, "x_note": 5}) < 1.0
    assert format_credit(strict, {"a": 1, "other": "no"}) < 1.0


def test_format_partial_credit_for_a_top_level_array():
    good = SHOPPING["reference"]
    half_bad = [dict(item) for item in good]
    half_bad[0]["quantity"] = 0
    assert score(dumps(good), SHOPPING).components["format"] == 1.0
    assert 0.5 < score(dumps(half_bad), SHOPPING).components["format"] < 1.0
    assert score("[]", SHOPPING).components["format"] < 0.2
    assert score('{"item": "milk"}', SHOPPING).components["format"] < 0.2


def test_format_is_one_exactly_when_valid_and_capped_otherwise():
    schema = {"type": "object", "required": ["a"], "properties": {"a": {"type": "integer"}},
              "not": {"required": ["b"]}}
    assert format_credit(schema, {"a": 1}) == 1.0
    assert format_credit(schema, {"a": 1, "b": 1}) == INVALID_CAP  # only an uncounted keyword fails
    assert format_credit(True, [1, {"x": None}]) == 1.0
    assert format_credit(False, 1) == 0.0


def test_any_of_takes_the_best_branch_and_one_of_exclusivity_is_enforced():
    schema = {"anyOf": [{"type": "string", "minLength": 3}, {"type": "integer", "minimum": 10}]}
    assert format_credit(schema, 12) == 1.0
    assert format_credit(schema, 5) == pytest.approx(0.5)
    one_of = {"oneOf": [{"type": "integer"}, {"type": "number"}]}
    assert format_credit(one_of, 1.5) == 1.0
    assert format_credit(one_of, 2) == INVALID_CAP  # matches both branches


def test_recursive_refs_are_followed_a_bounded_number_of_times():
    tree = {
        "$defs": {"node": {"type": "object", "required": ["value", "children"], "additionalProperties": False,
                           "properties": {"value": {"type": "integer"},
                                          "children": {"type": "array", "items": {"$ref": "#/$defs/node"}}}}},
        "$ref": "#/$defs/node",
    }
    record = record_for(tree)
    leaf = {"value": 1, "children": []}
    deep = leaf
    for _ in range(25):  # 51 levels of JSON nesting, within the parser's bound of 64
        deep = {"value": 0, "children": [deep]}
    assert score(dumps(deep), record).components["format"] == 1.0
    broken = copy.deepcopy(deep)
    broken["children"][0]["value"] = "x"
    assert 0.5 < score(dumps(broken), record).components["format"] < 1.0
    # past MAX_REF_DEPTH levels the walker stops counting, the validator still decides
    very_deep_bad = {"value": "x", "children": []}
    for _ in range(MAX_REF_DEPTH + 5):
        very_deep_bad = {"value": 0, "children": [very_deep_bad]}
    assert format_credit(tree, very_deep_bad) == INVALID_CAP


@pytest.mark.parametrize(
    "schema",
    [
        {"$ref": "#"},
        {"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"},
        {"type": "object", "required": ["a", "b"], "properties": {"a": {"$ref": "#"}, "b": {"$ref": "#"}}},
        {"$defs": {"n": {"anyOf": [{"type": "array", "items": {"$ref": "#/$defs/n"}},
                                   {"type": "array", "items": {"$ref": "#/$defs/n"}}, {"type": "integer"}]}},
         "$ref": "#/$defs/n"},
    ],
)
def test_ref_cycles_and_explosive_schemas_stay_bounded(schema):
    record = record_for(schema)
    nested = 1
    for _ in range(40):
        nested = [nested]
    for completion in ("{}", "[]", "1", dumps(nested), dumps({"a": {"a": {}}, "b": 1}), '"x"'):
        start = time.perf_counter()
        breakdown = score(completion, record)
        assert time.perf_counter() - start < 2.0
        assert breakdown.errors == {}
        assert 0.0 <= breakdown.reward <= 1.0
        assert_gated(breakdown.components)


def test_unique_items_check_is_linear_time():
    schema = {"type": "array", "uniqueItems": True}
    items = [{"id": n, "tags": [n, str(n)]} for n in range(5000)]
    start = time.perf_counter()
    assert is_valid(schema, items)
    assert not is_valid(schema, [*items, {"tags": [4999, "4999"], "id": 4999.0}])
    assert not is_valid(schema, [1, 1.0])
    assert is_valid(schema, [1, True, "1", [1], {"a": 1}, {"a": True}])
    assert time.perf_counter() - start < 1.0


def test_walker_agrees_with_the_validator_on_simple_keywords():
    cases = [
        ({"type": "integer"}, 3.0), ({"type": "integer"}, True), ({"enum": [1, "a"]}, 1.0), ({"enum": [1]}, True),
        ({"const": {"a": [1, 2]}}, {"a": [1, 2.0]}), ({"multipleOf": 0.5}, 2.5), ({"multipleOf": 3}, 10),
        ({"exclusiveMaximum": 5}, 5), ({"maxLength": 2}, "abc"), ({"pattern": "^a+$"}, "aaa"),
        ({"minProperties": 1}, {}), ({"dependentRequired": {"a": ["b"]}}, {"a": 1}),
        ({"prefixItems": [{"type": "string"}], "items": {"type": "integer"}}, ["a", 1, 2]),
        ({"prefixItems": [{"type": "string"}], "items": {"type": "integer"}}, ["a", "b"]),
        ({"contains": {"type": "string"}}, [1, 2]), ({"contains": {"type": "string"}}, [1, "x"]),
    ]
    for schema, instance in cases:
        walked = tally(schema, instance)
        valid = Draft202012Validator(schema).is_valid(instance)
        assert (walked.met == walked.counted and walked.invented == 0) == valid, (schema, instance)
        assert (format_credit(schema, instance) == 1.0) == valid


# -- content --------------------------------------------------------------------------------------
def test_content_is_one_without_reference():
    record = record_for(CONTACT_SCHEMA)
    assert TASK.content(record, {"anything": 1}) == 1.0
    assert TASK.content({**record, "reference": None}, [1]) == 1.0


def test_content_is_structural_f1_over_paths_and_normalised_values():
    ref = {"a": "Hello World", "b": [1, 2], "c": {"d": True}}
    assert structural_f1({"c": {"d": True}, "b": [1.0, 2], "a": " hello   world. "}, ref) == 1.0
    assert structural_f1({"a": "Hello World", "b": [2, 1], "c": {"d": True}}, ref) == pytest.approx(0.5)
    assert structural_f1({"a": "Hello World"}, ref) == pytest.approx(0.4)
    assert structural_f1({"a": "x", "b": [1, 2], "c": {"d": 1}}, ref) == pytest.approx(0.5)
    assert structural_f1({}, ref) == 0.0
    assert structural_f1(ref, ref) == 1.0


def test_content_orders_contact_answers():
    ref = CONTACT["reference"]
    wrong_email = {**ref, "email": "someone@example.com"}
    assert score(dumps(ref)).components["content"] == 1.0
    assert 0.5 < score(dumps(wrong_email)).components["content"] < 1.0
    assert score(dumps({**ref, "name": ref["name"].upper()})).components["content"] == 1.0


# -- validity -------------------------------------------------------------------------------------
def test_validity_checks_formats_and_unique_items():
    ref = CONTACT["reference"]
    assert score(dumps({**ref, "email": "not-an-email"})).components["validity"] == pytest.approx(2 / 3)
    assert score(dumps({**ref, "birthday": "2021-02-30"})).components["validity"] == pytest.approx(2 / 3)
    assert score(dumps({**ref, "tags": ["a", "a"]})).components["validity"] == pytest.approx(2 / 3)
    event = copy.deepcopy(EVENT["reference"])
    event["attendees"].append("broken@")
    event["start"] = "tomorrow at nine"
    validity = score(dumps(event), EVENT).components["validity"]
    assert 0.0 < validity < 1.0


def test_validity_is_one_when_the_schema_has_no_semantic_checks():
    record = record_for({"type": "object", "properties": {"when": {"type": "string"}}}, {"when": "x"})
    assert score('{"when": "x"}', record).components["validity"] == 1.0
    assert semantic_credit({"type": "string", "format": "made-up-format"}, "x") == 1.0


@pytest.mark.parametrize(
    ("name", "good", "bad"),
    [
        ("date", ["2024-02-29", "1999-12-31"], ["2023-02-29", "2024-13-01", "24-01-01", "2024-01-01T00:00:00Z", "２０２４-01-01"]),
        ("date-time", ["2024-05-01T09:30:00Z", "2024-05-01t09:30:00.25+02:00"], ["2024-05-01 9:30", "2024-05-01T25:00:00Z", "2024-05-01T09:30:00"]),
        ("time", ["23:59:60Z", "00:00:00+05:30"], ["24:00:00Z", "12:00"]),
        ("email", ["a.b+c@example.co.uk", "x@y.io"], ["a@b", "a@@b.com", "a b@c.com", "@c.com", ".a@b.com"]),
        ("uri", ["https://shop.example.com/p/x?q=1", "mailto:a@b.com", "urn:isbn:123"], ["example.com", "http:/x", "https://", "http://a b.com"]),
        ("ipv4", ["192.168.0.1"], ["256.1.1.1", "1.2.3"]),
        ("ipv6", ["::1", "2001:db8::ff00:42:8329"], ["2001:db8:::1", "12345::"]),
        ("uuid", ["123e4567-e89b-12d3-a456-426614174000"], ["123e4567e89b12d3a456426614174000"]),
        ("hostname", ["example.com", "a-b.c"], ["-a.com", "a_b.com", "a" * 64 + ".com"]),
    ],
)
def test_format_checkers(name, good, bad):
    check = FORMAT_CHECKS[name]
    assert all(check(text) for text in good), name
    assert not any(check(text) for text in bad), name


# -- hostile model output -------------------------------------------------------------------------
# Generic hostile output (10 MB strings, deep nesting, number bombs, NaN, invalid UTF-8, empty) is
# checked by the contract kit; the cases below are shaped like the schemas' values.
HOSTILE = {
    "empty": "",
    "whitespace": " \n\t  \r\n",
    "deep_arrays": "[" * 100_000 + "]" * 100_000,
    "ten_mb_string": '"' + "a" * 10_000_000 + '"',
    "huge_float": "1e999",
    "five_thousand_digits": "9" * 5000,
    "nan": '{"price": NaN, "quantity": Infinity}',
    "surrogates": "\udcff\ud800",
    "surrogate_json": '{"name": "\udcff", "email": "\ud800@example.com", "tags": ["\\udfff", "\\udfff"]}',
    "max_depth_ok": "[" * 64 + "]" * 64,
    "many_unique_objects": json.dumps({"tags": [{"n": n} for n in range(7000)]}),
    "many_emails": json.dumps({"email": "x", "tags": [f"t{n}" for n in range(10_000)]}),
    "long_email": json.dumps({"email": "a" * 60_000 + "@" + "b" * 30_000 + ".com"}),
    "long_date": json.dumps({"birthday": "2024-01-01" * 8000}),
}
SCHEMA_SHAPED = ["long_date", "long_email", "many_emails", "many_unique_objects", "max_depth_ok", "surrogate_json"]


@pytest.mark.parametrize("record_kind", ["contact", "event", "shopping", "none"])
@pytest.mark.parametrize("name", SCHEMA_SHAPED)
def test_schema_shaped_hostile_output_is_scored_fast_in_range_without_errors(name, record_kind):
    record = {"contact": CONTACT, "event": EVENT, "shopping": SHOPPING,
              "none": record_for({"type": "array", "items": {"$ref": "#"}, "uniqueItems": True})}[record_kind]
    start = time.perf_counter()
    breakdown = score(HOSTILE[name], record)
    elapsed = time.perf_counter() - start
    assert elapsed < 1.0, elapsed
    assert breakdown.errors == {}
    assert 0.0 <= breakdown.reward <= 1.0
    assert all(0.0 <= value <= 1.0 for value in breakdown.components.values())
    assert_gated(breakdown.components)


@pytest.mark.parametrize("name", ["deep_arrays", "ten_mb_string", "huge_float", "five_thousand_digits", "nan",
                                  "surrogates", "empty", "whitespace"])
def test_hostile_output_earns_nothing(name):
    assert score(HOSTILE[name]).reward == 0.0


# -- property tests (random text and edited references are fuzzed by the contract kit) -------------
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**30), 10**30) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=25,
)


@st.composite
def mutated_value(draw):
    record = draw(st.sampled_from(RECORDS[:20]))
    value = copy.deepcopy(record["reference"])
    target = value[0] if isinstance(value, list) else value
    for _ in range(draw(st.integers(1, 3))):
        key = draw(st.sampled_from([*target, "extra"]))
        if draw(st.booleans()):
            target.pop(key, None)
        else:
            target[key] = draw(JSON_VALUES)
    return record, value


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_value())
def test_format_is_one_iff_valid_for_mutated_values(case):
    record, value = case
    fmt = TASK.format(record, value)
    assert 0.0 <= fmt <= 1.0
    assert (fmt == 1.0) == Draft202012Validator(record["schema"]).is_valid(value)
    for component in ("content", "validity"):
        assert 0.0 <= getattr(TASK, component)(record, value) <= 1.0


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(JSON_VALUES)
def test_arbitrary_json_values_are_scored_in_range(value):
    for record in (CONTACT, EVENT, SHOPPING):
        breakdown = score(dumps(value), record)
        assert breakdown.errors == {}
        assert 0.0 <= breakdown.reward <= 1.0
        assert breakdown.components["format"] < 1.0 or Draft202012Validator(record["schema"]).is_valid(value)
