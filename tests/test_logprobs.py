"""Chunked completion log-probs against the naive full-logits computation, on a tiny random Qwen2."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from peft import LoraConfig, get_peft_model
from transformers import Qwen2Config, Qwen2ForCausalLM

from rlstruct.engine.logprobs import completion_logprobs, position_ids_from_mask

VOCAB = 97
ATOL = 2e-5


def tiny_model(seed: int = 0) -> Qwen2ForCausalLM:
    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=128,
    )  # fmt: skip
    model = Qwen2ForCausalLM(config)
    with torch.no_grad():  # default init is tiny (std 0.02): widen it so log-probs differ clearly across tokens
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0.0, 0.3)
    return model.eval()


@pytest.fixture(scope="module")
def model() -> Qwen2ForCausalLM:
    return tiny_model()


def naive(model, input_ids, attention_mask, n, temperature=1.0):
    """Full float32 logits for every position, then gather: the obviously-correct version."""
    positions = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
    logits = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=positions).logits
    log_probs = F.log_softmax(logits.float() / temperature, dim=-1)  # [B, L, V]
    L = input_ids.shape[1]
    picked = log_probs[:, L - n - 1 : L - 1]
    logp = picked.gather(-1, input_ids[:, L - n :].unsqueeze(-1)).squeeze(-1)
    entropy = -(picked.exp() * picked).sum(-1)
    return logp, entropy


def random_batch(seed: int, batch: int = 3, prompt: int = 6, n: int = 11):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, VOCAB, (batch, prompt + n), generator=g)
    return ids, torch.ones_like(ids)


def left_padded(rows: list[list[int]], pad_id: int = 0):
    width = max(len(r) for r in rows)
    ids = torch.tensor([[pad_id] * (width - len(r)) + r for r in rows])
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
    return ids, mask


# ---------------------------------------------------------------- values


@pytest.mark.parametrize("chunk_size", [1, 3, 4, 7, 11, 64])
@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_matches_naive_for_any_chunk_size(model, chunk_size, temperature):
    ids, mask = random_batch(0)
    with torch.no_grad():
        got = completion_logprobs(model, ids, mask, 11, temperature=temperature, chunk_size=chunk_size)
        expected, _ = naive(model, ids, mask, 11, temperature)
    assert got.shape == (3, 11) and got.dtype == torch.float32
    torch.testing.assert_close(got, expected, atol=ATOL, rtol=0)
    assert (got < 0).all()


def test_temperature_changes_the_result(model):
    ids, mask = random_batch(1)
    with torch.no_grad():
        a = completion_logprobs(model, ids, mask, 8, temperature=1.0)
        b = completion_logprobs(model, ids, mask, 8, temperature=0.5)
    assert (a - b).abs().max() > 1e-2


def test_entropy_matches_naive(model):
    ids, mask = random_batch(2)
    with torch.no_grad():
        logp, entropy = completion_logprobs(
            model, ids, mask, 11, temperature=0.8, chunk_size=4, return_entropy=True
        )
        exp_logp, exp_entropy = naive(model, ids, mask, 11, 0.8)
    torch.testing.assert_close(logp, exp_logp, atol=ATOL, rtol=0)
    torch.testing.assert_close(entropy, exp_entropy, atol=ATOL, rtol=0)
    assert (entropy > 0).all() and (entropy <= torch.log(torch.tensor(float(VOCAB))) + 1e-5).all()


def test_left_padding_gives_the_same_logprobs_as_unpadded_runs(model):
    g = torch.Generator().manual_seed(3)
    n = 5
    rows = [torch.randint(1, VOCAB, (k + n,), generator=g).tolist() for k in (2, 7, 4)]
    ids, mask = left_padded(rows)
    with torch.no_grad():
        padded = completion_logprobs(model, ids, mask, n, chunk_size=2)
        for i, row in enumerate(rows):
            alone = torch.tensor([row])
            single = completion_logprobs(model, alone, torch.ones_like(alone), n, chunk_size=2)
            torch.testing.assert_close(padded[i : i + 1], single, atol=ATOL, rtol=0)


def test_decoder_receives_positions_that_ignore_left_padding(model):
    # RoPE scores depend only on position differences, so a constant shift would go unnoticed in the values
    # above; check the positions handed to the decoder directly (absolute-position models need them right).
    seen = {}

    def spy(module, args, kwargs):
        seen["position_ids"] = kwargs["position_ids"].clone()

    ids, mask = left_padded([[7, 8, 9, 10, 11], [1, 2, 3]])
    handle = model.get_decoder().register_forward_pre_hook(spy, with_kwargs=True)
    try:
        with torch.no_grad():
            completion_logprobs(model, ids, mask, 2)
    finally:
        handle.remove()
    assert seen["position_ids"].tolist() == [[0, 1, 2, 3, 4], [0, 0, 0, 1, 2]]


def test_right_padded_completions_keep_real_token_logprobs(model):
    g = torch.Generator().manual_seed(4)
    prompt = torch.randint(1, VOCAB, (5,), generator=g).tolist()
    completion = torch.randint(1, VOCAB, (3,), generator=g).tolist()
    n = 6
    ids = torch.tensor([prompt + completion + [0] * (n - 3)])
    mask = torch.tensor([[1] * 8 + [0] * (n - 3)])
    alone = torch.tensor([prompt + completion])
    with torch.no_grad():
        padded = completion_logprobs(model, ids, mask, n, chunk_size=4)
        single = completion_logprobs(model, alone, torch.ones_like(alone), 3)
    torch.testing.assert_close(padded[:, :3], single, atol=ATOL, rtol=0)


def test_position_ids_from_mask():
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 0]])
    assert position_ids_from_mask(mask).tolist() == [[0, 0, 0, 1, 2], [0, 1, 2, 3, 3]]


# ---------------------------------------------------------------- gradients


def _param_grads(model):
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("chunk_size", [3, 64])
def test_gradients_match_naive(chunk_size):
    model = tiny_model(1).train()  # dropout is 0 in this config; train() mirrors the training loop
    ids, mask = left_padded([[5, 9, 13, 2, 7, 7, 1, 3, 8], [4, 4, 11, 6, 9, 2, 5]])
    weights = torch.randn(2, 6, generator=torch.Generator().manual_seed(0))

    model.zero_grad()
    logp, entropy = completion_logprobs(
        model, ids, mask, 6, temperature=0.9, chunk_size=chunk_size, return_entropy=True
    )
    ((logp * weights).sum() + 0.1 * entropy.sum()).backward()
    got = _param_grads(model)

    model.zero_grad()
    exp_logp, exp_entropy = naive(model, ids, mask, 6, 0.9)
    ((exp_logp * weights).sum() + 0.1 * exp_entropy.sum()).backward()
    expected = _param_grads(model)

    assert got.keys() == expected.keys() and len(got) == len(list(model.parameters()))
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], atol=1e-5, rtol=1e-4, msg=name)


def test_no_grad_output_has_no_graph(model):
    ids, mask = random_batch(5)
    with torch.no_grad():
        out = completion_logprobs(model, ids, mask, 4)
    assert out.grad_fn is None and not out.requires_grad


# ---------------------------------------------------------------- peft LoRA


@pytest.fixture(scope="module")
def lora_pair():
    base = tiny_model(2)
    reference = copy.deepcopy(base)
    config = LoraConfig(
        r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj", "lm_head"], init_lora_weights=False
    )  # init_lora_weights=False: B is random, so the adapter changes outputs from the start
    return get_peft_model(base, config), reference


def test_lora_model_matches_naive_and_differs_from_base(lora_pair):
    peft_model, reference = lora_pair
    ids, mask = left_padded([[3, 1, 4, 1, 5, 9, 2, 6, 5, 3], [2, 7, 1, 8, 2, 8, 1, 8]])
    with torch.no_grad():
        got = completion_logprobs(peft_model, ids, mask, 5, chunk_size=2)
        expected, _ = naive(peft_model, ids, mask, 5)
        base = completion_logprobs(reference, ids, mask, 5, chunk_size=2)
    torch.testing.assert_close(got, expected, atol=ATOL, rtol=0)
    assert (got - base).abs().max() > 1e-2


def test_disable_adapter_gives_the_base_model(lora_pair):
    peft_model, reference = lora_pair
    ids, mask = left_padded([[3, 1, 4, 1, 5, 9, 2, 6, 5, 3], [2, 7, 1, 8, 2, 8, 1, 8]])
    with torch.no_grad():
        with peft_model.disable_adapter():
            disabled = completion_logprobs(peft_model, ids, mask, 5, chunk_size=3)
        base, _ = naive(reference, ids, mask, 5)
        enabled = completion_logprobs(peft_model, ids, mask, 5, chunk_size=3)
    torch.testing.assert_close(disabled, base, atol=ATOL, rtol=0)
    assert (enabled - disabled).abs().max() > 1e-2  # the context manager restored the adapter


def test_lora_gradients_match_naive(lora_pair):
    peft_model, _ = lora_pair
    ids, mask = left_padded([[3, 1, 4, 1, 5, 9, 2, 6, 5, 3], [2, 7, 1, 8, 2, 8, 1, 8]])
    trainable = [(n, p) for n, p in peft_model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n, _ in trainable)
    assert any("lm_head" in n for n, _ in trainable)

    peft_model.zero_grad()
    completion_logprobs(peft_model, ids, mask, 5, chunk_size=2).sum().backward()
    got = {n: p.grad.clone() for n, p in trainable}
    peft_model.zero_grad()
    naive(peft_model, ids, mask, 5)[0].sum().backward()
    for n, p in trainable:
        assert got[n].abs().max() > 0, n
        torch.testing.assert_close(got[n], p.grad, atol=1e-5, rtol=1e-4, msg=n)
    peft_model.zero_grad()


# ---------------------------------------------------------------- fallback and validation


class OnlyForward(torch.nn.Module):
    """A causal LM exposing nothing but forward(): forces the model(...).logits fallback."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, **kwargs):
        return self.inner(**kwargs)


def test_fallback_without_get_decoder(model):
    ids, mask = left_padded([[5, 6, 7, 8, 9, 10, 11], [1, 2, 3, 4, 5]])
    wrapped = OnlyForward(model)
    with torch.no_grad():
        got, entropy = completion_logprobs(wrapped, ids, mask, 4, chunk_size=3, return_entropy=True)
        expected, exp_entropy = naive(model, ids, mask, 4)
    torch.testing.assert_close(got, expected, atol=ATOL, rtol=0)
    torch.testing.assert_close(entropy, exp_entropy, atol=ATOL, rtol=0)


class DecoderIsSelf(OnlyForward):
    """get_decoder() answering the whole model (transformers' own default when it finds no trunk)."""

    def get_decoder(self):
        return self

    def get_output_embeddings(self):
        return self.inner.lm_head


def test_decoder_that_contains_the_head_takes_the_fallback(model):
    ids, mask = left_padded([[5, 6, 7, 8, 9, 10, 11], [1, 2, 3, 4, 5]])
    with torch.no_grad():
        got = completion_logprobs(DecoderIsSelf(model), ids, mask, 4, chunk_size=3)
        expected, _ = naive(model, ids, mask, 4)
    torch.testing.assert_close(got, expected, atol=ATOL, rtol=0)


def test_rejects_bad_arguments(model):
    ids, mask = random_batch(6, n=3)
    for kwargs in ({"n_completion": 0}, {"n_completion": ids.shape[1]}):
        with pytest.raises(ValueError):
            completion_logprobs(model, ids, mask, **kwargs)
    with pytest.raises(ValueError):
        completion_logprobs(model, ids, mask, 3, temperature=0.0)
    with pytest.raises(ValueError):
        completion_logprobs(model, ids, mask, 3, chunk_size=0)
    with pytest.raises(ValueError):
        completion_logprobs(model, ids, mask[:, 1:], 3)


def test_autograd_keeps_no_vocabulary_sized_tensors(model, monkeypatch):
    # The point of the per-chunk checkpoint: between forward and backward, no chunk's [B, c, V] logits are kept
    # (once the batch's logits pass the budget: here 2 positions' worth, while the batch has 9).
    from rlstruct.engine import logprobs as lp

    monkeypatch.setattr(lp, "LOGITS_PER_CHUNK", 4 * VOCAB * 2)
    ids, mask = random_batch(7, n=9)
    saved_shapes = []

    def pack(t):
        saved_shapes.append(tuple(t.shape))
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        logp = completion_logprobs(model, ids, mask, 9, chunk_size=4, return_entropy=True)[0]
    assert logp.requires_grad
    assert saved_shapes, "hooks saw nothing: the test would pass vacuously"
    assert not [s for s in saved_shapes if s[-1] == VOCAB], saved_shapes


def test_logits_within_the_budget_are_computed_once_and_not_recomputed_in_backward(model):
    # 4 rows x 9 positions x VOCAB logits are far below LOGITS_PER_CHUNK: one pass through the head, kept for
    # backward (a checkpointed chunk would run the head again during backward), with the same gradients.
    ids, mask = random_batch(7, batch=4, n=9)
    calls = []
    handle = model.lm_head.register_forward_hook(lambda m, a, o: calls.append(tuple(a[0].shape[:2])))
    try:
        model.zero_grad()
        logp = completion_logprobs(model, ids, mask, 9, chunk_size=4)
        logp.sum().backward()
    finally:
        handle.remove()
    assert calls == [(4, 9)]
    got = _param_grads(model)
    model.zero_grad()
    naive(model, ids, mask, 9, 1.0)[0].sum().backward()
    for name, grad in _param_grads(model).items():
        torch.testing.assert_close(got[name], grad, atol=1e-5, rtol=1e-4, msg=name)


# ---------------------------------------------------------------- shared prompt (each prompt encoded once)


def grouped_batch(seed: int, prompt_lengths=(7, 3, 5), group: int = 3, t: int = 6):
    """Prompts of different lengths (left-padded), each continued by ``group`` different completions.

    Returns the rows as one sequence each (ids, mask: what completion_logprobs takes) and the grouped form
    (prompt ids, prompt mask, row -> prompt index, completion ids)."""
    g = torch.Generator().manual_seed(seed)
    prompts = [torch.randint(1, VOCAB, (k,), generator=g).tolist() for k in prompt_lengths]
    completions = torch.randint(1, VOCAB, (len(prompts) * group, t), generator=g)
    p_ids, p_mask = left_padded(prompts)
    row_prompt = torch.arange(len(prompts)).repeat_interleave(group)
    ids = torch.cat([p_ids[row_prompt], completions], dim=1)
    mask = torch.cat([p_mask[row_prompt], torch.ones_like(completions)], dim=1)
    return ids, mask, (p_ids, p_mask, row_prompt, completions)


def _shared(model, grouped, **kwargs):
    from rlstruct.engine.lean_decoder import LeanDecoder
    from rlstruct.engine.logprobs import shared_prompt_logprobs

    return shared_prompt_logprobs(LeanDecoder.of(model), *grouped, **kwargs)


@pytest.mark.parametrize("checkpointing", [False, True], ids=["plain", "gradient-checkpointing"])
def test_shared_prompt_logprobs_and_gradients_equal_the_per_row_pass(checkpointing):
    from rlstruct.engine.lean_decoder import LeanDecoder

    model = tiny_model(4).train()
    if checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    assert LeanDecoder.of(model).gradient_checkpointing is checkpointing
    ids, mask, grouped = grouped_batch(0)
    weights = torch.randn(ids.shape[0], 6, generator=torch.Generator().manual_seed(1))

    model.zero_grad()
    logp, entropy = completion_logprobs(model, ids, mask, 6, temperature=0.9, chunk_size=4, return_entropy=True)
    ((logp * weights).sum() + 0.1 * entropy.sum()).backward()
    expected = _param_grads(model)

    model.zero_grad()
    got_logp, got_entropy = _shared(model, grouped, temperature=0.9, chunk_size=4, return_entropy=True)
    ((got_logp * weights).sum() + 0.1 * got_entropy.sum()).backward()
    got = _param_grads(model)

    torch.testing.assert_close(got_logp, logp, atol=ATOL, rtol=0)
    torch.testing.assert_close(got_entropy, entropy, atol=ATOL, rtol=0)
    assert got.keys() == expected.keys() and len(got) == len(list(model.parameters()))
    for name in expected:
        assert expected[name].abs().max() > 0, name
        torch.testing.assert_close(got[name], expected[name], atol=1e-5, rtol=1e-4, msg=name)


def test_shared_prompt_logprobs_of_a_lora_model_and_its_reference(lora_pair):
    peft_model, reference = lora_pair
    ids, mask, grouped = grouped_batch(2, prompt_lengths=(4, 8), group=2, t=5)
    with torch.no_grad():
        torch.testing.assert_close(_shared(peft_model, grouped, chunk_size=2), naive(peft_model, ids, mask, 5)[0],
                                   atol=ATOL, rtol=0)
        with peft_model.disable_adapter():
            torch.testing.assert_close(_shared(peft_model, grouped, chunk_size=2), naive(reference, ids, mask, 5)[0],
                                       atol=ATOL, rtol=0)
    trainable = [(n, p) for n, p in peft_model.named_parameters() if p.requires_grad]
    peft_model.zero_grad()
    _shared(peft_model, grouped, chunk_size=2).sum().backward()
    got = {n: p.grad.clone() for n, p in trainable}
    peft_model.zero_grad()
    naive(peft_model, ids, mask, 5)[0].sum().backward()
    for n, p in trainable:
        torch.testing.assert_close(got[n], p.grad, atol=1e-5, rtol=1e-4, msg=n)
    peft_model.zero_grad()


def test_shared_prompt_encodes_each_prompt_once():
    model = tiny_model(5)
    ids, mask, grouped = grouped_batch(3, prompt_lengths=(9, 9), group=4, t=3)
    rows_seen = []
    handle = model.model.layers[0].mlp.register_forward_hook(lambda m, a, o: rows_seen.append(tuple(a[0].shape[:2])))
    try:
        with torch.no_grad():
            _shared(model, grouped)
    finally:
        handle.remove()
    # one pass over the 2 prompts (9 tokens), one over the 8 completions (3 tokens): not 8 rows of 12 tokens
    assert rows_seen == [(2, 9), (8, 3)]


def test_logits_per_chunk_are_capped_for_large_vocabularies(model, monkeypatch):
    from rlstruct.engine import logprobs as lp

    ids, mask = random_batch(8, batch=4, n=10)
    with torch.no_grad():
        uncapped = completion_logprobs(model, ids, mask, 10, chunk_size=64)
    widths = []
    handle = model.lm_head.register_forward_hook(lambda m, a, o: widths.append(a[0].shape[1]))
    monkeypatch.setattr(lp, "LOGITS_PER_CHUNK", 4 * VOCAB * 3)  # room for 3 positions of 4 rows
    try:
        with torch.no_grad():
            capped = completion_logprobs(model, ids, mask, 10, chunk_size=64)
    finally:
        handle.remove()
    torch.testing.assert_close(capped, uncapped, atol=ATOL, rtol=0)
    assert widths == [3, 3, 3, 1]  # chunk_size 64 asked for one chunk; the cap made four
