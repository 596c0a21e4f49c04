"""CUDA path: bf16 weights with float32 master weights, gradient checkpointing, peak-memory tracking, and the
fast generation / shared-prompt paths against the plain ones. Skipped without a GPU."""

import json

import pytest
import torch

from rlstruct.engine.grpo import train

from .conftest import small_config, spec_for

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def test_grpo_on_cuda_in_bf16_with_lora_and_gradient_checkpointing(tiny_model_dir, toy_task, tmp_path):
    cfg = small_config(tiny_model_dir, tmp_path / "run", steps=3, beta=0.05, num_iterations=2)
    cfg.run.device = "cuda"
    cfg.model.lora = True
    cfg.model.gradient_checkpointing = True
    train(cfg, toy_task, spec_for(toy_task), tmp_path / "run", progress=False)
    lines = [json.loads(l) for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(lines) == 3
    assert all(l["peak_mem_mb"] > 0 for l in lines)
    assert all(not l["nan_skipped"] for l in lines)


def test_auto_dtype_is_bf16_on_cuda():
    from rlstruct.engine.model import pick_dtype

    if torch.cuda.is_bf16_supported():
        assert pick_dtype("auto", torch.device("cuda")) == torch.bfloat16
    assert pick_dtype("auto", torch.device("cpu")) == torch.float32


def test_full_fine_tuning_in_bf16_keeps_float32_master_weights_and_adam_state(tiny_model_dir, toy_task, tmp_path):
    cfg = small_config(tiny_model_dir, tmp_path / "run", steps=2, learning_rate=1e-5, num_iterations=2)
    cfg.run.device = "cuda"
    cfg.model.lora = False
    train(cfg, toy_task, spec_for(toy_task), tmp_path / "run", progress=False)
    state = torch.load(tmp_path / "run" / "checkpoints" / "step-000002" / "trainer_state.pt", weights_only=False)
    optimizer = state["optimizer"]
    assert optimizer["master_weights"] and all(m.dtype == torch.float32 for m in optimizer["master_weights"])
    moments = [t for s in optimizer["state"].values() for k, t in s.items() if k in ("exp_avg", "exp_avg_sq")]
    assert moments and all(t.dtype == torch.float32 for t in moments)
    lines = [json.loads(l) for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert all(not l["nan_skipped"] and l["generation"] == "fast" for l in lines)


def test_fast_generation_and_shared_prompt_update_match_the_plain_paths_on_cuda(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    from rlstruct import Prompt
    from rlstruct.engine.fast_rollout import fast_generate
    from rlstruct.engine.lean_decoder import LeanDecoder
    from rlstruct.engine.logprobs import completion_logprobs, microbatch_logprobs
    from rlstruct.engine.model import load_tokenizer
    from rlstruct.engine.rollout import generate, micro_batches, render_prompt

    tok = load_tokenizer(str(tiny_model_dir))
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).cuda().eval()
    prompts = [render_prompt(tok, Prompt([{"role": "user", "content": q}])) for q in ("hi", "a longer question here")]
    kw = dict(group_size=4, max_new_tokens=24, max_prompt_tokens=64)
    plain = generate(model, tok, prompts, do_sample=False, **kw)
    fast = fast_generate(model, LeanDecoder.of(model), tok, prompts, do_sample=False, **kw)
    assert torch.equal(fast.input_ids, plain.input_ids)
    torch.manual_seed(0)
    sampled = fast_generate(model, LeanDecoder.of(model), tok, prompts, return_logprobs=True, **kw)
    with torch.no_grad():
        full = completion_logprobs(model, sampled.input_ids, sampled.attention_mask, sampled.n_completion)
    mask = sampled.completion_mask.bool()
    torch.testing.assert_close(sampled.sampled_logprobs[mask], full[mask], atol=1e-4, rtol=0)
    model.train()
    for mb in micro_batches(sampled, 8, 0, True):
        a = microbatch_logprobs(model, mb, shared_prompt=True)
        b = microbatch_logprobs(model, mb, shared_prompt=False)
        torch.testing.assert_close(a[mb.completion_mask.bool()], b[mb.completion_mask.bool()], atol=1e-4, rtol=0)
