"""Rollouts: render prompts, sample G completions per prompt, cut them at EOS, and split them for the update.

Kept apart from the training loop so the generation path can be swapped without touching the loss code:
everything downstream only needs a :class:`Rollout`. A generation path is a :class:`Generator`:

* ``plain``: Hugging Face ``generate`` on all P·G rows (any causal LM);
* ``fast``: one prefill per prompt and a lean decode loop (:mod:`.fast_rollout`), for the decoder families
  :class:`~.lean_decoder.LeanDecoder` covers; other models fall back to ``plain``.

A generator that runs outside this process's copy of the weights (a vLLM engine, say) implements the same
protocol and reloads the weights in :meth:`Generator.weights_updated`, which the trainer calls after every
optimiser step. The two in-process generators are cheap to build and the trainer builds one per step
(:func:`make_generator`); an engine that is costly to start would be built once per run and kept with the run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Iterator, Literal, Protocol, Sequence

import torch

from ..errors import RunError
from ..task import Prompt


class PromptTooLong(RunError, ValueError):
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
    group_size: int = 1  # G: rows g*G .. g*G+G-1 share prompt g (identical prompt columns)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per generation phase, when measured
    sampled_logprobs: torch.Tensor | None = None  # [N, T] log-probs the sampler saw (fast path, on request)

    @property
    def n_completion(self) -> int:
        return self.completion_mask.shape[1]


def assemble_rollout(
    tokenizer, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, completion: torch.Tensor, group_size: int
) -> Rollout:
    """A Rollout from left-padded prompts [N, Lp] and raw completions [N, T'] (anything after the first EOS
    is replaced by padding; T is cut to the longest completion)."""
    eos_id, pad_id = tokenizer.eos_token_id, tokenizer.pad_token_id
    device = completion.device
    is_eos = completion == eos_id
    has_eos = is_eos.any(dim=1)
    # index of the first EOS, or T' when there is none
    first_eos = torch.where(
        has_eos, is_eos.int().argmax(dim=1), torch.full_like(has_eos, completion.shape[1], dtype=torch.long)
    )
    lengths = torch.where(has_eos, first_eos + 1, first_eos)
    completion = completion[:, : max(1, int(lengths.max()))] if completion.shape[1] else completion
    positions = torch.arange(completion.shape[1], device=device).unsqueeze(0)
    completion_mask = (positions <= first_eos.unsqueeze(1)).long()  # EOS itself is learned
    completion = torch.where(completion_mask.bool(), completion, torch.full_like(completion, pad_id))
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
        prompt_length=prompt_ids.shape[1],
        group_size=group_size,
    )


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
    """Sample ``group_size`` completions for every prompt (rows grouped by prompt) with ``model.generate``."""
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
    was_training = model.training
    model.eval()
    sampling = dict(do_sample=True, temperature=temperature, top_p=top_p, top_k=0) if do_sample else dict(do_sample=False)
    try:
        out = model.generate(
            input_ids=prompt_ids,
            attention_mask=prompt_mask,
            max_new_tokens=max_new_tokens,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            use_cache=True,
            **sampling,
        )
    finally:
        model.train(was_training)
    return assemble_rollout(tokenizer, prompt_ids, prompt_mask, out[:, prompt_ids.shape[1] :], group_size)


# -- generation paths -------------------------------------------------------------------------------------------
GenerationKind = Literal["fast", "plain"]


class Generator(Protocol):
    """A generation path: P prompts in, a group-contiguous :class:`Rollout` of P × G completions out."""

    name: str  # "plain", "fast", ... (reported in the metrics)

    def generate(
        self, prompt_texts: Sequence[str], *, group_size: int, max_new_tokens: int, max_prompt_tokens: int,
        do_sample: bool = True, temperature: float = 1.0, top_p: float = 1.0, return_logprobs: bool = False,
    ) -> Rollout:
        """``return_logprobs`` asks for ``Rollout.sampled_logprobs`` (the log-probs under ``temperature`` of the
        sampled tokens); a generator that cannot record them leaves the field ``None``."""
        ...

    def weights_updated(self) -> None:
        """Called after every optimiser step. In-process generators read the live weights (nothing to do);
        an engine holding its own copy of the weights reloads them here."""


@dataclass
class PlainGenerator:
    """Hugging Face ``generate`` on all N rows: works for any causal LM."""

    model: object
    tokenizer: object
    threads: int = 0  # torch threads while generating (0: unchanged)
    name: str = "plain"

    def generate(self, prompt_texts: Sequence[str], return_logprobs: bool = False, **kwargs) -> Rollout:
        from .fast_rollout import torch_threads

        t0 = time.perf_counter()
        with torch_threads(self.threads):
            rollout = generate(self.model, self.tokenizer, list(prompt_texts), **kwargs)
        rollout.timings = {"decode_s": time.perf_counter() - t0}  # prefill and decode are not separable here
        return rollout

    def weights_updated(self) -> None:
        pass


@dataclass
class FastGenerator:
    """One prefill per prompt and a lean decode loop (see :mod:`.fast_rollout`)."""

    model: object
    tokenizer: object
    decoder: object  # LeanDecoder
    threads: int = 0  # torch threads while generating (0: unchanged)
    name: str = "fast"

    def generate(self, prompt_texts: Sequence[str], **kwargs) -> Rollout:
        from .fast_rollout import fast_generate

        return fast_generate(self.model, self.decoder, self.tokenizer, prompt_texts, threads=self.threads, **kwargs)

    def weights_updated(self) -> None:
        pass


def make_generator(kind: str, model, tokenizer, *, threads: int = 0) -> Generator:
    """The ``grpo.generation`` path for ``model``: ``fast`` when its architecture is supported, else ``plain``."""
    if kind not in ("fast", "plain"):
        raise ValueError(f"grpo.generation must be 'fast' or 'plain', got {kind!r}")
    if kind == "fast":
        from .lean_decoder import LeanDecoder

        decoder = LeanDecoder.of(model)
        if decoder is not None:
            return FastGenerator(model, tokenizer, decoder, threads)
    return PlainGenerator(model, tokenizer, threads)


# -- micro-batches for the update -------------------------------------------------------------------------------
@dataclass
class MicroBatch:
    """Rows ``rows`` of a rollout, trimmed to the columns they use.

    ``input_ids`` / ``attention_mask`` [B, Lp' + t] are the rows as one sequence each (the plain update);
    ``prompt_ids`` / ``prompt_mask`` [Pg, Lp'] hold each distinct prompt of the micro-batch once, ``row_prompt``
    [B] says which one each row continues, and ``completion_ids`` [B, t] the completions (the shared-prompt
    update encodes each prompt once for its rows).
    """

    rows: slice
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    completion_mask: torch.Tensor  # [B, t]
    prompt_ids: torch.Tensor
    prompt_mask: torch.Tensor
    row_prompt: torch.Tensor
    completion_ids: torch.Tensor

    @property
    def n_completion(self) -> int:
        return self.completion_mask.shape[1]


def micro_batches(
    rollout: Rollout, max_rows: int, max_tokens: int = 0, shared_prompt: bool = False
) -> Iterator[MicroBatch]:
    """Split a rollout into consecutive micro-batches of at most ``max_rows`` rows and, when ``max_tokens`` > 0,
    at most ``max_tokens`` tokens as the update will process them (padded rows × columns; with
    ``shared_prompt`` each distinct prompt counts once). A single row over the budget still forms a batch."""
    n, lp, group = rollout.input_ids.shape[0], rollout.prompt_length, max(1, rollout.group_size)
    prompt_lens = rollout.attention_mask[:, :lp].sum(dim=1).tolist()
    completion_lens = [max(1, int(x)) for x in rollout.completion_mask.sum(dim=1).tolist()]
    start = 0
    while start < n:
        end, longest_prompt, longest_completion = start, 0, 0
        while end < n and end - start < max_rows:
            p, c = max(longest_prompt, prompt_lens[end]), max(longest_completion, completion_lens[end])
            rows = end + 1 - start
            prompts = end // group - start // group + 1
            cost = prompts * p + rows * c if shared_prompt else rows * (p + c)
            if max_tokens > 0 and end > start and cost > max_tokens:
                break
            end, longest_prompt, longest_completion = end + 1, p, c
        yield _micro_batch(rollout, slice(start, end), group, longest_prompt, longest_completion)
        start = end


def _micro_batch(rollout: Rollout, rows: slice, group: int, prompt_len: int, t: int) -> MicroBatch:
    lp = rollout.prompt_length
    first = lp - prompt_len  # leading columns that are padding in every row of this micro-batch
    ids, att = rollout.input_ids[rows], rollout.attention_mask[rows]
    # one row per distinct prompt: rows of a group carry identical prompt columns
    first_group, last_group = rows.start // group, (rows.stop - 1) // group
    pick = torch.tensor([max(rows.start, g * group) for g in range(first_group, last_group + 1)], device=ids.device)
    row_prompt = torch.arange(rows.start, rows.stop, device=ids.device) // group - first_group
    return MicroBatch(
        rows=rows,
        input_ids=ids[:, first : lp + t],
        attention_mask=att[:, first : lp + t],
        completion_mask=rollout.completion_mask[rows, :t],
        prompt_ids=rollout.input_ids.index_select(0, pick)[:, first:lp],
        prompt_mask=rollout.attention_mask.index_select(0, pick)[:, first:lp],
        row_prompt=row_prompt,
        completion_ids=ids[:, lp : lp + t],
    )
