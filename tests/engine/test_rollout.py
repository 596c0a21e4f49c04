"""Prompt rendering (tools slot or system message), cutting completions at EOS, and the update's micro-batches."""

import json

import pytest
import torch
from transformers import AutoModelForCausalLM

from rlstruct import Prompt
from rlstruct.engine.logprobs import microbatch_logprobs
from rlstruct.engine.loss import group_advantages, policy_loss
from rlstruct.engine.model import load_tokenizer
from rlstruct.engine.rollout import generate, micro_batches, render_prompt

TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def test_tools_go_into_the_templates_tools_slot_when_it_has_one(tiny_model_dir):
    tok = load_tokenizer(str(tiny_model_dir))
    text = render_prompt(tok, Prompt([{"role": "user", "content": "weather in Oslo?"}], tools=[TOOL]))
    assert "get_weather" in text and Prompt.TOOLS_HEADER not in text  # rendered by the template itself
    assert text.endswith("<|im_start|>assistant\n")


def test_tools_fall_back_to_the_system_message_without_a_tools_slot(tiny_model_dir):
    tok = load_tokenizer(str(tiny_model_dir))
    tok.chat_template = (
        "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    with_system = Prompt([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}], tools=[TOOL])
    text = render_prompt(tok, with_system)
    assert text.startswith("<|im_start|>system\nBe brief.\n\n" + Prompt.TOOLS_HEADER)
    assert json.dumps(TOOL) in text
    no_system = render_prompt(tok, Prompt([{"role": "user", "content": "hi"}], tools=[TOOL]))
    assert no_system.startswith("<|im_start|>system\n" + Prompt.TOOLS_HEADER)


def test_generate_cuts_completions_at_eos_and_flags_truncation(tiny_model_dir):
    tok = load_tokenizer(str(tiny_model_dir))
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    eos = tok.eos_token_id
    # Force EOS as the 3rd generated token of every row by biasing the output layer.
    calls = {"n": 0}

    def force_eos(module, args, output):
        calls["n"] += 1
        if calls["n"] == 3:
            output = output.clone()
            output[..., :] = -1e9
            output[..., eos] = 1e9
        return output

    handle = model.lm_head.register_forward_hook(force_eos)
    prompts = [render_prompt(tok, Prompt([{"role": "user", "content": "short"}])),
               render_prompt(tok, Prompt([{"role": "user", "content": "a much longer prompt than the first"}]))]
    torch.manual_seed(0)
    out = generate(model, tok, prompts, group_size=2, max_new_tokens=6, max_prompt_tokens=64)
    handle.remove()
    assert out.input_ids.shape[0] == 4
    assert out.completion_mask.sum(dim=1).tolist() == [3, 3, 3, 3]  # two tokens + the EOS itself
    assert not out.truncated.any()
    assert all("<|im_end|>" not in t for t in out.texts)
    # a run with no EOS is truncated at max_new_tokens and flagged
    handle = model.lm_head.register_forward_hook(lambda m, a, o: o.index_fill(-1, torch.tensor([eos]), -1e9))
    out = generate(model, tok, prompts[:1], group_size=2, max_new_tokens=5, max_prompt_tokens=64)
    handle.remove()
    assert out.truncated.all() and out.completion_mask.sum(dim=1).tolist() == [5, 5]


# ---------------------------------------------------------------- micro-batches and the shared-prompt update


def sampled_rollout(tiny_model_dir, group=4):
    tok = load_tokenizer(str(tiny_model_dir))
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    prompts = [render_prompt(tok, Prompt([{"role": "user", "content": q}]))
               for q in ("short", "a much longer prompt than the first", "three words here")]
    eos = tok.eos_token_id
    def likelier_eos(module, args, out):  # rows then stop at different lengths
        return out.index_add(-1, torch.tensor([eos]), torch.full((*out.shape[:-1], 1), 3.0))

    handle = model.lm_head.register_forward_hook(likelier_eos)
    torch.manual_seed(0)
    rollout = generate(model, tok, prompts, group_size=group, max_new_tokens=10, max_prompt_tokens=64)
    handle.remove()
    assert len(set(rollout.completion_mask.sum(dim=1).tolist())) > 2  # ragged completions
    return model.train(), rollout


def update(model, rollout, shared, max_rows, max_tokens=0):
    """Loss and gradients of one GRPO update over the rollout, accumulated over micro-batches."""
    torch.manual_seed(1)
    rewards = torch.rand(rollout.input_ids.shape[0])
    adv, _ = group_advantages(rewards, rollout.group_size)
    n_tokens = int(rollout.completion_mask.sum())
    model.zero_grad()
    total, sizes = 0.0, []
    for mb in micro_batches(rollout, max_rows, max_tokens, shared):
        logp = microbatch_logprobs(model, mb, shared_prompt=shared, temperature=0.8, chunk_size=3)
        ref = logp.detach() + 0.05  # a reference that differs, so the KL term has a gradient
        loss, _ = policy_loss(logp, logp.detach(), ref, adv[mb.rows], mb.completion_mask, epsilon_low=0.2,
                              epsilon_high=0.2, beta=0.04, loss_type="grpo", n_sequences=len(rewards),
                              n_tokens=n_tokens, max_completion_length=10)
        loss.backward()
        total += float(loss.detach())
        sizes.append(mb.rows.stop - mb.rows.start)
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return total, grads, sizes


@pytest.mark.parametrize("max_rows,max_tokens", [(12, 0), (5, 0), (3, 0), (12, 40)])
def test_shared_prompt_update_gives_the_loss_and_gradients_of_the_plain_update(tiny_model_dir, max_rows, max_tokens):
    model, rollout = sampled_rollout(tiny_model_dir)
    loss_plain, grads_plain, _ = update(model, rollout, False, max_rows, max_tokens)
    loss_shared, grads_shared, sizes = update(model, rollout, True, max_rows, max_tokens)
    assert sum(sizes) == 12
    assert loss_shared == pytest.approx(loss_plain, rel=1e-5, abs=1e-7) and loss_plain != 0
    assert grads_plain.keys() == grads_shared.keys() and grads_plain
    for name, g in grads_plain.items():
        torch.testing.assert_close(grads_shared[name], g, atol=1e-6, rtol=1e-4, msg=name)


def test_micro_batches_respect_the_row_and_token_budgets(tiny_model_dir):
    _, rollout = sampled_rollout(tiny_model_dir)
    lp = rollout.prompt_length
    plen = rollout.attention_mask[:, :lp].sum(dim=1)
    clen = rollout.completion_mask.sum(dim=1)
    for shared in (False, True):
        for max_rows, max_tokens in ((12, 0), (5, 0), (12, 60), (12, 1)):
            batches = list(micro_batches(rollout, max_rows, max_tokens, shared))
            covered = [r for mb in batches for r in range(mb.rows.start, mb.rows.stop)]
            assert covered == list(range(12))
            for mb in batches:
                rows = range(mb.rows.start, mb.rows.stop)
                assert len(rows) <= max_rows
                # trimmed to the columns the rows use: the longest prompt and the longest completion
                assert mb.prompt_ids.shape[1] == int(plen[mb.rows].max())
                assert mb.n_completion == int(clen[mb.rows].max())
                assert mb.input_ids.shape[1] == mb.prompt_ids.shape[1] + mb.n_completion
                groups = sorted({r // 4 for r in rows})
                assert mb.prompt_ids.shape[0] == len(groups)
                assert torch.equal(mb.prompt_ids[mb.row_prompt], mb.input_ids[:, : mb.prompt_ids.shape[1]])
                cost = (len(groups) * mb.prompt_ids.shape[1] + len(rows) * mb.n_completion if shared
                        else len(rows) * mb.input_ids.shape[1])
                assert max_tokens == 0 or cost <= max_tokens or len(rows) == 1
    # a budget a shared-prompt batch meets with more rows than a per-row one
    assert len(list(micro_batches(rollout, 12, 100, True))) < len(list(micro_batches(rollout, 12, 100, False)))
