"""The core's own reward pieces: the `length` component, gating and weighting, and the bounded
JSON helpers every JSON task uses, against hostile model output."""

import math
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlstruct import Parsed, Prompt, Task
from rlstruct.builtin_rewards import LENGTH, length_score
from rlstruct.json_safety import (
    MAX_COMPLETION_CHARS,
    UnsafeInput,
    nesting_depth,
    parse_json_completion,
    safe_json_loads,
    strip_json_fence,
)
from rlstruct.reward import RewardConfigError, RewardSpec, score_inline

HOSTILE = [
    "",
    "   \n\t",
    "[" * 100_000 + "]" * 100_000,
    '{"a": "' + "x" * 10_000_000 + '"}',
    "1" * 100_000,
    '{"n": 1e999999999}',
    '{"n": NaN}',
    "[Infinity, -Infinity]",
    "\udcff\udcfe{}",
    b"\xff\xfe{\x80}".decode("utf-8", errors="surrogateescape"),
    "```json\nnot json at all\n```",
    "9**9**9**9",
]


class JsonObjectTask(Task):
    name = "json-object"
    description = "any JSON object"

    def build_prompt(self, record):
        return Prompt([{"role": "user", "content": "?"}])

    def structure(self, record, completion):
        try:
            value = parse_json_completion(completion)
        except ValueError:
            return Parsed(0.0)
        return Parsed(1.0 if isinstance(value, dict) else 0.0, value)

    def format(self, record, parsed):
        return 1.0 if parsed else 0.5

    def content(self, record, parsed):
        return 1.0 if parsed.get("ok") is True else 0.0

    def validity(self, record, parsed):
        return 1.0


SPEC = RewardSpec.build(JsonObjectTask(), {"length": LENGTH}, extras={"length": {"weight": 0.5, "max_chars": 100}})


@pytest.mark.parametrize("completion", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_output_scores_in_bounds_fast_and_without_errors(completion):
    start = time.perf_counter()
    b = score_inline(JsonObjectTask(), SPEC, {}, completion)
    assert time.perf_counter() - start < 1.0
    assert b.errors == {}
    assert all(0.0 <= v <= 1.0 for v in b.components.values()) and 0.0 <= b.reward <= 1.0
    assert b.components["structure"] == 0.0  # none of them is a JSON object
    assert b.components["format"] == b.components["content"] == b.components["validity"] == 0.0


def test_length_component_is_one_within_the_limit_then_falls_linearly_to_zero():
    params = {"max_chars": 100, "zero_at": 2.0}
    assert length_score({}, "", params) == 1.0
    assert length_score({}, "x" * 100, params) == 1.0
    assert length_score({}, "x" * 150, params) == pytest.approx(0.5)
    assert length_score({}, "x" * 200, params) == 0.0
    assert length_score({}, "x" * 10_000_000, params) == 0.0
    assert length_score({}, "\udcff" * 101, params) < 1.0


def test_total_is_the_weighted_mean_and_gating_zeroes_later_components():
    good = score_inline(JsonObjectTask(), SPEC, {}, '{"ok": true}')
    assert good.reward == 1.0
    wrong = score_inline(JsonObjectTask(), SPEC, {}, '{"ok": false}')
    # content 0 gates validity to 0 (a component is 0 when the one before it is 0)
    assert wrong.components == {"structure": 1.0, "format": 1.0, "content": 0.0, "validity": 0.0, "length": 1.0}
    assert wrong.reward == pytest.approx((1 + 1 + 0 + 0 + 0.5) / 4.5)
    fenced_junk = score_inline(JsonObjectTask(), SPEC, {}, "```json\n{oops\n```")
    assert fenced_junk.reward == pytest.approx(0.5 / 4.5)  # only the ungated length term


def test_reward_config_errors_name_the_key():
    task = JsonObjectTask()
    with pytest.raises(RewardConfigError, match="reward.weights.strucure"):
        RewardSpec.build(task, {}, weights={"strucure": 1.0})
    with pytest.raises(RewardConfigError, match="reward.extras.lenght: unknown reward component"):
        RewardSpec.build(task, {"length": LENGTH}, extras={"lenght": {}})
    with pytest.raises(RewardConfigError, match="reward.extras.length.max_char: unknown parameter"):
        RewardSpec.build(task, {"length": LENGTH}, extras={"length": {"max_char": 3}})
    with pytest.raises(RewardConfigError, match="must be a number >= 0"):
        RewardSpec.build(task, {}, weights={"content": -1})
    with pytest.raises(RewardConfigError, match="all weights are 0"):
        RewardSpec.build(task, {}, weights={k: 0.0 for k in ("structure", "format", "content", "validity")})


def test_safe_json_refuses_bombs_before_parsing():
    for text, message in [
        ("[" * 65 + "]" * 65, "nesting"),
        ("x" * (MAX_COMPLETION_CHARS + 1), "exceeds"),
        ("NaN", "literal"),
        ("1" * 101, "digits"),
        ("1e400", "overflows"),
    ]:
        with pytest.raises(UnsafeInput, match=message):
            safe_json_loads(text)
    assert safe_json_loads('{"a": [1, 2.5, "]]]"]}') == {"a": [1, 2.5, "]]]"]}
    assert nesting_depth('"[[[[" [1]', 10) == 1  # brackets inside strings do not count


def test_fence_stripping_accepts_one_whole_fence_and_nothing_else():
    assert strip_json_fence('```json\n{"a": 1}\n```') == '{"a": 1}'
    assert strip_json_fence('  ```\n{"a": 1}\n```  ') == '{"a": 1}'
    prose = 'Here it is: ```json\n{"a": 1}\n```'
    assert strip_json_fence(prose) == prose.strip()
    two = '```json\n{"a": 1}\n```\n```json\n{"b": 2}\n```'
    with pytest.raises(ValueError):
        parse_json_completion(two)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_random_text_never_raises_and_stays_in_bounds(text):
    b = score_inline(JsonObjectTask(), SPEC, {}, text)
    assert b.errors == {}
    assert 0.0 <= b.reward <= 1.0 and not math.isnan(b.reward)
    if b.components["structure"] == 0.0:
        assert b.components["format"] == b.components["content"] == b.components["validity"] == 0.0


def test_the_old_safety_module_still_offers_every_helper():
    """``rlstruct.safety`` was split into json_safety and scoring_helpers; third-party plugins
    importing the old path keep working and get the very same objects as ``rlstruct``."""
    import rlstruct
    from rlstruct import safety

    for name in safety.__all__:
        assert getattr(safety, name) is getattr(rlstruct, name), name
    assert safety.f1([1, 2], [2]) == pytest.approx(2 / 3)
