"""A bad reward, a NaN loss or a bad config must be reported and never corrupt or crash a run."""

import json
import time

import pytest
import torch

from rlstruct import RewardComponent
from rlstruct.engine import grpo
from rlstruct.engine.grpo import TrainingStopped, train

from .conftest import small_config, spec_for


def _hang(record, completion, params):
    while True:
        time.sleep(0.01)


def _boom(record, completion, params):
    raise RuntimeError("reward plugin bug")


@pytest.mark.slow
def test_hanging_and_raising_reward_components_are_counted_not_fatal(tiny_model_dir, toy_task, tmp_path):
    rewards = {
        "hang": RewardComponent("hang", "never returns", _hang),
        "boom": RewardComponent("boom", "always raises", _boom),
    }
    spec = spec_for(toy_task, rewards, extras={"hang": {"weight": 0.5}, "boom": {"weight": 0.5}})
    cfg = small_config(tiny_model_dir, tmp_path / "run", steps=2)
    cfg.reward.timeout_s = 0.3
    cfg.reward.workers = 2
    train(cfg, toy_task, spec, tmp_path / "run", progress=False)
    lines = [json.loads(l) for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    n = cfg.grpo.prompts_per_step * cfg.grpo.group_size
    for line in lines:
        assert line["reward_timeouts"] == n  # one per completion: the 'hang' component
        assert line["reward_errors_by_component"] == {"hang": n, "boom": n}
        assert line["reward/hang"] == 0.0 and line["reward/boom"] == 0.0
    # the task's own components still scored (a tiny random model writes few digits: some step has some)
    assert any(line["reward/format"] > 0.0 for line in lines)
    sample = json.loads((tmp_path / "run" / "samples.jsonl").read_text().splitlines()[0])
    assert "timeout" in sample["error"] and "reward plugin bug" in sample["error"]


@pytest.mark.slow
def test_nan_loss_skips_the_step_and_stops_after_max_in_a_row(tiny_model_dir, toy_task, tmp_path, monkeypatch):
    real = grpo.policy_loss

    def nan_after_first(*args, **kwargs):
        loss, stats = real(*args, **kwargs)
        return loss * float("nan"), stats

    cfg = small_config(tiny_model_dir, tmp_path / "run", steps=10, max_nan_steps=3)
    cfg.run.save_every = 1
    # step 1 trains normally and is checkpointed; then every loss is NaN
    calls = {"n": 0}

    def patched(*args, **kwargs):
        calls["n"] += 1
        # step 1 has two micro-batches (8 sequences, micro_batch_size 4)
        return real(*args, **kwargs) if calls["n"] <= 2 else nan_after_first(*args, **kwargs)

    monkeypatch.setattr(grpo, "policy_loss", patched)
    with pytest.raises(TrainingStopped, match="3 consecutive steps"):
        train(cfg, toy_task, spec_for(toy_task), tmp_path / "run", progress=False)
    lines = [json.loads(l) for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [l["nan_skipped"] for l in lines] == [False, True, True, True]
    # skipped steps did not touch the weights: checkpoints after step 1 equal step 1's
    from safetensors.torch import load_file

    root = tmp_path / "run" / "checkpoints"
    kept = sorted(p.name for p in root.iterdir())
    assert kept == ["step-000002", "step-000003"]  # keep_last = 2; step 4 raised before its save
    a, b = load_file(root / "step-000002" / "model.safetensors"), load_file(root / "step-000003" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_config_error_stops_before_any_model_loads(tmp_path, monkeypatch, capsys):
    from rlstruct import cli
    from rlstruct.engine import model as model_mod

    def no_load(*a, **k):
        raise AssertionError("a model was loaded despite a bad config")

    monkeypatch.setattr(model_mod, "load_policy", no_load)
    monkeypatch.setattr(grpo, "load_policy", no_load)
    bad = tmp_path / "bad.toml"
    bad.write_text('[task]\nname = "gsm8k-json"\n[model]\nname_or_path = "/nonexistent"\n[grpo]\nstepz = 3\n')
    assert cli.main(["train", str(bad)]) == 2  # a config error is a usage error
    err = capsys.readouterr().err
    assert str(bad) in err and "grpo.stepz" in err and "did you mean" in err

    wrong_type = tmp_path / "type.toml"
    wrong_type.write_text('[task]\nname = "gsm8k-json"\n[model]\nname_or_path = "/x"\n[grpo]\nsteps = "ten"\n')
    assert cli.main(["train", str(wrong_type)]) == 2
    assert "grpo.steps must be an integer" in capsys.readouterr().err

    unknown = tmp_path / "unknown.toml"
    unknown.write_text('[task]\nname = "no-such-task"\n[model]\nname_or_path = "/x"\n')
    assert cli.main(["train", str(unknown)]) == 2
    err = capsys.readouterr().err
    assert "unknown task 'no-such-task'" in err and "gsm8k-json" in err

    bad_weight = tmp_path / "weight.toml"
    bad_weight.write_text('[task]\nname = "gsm8k-json"\n[model]\nname_or_path = "/x"\n[reward.weights]\nstructur = 1.0\n')
    assert cli.main(["train", str(bad_weight)]) == 2
    assert "reward.weights.structur" in capsys.readouterr().err

    assert cli.main(["train", str(bad), "--set", "grpo.steps=2"]) == 2  # still the stepz error


def test_prompt_longer_than_the_limit_is_an_error_not_a_silent_cut(tiny_model_dir, toy_task, tmp_path):
    from rlstruct.engine.rollout import PromptTooLong

    cfg = small_config(tiny_model_dir, tmp_path / "run", max_prompt_tokens=5)
    with pytest.raises(PromptTooLong, match=r"grpo.max_prompt_tokens = 5, but 16 of 16 prompts"):
        train(cfg, toy_task, spec_for(toy_task), tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


def test_missing_model_directory_is_a_clear_error_naming_the_key(tmp_path, capsys):
    from rlstruct import cli

    config = tmp_path / "c.toml"
    config.write_text(f'[task]\nname = "gsm8k-json"\n[model]\nname_or_path = "{tmp_path}/no-model"\n[run]\noutput_dir = "{tmp_path}/run"\n')
    assert cli.main(["train", str(config)]) == 1
    err = capsys.readouterr().err
    assert "model.name_or_path" in err and "no such directory" in err and "Traceback" not in err
    assert cli.main(["eval", "--model", str(tmp_path), "--task", "gsm8k-json", "--limit", "1"]) == 1
    assert "--model" in capsys.readouterr().err
