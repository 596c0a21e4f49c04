"""Reward errors and time-outs during training show on the console as they happen, not only in metrics.jsonl."""

import time

import pytest

from rlstruct import RewardComponent
from rlstruct.engine.grpo import train

from .conftest import small_config, spec_for


def _boom(record, completion, params):
    raise RuntimeError("reward plugin bug")


def _hang(record, completion, params):
    while True:
        time.sleep(0.01)


@pytest.mark.slow
@pytest.mark.parametrize("progress", [False, True], ids=["quiet", "progress-bar"])
def test_reward_errors_and_timeouts_are_reported_once_per_step(tiny_model_dir, toy_task, tmp_path, capsys, progress):
    rewards = {
        "boom": RewardComponent("boom", "always raises", _boom),
        "hang": RewardComponent("hang", "never returns", _hang),
    }
    spec = spec_for(toy_task, rewards, extras={"boom": {"weight": 0.5}, "hang": {"weight": 0.5}})
    cfg = small_config(tiny_model_dir, tmp_path / "run", steps=2)
    cfg.reward.timeout_s, cfg.reward.workers = 0.3, 2
    cfg.run.quiet = not progress
    train(cfg, toy_task, spec, tmp_path / "run", progress=progress)
    err = capsys.readouterr().err
    n = cfg.grpo.prompts_per_step * cfg.grpo.group_size
    warnings = [l for l in err.replace("\r", "\n").splitlines() if l.startswith("rlstruct: warning:")]
    assert len(warnings) == 2, err  # one per step
    assert warnings[0].startswith(
        f"rlstruct: warning: step 1: {2 * n} reward component error(s), {n} of them time-outs (boom {n}, hang {n})"
    )
    assert warnings[1].startswith("rlstruct: warning: step 2: ")
    if progress:  # and in the progress bar's postfix
        assert f"reward_errors={2 * n}" in err and f"timeouts={n}" in err


@pytest.mark.slow
def test_clean_steps_print_no_reward_warning(tiny_model_dir, toy_task, tmp_path, capsys):
    cfg = small_config(tiny_model_dir, tmp_path / "run", steps=1)
    train(cfg, toy_task, spec_for(toy_task), tmp_path / "run", progress=False)
    assert "warning" not in capsys.readouterr().err
