"""The lean decoder pass reproduces each supported architecture's own forward(), and declines the others."""

from __future__ import annotations

import pytest
import torch
from peft import LoraConfig, PromptTuningConfig, get_peft_model
from transformers import (
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
    Qwen3Config,
    Qwen3ForCausalLM,
)

from rlstruct.engine.lean_decoder import LeanDecoder, prefill_mask, sdpa
from rlstruct.engine.logprobs import position_ids_from_mask

SHAPE = dict(
    vocab_size=61, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
    num_key_value_heads=2, max_position_embeddings=64,
)  # fmt: skip


def widened(model):
    """Default init (std 0.02) makes every logit nearly equal; widen it so a wrong pass shows."""
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0.0, 0.3)
            else:  # norm weights and biases (Qwen2 has q/k/v biases) move off their defaults too
                p.add_(torch.randn_like(p) * 0.1)
    return model.eval()


MODELS = {
    "llama": lambda: LlamaForCausalLM(LlamaConfig(**SHAPE)),
    "llama-rope-scaling": lambda: LlamaForCausalLM(LlamaConfig(
        **SHAPE, rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                               "high_freq_factor": 4.0, "original_max_position_embeddings": 16})),
    "mistral": lambda: MistralForCausalLM(MistralConfig(**SHAPE, sliding_window=None)),
    "qwen2": lambda: Qwen2ForCausalLM(Qwen2Config(**SHAPE)),
    "qwen3": lambda: Qwen3ForCausalLM(Qwen3Config(**SHAPE, head_dim=8)),
}


def left_padded_batch():
    rows = [[5, 9, 2, 6, 5, 3, 5, 8, 9, 7], [3, 1, 4], [2, 7, 1, 8, 2, 8]]
    width = max(len(r) for r in rows)
    ids = torch.tensor([[0] * (width - len(r)) + r for r in rows])
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
    return ids, mask


def lean_logits(model, ids, mask, decoder=None):
    decoder = decoder or LeanDecoder.of(model)
    assert decoder is not None
    hidden = decoder.forward(ids, position_ids_from_mask(mask), sdpa(prefill_mask(mask.bool(), decoder.dtype)))
    return decoder.head(hidden)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_lean_pass_equals_forward_on_left_padded_rows(name):
    torch.manual_seed(0)
    model = widened(MODELS[name]())
    ids, mask = left_padded_batch()
    with torch.no_grad():
        expected = model(input_ids=ids, attention_mask=mask, position_ids=position_ids_from_mask(mask)).logits
        got = lean_logits(model, ids, mask)
    real = mask.bool()
    assert expected[real].std() > 0.5  # the logits really vary, so agreement is not a coincidence
    torch.testing.assert_close(got[real], expected[real], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_fused_projections_for_decoding_give_the_same_logits(name):
    # inference_weights: q/k/v as one product (one rotation for q and k) and gate/up as another; Qwen3's
    # per-head norms, Llama's missing biases and Qwen2's biases all go through it
    torch.manual_seed(0)
    model = widened(MODELS[name]())
    decoder = LeanDecoder.of(model)
    ids, mask = left_padded_batch()
    with torch.no_grad():
        expected = model(input_ids=ids, attention_mask=mask, position_ids=position_ids_from_mask(mask)).logits
        with decoder.inference_weights():
            assert len(decoder.fused) == 2 * len(decoder.layers)  # each layer's attention and MLP
            got = lean_logits(model, ids, mask, decoder)
    assert decoder.fused == {}  # the concatenated copies live for the block only
    real = mask.bool()
    torch.testing.assert_close(got[real], expected[real], atol=1e-5, rtol=1e-5)


def test_fused_projections_fold_lora_adapters_and_respect_the_copy_budget():
    torch.manual_seed(0)
    model = get_peft_model(widened(MODELS["qwen2"]()), LoraConfig(
        r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "up_proj"], init_lora_weights=False))
    decoder = LeanDecoder.of(model)
    ids, mask = left_padded_batch()
    real = mask.bool()
    with torch.no_grad():
        expected = model(input_ids=ids, attention_mask=mask, position_ids=position_ids_from_mask(mask)).logits
        with decoder.inference_weights():
            assert decoder.fused and decoder.folded
            got = lean_logits(model, ids, mask, decoder)
        torch.testing.assert_close(got[real], expected[real], atol=1e-5, rtol=1e-5)
        with decoder.inference_weights(max_elements=10):  # copies would pass the budget: nothing fused
            assert decoder.fused == {} and decoder.folded == {}
            got = lean_logits(model, ids, mask, decoder)
            torch.testing.assert_close(got[real], expected[real], atol=1e-5, rtol=1e-5)


def test_lean_pass_follows_lora_and_disable_adapter():
    torch.manual_seed(0)
    base = widened(MODELS["qwen2"]())
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj", "lm_head"],
                        init_lora_weights=False)
    model = get_peft_model(base, config)
    ids, mask = left_padded_batch()
    real = mask.bool()
    with torch.no_grad():
        pos = position_ids_from_mask(mask)
        adapted = lean_logits(model, ids, mask)
        expected = model(input_ids=ids, attention_mask=mask, position_ids=pos).logits
        torch.testing.assert_close(adapted[real], expected[real], atol=1e-5, rtol=1e-5)
        with model.disable_adapter():
            plain = lean_logits(model, ids, mask)
            expected = model(input_ids=ids, attention_mask=mask, position_ids=pos).logits
            torch.testing.assert_close(plain[real], expected[real], atol=1e-5, rtol=1e-5)
    assert (adapted - plain)[real].abs().max() > 1e-2


def test_unsupported_architectures_are_declined():
    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=61, n_embd=32, n_layer=1, n_head=4, n_positions=32))
    assert LeanDecoder.of(gpt2) is None
    sliding = Qwen2ForCausalLM(Qwen2Config(**SHAPE, use_sliding_window=True, sliding_window=4, max_window_layers=0))
    assert LeanDecoder.of(sliding) is None  # a band of keys, not every earlier token
    assert LeanDecoder.of(MistralForCausalLM(MistralConfig(**SHAPE, sliding_window=4))) is None
    prompt_tuned = get_peft_model(
        Qwen2ForCausalLM(Qwen2Config(**SHAPE)),
        PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=2),
    )
    assert LeanDecoder.of(prompt_tuned) is None
