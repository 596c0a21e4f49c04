"""The trainer's fast paths change speed, not results: the shared-prompt update trains the same weights as the
per-row one, and the old-policy log-probs recorded while sampling equal the separate forward pass."""

from __future__ import annotations

import json

import pytest
import torch

from rlstruct.engine.grpo import train

from .conftest import small_config, spec_for


def trained(tiny_model_dir, toy_task, out, lora, **grpo):
    # 4 prompts x 8 completions of 16 tokens: groups whose rewards differ, so the step has a gradient
    grpo = {"beta": 0.05, "prompts_per_step": 4, "group_size": 8, "max_new_tokens": 16, "micro_batch_size": 12, **grpo}
    cfg = small_config(tiny_model_dir, out, steps=1, num_iterations=2, learning_rate=5e-3, **grpo)
    cfg.model.lora = lora
    train(cfg, toy_task, spec_for(toy_task), out, progress=False)
    from safetensors.torch import load_file

    weights = load_file(out / "final" / ("adapter_model.safetensors" if lora else "model.safetensors"))
    line = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    return weights, line


def moved(model_dir, weights, lora) -> bool:
    """The step changed the weights by far more than the tolerance the comparisons allow."""
    if lora:  # peft starts every lora_B at zero
        return max(float(v.abs().max()) for k, v in weights.items() if "lora_B" in k) > 1e-3
    from safetensors.torch import load_file

    start = load_file(model_dir / "model.safetensors")
    return max(float((start[k] - weights[k]).abs().max()) for k in weights) > 1e-3


@pytest.mark.slow
@pytest.mark.parametrize("lora", [True, False], ids=["lora", "full"])
def test_shared_prompt_update_trains_the_same_weights(tiny_model_dir, toy_task, tmp_path, lora):
    shared, line_s = trained(tiny_model_dir, toy_task, tmp_path / "shared", lora, shared_prompt=True)
    per_row, line_p = trained(tiny_model_dir, toy_task, tmp_path / "rows", lora, shared_prompt=False)
    assert line_s["generation"] == line_p["generation"] == "fast"
    assert line_s["loss"] == pytest.approx(line_p["loss"], rel=1e-4, abs=1e-6)
    assert line_s["kl"] == pytest.approx(line_p["kl"], rel=1e-3, abs=1e-7)
    assert moved(tiny_model_dir, per_row, lora)
    for key in per_row:  # Adam's first steps move each weight by ~lr (5e-3); they agree to 1 % of that
        torch.testing.assert_close(shared[key], per_row[key], atol=5e-5, rtol=0, msg=key)


@pytest.mark.slow
def test_plain_generation_stays_selectable_and_reports_its_phases(tiny_model_dir, toy_task, tmp_path):
    _, plain = trained(tiny_model_dir, toy_task, tmp_path / "plain", True, generation="plain", shared_prompt=False)
    _, fast = trained(tiny_model_dir, toy_task, tmp_path / "fast", True)
    assert plain["generation"] == "plain" and plain["prefill_s"] is None and plain["decode_s"] > 0
    assert fast["generation"] == "fast" and fast["prefill_s"] > 0 and fast["decode_s"] > 0
    for line in (plain, fast):
        for key in ("old_logp_s", "ref_logp_s", "fwd_bwd_s", "optim_s"):
            assert line[key] >= 0, key
        phases = line["gen_s"] + line["score_s"] + line["update_s"]
        assert line["fwd_bwd_s"] + line["optim_s"] + line["ref_logp_s"] + line["old_logp_s"] <= phases


@pytest.mark.slow
def test_old_policy_logprobs_recorded_while_sampling_train_the_same_weights(tiny_model_dir, toy_task, tmp_path,
                                                                             monkeypatch):
    from rlstruct.engine import grpo

    calls = []
    real = grpo.microbatch_logprobs

    def counting(model, batch, **kw):
        calls.append(torch.is_grad_enabled())
        return real(model, batch, **kw)

    monkeypatch.setattr(grpo, "microbatch_logprobs", counting)
    recorded, _ = trained(tiny_model_dir, toy_task, tmp_path / "recorded", False, beta=0.0)
    no_grad_passes_recorded = calls.count(False)
    calls.clear()
    monkeypatch.setattr(grpo, "sampling_logprobs_are_exact", lambda model: False)
    forward, _ = trained(tiny_model_dir, toy_task, tmp_path / "forward", False, beta=0.0)
    assert no_grad_passes_recorded == 0 and calls.count(False) > 0  # the old-policy pass was skipped
    assert moved(tiny_model_dir, forward, False)
    for key in forward:
        torch.testing.assert_close(recorded[key], forward[key], atol=5e-5, rtol=0, msg=key)
