"""Prompt rendering (tools slot or system message) and cutting completions at EOS."""

import json

import torch
from transformers import AutoModelForCausalLM

from rlstruct import Prompt
from rlstruct.engine.model import load_tokenizer
from rlstruct.engine.rollout import generate, render_prompt

TOOL = {"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}


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
