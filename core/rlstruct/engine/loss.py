"""GRPO math: group-relative advantages, the k3 KL estimator and the clipped policy loss.

Shapes used throughout:
    P = prompts in the batch, G = completions per prompt (the "group"),
    B = sequences in a (micro-)batch, T = completion tokens per sequence (right-padded; ``mask`` marks real ones).

Everything here is a pure function of tensors so it can be checked against a plain-Python reference.
The loss is written in *sum form with global normalisers*: each micro-batch returns
``sum(per-token or per-sequence terms) / N`` where N is computed by the caller over the whole optimisation batch.
Summing the micro-batch losses (gradient accumulation without extra scaling) then reproduces the full-batch loss
exactly, whatever the split.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

LossType = Literal["grpo", "bnpo", "dapo", "dr_grpo"]
LOSS_TYPES: tuple[str, ...] = ("grpo", "bnpo", "dapo", "dr_grpo")

# Rewards closer than this are "equal": the group carries no learning signal.
ZERO_SPREAD_TOL = 1e-8


def _at_least_float32(x: Tensor) -> Tensor:
    # bf16/fp16 log-probs lose too much precision in exp(logp - old_logp); float64 (tests) is kept as is.
    return x.to(torch.promote_types(x.dtype, torch.float32))


def group_advantages(
    rewards: Tensor, group_size: int, scale_rewards: bool = True, eps: float = 1e-4
) -> tuple[Tensor, Tensor]:
    """Group-relative advantages.

    Args:
        rewards: [P*G] scalar rewards, group-contiguous (prompt 0's G completions first, then prompt 1's, ...).
        group_size: G.
        scale_rewards: True -> (r - mean) / (std + eps) (GRPO); False -> r - mean (Dr. GRPO, which argues the
            std division over-weights easy/hard prompts whose groups have small spread).
        eps: keeps the division finite for groups with tiny spread.

    Returns:
        advantages [P*G] (same float dtype as rewards, float32 for integer rewards) and
        zero_spread [P] bool: True where every reward of the group is equal (within 1e-8). Those groups get an
        advantage of exactly 0 -- there is nothing to prefer inside them -- instead of rounding noise / eps.

    The std is the *unbiased* sample std (torch.std default, Bessel-corrected, as TRL does). For G == 1 it is
    undefined, but such a group is always zero-spread, so its advantage is 0 anyway.
    """
    if group_size < 1:
        raise ValueError(f"group_size must be >= 1, got {group_size}")
    if rewards.dim() != 1 or rewards.numel() % group_size != 0:
        raise ValueError(f"rewards must be 1-D with a multiple of {group_size} elements, got {tuple(rewards.shape)}")
    r = rewards if rewards.is_floating_point() else rewards.float()
    grouped = r.view(-1, group_size)  # [P, G]
    mean = grouped.mean(dim=1, keepdim=True)  # [P, 1]
    spread = grouped.max(dim=1).values - grouped.min(dim=1).values  # [P]
    zero_spread = spread <= ZERO_SPREAD_TOL  # [P]
    centered = grouped - mean  # [P, G]
    if scale_rewards:
        if group_size > 1:
            std = grouped.std(dim=1, keepdim=True)  # [P, 1], unbiased
        else:
            std = torch.zeros_like(mean)  # the group is zero-spread; avoids std's NaN for one sample
        centered = centered / (std + eps)
    adv = torch.where(zero_spread.unsqueeze(1), torch.zeros_like(centered), centered)  # [P, G]
    return adv.reshape(-1), zero_spread


def kl_k3(logp: Tensor, ref_logp: Tensor) -> Tensor:
    """Per-token k3 estimator of KL(pi || ref) (Schulman, "Approximating KL divergence").

    With d = ref_logp - logp (log of ref/pi at the sampled token): k3 = exp(d) - d - 1.
    It is unbiased for samples drawn from pi and, unlike the plain -d estimator, never negative
    (exp(d) >= 1 + d), so a per-token penalty never rewards moving away from the reference.
    Shapes: any, broadcast elementwise (typically [B, T]).
    """
    d = ref_logp - logp
    return torch.exp(d) - d - 1.0


def policy_loss(
    logp: Tensor,
    old_logp: Tensor,
    ref_logp: Tensor | None,
    advantages: Tensor,
    mask: Tensor,
    *,
    epsilon_low: float,
    epsilon_high: float,
    beta: float,
    loss_type: LossType,
    n_sequences: int | float | Tensor,
    n_tokens: int | float | Tensor,
    max_completion_length: int,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Clipped GRPO surrogate loss for one (micro-)batch, in sum form with caller-supplied global normalisers.

    Args:
        logp: [B, T] log-probs of the sampled tokens under the policy being trained (carries the gradient).
        old_logp: [B, T] log-probs under the policy that sampled them. Equal to ``logp.detach()`` when each
            batch is used once (num_iterations == 1; ratio == 1, no clipping), different on later iterations.
        ref_logp: [B, T] log-probs under the frozen reference model, or None (only allowed when beta == 0).
        advantages: [B] one advantage per sequence, broadcast over its tokens.
        mask: [B, T] bool/float, 1 on completion tokens that count (not padding, not after EOS).
        epsilon_low / epsilon_high: clip range [1 - eps_low, 1 + eps_high] for the ratio (DAPO's "clip-higher"
            uses eps_high > eps_low).
        beta: weight of the k3 KL penalty; 0 -> no KL term (ref_logp is then not needed).
        loss_type: how per-token losses are aggregated (N = normaliser over the *whole* optimisation batch):
            "grpo": sum over sequences of the sequence's masked token mean, / n_sequences
                    (each sequence weighs the same whatever its length);
            "bnpo": sum of masked token losses / n_tokens;
            "dapo": sum of masked token losses / n_tokens. Conventionally bnpo normalises by the tokens of the
                    local batch and dapo by the tokens of the global (all processes, all accumulation steps)
                    batch; here both use exactly the n_tokens the caller passes, so the caller decides;
            "dr_grpo": sum of masked token losses / (n_sequences * max_completion_length), a constant
                    normaliser that removes the length bias of the other forms (Dr. GRPO).
        n_sequences: number of sequences in the whole optimisation batch (grpo, dr_grpo).
        n_tokens: number of masked-in completion tokens in the batch the caller normalises over (bnpo, dapo).
            0 (nothing counts) gives a zero loss rather than NaN.
        max_completion_length: the generation length cap (dr_grpo).

    Returns:
        loss: scalar tensor. Summing it over micro-batches that partition a batch equals the full-batch loss.
        stats: detached scalars over this micro-batch's masked tokens (0 when it has none):
            "kl" (mean k3; computed whenever ref_logp is given, even if beta == 0), "clip_fraction" (share of
            tokens whose gradient was cut by clipping: ratio < 1-eps_low with A < 0, or ratio > 1+eps_high with
            A > 0), "clip_low_fraction", "clip_high_fraction", "ratio_mean", "ratio_max", "n_tokens" (the
            local masked token count, to weight these means when combining micro-batches).

    Masked-out positions are replaced by 0 *before* any arithmetic, so whatever they hold (even inf/NaN) cannot
    leak into the loss or produce NaN gradients through exp().
    """
    _check_loss_inputs(logp, old_logp, ref_logp, advantages, mask, beta=beta, loss_type=loss_type)
    keep = mask.bool()  # [B, T]
    fmask = keep.to(_at_least_float32(logp).dtype)  # [B, T] 0/1 weights
    zero = torch.zeros((), dtype=fmask.dtype, device=logp.device)
    logp = torch.where(keep, _at_least_float32(logp), zero)
    old_logp = torch.where(keep, _at_least_float32(old_logp).detach(), zero)
    adv = _at_least_float32(advantages).detach().unsqueeze(1)  # [B, 1]

    # PPO clipped surrogate. min() makes it pessimistic: the ratio can only help the objective inside the
    # trust region, and clamp() has zero gradient outside it, so clipped tokens stop pushing.
    log_ratio = logp - old_logp  # [B, T]
    ratio = torch.exp(log_ratio)  # [B, T]
    clipped_ratio = torch.clamp(ratio, 1.0 - epsilon_low, 1.0 + epsilon_high)
    surrogate = torch.minimum(ratio * adv, clipped_ratio * adv)  # [B, T]
    per_token = -surrogate

    kl = None
    if ref_logp is not None:
        ref = torch.where(keep, _at_least_float32(ref_logp).detach(), zero)
        kl = kl_k3(logp, ref)  # [B, T], 0 at masked positions (logp == ref == 0 there)
        if beta != 0.0:
            per_token = per_token + beta * kl

    per_token = per_token * fmask  # [B, T]; masked positions are already finite, this zeroes them
    loss = _aggregate(per_token, fmask, loss_type, n_sequences, n_tokens, max_completion_length)
    stats = _loss_stats(ratio, adv, kl, keep, fmask, epsilon_low=epsilon_low, epsilon_high=epsilon_high)
    return loss, stats


def _check_loss_inputs(
    logp: Tensor, old_logp: Tensor, ref_logp: Tensor | None, advantages: Tensor, mask: Tensor,
    *, beta: float, loss_type: str,
) -> None:
    # Shape and option errors are programming errors of the caller: fail before any arithmetic.
    if loss_type not in LOSS_TYPES:
        raise ValueError(f"unknown loss_type {loss_type!r}; expected one of {LOSS_TYPES}")
    if ref_logp is None and beta != 0.0:
        raise ValueError("ref_logp is required when beta != 0")
    if logp.dim() != 2 or old_logp.shape != logp.shape or mask.shape != logp.shape:
        raise ValueError("logp, old_logp and mask must all be [B, T]")
    if advantages.shape != logp.shape[:1]:
        raise ValueError(f"advantages must be [B]={tuple(logp.shape[:1])}, got {tuple(advantages.shape)}")


def _aggregate(
    per_token: Tensor, fmask: Tensor, loss_type: str,
    n_sequences: int | float | Tensor, n_tokens: int | float | Tensor, max_completion_length: int,
) -> Tensor:
    """Reduce masked per-token losses [B, T] to the scalar loss of ``loss_type`` (see :func:`policy_loss`)."""
    if loss_type == "grpo":
        seq_len = fmask.sum(dim=1).clamp(min=1.0)  # [B]; all-masked sequences contribute 0, not 0/0
        return (per_token.sum(dim=1) / seq_len).sum() / _positive(n_sequences)
    if loss_type in ("bnpo", "dapo"):
        return per_token.sum() / _positive(n_tokens)
    # dr_grpo
    return per_token.sum() / (_positive(n_sequences) * _positive(max_completion_length))


def _loss_stats(
    ratio: Tensor, adv: Tensor, kl: Tensor | None, keep: Tensor, fmask: Tensor,
    *, epsilon_low: float, epsilon_high: float,
) -> dict[str, Tensor]:
    """Detached diagnostics over the masked tokens: ratio [B, T], adv [B, 1], kl [B, T] or None."""
    zero = torch.zeros((), dtype=fmask.dtype, device=ratio.device)
    with torch.no_grad():
        count = fmask.sum()
        denom = count.clamp(min=1.0)
        clip_low = (ratio < 1.0 - epsilon_low) & (adv < 0) & keep
        clip_high = (ratio > 1.0 + epsilon_high) & (adv > 0) & keep
        stats = {
            "kl": (kl * fmask).sum() / denom if kl is not None else zero.clone(),
            "clip_fraction": (clip_low | clip_high).to(fmask.dtype).sum() / denom,
            "clip_low_fraction": clip_low.to(fmask.dtype).sum() / denom,
            "clip_high_fraction": clip_high.to(fmask.dtype).sum() / denom,
            "ratio_mean": (ratio * fmask).sum() / denom,
            "ratio_max": torch.where(keep, ratio, zero).max() if ratio.numel() else zero.clone(),
            "n_tokens": count,
        }
    return {k: v.detach() for k, v in stats.items()}


def _positive(n: int | float | Tensor) -> float | Tensor:
    # A normaliser of 0 only happens when nothing counts (every sum is 0): return 0 loss instead of NaN.
    if isinstance(n, Tensor):
        return n.clamp(min=1)
    return max(n, 1)
