"""The gsm8k-json task: records, prompt, reference completions, the four reward components,
hostile model output and number bombs."""

from __future__ import annotations

import json
import re
import time
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlstruct.reward import RewardSpec, score_inline
from rlstruct.splits import split_of
from rlstruct.task import COMPONENTS, RecordError
from rlstruct_gsm8k import Gsm8kJsonTask
from rlstruct_gsm8k.numbers import canonical_number, last_number, number_value, parse_number_text

TASK = Gsm8kJsonTask()
SPEC = RewardSpec.build(TASK, {})

NATALIA = {
    "question": (
        "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips "
        "in May. How many clips did Natalia sell altogether in April and May?"
    ),
    "answer": (
        "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n"
        "Natalia sold 48+24 = <<48+24=72>>72 clips altogether in April and May.\n#### 72"
    ),
}
# Shaped like the released files' answers with thousands separators.
SALARY = {
    "question": "Tom earns $25 an hour for 85 hours. How much does he earn?",
    "answer": "He earns 25*85 = $<<25*85=2125>>2,125.\n#### 2,125",
}
TRAILING_TEXT = {  # rationale whose last number is not the answer
    "question": "How many legs do 3 dogs have?",
    "answer": "Each dog has 4 legs, so 3 dogs have 3*4=<<3*4=12>>12 legs in total, counting all 3.\n#### 12",
}


def record(raw: dict) -> dict:
    return TASK.normalize_record(raw)


def completion(reasoning: object, answer: object, **extra: object) -> str:
    return json.dumps({"reasoning": reasoning, "answer": answer, **extra})


def score(rec: dict, text: str):
    return score_inline(TASK, SPEC, rec, text)


def timed(fn, *args):
    start = time.perf_counter()
    result = fn(*args)
    elapsed = time.perf_counter() - start
    assert elapsed < 1.0, f"took {elapsed:.2f} s"
    return result


def assert_sane(breakdown) -> None:
    assert not breakdown.errors, breakdown.errors
    assert 0.0 <= breakdown.reward <= 1.0
    values = [breakdown.components[name] for name in COMPONENTS]
    assert all(0.0 <= v <= 1.0 for v in values)
    for before, after in zip(values, values[1:]):
        if before == 0.0:
            assert after == 0.0, breakdown.components


# -- records ------------------------------------------------------------------------------------


def test_real_gsm8k_record_normalizes_and_keeps_its_text():
    rec = record(NATALIA)
    assert rec["question"] == NATALIA["question"] and rec["answer"] == NATALIA["answer"]
    assert rec["final"] == "72"
    assert json.loads(json.dumps(rec)) == rec


@pytest.mark.parametrize(
    ("line", "final"),
    [("#### 2,125", "2125"), ("#### -5", "-5"), ("#### 0.25", "0.25"), ("#### 1,000,000", "1000000"),
     ("#### 18 ", "18"), ("#### $1,200", "1200"), ("#### 12.50", "12.5"), ("####3", "3")],
)
def test_final_number_forms_in_records(line, final):
    rec = record({"question": "q?", "answer": f"Some working 1+1=2.\n{line}"})
    assert rec["final"] == final


def test_thousands_separator_record_scores_its_reference_and_plain_number():
    rec = record(SALARY)
    ref = TASK.reference_completion(rec)
    assert json.loads(ref)["answer"] == 2125
    assert score(rec, ref).reward == 1.0
    assert score(rec, completion("He earns 25*85 = 2,125 dollars.", 2125)).reward == 1.0


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"question": "q?", "answer": "He had 5 apples."}, "answer"),  # no #### line
        ({"question": "q?", "answer": "Work.\n#### five"}, "answer"),
        ({"question": "q?", "answer": "Work.\n#### 9**9"}, "answer"),
        ({"question": "q?", "answer": "Work.\n####"}, "answer"),
        ({"question": "q?"}, "answer"),
        ({"question": "q?", "answer": 72}, "answer"),
        ({"question": "q?", "answer": ""}, "answer"),
        ({"answer": "#### 1"}, "question"),
        ({"question": None, "answer": "#### 1"}, "question"),
        ({"question": "q?", "answer": "#### 1", "final": "2"}, "final"),
    ],
)
def test_malformed_records_name_the_key(raw, key):
    with pytest.raises(RecordError, match=rf"^{key}\b"):
        TASK.normalize_record(raw)


def test_non_mapping_record_is_rejected():
    with pytest.raises(RecordError):
        TASK.normalize_record(["question", "answer"])  # type: ignore[arg-type]


def test_normalize_is_idempotent():
    rec = record(SALARY)
    assert record(rec) == rec


# -- prompt and reference completion -----------------------------------------------------------


def test_prompt_states_the_contract_and_asks_the_question():
    prompt = TASK.build_prompt(record(NATALIA))
    system, user = prompt.messages
    assert system["role"] == "system" and user == {"role": "user", "content": NATALIA["question"]}
    for word in ('"reasoning"', '"answer"', "JSON", "number"):
        assert word in system["content"]
    assert prompt.tools is None


def test_reference_completion_strips_annotations_and_hash_line():
    data = json.loads(TASK.reference_completion(record(NATALIA)))
    assert set(data) == {"reasoning", "answer"}
    assert data["answer"] == 72 and isinstance(data["answer"], int)
    assert "<<" not in data["reasoning"] and "####" not in data["reasoning"]
    assert data["reasoning"].startswith("Natalia sold 48/2 = 24 clips in May.")


def test_reference_completion_adds_closing_sentence_when_needed():
    rec = record(TRAILING_TEXT)
    data = json.loads(TASK.reference_completion(rec))
    assert data["reasoning"].endswith("The answer is 12.")
    assert score(rec, TASK.reference_completion(rec)).reward == 1.0


def test_decimal_and_negative_references_score_one():
    for line, expected in (("#### 187.5", 187.5), ("#### -9", -9), ("#### 0.05", 0.05)):
        rec = record({"question": "q?", "answer": f"Work it out.\n{line}"})
        ref = TASK.reference_completion(rec)
        assert json.loads(ref)["answer"] == expected
        assert score(rec, ref).components == dict.fromkeys(COMPONENTS, 1.0)


# -- synthetic data ------------------------------------------------------------------------------
# That reference completions score 1.0, that records round-trip through JSON and normalize_record,
# that splits are deterministic, seeded, disjoint and sized, that an unknown split is refused, and
# that generic hostile output is bounded is checked for every built-in task by the contract kit
# (tests/test_contract_kit.py).

_ANNOTATION = re.compile(r"<<([^<>=]+)=([^<>]+)>>")
_EXPR = re.compile(r"(-?[\d.]+)([-+*/])(-?[\d.]+)(?:([*/])(-?[\d.]+))?")


def _evaluate(expr: str) -> Fraction:
    """Left-to-right arithmetic of at most three operands (all the generator writes)."""
    match = _EXPR.fullmatch(expr)
    assert match, expr
    ops = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b, "/": lambda a, b: a / b}
    value = ops[match[2]](Fraction(match[1]), Fraction(match[3]))
    if match[4]:
        value = ops[match[4]](value, Fraction(match[5]))
    return value


def test_synthetic_records_are_correct_gsm8k_records():
    records = TASK.synthetic("train", 300, seed=11)
    assert len(records) == 300
    for rec in records:
        assert set(rec) == {"question", "answer", "final"}
        assert rec["question"].endswith("?")
        annotations = _ANNOTATION.findall(rec["answer"])
        assert len(annotations) >= 2
        for expr, result in annotations:
            assert _evaluate(expr) == Fraction(result), (expr, result)
        assert Fraction(annotations[-1][1]) == Fraction(rec["final"])
        assert rec["answer"].splitlines()[-1].startswith("#### ")


def test_synthetic_covers_templates_and_answer_kinds():
    records = TASK.synthetic("train", 400, seed=0)
    finals = [Fraction(r["final"]) for r in records]
    assert any(f.denominator != 1 for f in finals), "no decimal answers"
    assert any(f < 0 for f in finals), "no negative answers"
    assert any("#### " in r["answer"] and "," in r["answer"].splitlines()[-1] for r in records)
    starts = {r["question"].split()[1] for r in records}
    assert len(starts) > 5
    for word in ("buys", "pages", "years old", "shares", "%", "saves", "temperature"):
        assert any(word in r["question"] for r in records), word


def test_larger_size_extends_smaller_and_aliases_match():
    assert TASK.synthetic("train", 80, seed=5)[:50] == TASK.synthetic("train", 50, seed=5)
    assert TASK.synthetic("eval", 5, seed=0) == TASK.synthetic("test", 5, seed=0)


def test_the_question_text_decides_the_split():
    assert all(split_of(r["question"]) == "test" for r in TASK.synthetic("test", 300, seed=2))


# -- structure ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"reasoning": "48/2 = 24, 48+24 = 72.", "answer": 72}', 1.0),
        ('```json\n{"reasoning": "48+24 = 72.", "answer": 72}\n```', 1.0),
        ('  ```\n{"reasoning": "48+24 = 72.", "answer": 72}\n```  ', 1.0),
        ('[{"reasoning": "x", "answer": 72}]', 0.0),
        ("72", 0.0),
        ('"72"', 0.0),
        ("The answer is 72.", 0.0),
        ('Answer: {"reasoning": "x", "answer": 72}', 0.0),
        ('```json\nThe answer is 72\n```', 0.0),
        ('{"reasoning": "x", "answer": 72', 0.0),
        ('{"reasoning": "x", "answer": NaN}', 0.0),
        ('{"reasoning": "x", "answer": Infinity}', 0.0),
        ("", 0.0),
        ("   \n\t ", 0.0),
    ],
)
def test_structure(text, expected):
    parsed = TASK.structure(record(NATALIA), text)
    assert parsed.score == expected
    assert (parsed.value is not None) == (expected == 1.0)


# -- format ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"reasoning": "r", "answer": 72}, 1.0),
        ({"reasoning": "r", "answer": 72.5}, 1.0),
        ({"reasoning": "r", "answer": "72"}, 0.875),
        ({"reasoning": "r", "answer": "seventy-two"}, 0.75),
        ({"reasoning": "r", "answer": True}, 0.75),
        ({"reasoning": "r", "answer": None}, 0.75),
        ({"reasoning": "r", "answer": [72]}, 0.75),
        ({"reasoning": 5, "answer": 72}, 0.75),
        ({"answer": 72}, 0.5),
        ({"reasoning": "r"}, 0.5),
        ({"reasoning": "r", "answer": 72, "units": "clips"}, 0.75),
        ({"reasoning": "r", "answer": 72, "a": 1, "b": 2, "c": 3, "d": 4}, 0.0),
        ({"Reasoning": "r", "Answer": 72}, 0.0),
        ({}, 0.0),
        ([], 0.0),
        (None, 0.0),
    ],
)
def test_format(value, expected):
    assert TASK.format(record(NATALIA), value) == pytest.approx(expected)


def test_only_exact_shape_gets_full_format():
    rec = record(NATALIA)
    assert TASK.format(rec, {"reasoning": "", "answer": 0}) == 1.0
    for value in ({"reasoning": "r", "answer": "72"}, {"reasoning": "r", "answer": 72, "x": 1}):
        assert TASK.format(rec, value) < 1.0


# -- content --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "answer",
    [1000, 1000.0, "1000", "1,000", "1000.0", "$1,000", " 1000 ", "1000.", "+1000", "1e3",
     "$ 1,000.00", "\t1000\n"],
)
def test_content_tolerant_forms_equal_1000(answer):
    rec = record({"question": "q?", "answer": "Work.\n#### 1,000"})
    assert TASK.content(rec, {"reasoning": "r", "answer": answer}) == 1.0


@pytest.mark.parametrize("answer", ["50%", "50 %", 50, "50", "50.00"])
def test_content_percent_equals_plain_reference(answer):
    rec = record({"question": "What percent?", "answer": "Half is 50%.\n#### 50"})
    assert TASK.content(rec, {"reasoning": "r", "answer": answer}) == 1.0


@pytest.mark.parametrize(
    "answer",
    [1001, 999, 1000.000001, "1000 dollars", "one thousand", "1,00,0", "10,00", "1000/1", "10**3",
     "10^3", True, None, [1000], {"value": 1000}, "", "  ", "$", "%", "-1000", "1000-"],
)
def test_content_rejects_other_values(answer):
    rec = record({"question": "q?", "answer": "Work.\n#### 1,000"})
    assert TASK.content(rec, {"reasoning": "r", "answer": answer}) == 0.0


def test_content_negative_and_decimal_references():
    neg = record({"question": "q?", "answer": "Work.\n#### -5"})
    for answer in (-5, -5.0, "-5", "-$5", "$-5", " -5 "):
        assert TASK.content(neg, {"answer": answer}) == 1.0, answer
    assert TASK.content(neg, {"answer": 5}) == 0.0
    dec = record({"question": "q?", "answer": "Work.\n#### 187.5"})
    for answer in (187.5, "187.50", "$187.5", 187.50000000001):
        assert TASK.content(dec, {"answer": answer}) == 1.0, answer
    assert TASK.content(dec, {"answer": 187.6}) == 0.0
    tenth = record({"question": "q?", "answer": "Work.\n#### 0.3"})
    assert TASK.content(tenth, {"answer": 0.1 + 0.2}) == 1.0  # float noise on a decimal reference


def test_integer_reference_is_exact_even_for_long_integers():
    big = 12345678901234567890123
    rec = record({"question": "q?", "answer": f"Work.\n#### {big}"})
    assert TASK.content(rec, {"answer": big}) == 1.0
    assert TASK.content(rec, {"answer": big + 1}) == 0.0
    assert TASK.content(rec, {"answer": float(big)}) == 0.0  # a float cannot hold it exactly


BOMBS = [
    "9**9**9**9",
    "10^10^10",
    "1e999999999",
    "1E+999",
    "9" * 100_000,
    "1" + "0" * 60,
    "1" * 51,
    "0." + "1" * 60,
    "1,000" * 20_000,
    "-" + "9" * 5000,
    10**100_000,
    -(10**60),
    10**50,
    1e300,
    1e-300,
    float("inf"),
    float("nan"),
]


@pytest.mark.parametrize("bomb", BOMBS, ids=[f"bomb{i}" for i in range(len(BOMBS))])
def test_number_bombs_score_zero_fast(bomb):
    rec = record(SALARY)
    parsed = {"reasoning": "A long enough reasoning ending in 2125.", "answer": bomb}
    assert timed(TASK.content, rec, parsed) == 0.0
    assert 0.0 <= timed(TASK.format, rec, parsed) <= 1.0
    assert 0.0 <= timed(TASK.validity, rec, parsed) <= 1.0


@pytest.mark.parametrize(
    "text",
    [
        '{"reasoning": "big", "answer": 1e999999999}',
        '{"reasoning": "big", "answer": 9**9**9**9}',
        '{"reasoning": "big", "answer": "9**9**9**9"}',
        '{"reasoning": "big", "answer": "10^10^10"}',
        '{"reasoning": "big", "answer": "1e999999999"}',
        '{"reasoning": "big", "answer": ' + "9" * 60 + "}",
        '{"reasoning": "big", "answer": ' + "9" * 99 + "}",
        '{"reasoning": "big", "answer": ' + "9" * 100_000 + "}",
        '{"reasoning": "big", "answer": "' + "9" * 99_000 + '"}',
        '{"reasoning": "big", "answer": 1' + "0" * 400 + ".0}",
    ],
)
def test_bombs_through_score_inline(text):
    result = timed(score, record(SALARY), text)
    assert_sane(result)
    assert result.components["content"] == 0.0


# -- validity -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reasoning", "answer", "expected"),
    [
        ("48/2 = 24 in May, 48+24 = 72 in all.", 72, 1.0),
        ("He earned 25*85 = $2,125 in total.", 2125, 1.0),
        ("The discount leaves $187.50 to pay.", 187.5, 1.0),
        ("At midnight it was 3 - 8 = -5 degrees.", -5, 1.0),
        ("She ended the week with a loss of 5 dollars.", -5, 1.0),
        ("She had 10 and spent 10-5 so 5 remain.", 5, 1.0),
        ("The result of the sum is 72", "72", 1.0),
        ("It is 72.", 72, 0.5),  # too short
        ("48/2 = 24 in May, so 70 in all.", 72, 0.5),  # last number disagrees
        ("I worked it all out carefully.", 72, 0.5),  # no number
        ("72 is the answer, from 48 and 24", 72, 0.5),  # last number is 24
        ("", 72, 0.0),
        ("   ", 72, 0.0),
        ("short", 71, 0.0),
        (None, 72, 0.0),
        (["48+24=72"], 72, 0.0),
    ],
)
def test_validity(reasoning, answer, expected):
    assert TASK.validity(record(NATALIA), {"reasoning": reasoning, "answer": answer}) == expected


def test_validity_scans_only_the_tail_of_long_reasoning():
    rec = record(NATALIA)
    long_text = "72 " + "word " * 2_000_000 + "so 72 in all."
    assert timed(TASK.validity, rec, {"reasoning": long_text, "answer": 72}) == 1.0
    beyond_window = "So the total is 72" + " and then nothing" * 300
    assert TASK.validity(rec, {"reasoning": beyond_window, "answer": 72}) == 0.5
    digits = "step " + "9" * 10_000_000
    assert timed(TASK.validity, rec, {"reasoning": digits, "answer": 72}) == 0.5


def test_validity_non_dict_is_zero():
    for value in (None, [], "72", 72):
        assert TASK.validity(record(NATALIA), value) == 0.0
        assert TASK.content(record(NATALIA), value) == 0.0


# -- documented example scores --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"reasoning": "48/2 = 24 in May, 48+24 = 72 in all.", "answer": 72}', (1, 1, 1, 1)),
        ('{"reasoning": "48/2 = 24 in May, 48+24 = 72 in all.", "answer": "72"}', (1, 0.875, 1, 1)),
        ('{"reasoning": "It is 72.", "answer": 72}', (1, 1, 1, 0.5)),
        ('{"reasoning": "48/2 = 24 in May, so 70 in all.", "answer": 72}', (1, 1, 1, 0.5)),
        ('{"reasoning": "48/2 = 24 in May, 48+24 = 72 in all.", "answer": 72, "units": "clips"}', (1, 0.75, 1, 1)),
        ('{"answer": 71}', (1, 0.5, 0, 0)),
        ("The answer is 72.", (0, 0, 0, 0)),
    ],
)
def test_documented_examples(text, expected):
    result = score(record(NATALIA), text)
    assert tuple(result.components[c] for c in COMPONENTS) == pytest.approx(expected)
    assert not result.errors


# -- hostile model output ---------------------------------------------------------------------------
# Generic hostile output (10 MB strings, deep nesting, number bombs, NaN, invalid UTF-8, empty) is
# checked by the contract kit; these are the cases shaped like a {"reasoning", "answer"} object.

HOSTILE = [
    '{"reasoning": "' + "[" * 100_000 + '", "answer": 72}',
    '{"reasoning": "' + "x" * 10_000_000 + '", "answer": 72}',
    '{"reasoning": "\udcff lone surrogate 72 here", "answer": 72}',
    '{"reasoning": "escaped \\udcff surrogate, 72", "answer": 72}',
    b'\xff\xfe{"reasoning": "bad bytes", "answer": 72}'.decode("utf-8", errors="surrogateescape"),
    '{"reasoning": "' + b"\xc3\x28 invalid 72".decode("utf-8", errors="surrogateescape") + '", "answer": 72}',
    "```json\n```",
    '{"reasoning": "r", "answer": {"a": ' * 60 + "1" + "}" * 121,
    '{"reasoning": "r", "answer": 72, "answer": "dup"}',
]


@pytest.mark.parametrize("text", HOSTILE, ids=[f"hostile{i}" for i in range(len(HOSTILE))])
def test_hostile_completions_are_fast_bounded_and_error_free(text):
    result = timed(score, record(NATALIA), text)
    assert_sane(result)


HOSTILE_PARSED = [
    {"reasoning": "x" * 10_000_000, "answer": 72},
    {"reasoning": "\udcff" * 1000 + " 72", "answer": 72},
    {"reasoning": "r" * 20, "answer": "\udcff72"},
    {"reasoning": "r" * 20, "answer": "x" * 10_000_000},
    {"reasoning": "r" * 20, "answer": float("nan")},
    {"reasoning": 10**100_000, "answer": 10**100_000},
    {"reasoning": "1" * 100_000, "answer": "1" * 100_000},
    {"x" * 1000: 1, "reasoning": "r", "answer": 72},
]


@pytest.mark.parametrize("parsed", HOSTILE_PARSED, ids=[f"parsed{i}" for i in range(len(HOSTILE_PARSED))])
def test_hostile_parsed_values_per_component(parsed):
    rec = record(NATALIA)
    for name in ("format", "content", "validity"):
        value = timed(getattr(TASK, name), rec, parsed)
        assert 0.0 <= value <= 1.0, name


def test_deeply_nested_parsed_value_per_component():
    nested: object = 72
    for _ in range(100_000):
        nested = {"a": nested}
    rec = record(NATALIA)
    for parsed in (nested, {"reasoning": nested, "answer": nested}):
        for name in ("format", "content", "validity"):
            assert 0.0 <= timed(getattr(TASK, name), rec, parsed) <= 1.0


# -- number helpers ---------------------------------------------------------------------------------


def test_number_helpers():
    assert parse_number_text("2,125") == 2125
    assert parse_number_text(".5") == Fraction(1, 2)
    assert parse_number_text("1,0000") is None
    assert number_value(0.1) == Fraction(1, 10)
    assert number_value(False) is None
    assert canonical_number(Fraction(-7, 4)) == "-1.75"
    assert canonical_number(Fraction(0)) == "0"
    with pytest.raises(ValueError):
        canonical_number(Fraction(1, 3))
    assert last_number("from 1,000 to 2,500.75.") == Fraction("2500.75")
    assert last_number("no digits") is None


# -- property tests (random text and edited references are fuzzed by the contract kit) -------------

_SYNTH = TASK.synthetic("validation", 40, seed=9)


_json_values = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=40),
    st.lists(st.integers(), max_size=3),
)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(st.sampled_from(["reasoning", "answer", "extra", "Answer"]), _json_values, max_size=4),
    st.sampled_from(_SYNTH),
)
def test_random_objects_never_raise(obj, rec):
    result = score(rec, json.dumps(obj))
    assert_sane(result)
    if set(obj) != {"reasoning", "answer"}:
        assert result.components["format"] < 1.0


_FORMS = [
    lambda v: v,
    lambda v: f" {v} ",
    lambda v: f"${v}",
    lambda v: f"{v}.0" if "." not in v else f"{v}0",
    lambda v: f"{int(v):,}" if "." not in v and "-" not in v else v,
]


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(_SYNTH), st.sampled_from(_FORMS), st.booleans())
def test_reference_answer_in_tolerant_forms_gets_content(rec, form, as_string):
    value = json.loads(TASK.reference_completion(rec))["answer"]
    answer = form(rec["final"]) if as_string else value
    result = score(rec, completion("Worked through it: the result is " + rec["final"], answer))
    assert_sane(result)
    assert result.components["content"] == 1.0
    assert result.components["validity"] == 1.0
    assert result.components["format"] == (0.875 if as_string else 1.0)
