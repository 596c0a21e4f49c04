"""The fast rollout path: one prefill per distinct prompt, a preallocated key/value buffer, finished rows dropped.

For P prompts × G completions the plain path (``model.generate`` on N = P·G rows) encodes every prompt G times
and then decodes N rows until the last one stops, concatenating every layer's cache at every token. Here:

1. each distinct prompt is encoded once (P rows, left-padded), through :class:`LeanDecoder`;
2. its keys/values stay in one copy per group (:class:`GroupCache`); the generated tokens' keys/values go into
   a per-row buffer sized for the whole completion, written in place one column per step;
3. a decode step scores each query in two parts, then takes one softmax over both: all G rows of a group
   against the shared prompt keys in one matrix product (the prompt is read once per group, not G times), and
   each row against its own generated tokens;
4. rows that produced EOS stop costing compute: once they are an eighth of the batch they are dropped from it;
5. tokens are drawn on the device (:mod:`.sampling`); on CUDA the loop looks at the host only every few steps;
6. LoRA adapters are folded into temporary weight copies for the duration (when those copies are small), so a
   decode step costs as many operations as without LoRA, and each layer's q/k/v (and gate/up) products run as
   one (:meth:`~.lean_decoder.LeanDecoder.inference_weights`).

The output is a :class:`~.rollout.Rollout` laid out exactly as the plain path's (left-padded prompt, completion
cut at EOS, same masks), so everything downstream is unchanged. tests/engine/test_fast_rollout.py checks it
against the plain path: identical greedy completions, and the same per-token log-probabilities as a full
forward pass for sampled ones.
"""

from __future__ import annotations

import contextlib
import time
from typing import Iterator, Sequence

import torch
from torch import Tensor

from .lean_decoder import LeanDecoder, additive_mask, prefill_mask, sdpa
from .logprobs import position_ids_from_mask
from .sampling import next_tokens

# Drop finished rows once they are this share of the batch: compacting copies the generated keys/values, so
# doing it for every single finished row would cost more than decoding a few dead rows.
_COMPACT_SHARE = 0.125
# On CUDA, look at the host (all done? rows to drop?) only every this many tokens; each look is a sync.
_CUDA_CHECK_EVERY = 8


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run the block with ``threads`` intra-op threads (0: leave torch's setting), then restore it."""
    if threads <= 0 or threads == torch.get_num_threads():
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def fast_generate(
    model,
    decoder: LeanDecoder,
    tokenizer,
    prompt_texts: Sequence[str],
    *,
    group_size: int,
    max_new_tokens: int,
    max_prompt_tokens: int,
    do_sample: bool = True,
    temperature: float = 1.0,
    top_p: float = 1.0,
    threads: int = 0,
    return_logprobs: bool = False,
):
    """Sample ``group_size`` completions per prompt; see the module docstring. Returns a Rollout.

    ``threads`` > 0 runs the decode loop with that many torch threads (the prefill, a few large products,
    keeps the process's setting: a small model's token steps are too short to share between threads, its
    prompts are not). ``return_logprobs`` also records
    the log-probability (under ``temperature``, before the top-p filter, as the loss sees it) of each sampled
    token in ``Rollout.sampled_logprobs``.
    """
    from .rollout import assemble_rollout

    device = next(model.parameters()).device
    enc = tokenizer(
        list(prompt_texts), return_tensors="pt", padding=True, truncation=True, max_length=max_prompt_tokens,
        add_special_tokens=False,
    )
    prompt_ids, prompt_mask = enc["input_ids"].to(device), enc["attention_mask"].to(device)  # [P, Lp]
    eos_id, pad_id = tokenizer.eos_token_id, tokenizer.pad_token_id
    was_training = model.training
    model.eval()
    timings: dict[str, float] = {}
    try:
        t0 = time.perf_counter()
        with decoder.inference_weights():
            completion, logps = _decode(
                decoder, prompt_ids, prompt_mask, group_size, max_new_tokens, eos_id, pad_id,
                do_sample=do_sample, temperature=temperature, top_p=top_p, return_logprobs=return_logprobs,
                timings=timings, threads=threads,
            )
        _sync(device)
        timings["decode_s"] = time.perf_counter() - t0 - timings["prefill_s"]
    finally:
        model.train(was_training)
    rollout = assemble_rollout(
        tokenizer, prompt_ids.repeat_interleave(group_size, 0), prompt_mask.repeat_interleave(group_size, 0),
        completion, group_size,
    )
    rollout.timings = timings
    if logps is not None:
        rollout.sampled_logprobs = logps[:, : rollout.n_completion] * rollout.completion_mask
    return rollout


class GroupCache:
    """Keys/values for decoding G completions per prompt: each prompt's once, each row's generated ones apart.

    ``attend`` (a :data:`~.lean_decoder.Attend`) stores the step's new keys/values in column ``length`` of the
    row buffers and returns softmax attention over prompt + generated tokens: the prompt's scores and values
    come from one product per group, the generated tokens' from one per row, with one softmax over both.
    """

    def __init__(self, prefix: list[tuple[Tensor, Tensor]], prompt_mask: Tensor, group_size: int, max_new: int):
        self.prefix = prefix  # per layer: keys, values [P, kv_heads, Lp, head_dim]
        self.group_size = group_size
        n = prompt_mask.shape[0] * group_size
        # [P, 1, 1, Lp] additive float32 mask: prompt padding never attended
        self.prompt_bias = additive_mask(prompt_mask.bool()[:, None, None, :], torch.float32)
        self.own_k = [k.new_empty(n, k.shape[1], max_new, k.shape[3]) for k, _ in prefix]
        self.own_v = [v.new_empty(n, v.shape[1], max_new, v.shape[3]) for _, v in prefix]
        self.rows = torch.arange(n, device=prompt_mask.device)  # batch row -> rollout row
        self.compacted = False
        self.length = 0  # generated tokens stored

    def keep(self, alive: Tensor) -> None:
        """Keep only batch rows ``alive`` (indices into the current batch)."""
        self.own_k = [buf.index_select(0, alive) for buf in self.own_k]
        self.own_v = [buf.index_select(0, alive) for buf in self.own_v]
        self.rows = self.rows[alive]
        self.compacted = True

    def attend(self, index: int, q: Tensor, k: Tensor, v: Tensor, dropout: float, scale: float) -> Tensor:
        t = self.length
        self.own_k[index][:, :, t] = k[:, :, 0]
        self.own_v[index][:, :, t] = v[:, :, 0]
        own_k, own_v = self.own_k[index][:, :, : t + 1], self.own_v[index][:, :, : t + 1]
        prompt_k, prompt_v = self.prefix[index]
        n, heads, _, dim = q.shape
        prompts, kv_heads, width = prompt_k.shape[0], prompt_k.shape[1], prompt_k.shape[2]
        rep, g = heads // kv_heads, self.group_size
        q = (q * scale).view(n, kv_heads, rep, dim)  # query heads grouped under their key/value head

        # scores against the prompt: every row of a group at once, [P, kv_heads, G*rep, Lp] (the prompt read once)
        grouped = self._grouped(q).view(prompts, g, kv_heads, rep, dim).transpose(1, 2).reshape(prompts, kv_heads, g * rep, dim)
        prompt_scores = torch.matmul(grouped, prompt_k.transpose(-1, -2)) + self.prompt_bias
        prompt_scores = self._per_row(prompt_scores, g, rep)  # [n, kv_heads, rep, Lp]
        # scores against the row's own generated tokens, [n, kv_heads, rep, t+1]; one softmax over both
        own_scores = torch.matmul(q, own_k.transpose(-1, -2))
        weights = torch.softmax(torch.cat([prompt_scores.float(), own_scores.float()], dim=-1), dim=-1)
        prompt_w, own_w = weights[..., :width].to(q.dtype), weights[..., width:].to(q.dtype)

        grouped_w = self._grouped(prompt_w).view(prompts, g, kv_heads, rep, width).transpose(1, 2)
        prompt_out = torch.matmul(grouped_w.reshape(prompts, kv_heads, g * rep, width), prompt_v)
        out = self._per_row(prompt_out, g, rep) + torch.matmul(own_w, own_v)  # [n, kv_heads, rep, dim]
        return out.reshape(n, heads, 1, dim)

    def _grouped(self, x: Tensor) -> Tensor:
        """[n, ...] batch rows -> [P*G, ...] rollout rows (finished rows' slots zero), for per-group products."""
        if not self.compacted:
            return x
        slots = x.new_zeros(self.prefix[0][0].shape[0] * self.group_size, *x.shape[1:])
        slots[self.rows] = x
        return slots

    def _per_row(self, x: Tensor, g: int, rep: int) -> Tensor:
        """[P, kv_heads, G*rep, c] per-group product -> [n, kv_heads, rep, c] for the batch's rows."""
        prompts, kv_heads = x.shape[0], x.shape[1]
        x = x.view(prompts, kv_heads, g, rep, -1).transpose(1, 2).reshape(prompts * g, kv_heads, rep, -1)
        return x[self.rows] if self.compacted else x


def _decode(
    decoder: LeanDecoder, prompt_ids: Tensor, prompt_mask: Tensor, group_size: int, max_new: int,
    eos_id: int, pad_id: int, *, do_sample: bool, temperature: float, top_p: float, return_logprobs: bool,
    timings: dict[str, float], threads: int = 0,
) -> tuple[Tensor, Tensor | None]:
    """The decode loop: completion tokens [N, max_new] (pad after EOS) and optionally their log-probs."""
    device, dtype = prompt_ids.device, decoder.dtype
    n = prompt_ids.shape[0] * group_size
    t0 = time.perf_counter()

    # 1. prefill: each distinct prompt once
    prefix: list[tuple[Tensor, Tensor]] = []

    def keep(index: int, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        prefix.append((k, v))
        return k, v

    positions = position_ids_from_mask(prompt_mask)  # [P, Lp]
    hidden = decoder.forward(prompt_ids, positions, sdpa(prefill_mask(prompt_mask.bool(), dtype), keep))
    first_logits = decoder.project(hidden[:, -1]).float()  # [P, V]
    del hidden
    cache = GroupCache(prefix, prompt_mask, group_size, max_new)
    position = prompt_mask.sum(dim=1).repeat_interleave(group_size, 0)  # [N] position of the next token
    _sync(device)
    timings["prefill_s"] = time.perf_counter() - t0

    tokens = torch.full((n, max_new), pad_id, dtype=torch.long, device=device)
    logps = torch.zeros(n, max_new, dtype=torch.float32, device=device) if return_logprobs else None
    logits = first_logits.repeat_interleave(group_size, 0)  # [N, V]
    check_every = _CUDA_CHECK_EVERY if device.type == "cuda" else 1
    with torch_threads(threads):
        _decode_loop(decoder, cache, logits, tokens, logps, position, max_new, eos_id, pad_id, check_every,
                     do_sample=do_sample, temperature=temperature, top_p=top_p)
    return tokens, logps


def _decode_loop(
    decoder: LeanDecoder, cache: GroupCache, logits: Tensor, tokens: Tensor, logps: Tensor | None, position: Tensor,
    max_new: int, eos_id: int, pad_id: int, check_every: int, *, do_sample: bool, temperature: float, top_p: float,
) -> None:
    """Steps 2-5 of the module docstring: sample, store, drop finished rows, decode one token; fills ``tokens``
    [N, max_new] and ``logps`` in place."""
    done = torch.zeros(tokens.shape[0], dtype=torch.bool, device=tokens.device)
    for t in range(max_new):
        chosen = next_tokens(logits, do_sample=do_sample, temperature=temperature, top_p=top_p)
        chosen = torch.where(done, torch.full_like(chosen, pad_id), chosen)
        tokens[cache.rows, t] = chosen
        if logps is not None:
            scores = logits / temperature if temperature != 1.0 else logits
            logps[cache.rows, t] = torch.log_softmax(scores, dim=-1).gather(1, chosen[:, None]).squeeze(1)
        done |= chosen == eos_id
        if t == max_new - 1:
            break
        if (t + 1) % check_every == 0:
            n_done = int(done.sum())
            if n_done == done.numel():
                break
            if n_done >= max(1, _COMPACT_SHARE * done.numel()):
                alive = (~done).nonzero().squeeze(1)
                cache.keep(alive)
                position, chosen, done = position[alive], chosen[alive], done[alive]
        hidden = decoder.forward(chosen[:, None], position[:, None], cache.attend)
        cache.length += 1
        position = position + 1
        logits = decoder.project(hidden[:, -1]).float()
