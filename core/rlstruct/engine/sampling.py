"""Next-token choice for the fast rollout path: temperature, nucleus (top-p) filter, then one draw per row.

The filters reproduce Hugging Face's ``TemperatureLogitsWarper`` and ``TopPLogitsWarper`` (what the plain
path's ``generate`` applies with ``top_k=0``), so both paths sample from the same distribution. The draw itself
differs by device, both exact samplers of that distribution:

* CPU: inverse CDF, one uniform number per row against a float64 cumulative sum (``torch.multinomial`` draws
  an exponential number for every vocabulary entry, which costs more than a small model's decode step);
* CUDA: the exponential race ``argmax(p / Exp(1))`` that ``torch.multinomial`` uses, without a host sync.
"""

from __future__ import annotations

import torch
from torch import Tensor


def top_p_filter(scores: Tensor, top_p: float) -> Tensor:
    """Set to -inf the scores outside the smallest set of tokens whose probability reaches ``top_p``
    (the most likely token is always kept). ``scores`` [B, V]."""
    if top_p >= 1.0:
        return scores
    sorted_scores, order = torch.sort(scores, descending=False)
    cumulative = sorted_scores.softmax(dim=-1).cumsum(dim=-1)
    remove_sorted = cumulative <= (1 - top_p)
    remove_sorted[..., -1:] = False
    remove = remove_sorted.scatter(1, order, remove_sorted)
    return scores.masked_fill(remove, -float("inf"))


def draw(probs: Tensor) -> Tensor:
    """One token index per row of ``probs`` [B, V] (rows sum to 1; zero-probability tokens are never drawn)."""
    if probs.device.type == "cuda":
        noise = torch.empty_like(probs).exponential_()
        return (probs / noise).argmax(dim=-1)
    cdf = probs.double().cumsum(dim=-1)  # float64: no drift over a 150k-token vocabulary
    u = torch.rand(probs.shape[0], 1, dtype=torch.float64, device=probs.device) * cdf[:, -1:]
    # the first index whose cumulative probability exceeds u: token i covers [cdf[i-1], cdf[i])
    index = torch.searchsorted(cdf, u, right=True).clamp_(max=probs.shape[1] - 1)
    # u rounding up to the total (odds ~2**-53) could land past the last possible token: take the likeliest then
    possible = probs.gather(1, index) > 0
    if bool(possible.all()):  # almost always: skip the fallback's argmax over the vocabulary
        return index.squeeze(1)
    return torch.where(possible, index, probs.argmax(dim=-1, keepdim=True)).squeeze(1)


def next_tokens(logits: Tensor, *, do_sample: bool, temperature: float, top_p: float) -> Tensor:
    """Tokens [B] chosen from ``logits`` [B, V]: argmax when not sampling, else a draw from the tempered,
    nucleus-filtered distribution."""
    if not do_sample:
        return logits.argmax(dim=-1)
    scores = logits.float()
    if temperature != 1.0:
        scores = scores / temperature
    scores = top_p_filter(scores, top_p)
    return draw(torch.softmax(scores, dim=-1))
