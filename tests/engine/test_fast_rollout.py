"""The fast rollout path against the plain one (Hugging Face generate).

Sampling cannot be bit-identical between the two (the fast path draws one uniform number per row, generate
draws one per vocabulary entry), so the equivalence is checked where it is exact: greedy completions are
identical token for token, and every sampled token's log-probability as the fast path saw it equals the
model's log-probability of that token in a full forward pass (so the fast path samples from the model's
distribution). Rows are made to stop at different lengths, so dropping finished rows is exercised.
"""

from __future__ import annotations

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel
from transformers.generation.logits_process import TopPLogitsWarper

from rlstruct import Prompt
from rlstruct.engine.fast_rollout import fast_generate, torch_threads
from rlstruct.engine.lean_decoder import LeanDecoder
from rlstruct.engine.logprobs import completion_logprobs
from rlstruct.engine.model import load_tokenizer
from rlstruct.engine.rollout import FastGenerator, PlainGenerator, generate, make_generator, render_prompt
from rlstruct.engine.sampling import draw, next_tokens, top_p_filter

QUESTIONS = ["short", "a much longer prompt than the first one, with more words in it", "two words", "numbers 1 2 3"]


@pytest.fixture(scope="module")
def tok(tiny_model_dir):
    return load_tokenizer(str(tiny_model_dir))


@pytest.fixture(scope="module")
def prompts(tok):
    return [render_prompt(tok, Prompt([{"role": "user", "content": q}])) for q in QUESTIONS]


def model_ending_early(model_dir, tok, eos_bias: float):
    """The tiny model with EOS made likelier (so rows stop at different lengths), widened so that greedy
    decoding does not get stuck on one token."""
    torch.manual_seed(3)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.mul_(8.0)
    eos = tok.eos_token_id

    def bias(module, args, output):
        output = output.clone()
        output[..., eos] += eos_bias
        return output

    model.lm_head.register_forward_hook(bias)
    return model.eval()


def test_greedy_completions_are_those_of_the_plain_path(tiny_model_dir, tok, prompts):
    model = model_ending_early(tiny_model_dir, tok, eos_bias=4.0)
    plain = generate(model, tok, prompts, group_size=3, max_new_tokens=40, max_prompt_tokens=64, do_sample=False)
    fast = make_generator("fast", model, tok).generate(
        prompts, group_size=3, max_new_tokens=40, max_prompt_tokens=64, do_sample=False
    )
    lengths = plain.completion_mask.sum(dim=1).tolist()
    assert len(set(lengths)) > 2 and min(lengths) < 40, lengths  # groups stop at different steps
    assert torch.equal(fast.input_ids, plain.input_ids)
    assert torch.equal(fast.attention_mask, plain.attention_mask)
    assert torch.equal(fast.completion_mask, plain.completion_mask)
    assert torch.equal(fast.truncated, plain.truncated)
    assert fast.texts == plain.texts and fast.prompt_length == plain.prompt_length and fast.group_size == 3


def test_greedy_completions_of_a_lora_model_are_those_of_the_plain_path(tiny_model_dir, tok, prompts):
    torch.manual_seed(0)
    base = model_ending_early(tiny_model_dir, tok, eos_bias=3.0)
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "up_proj"],
                                            init_lora_weights=False)).eval()
    kw = dict(group_size=2, max_new_tokens=30, max_prompt_tokens=64, do_sample=False)
    plain = generate(model, tok, prompts, **kw)
    fast = make_generator("fast", model, tok).generate(prompts, **kw)
    assert torch.equal(fast.input_ids, plain.input_ids)
    with model.disable_adapter():
        base_plain = generate(model, tok, prompts, **kw)
        base_fast = make_generator("fast", model, tok).generate(prompts, **kw)
    assert torch.equal(base_fast.input_ids, base_plain.input_ids)
    assert not torch.equal(base_plain.input_ids, plain.input_ids)  # the adapter matters


@pytest.mark.parametrize("temperature,top_p", [(1.0, 1.0), (0.7, 1.0), (1.0, 0.8)])
def test_sampled_tokens_carry_the_models_log_probs(tiny_model_dir, tok, prompts, temperature, top_p):
    model = model_ending_early(tiny_model_dir, tok, eos_bias=3.0)
    torch.manual_seed(0)
    rollout = fast_generate(
        model, LeanDecoder.of(model), tok, prompts, group_size=6, max_new_tokens=30, max_prompt_tokens=64,
        temperature=temperature, top_p=top_p, return_logprobs=True,
    )
    lengths = rollout.completion_mask.sum(dim=1)
    assert len(set(lengths.tolist())) > 3  # rows stopped at many different steps (finished rows dropped)
    with torch.no_grad():
        full = completion_logprobs(
            model, rollout.input_ids, rollout.attention_mask, rollout.n_completion, temperature=temperature
        )
    mask = rollout.completion_mask.bool()
    torch.testing.assert_close(rollout.sampled_logprobs[mask], full[mask], atol=2e-5, rtol=0)
    # completions within a group differ: the group's rows were sampled independently
    assert len(set(rollout.texts[:6])) > 1
    if top_p < 1.0:  # every sampled token lies inside the nucleus of the model's distribution at its position
        lp, t = rollout.prompt_length, rollout.n_completion
        with torch.no_grad():
            pos = (rollout.attention_mask.cumsum(-1) - 1).clamp(min=0)
            logits = model(input_ids=rollout.input_ids, attention_mask=rollout.attention_mask, position_ids=pos).logits
        scores = logits[:, lp - 1 : lp + t - 1].reshape(-1, logits.shape[-1]) / temperature
        kept = torch.isfinite(top_p_filter(scores, top_p))
        chosen = rollout.input_ids[:, lp:].reshape(-1, 1)
        assert kept.gather(1, chosen).squeeze(1)[mask.reshape(-1)].all()
        assert (kept.sum(dim=1) < kept.shape[1]).all()  # and the nucleus really excluded tokens


def test_seeded_sampling_is_reproducible(tiny_model_dir, tok, prompts):
    model = model_ending_early(tiny_model_dir, tok, eos_bias=1.5)
    gen = make_generator("fast", model, tok)
    runs = []
    for seed in (5, 5, 6):
        torch.manual_seed(seed)
        runs.append(gen.generate(prompts, group_size=4, max_new_tokens=20, max_prompt_tokens=64).texts)
    assert runs[0] == runs[1] and runs[0] != runs[2]


def test_generation_paths_are_selectable_and_fall_back_for_other_architectures(tiny_model_dir, tok):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert isinstance(make_generator("fast", model, tok, threads=1), FastGenerator)
    assert isinstance(make_generator("plain", model, tok), PlainGenerator)
    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=64, n_embd=32, n_layer=1, n_head=4, n_positions=64))
    assert isinstance(make_generator("fast", gpt2, tok), PlainGenerator)
    with pytest.raises(ValueError, match="grpo.generation"):
        make_generator("turbo", model, tok)


def test_thread_setting_is_restored():
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


# ---------------------------------------------------------------- the sampler


def test_top_p_filter_is_hugging_faces_nucleus():
    torch.manual_seed(0)
    scores = torch.randn(5, 50) * 3
    for top_p in (0.1, 0.5, 0.9, 0.999):
        expected = TopPLogitsWarper(top_p=top_p)(None, scores.clone())
        assert torch.equal(top_p_filter(scores, top_p), expected)
    assert torch.equal(top_p_filter(scores, 1.0), scores)


def test_draw_follows_the_distribution_and_never_picks_impossible_tokens():
    probs = torch.tensor([[0.5, 0.0, 0.3, 0.2, 0.0]]).repeat(4000, 1)
    torch.manual_seed(0)
    picks = torch.cat([draw(probs) for _ in range(5)])
    counts = torch.bincount(picks, minlength=5).float() / picks.numel()
    assert counts[1] == 0 and counts[4] == 0
    torch.testing.assert_close(counts, probs[0], atol=0.015, rtol=0)
    one_hot = torch.zeros(3, 7)
    one_hot[torch.arange(3), torch.tensor([6, 0, 3])] = 1.0
    assert draw(one_hot).tolist() == [6, 0, 3]  # the edges of the vocabulary are reachable


def test_greedy_choice_is_the_argmax():
    logits = torch.tensor([[0.1, 2.0, -1.0], [3.0, 2.9, 0.0]])
    assert next_tokens(logits, do_sample=False, temperature=0.5, top_p=0.5).tolist() == [1, 0]


def test_lora_adapters_are_folded_while_decoding_and_keep_the_models_log_probs(tiny_model_dir, tok, prompts):
    base = model_ending_early(tiny_model_dir, tok, eos_bias=3.0)
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "o_proj", "down_proj"],
                                            init_lora_weights=False)).eval()
    decoder = LeanDecoder.of(model)
    wrapped_calls = []
    handle = model.base_model.model.model.layers[0].self_attn.q_proj.register_forward_hook(
        lambda m, a, o: wrapped_calls.append(1)
    )
    torch.manual_seed(0)
    rollout = fast_generate(model, decoder, tok, prompts, group_size=4, max_new_tokens=20, max_prompt_tokens=64,
                            return_logprobs=True)
    handle.remove()
    assert wrapped_calls == [] and decoder.folded == {} and decoder.fused == {}  # for the decode only
    with torch.no_grad():
        full = completion_logprobs(model, rollout.input_ids, rollout.attention_mask, rollout.n_completion)
    mask = rollout.completion_mask.bool()
    torch.testing.assert_close(rollout.sampled_logprobs[mask], full[mask], atol=2e-5, rtol=0)
    with model.disable_adapter(), torch.no_grad():  # disabled adapters fold to the bare base weights
        torch.manual_seed(0)
        off = fast_generate(model, decoder, tok, prompts, group_size=4, max_new_tokens=20, max_prompt_tokens=64,
                            return_logprobs=True)
        full_off = completion_logprobs(model, off.input_ids, off.attention_mask, off.n_completion)
    mask = off.completion_mask.bool()
    torch.testing.assert_close(off.sampled_logprobs[mask], full_off[mask], atol=2e-5, rtol=0)
    assert off.texts != rollout.texts
