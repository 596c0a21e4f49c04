"""bfloat16 weights are trained through float32 master weights and float32 AdamW state (CPU-testable)."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from rlstruct.engine.grpo import train
from rlstruct.engine.optim import MasterWeightAdamW, make_adamw, optimised_parameters

from .conftest import small_config, spec_for

LR = 1e-4  # an Adam step moves a weight by about LR: far below bfloat16's resolution near 1.0 (2**-8)


def gradients(step: int, shape) -> torch.Tensor:
    # positive, so the updates add up (a random walk would mostly cancel out)
    return (torch.rand(shape, generator=torch.Generator().manual_seed(step)) + 0.5).to(torch.bfloat16)


def run(optimizer, params, steps, start=0):
    for step in range(start, start + steps):
        optimizer.zero_grad()
        for p in params:
            p.grad = gradients(step, p.shape).to(p.dtype)
        optimizer.step()


def bf16_param():
    return torch.nn.Parameter(torch.full((64,), 1.0, dtype=torch.bfloat16))


def test_master_weights_follow_a_float32_adamw_where_plain_bfloat16_adamw_stands_still():
    reference = torch.nn.Parameter(torch.full((64,), 1.0))
    run(torch.optim.AdamW([reference], lr=LR), [reference], 40)

    plain = bf16_param()
    run(torch.optim.AdamW([plain], lr=LR), [plain], 40)
    assert torch.equal(plain, torch.ones_like(plain))  # the bug: every update rounded away

    weight = bf16_param()
    opt = make_adamw([weight], lr=LR)
    assert isinstance(opt, MasterWeightAdamW)
    run(opt, [weight], 40)
    (master,) = optimised_parameters(opt)
    assert master.dtype == torch.float32
    assert torch.equal(master, reference.detach())  # exactly the float32 optimiser's trajectory
    assert torch.equal(weight.detach(), master.to(torch.bfloat16))  # the model holds the master, rounded
    assert not torch.equal(weight, torch.ones_like(weight))  # ~40 * LR accumulated: visible in bfloat16 too
    state = opt.state[master]
    assert state["exp_avg"].dtype == torch.float32 and state["exp_avg_sq"].dtype == torch.float32


def test_float32_parameters_get_a_plain_adamw():
    p = torch.nn.Parameter(torch.ones(3))
    assert type(make_adamw([p], lr=LR)) is torch.optim.AdamW


def test_gradients_accumulate_in_float32():
    weight = bf16_param()
    opt = MasterWeightAdamW([weight], lr=LR)
    (master,) = optimised_parameters(opt)
    small = torch.full((64,), 1e-3, dtype=torch.bfloat16)
    for _ in range(3):  # three micro-batches
        weight.grad = torch.full((64,), 1.0, dtype=torch.bfloat16)
        opt.collect_gradients()
        assert weight.grad is None
        weight.grad = small.clone()
        opt.collect_gradients()
    # 1 + 0.001 is 1.0 in bfloat16; the float32 sum keeps every small part
    torch.testing.assert_close(master.grad, torch.full((64,), 3 + 3 * float(small[0])), rtol=0, atol=1e-6)
    opt.zero_grad()
    assert master.grad is None and weight.grad is None


def test_state_dict_carries_the_masters_so_a_resume_is_exact():
    straight_w = bf16_param()
    straight = MasterWeightAdamW([straight_w], lr=LR)
    run(straight, [straight_w], 6)

    first_w = bf16_param()
    first = MasterWeightAdamW([first_w], lr=LR)
    run(first, [first_w], 3)
    saved_state, saved_weight = copy.deepcopy(first.state_dict()), first_w.detach().clone()
    resumed_w = torch.nn.Parameter(saved_weight)  # the checkpoint's bfloat16 weights, masters lost
    resumed = MasterWeightAdamW([resumed_w], lr=LR)
    resumed.load_state_dict(saved_state)
    run(resumed, [resumed_w], 3, start=3)
    assert torch.equal(optimised_parameters(resumed)[0], optimised_parameters(straight)[0])
    assert torch.equal(resumed_w, straight_w)
    with pytest.raises(ValueError, match="master weights"):
        MasterWeightAdamW([bf16_param(), bf16_param()], lr=LR).load_state_dict(saved_state)


@pytest.mark.slow
def test_bfloat16_full_fine_tuning_resumes_exactly(tiny_model_dir, toy_task, tmp_path):
    from safetensors.torch import load_file

    def cfg(out, steps):
        c = small_config(tiny_model_dir, out, steps=steps, learning_rate=1e-4, num_iterations=2)
        c.model.dtype = "bfloat16"
        return c

    train(cfg(tmp_path / "a", 4), toy_task, spec_for(toy_task), tmp_path / "a", progress=False)
    train(cfg(tmp_path / "b", 2), toy_task, spec_for(toy_task), tmp_path / "b", progress=False)
    train(cfg(tmp_path / "b", 4), toy_task, spec_for(toy_task), tmp_path / "b", resume_from=tmp_path / "b",
          progress=False)
    a = load_file(tmp_path / "a" / "final" / "model.safetensors")
    b = load_file(tmp_path / "b" / "final" / "model.safetensors")
    start = load_file(tmp_path / "b" / "checkpoints" / "step-000002" / "model.safetensors")
    assert all(t.dtype == torch.bfloat16 for t in a.values())
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert any(not torch.equal(a[k], start[k]) for k in a)
    state = torch.load(tmp_path / "a" / "checkpoints" / "step-000004" / "trainer_state.pt", weights_only=False)
    masters = state["optimizer"]["master_weights"]
    assert masters and all(m.dtype == torch.float32 for m in masters)
    lines = [json.loads(l) for l in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert not any(l["nan_skipped"] for l in lines)
