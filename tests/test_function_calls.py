"""The function-calls task: tool normalisation, completion parsing, BFCL-style matching, rewards."""

from __future__ import annotations

import json
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rlstruct import Prompt, RecordError
from rlstruct.reward import RewardSpec, score_inline
from rlstruct_function_calls import FunctionCallsTask
from rlstruct_function_calls.ast_match import best_assignment_total, values_match
from rlstruct_function_calls.synthetic import LIBRARY, SHAPES, generate, render_tool
from rlstruct_function_calls.tool_schema import normalize_tool, type_string_schema

TASK = FunctionCallsTask()
SPEC = RewardSpec.build(TASK, {})

WEATHER_XLAM = {
    "name": "get_weather",
    "description": "Get the weather forecast for a city.",
    "parameters": {
        "city": {"description": "City name.", "type": "str"},
        "unit": {"description": "Temperature unit.", "type": "str, optional", "default": "celsius"},
        "days": {"description": "Forecast days.", "type": "int, optional", "default": 1},
    },
}
CONVERT_XLAM = {
    "name": "convert_currency",
    "description": "Convert money.",
    "parameters": {
        "amount": {"description": "Amount.", "type": "float"},
        "from_currency": {"description": "Source.", "type": "str"},
        "to_currency": {"description": "Target.", "type": "str"},
    },
}


def record(answers, tools=(WEATHER_XLAM, CONVERT_XLAM), query="q"):
    """A normalised record with the given expected calls."""
    return TASK.normalize_record({"query": query, "tools": list(tools), "answers": answers})


def score(rec, completion):
    """Score through the core's gating and return the components (asserting no errors)."""
    breakdown = score_inline(TASK, SPEC, rec, completion)
    assert breakdown.errors == {}, breakdown.errors
    return breakdown.components


PARIS = {"name": "get_weather", "arguments": {"city": "Paris"}}
TOKYO_F = {"name": "get_weather", "arguments": {"city": "Tokyo", "unit": "fahrenheit"}}
USD_EUR = {"name": "convert_currency", "arguments": {"amount": 100.0, "from_currency": "USD", "to_currency": "EUR"}}


# -- tool normalisation -----------------------------------------------------------------------
@pytest.mark.parametrize("tool_name", sorted(LIBRARY))
def test_every_tool_shape_normalises_to_the_same_schema(tool_name):
    normalised = [normalize_tool(render_tool(LIBRARY[tool_name], shape)) for shape in SHAPES]
    first, unknown = normalised[0]
    assert unknown == 0
    assert first["parameters"]["type"] == "object"
    for other, count in normalised[1:]:
        assert other == first and count == 0
    # Normalising the normalised form changes nothing.
    assert normalize_tool(first) == (first, 0)


def test_openai_plain_and_xlam_give_identical_weather_tool():
    schema = {
        "type": "object",
        "properties": {
            "city": {"type": "string", "description": "City name."},
            "unit": {"type": "string", "description": "Temperature unit.", "default": "celsius"},
            "days": {"type": "integer", "description": "Forecast days.", "default": 1},
        },
        "required": ["city"],
    }
    plain = {"name": "get_weather", "description": "Get the weather forecast for a city.", "parameters": schema}
    openai = {"type": "function", "function": plain}
    expected = dict(plain)
    assert normalize_tool(plain)[0] == expected
    assert normalize_tool(openai)[0] == expected
    assert normalize_tool(WEATHER_XLAM)[0] == expected


def test_xlam_optional_flag_decides_required():
    tool, unknown = normalize_tool(WEATHER_XLAM)
    assert tool["parameters"]["required"] == ["city"]
    assert tool["parameters"]["properties"]["days"]["default"] == 1
    assert unknown == 0
    assert type_string_schema("List[int], optional") == ({"type": "array", "items": {"type": "integer"}}, True, 0)
    assert type_string_schema("Dict[str, Any]") == ({"type": "object"}, False, 0)
    assert type_string_schema("str") == ({"type": "string"}, False, 0)


@pytest.mark.parametrize(
    ("text", "schema"),
    [
        ("int", {"type": "integer"}),
        ("float", {"type": "number"}),
        ("bool", {"type": "boolean"}),
        ("List", {"type": "array"}),
        ("list", {"type": "array"}),
        ("List[str]", {"type": "array", "items": {"type": "string"}}),
        ("List[List[float]]", {"type": "array", "items": {"type": "array", "items": {"type": "number"}}}),
        ("dict", {"type": "object"}),
        ("Dict[str, int]", {"type": "object", "additionalProperties": {"type": "integer"}}),
        ("Any", {}),
        ("Tuple[int, int]", {"type": "array", "prefixItems": [{"type": "integer"}] * 2, "minItems": 2, "maxItems": 2}),
        ("Tuple[float, ...]", {"type": "array", "items": {"type": "number"}}),
        ("Optional[str]", {"type": ["string", "null"]}),
        ("Union[int, float]", {"type": ["integer", "number"]}),
        ("typing.List[int]", {"type": "array", "items": {"type": "integer"}}),
        ("Literal['a', 'b']", {"enum": ["a", "b"]}),
    ],
)
def test_python_type_strings_map_to_json_schema(text, schema):
    assert type_string_schema(text) == (schema, False, 0)
    assert type_string_schema(text + ", optional") == (schema, True, 0)


def test_unknown_types_are_permissive_and_counted():
    tool = {
        "name": "odd",
        "description": "",
        "parameters": {
            "callback": {"description": "", "type": "Callable"},
            "frame": {"description": "", "type": "pd.DataFrame, optional"},
            "items": {"description": "", "type": "List[Widget]"},
            "ok": {"description": "", "type": "int"},
        },
    }
    normalised, unknown = normalize_tool(tool)
    assert unknown == 3
    props = normalised["parameters"]["properties"]
    assert "type" not in props["callback"] and "type" not in props["frame"]
    assert props["items"] == {"type": "array", "description": ""}
    assert normalised["parameters"]["required"] == ["callback", "items", "ok"]
    rec = TASK.normalize_record(
        {"query": "q", "tools": [tool], "answers": [{"name": "odd", "arguments": {"callback": "f", "items": [1], "ok": 1}}]}
    )
    assert rec["unknown_types"] == 3
    # Anything goes for an unknown type, so the reference (and any value) still validates.
    assert score(rec, '[{"name": "odd", "arguments": {"callback": {"x": [1]}, "items": ["a"], "ok": 2}}]')["format"] == 1.0
    # Re-normalising keeps the count instead of losing it.
    assert TASK.normalize_record(rec)["unknown_types"] == 3


def test_bfcl_function_document_types():
    bfcl = {
        "name": "geometry.area",
        "description": "Area of a shape.",
        "parameters": {
            "type": "dict",
            "properties": {
                "base": {"type": "float", "description": "Base length."},
                "count": {"type": "integer", "description": "How many."},
                "corner": {"type": "tuple", "items": {"type": "integer"}, "description": "Corner."},
                "options": {"type": "dict", "properties": {"fill": {"type": "boolean"}}, "description": "Options."},
                "payload": {"type": "any", "description": "Anything."},
                "tags": {"type": "array", "items": {"type": "string"}, "description": "Tags."},
                "unit": {"type": "string", "description": "Unit.", "default": "cm"},
            },
            "required": ["base", "count"],
        },
    }
    tool, unknown = normalize_tool(bfcl)
    props = tool["parameters"]["properties"]
    assert unknown == 0
    assert tool["parameters"]["type"] == "object"
    assert props["base"]["type"] == "number"
    assert props["count"]["type"] == "integer"
    assert props["corner"]["type"] == "array" and props["corner"]["items"] == {"type": "integer"}
    assert props["options"]["type"] == "object" and props["options"]["properties"]["fill"] == {"type": "boolean"}
    assert "type" not in props["payload"]
    assert props["unit"]["default"] == "cm"
    assert tool["parameters"]["required"] == ["base", "count"]
    rec = TASK.normalize_record(
        {"query": "q", "tools": [bfcl], "answers": [{"name": "geometry.area", "arguments": {"base": 2.5, "count": 3}}]}
    )
    good = '[{"name": "geometry.area", "arguments": {"base": 2.5, "count": 3, "corner": [1, 2], "payload": null}}]'
    assert score(rec, good)["format"] == 1.0
    bad = '[{"name": "geometry.area", "arguments": {"base": "2.5", "count": 3, "options": {"fill": "yes"}}}]'
    assert score(rec, bad)["format"] == pytest.approx(1 / 3)


def test_xlam_parameter_called_type_is_not_mistaken_for_a_schema():
    tool = {
        "name": "live_giveaways_by_type",
        "description": "Live giveaways by type.",
        "parameters": {"type": {"description": "Giveaway type.", "type": "str", "default": "game"}},
    }
    normalised, _ = normalize_tool(tool)
    assert normalised["parameters"]["properties"] == {
        "type": {"type": "string", "description": "Giveaway type.", "default": "game"}
    }
    assert normalised["parameters"]["required"] == ["type"]


# -- records ----------------------------------------------------------------------------------
def test_xlam_row_with_json_strings_is_normalised():
    row = {
        "id": 7,
        "query": "Weather in Oslo, and convert 5 USD to JPY.",
        "tools": json.dumps([WEATHER_XLAM, CONVERT_XLAM]),
        "answers": json.dumps(
            [
                {"name": "get_weather", "arguments": {"city": "Oslo"}},
                {"name": "convert_currency", "arguments": {"amount": 5, "from_currency": "USD", "to_currency": "JPY"}},
            ]
        ),
    }
    rec = TASK.normalize_record(row)
    assert rec["id"] == 7
    assert isinstance(rec["answers"], list) and rec["answers"][0]["arguments"] == {"city": "Oslo"}
    assert [tool["name"] for tool in rec["tools"]] == ["get_weather", "convert_currency"]
    assert rec["unknown_types"] == 0
    assert json.loads(json.dumps(rec)) == rec
    assert TASK.normalize_record(rec) == rec
    assert score(rec, TASK.reference_completion(rec)) == dict.fromkeys(("structure", "format", "content", "validity"), 1.0)


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"tools": "[{not json"}, "tools"),
        ({"answers": "[{"}, "answers"),
        ({"answers": "{}"}, "answers"),
        ({"answers": "[]"}, "answers"),
        ({"answers": [{"name": "nope", "arguments": {}}]}, "answers[0].name"),
        ({"answers": [{"name": "get_weather"}]}, "answers[0]"),
        ({"tools": [{"description": "no name"}]}, "tools[0]"),
        ({"tools": [WEATHER_XLAM, WEATHER_XLAM]}, "tools[1].name"),
        ({"query": ""}, "query"),
    ],
)
def test_bad_records_raise_record_error_naming_the_key(change, key):
    raw = {"query": "q", "tools": [WEATHER_XLAM], "answers": [PARIS], **change}
    with pytest.raises(RecordError) as info:
        TASK.normalize_record(raw)
    assert str(info.value).startswith(key)


def test_answers_accept_parameters_synonym_and_string_arguments():
    rec = TASK.normalize_record(
        {"query": "q", "tools": [WEATHER_XLAM], "answers": [{"name": "get_weather", "parameters": '{"city": "Oslo"}'}]}
    )
    assert rec["answers"] == [{"name": "get_weather", "arguments": {"city": "Oslo"}}]


# -- prompt and reference ---------------------------------------------------------------------
def test_build_prompt_puts_tools_in_the_tools_slot_only():
    rec = record([PARIS], query="What's the weather in Paris?")
    prompt = TASK.build_prompt(rec)
    assert isinstance(prompt, Prompt)
    assert [m["role"] for m in prompt.messages] == ["system", "user"]
    assert prompt.messages[1]["content"] == "What's the weather in Paris?"
    assert prompt.tools == [{"type": "function", "function": tool} for tool in rec["tools"]]
    assert "get_weather" not in prompt.messages[0]["content"]
    assert '"arguments"' in prompt.messages[0]["content"]


# That reference completions score 1.0, that records round-trip through JSON and normalize_record,
# that splits are seeded, disjoint and sized, that an unknown split is refused, and that generic
# hostile output is bounded is checked for every built-in task by the contract kit
# (tests/test_contract_kit.py).
def test_reference_completion_is_the_expected_calls_as_json():
    for rec in TASK.synthetic("train", 50, seed=3):
        assert json.loads(TASK.reference_completion(rec)) == rec["answers"]


# -- synthetic --------------------------------------------------------------------------------
def test_synthetic_is_varied():
    train = TASK.synthetic("train", 200, seed=1)
    counts = {len(r["answers"]) for r in train}
    assert counts == {1, 2, 3}
    raw = generate("train", 200, seed=1)
    shapes = set()
    for rec in raw:
        for tool in rec["tools"]:
            if tool.get("type") == "function":
                shapes.add("openai")
            elif "properties" in tool["parameters"]:
                shapes.add("plain")
            else:
                shapes.add("xlam")
    assert shapes == {"openai", "plain", "xlam"}
    weather = [c for r in train for c in r["answers"] if c["name"] == "get_weather"]
    assert any("unit" not in c["arguments"] for c in weather)
    assert any("unit" in c["arguments"] for c in weather)
    assert TASK.synthetic("eval", 5, seed=1) == TASK.synthetic("test", 5, seed=1)
    assert TASK.synthetic("val", 5, seed=1) == TASK.synthetic("validation", 5, seed=1)


# -- structure --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "completion",
    [
        '[{"name": "get_weather", "arguments": {"city": "Paris"}}]',
        '{"name": "get_weather", "arguments": {"city": "Paris"}}',
        '```json\n[{"name": "get_weather", "arguments": {"city": "Paris"}}]\n```',
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>',
        '<tool_call>[{"name": "get_weather", "arguments": {"city": "Paris"}}]</tool_call>',
        '{"name": "get_weather", "parameters": {"city": "Paris"}}',
        '{"name": "get_weather", "arguments": "{\\"city\\": \\"Paris\\"}"}',
        '  \n[{"name": "get_weather", "arguments": {"city": "Paris"}}]\n ',
    ],
)
def test_accepted_completion_forms_score_full(completion):
    rec = record([PARIS])
    assert score(rec, completion) == dict.fromkeys(("structure", "format", "content", "validity"), 1.0)


def test_tag_text_inside_a_json_string_is_just_text():
    rec = TASK.normalize_record(
        {"query": "q", "tools": [{"name": "echo", "parameters": {"text": {"type": "str"}}}],
         "answers": [{"name": "echo", "arguments": {"text": "<tool_call>hi</tool_call>"}}]}
    )
    assert score(rec, TASK.reference_completion(rec))["content"] == 1.0


def test_several_tool_call_tags_make_parallel_calls():
    rec = record([PARIS, USD_EUR])
    completion = (
        '<tool_call>\n{"name": "convert_currency", "arguments": {"amount": 100, "from_currency": "USD", '
        '"to_currency": "EUR"}}\n</tool_call>\n<tool_call>\n{"name": "get_weather", "arguments": '
        '{"city": "Paris"}}\n</tool_call>'
    )
    assert score(rec, completion) == dict.fromkeys(("structure", "format", "content", "validity"), 1.0)


@pytest.mark.parametrize(
    "completion",
    [
        "",
        "   \n ",
        "[]",
        "{}",
        '"get_weather"',
        "[1, 2, 3]",
        'Sure! [{"name": "get_weather", "arguments": {"city": "Paris"}}]',
        '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}',
        'Calling: <tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>',
        '<tool_call><tool_call>{"name": "get_weather", "arguments": {}}</tool_call></tool_call>',
        "<tool_call></tool_call>",
        '```json\n<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>\n```',
        '```\n```',
        '[{"name": "get_weather", "arguments": ["Paris"]}]',
        '[{"name": "", "arguments": {}}]',
        '[{"name": "get_weather", "arguments": {"city": "Paris"}, "id": 1}]',
        '[{"name": "get_weather", "arguments": "not json"}]',
    ],
)
def test_unparsable_or_callless_completions_score_zero(completion):
    rec = record([PARIS])
    assert score(rec, completion) == dict.fromkeys(("structure", "format", "content", "validity"), 0.0)


def test_non_call_entries_give_partial_structure_and_are_charged_later():
    rec = record([PARIS])
    components = score(rec, '[{"name": "get_weather", "arguments": {"city": "Paris"}}, 42]')
    assert components["structure"] == pytest.approx(0.25)
    assert components["format"] == pytest.approx(0.5)
    assert components["content"] == pytest.approx(0.5)
    assert components["validity"] == 1.0  # one call expected, one call given
    # Padding with junk does not reach the expected number of calls.
    two = record([PARIS, TOKYO_F])
    assert score(two, '[{"name": "get_weather", "arguments": {"city": "Paris"}}, {"city": "Tokyo"}]')["validity"] == 0.5


def test_too_many_calls_are_refused():
    rec = record([PARIS])
    completion = json.dumps([{"name": "get_weather", "arguments": {"city": f"c{i}"}} for i in range(65)])
    assert score(rec, completion)["structure"] == 0.0


# -- format -----------------------------------------------------------------------------------
def test_wrong_tool_name_scores_zero_for_that_call():
    rec = record([PARIS, USD_EUR])
    only_wrong = '[{"name": "get_wether", "arguments": {"city": "Paris"}}]'
    assert score(rec, only_wrong)["format"] == 0.0
    one_wrong = json.dumps([{"name": "get_forecast", "arguments": {"city": "Paris"}}, USD_EUR])
    components = score(rec, one_wrong)
    assert components["format"] == pytest.approx(0.5)
    assert components["content"] == pytest.approx(0.5)


def test_invented_missing_and_mistyped_parameters_are_penalised():
    rec = record([PARIS])
    invented = '[{"name": "get_weather", "arguments": {"city": "Paris", "country": "FR"}}]'
    assert score(rec, invented)["format"] == pytest.approx(0.5)
    missing = '[{"name": "get_weather", "arguments": {"unit": "celsius"}}]'
    assert score(rec, missing)["format"] == pytest.approx(0.5)
    empty = '[{"name": "get_weather", "arguments": {}}]'
    assert score(rec, empty)["format"] == 0.0
    mistyped = '[{"name": "get_weather", "arguments": {"city": "Paris", "days": "two"}}]'
    assert score(rec, mistyped)["format"] == pytest.approx(0.5)
    many_invented = json.dumps([{"name": "get_weather", "arguments": {"city": "Paris", **{f"x{i}": i for i in range(9)}}}])
    assert score(rec, many_invented)["format"] == pytest.approx(0.1)


# -- content (BFCL-style matching) ------------------------------------------------------------
def test_parallel_calls_match_in_any_order():
    rec = record([PARIS, TOKYO_F, USD_EUR])
    shuffled = json.dumps([USD_EUR, TOKYO_F, PARIS])
    assert score(rec, shuffled) == dict.fromkeys(("structure", "format", "content", "validity"), 1.0)


def test_int_accepted_where_float_expected_but_not_the_reverse():
    rec = record([USD_EUR])
    as_int = '[{"name": "convert_currency", "arguments": {"amount": 100, "from_currency": "USD", "to_currency": "EUR"}}]'
    assert score(rec, as_int)["content"] == 1.0
    assert values_match(3, 3.0, {"type": "integer"}) is False
    assert values_match(3.0, 3, {"type": "number"}) is True
    assert values_match(True, 1, {}) is False
    assert values_match(1, True, {}) is False


def test_strings_compare_normalised():
    rec = record([{"name": "get_weather", "arguments": {"city": "New York, NY"}}])
    assert score(rec, '[{"name": "get_weather", "arguments": {"city": "  new york ny"}}]')["content"] == 1.0
    assert score(rec, '[{"name": "get_weather", "arguments": {"city": "Newark"}}]')["content"] < 1.0


def test_optional_parameter_with_default_value_may_be_omitted():
    explicit_default = record([{"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius", "days": 1}}])
    omitted = '[{"name": "get_weather", "arguments": {"city": "Paris"}}]'
    assert score(explicit_default, omitted)["content"] == 1.0
    # ...and giving the default when the reference leaves it out is fine too.
    rec = record([PARIS])
    assert score(rec, '[{"name": "get_weather", "arguments": {"city": "Paris", "days": 1}}]')["content"] == 1.0
    # A non-default value may not be dropped, nor added.
    fahrenheit = record([TOKYO_F])
    assert score(fahrenheit, '[{"name": "get_weather", "arguments": {"city": "Tokyo"}}]')["content"] < 1.0
    assert score(rec, '[{"name": "get_weather", "arguments": {"city": "Paris", "days": 3}}]')["content"] < 1.0


def test_lists_and_nested_objects_compare_recursively():
    assert values_match([1, 2.5, "A b"], [1, 2.5, "a B"], {})
    assert not values_match([1, 2], [2, 1], {})
    assert not values_match([1, 2], [1, 2, 3], {})
    schema = {"type": "object", "properties": {"x": {"type": "integer", "default": 0}, "y": {"type": "string"}}}
    assert values_match({"x": 0, "y": "Hi"}, {"y": "hi"}, schema)
    assert not values_match({"x": 1, "y": "Hi"}, {"y": "hi"}, schema)
    assert values_match({"a": {"b": [{"c": "Z"}]}}, {"a": {"b": [{"c": "z"}]}}, {})
    assert not values_match({"a": {"b": [{"c": "Z"}]}}, {"a": {"b": [{"c": "y"}]}}, {})


def test_wrong_arguments_get_honest_partial_content():
    rec = record([USD_EUR])
    one_wrong = '[{"name": "convert_currency", "arguments": {"amount": 100, "from_currency": "USD", "to_currency": "GBP"}}]'
    assert score(rec, one_wrong)["content"] == pytest.approx(0.5 * 2 / 3)
    other_tool = '[{"name": "get_weather", "arguments": {"city": "Paris"}}]'
    components = score(rec, other_tool)
    assert components["content"] == 0.0 and components["validity"] == 0.0


def test_extra_and_missing_calls_reduce_content():
    rec = record([PARIS, TOKYO_F])
    assert score(rec, json.dumps([PARIS]))["content"] == pytest.approx(0.5)
    assert score(rec, json.dumps([PARIS, TOKYO_F, USD_EUR]))["content"] == pytest.approx(2 / 3)


def test_best_assignment_beats_greedy():
    # Greedy would take (0, 0) = 0.9 and leave row 1 with nothing.
    scores = [[0.9, 0.8], [0.85, 0.0]]
    assert best_assignment_total(scores) == pytest.approx(1.65)
    assert best_assignment_total([[1.0, 0.0, 0.0]]) == 1.0
    assert best_assignment_total([]) == 0.0


# -- validity ---------------------------------------------------------------------------------
def test_duplicates_and_call_count():
    rec = record([PARIS, TOKYO_F])
    assert score(rec, json.dumps([PARIS, PARIS]))["validity"] == pytest.approx(0.5)
    assert score(rec, json.dumps([PARIS]))["validity"] == pytest.approx(0.5)
    assert score(rec, json.dumps([PARIS, PARIS, PARIS]))["validity"] == 0.0
    assert score(rec, json.dumps([TOKYO_F, PARIS]))["validity"] == 1.0
    # A repeat the reference itself asks for is not a duplicate.
    twice = record([PARIS, PARIS])
    assert score(twice, json.dumps([PARIS, PARIS]))["validity"] == 1.0


# -- hostile output ---------------------------------------------------------------------------
# Generic hostile output (10 MB strings, deep nesting, number bombs, NaN, invalid UTF-8, empty) is
# checked by the contract kit; these are the cases shaped like tool calls.
def _hostile() -> list[str]:
    deep = "[" * 100_000 + "]" * 100_000
    deep_args = '{"name": "get_weather", "arguments": ' + '{"a": ' * 100_000 + "1" + "}" * 100_000 + "}"
    return [
        deep_args,
        "<tool_call>" + deep + "</tool_call>",
        "<tool_call>" * 50_000,
        "<tool_call>" * 9_000,
        "<tool_call></tool_call>" * 4_000,
        '<tool_call>{"name": "get_weather", "arguments": {}}</tool_call>' * 1_500,
        json.dumps([{"name": "get_weather", "arguments": {"city": "Paris", "days": [[[[1]]]] * 50}}] * 60),
        '[{"name": "get_weather", "arguments": {"city": "' + "a" * 10_000_000 + '"}}]',
        '[{"name": "get_weather", "arguments": {"city": "Paris", "days": ' + "9" * 5000 + "}}]",
        '[{"name": "get_weather", "arguments": {"city": "Paris", "days": 1e999999}}]',
        '[{"name": "get_weather", "arguments": {"city": "Paris", "days": NaN}}]',
        '[{"name": "get_weather", "arguments": {"city": "Paris", "days": Infinity}}]',
        '[{"name": "get_weather", "arguments": {"city": "Paris", "days": 1e308}}]',
        '[{"name": "get_weather", "arguments": {"city": "\udcff"}}]',
        '[{"name": "\udcff", "arguments": {"\ud800": "\udcff"}}]',
        b'[{"name": "get_weather", "arguments": {"city": "\xff\xfe"}}]'.decode("utf-8", errors="surrogateescape"),
        '[{"name": "get_weather", "arguments": "' + '[' * 60 + '"}]',
        json.dumps([{"name": "get_weather", "arguments": {"city": f"c{i}"}} for i in range(64)]),
        json.dumps({"name": "get_weather", "arguments": json.dumps({"city": "Paris" * 10_000})}),
    ]


def test_hostile_outputs_are_fast_bounded_and_error_free():
    rec = record([PARIS, TOKYO_F])
    for completion in _hostile():
        start = time.perf_counter()
        breakdown = score_inline(TASK, SPEC, rec, completion)
        elapsed = time.perf_counter() - start
        assert elapsed < 1.0, (completion[:60], elapsed)
        assert breakdown.errors == {}, (completion[:60], breakdown.errors)
        assert 0.0 <= breakdown.reward <= 1.0
        assert all(0.0 <= value <= 1.0 for value in breakdown.components.values())


# -- property tests (random text and edited references are fuzzed by the contract kit) ---------
FUZZ_RECORDS = TASK.synthetic("train", 20, seed=11)


def _check_gated(breakdown):
    assert breakdown.errors == {}
    assert 0.0 <= breakdown.reward <= 1.0
    values = [breakdown.components[name] for name in ("structure", "format", "content", "validity")]
    assert all(0.0 <= v <= 1.0 for v in values)
    for before, after in zip(values, values[1:]):
        if before == 0.0:
            assert after == 0.0


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.integers(0, len(FUZZ_RECORDS) - 1),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=10),
        lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
        max_leaves=20,
    ),
)
def test_random_json_arguments_never_raise(index, arguments):
    rec = FUZZ_RECORDS[index]
    name = rec["answers"][0]["name"]
    completion = json.dumps([{"name": name, "arguments": arguments if isinstance(arguments, dict) else {"x": arguments}}])
    _check_gated(score_inline(TASK, SPEC, rec, completion))
