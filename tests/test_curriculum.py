"""Curriculum schedules and difficulty helpers: values per step, adaptive raises, exact resume, config errors."""

from __future__ import annotations

import json
import math

import pytest

from rlstruct.curriculum import (
    DEFAULT_DIFFICULTY,
    AdaptiveSchedule,
    ConstantSchedule,
    CurriculumConfig,
    CurriculumError,
    LinearSchedule,
    check_difficulty,
    int_level,
    int_range,
    level,
    schedule_from_config,
)


# -- knob helpers --------------------------------------------------------------------------------------
def test_level_passes_through_easy_default_and_hard_exactly():
    # values whose float arithmetic would drift (0.1 + (0.3 - 0.1) != 0.3) still give the default exactly
    assert level(DEFAULT_DIFFICULTY, 0.1, 0.3, 0.9) == 0.3
    assert level(0.0, 0.1, 0.3, 0.9) == 0.1
    assert level(1.0, 0.1, 0.3, 0.9) == 0.9
    assert level(0.25, 0.0, 1.0, 10.0) == 0.5
    assert level(0.75, 0.0, 1.0, 10.0) == 5.5


def test_int_level_rounds_halves_up_and_int_range_keeps_low_below_high():
    assert [int_level(d, 1, 2, 4) for d in (0, 0.25, 0.5, 0.75, 1)] == [1, 2, 2, 3, 4]
    assert int_range(0.5, (1, 1), (1, 3), (3, 6)) == (1, 3)
    assert int_range(1.0, (1, 1), (1, 3), (3, 6)) == (3, 6)
    assert int_range(1.0, (0, 0), (0, 0), (5, 2)) == (5, 5)


@pytest.mark.parametrize("value", [-0.01, 1.01, math.nan, math.inf, True, None, "0.5"])
def test_check_difficulty_refuses_with_the_key_named(value):
    with pytest.raises(CurriculumError, match=r"^task\.mixture\[1\]\.difficulty: expected a number from 0 to 1"):
        check_difficulty(value, "task.mixture[1].difficulty")


# -- schedules -----------------------------------------------------------------------------------------
def test_constant_schedule_and_its_log_line():
    schedule = ConstantSchedule(0.3)
    schedule.observe(0, 1.0)
    assert [schedule.difficulty(s) for s in (0, 10, 10_000)] == [0.3, 0.3, 0.3]
    assert schedule.log(7) == {"difficulty": 0.3}
    assert schedule.state_dict() == {}


def test_linear_schedule_runs_from_start_to_end_over_steps_then_holds():
    schedule = LinearSchedule(start=0.2, end=0.8, steps=6)
    assert [schedule.difficulty(s) for s in range(9)] == [0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.8, 0.8]
    assert LinearSchedule(start=1.0, end=0.0, steps=4).difficulty(1) == 0.75  # lowering also works


def _adaptive(**overrides) -> AdaptiveSchedule:
    values = {"kind": "adaptive", "start": 0.2, "end": 0.5, "threshold": 0.7, "patience": 3, "increment": 0.1}
    values.update(overrides)
    schedule = CurriculumConfig.from_mapping(values).build()
    assert isinstance(schedule, AdaptiveSchedule)
    return schedule


def _run(schedule, rewards, first_step=0) -> list[float]:
    """Difficulty used at each step, observing each step's reward after it."""
    used = []
    for offset, reward in enumerate(rewards):
        step = first_step + offset
        used.append(schedule.difficulty(step))
        schedule.observe(step, reward)
    return used


def test_adaptive_rises_after_patience_good_steps_and_a_bad_step_resets_the_streak():
    schedule = _adaptive()
    rewards = [0.9, 0.9, 0.5, 0.8, 0.7, 0.75, 0.9, 0.2, 0.9]
    #           good good bad  good good good  -> raise after step 5; good, bad, good
    assert _run(schedule, rewards) == [0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.3, 0.3, 0.3]
    assert schedule.state_dict() == {"current": 0.3, "streak": 1, "last_step": 8}


def test_adaptive_never_passes_its_ceiling_and_never_goes_down():
    schedule = _adaptive(patience=1, increment=0.2)
    assert _run(schedule, [1.0] * 5 + [0.0] * 3) == [0.2, 0.4, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]


def test_adaptive_counts_a_non_finite_reward_as_bad_and_refuses_a_step_twice():
    schedule = _adaptive(patience=2)
    _run(schedule, [0.9, math.nan, 0.9])
    assert schedule.difficulty(3) == 0.2
    with pytest.raises(ValueError, match="step 2 was already observed"):
        schedule.observe(2, 1.0)


def test_adaptive_state_round_trips_through_json_so_a_resume_is_exact():
    rewards = [0.9, 0.8, 0.1, 0.9, 0.95, 0.99, 0.9, 0.9, 0.3, 0.9, 0.9, 0.9, 0.9]
    straight = _run(_adaptive(), rewards)
    for cut in range(1, len(rewards)):
        first = _adaptive()
        before = _run(first, rewards[:cut])
        saved = json.loads(json.dumps(first.state_dict()))  # what a checkpoint stores
        resumed = _adaptive()
        resumed.load_state_dict(saved)
        assert before + _run(resumed, rewards[cut:], first_step=cut) == straight, f"resume at step {cut}"


def test_a_fresh_schedule_without_the_saved_state_would_not_resume_exactly():
    rewards = [0.9] * 4
    first = _adaptive()
    _run(first, rewards)
    assert _adaptive().difficulty(4) != first.difficulty(4)  # so the state is what carries the resume


@pytest.mark.parametrize(
    "state,key",
    [({"current": 2, "streak": 0, "last_step": 1}, "current"), ({"current": 0.3, "last_step": 1}, "streak"),
     ({"current": 0.3, "streak": 0, "last_step": "1"}, "last_step")],
)
def test_adaptive_refuses_a_broken_state_naming_the_field(state, key):
    with pytest.raises(ValueError, match=rf"^curriculum state {key}"):
        _adaptive().load_state_dict(state)


# -- configuration ---------------------------------------------------------------------------------------
def test_config_builds_each_kind():
    assert CurriculumConfig.from_mapping({}).build() == ConstantSchedule(DEFAULT_DIFFICULTY)
    linear = CurriculumConfig.from_mapping({"kind": "linear", "start": 0, "end": 1, "steps": 4}).build()
    assert linear == LinearSchedule(0.0, 1.0, 4) and linear.difficulty(2) == 0.5
    assert _adaptive().difficulty(0) == 0.2


@pytest.mark.parametrize(
    "raw,message",
    [
        ({"kind": "cosine"}, r"^task\.curriculum\.kind: unknown kind 'cosine' \(known: constant, linear, adaptive\)"),
        ({"stpes": 3}, r"^task\.curriculum\.stpes: unknown key"),
        ({"start": 1.2}, r"^task\.curriculum\.start: expected a number from 0 to 1"),
        ({"kind": "linear", "steps": 0}, r"^task\.curriculum\.steps: expected an integer >= 1"),
        ({"kind": "adaptive", "patience": 2.5}, r"^task\.curriculum\.patience: expected an integer >= 1"),
        ({"kind": "adaptive", "increment": 0}, r"^task\.curriculum\.increment: expected a number in \(0, 1\]"),
        ({"kind": "adaptive", "threshold": True}, r"^task\.curriculum\.threshold: expected a number from 0 to 1"),
        ({"kind": "adaptive", "start": 0.6, "end": 0.4}, r"^task\.curriculum\.end: the adaptive ceiling"),
    ],
)
def test_config_errors_are_one_line_naming_the_key(raw, message):
    with pytest.raises(CurriculumError, match=message):
        CurriculumConfig.from_mapping(raw)


def test_config_errors_name_a_mixture_entry():
    with pytest.raises(CurriculumError, match=r"^task\.mixture\[1\]\.curriculum\.steps:"):
        schedule_from_config(None, {"kind": "linear", "steps": -1}, where="task.mixture[1]")


def test_schedule_from_task_settings():
    assert schedule_from_config(None, None) is None  # nothing set: the generator's own default, no keyword
    assert schedule_from_config(0.3, None) == ConstantSchedule(0.3)
    linear = schedule_from_config(0.3, {"kind": "linear", "end": 0.9, "steps": 2})
    assert [linear.difficulty(s) for s in range(3)] == [0.3, 0.6, 0.9]  # task.difficulty is the start
    with pytest.raises(CurriculumError, match=r"^task\.difficulty: give either task\.difficulty or task\.curriculum\.start"):
        schedule_from_config(0.3, {"kind": "linear", "start": 0.1})
    with pytest.raises(CurriculumError, match=r"^task\.difficulty: expected a number from 0 to 1"):
        schedule_from_config(3, None)
    with pytest.raises(CurriculumError, match=r"^task\.curriculum: expected a table"):
        schedule_from_config(None, ["linear"])  # type: ignore[arg-type]
