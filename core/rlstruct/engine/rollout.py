"""Rollouts: render prompts, sample G completions per prompt, and cut them at EOS.

Kept apart from the training loop so the generation path can be swapped for a faster one (static
KV cache, a serving engine) without touching the loss code: everything downstream only needs a
:class:`Rollout`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..task import Prompt


class PromptTooLong(ValueError):
    """A prompt exceeds grpo.max_prompt_tokens (it would otherwise be cut silently)."""


def check_prompt_lengths(tokenizer, prompts: list[str], limit: int) -> None:
    """Stop with a clear error rather than silently cutting prompts longer than ``limit`` tokens."""
    lengths = [len(ids) for ids in tokenizer(prompts, add_special_tokens=False)["input_ids"]]
    too_long = [(i, n) for i, n in enumerate(lengths) if n > limit]
    if too_long:
        index, n = max(too_long, key=lambda item: item[1])
        raise PromptTooLong(
            f"grpo.max_prompt_tokens = {limit}, but {len(too_long)} of {len(prompts)} prompts are longer "
            f"(the longest, record {index}, has {n} tokens); raise the limit or shorten the prompts"
        )


def render_prompt(tokenizer, prompt: Prompt) -> str:
    """Apply the tokenizer's chat template. Tools go into the template's tools slot when it has
    one, else into the system message (prepended, or a new system message)."""
    messages = [dict(m) for m in prompt.messages]
    kwargs = {}
    if prompt.tools:
        template = tokenizer.chat_template or ""
        if isinstance(template, dict):  # several named templates
            template = " ".join(template.values())
        if "tools" in template:
            kwargs["tools"] = prompt.tools
        else:
            messages = prompt.inline_tools()
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, **kwargs)


@dataclass
class Rollout:
    """One batch of sampled completions, N = prompts × group size rows, group-contiguous."""

    input_ids: torch.Tensor  # [N, Lp + T] prompt (left-padded) then completion (right-padded)
    attention_mask: torch.Tensor  # [N, Lp + T] 1 on real prompt tokens and on completion tokens up to EOS
    completion_mask: torch.Tensor  # [N, T] 1 on completion tokens up to and including EOS
    truncated: torch.Tensor  # [N] bool, no EOS within max_new_tokens
    texts: list[str]  # decoded completions without special tokens
    prompt_length: int  # Lp

    @property
    def n_completion(self) -> int:
        return self.completion_mask.shape[1]


@torch.no_grad()
def generate(
    model,
    tokenizer,
    prompt_texts: list[str],
    *,
    group_size: int,
    max_new_tokens: int,
    max_prompt_tokens: int,
    do_sample: bool = True,
    temperature: float = 1.0,
    top_p: float = 1.0,
) -> Rollout:
    """Sample ``group_size`` completions for every prompt (rows grouped by prompt)."""
    device = next(model.parameters()).device
    enc = tokenizer(
        prompt_texts,
        return_tensors="pt",
        padding=True,
        truncation=True,
        max_length=max_prompt_tokens,
        add_special_tokens=False,
    )
    prompt_ids = enc["input_ids"].repeat_interleave(group_size, dim=0).to(device)  # [N, Lp]
    prompt_mask = enc["attention_mask"].repeat_interleave(group_size, dim=0).to(device)
    eos_id = tokenizer.eos_token_id
    was_training = model.training
    model.eval()
    sampling = dict(do_sample=True, temperature=temperature, top_p=top_p, top_k=0) if do_sample else dict(do_sample=False)
    out = model.generate(
        input_ids=prompt_ids,
        attention_mask=prompt_mask,
        max_new_tokens=max_new_tokens,
        eos_token_id=eos_id,
        pad_token_id=tokenizer.pad_token_id,
        use_cache=True,
        **sampling,
    )
    model.train(was_training)
    lp = prompt_ids.shape[1]
    completion = out[:, lp:]  # [N, T]
    is_eos = completion == eos_id
    has_eos = is_eos.any(dim=1)
    # index of the first EOS, or T when there is none
    first_eos = torch.where(has_eos, is_eos.int().argmax(dim=1), torch.full_like(has_eos, completion.shape[1], dtype=torch.long))
    positions = torch.arange(completion.shape[1], device=device).unsqueeze(0)
    completion_mask = (positions <= first_eos.unsqueeze(1)).long()  # EOS itself is learned
    completion = torch.where(completion_mask.bool(), completion, torch.full_like(completion, tokenizer.pad_token_id))
    texts = [
        tokenizer.decode(row[: int(end)].tolist(), skip_special_tokens=True)
        for row, end in zip(completion.cpu(), first_eos.cpu())
    ]
    return Rollout(
        input_ids=torch.cat([prompt_ids, completion], dim=1),
        attention_mask=torch.cat([prompt_mask, completion_mask], dim=1),
        completion_mask=completion_mask,
        truncated=~has_eos,
        texts=texts,
        prompt_length=lp,
    )
