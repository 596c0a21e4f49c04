"""Per-token log-probs of completions without materialising the full-vocabulary logits of the whole batch.

A naive ``log_softmax(model(ids).logits.float())`` holds B * L * V float32 numbers (plus as much again for the
backward pass): for B=64, L=1024, V=150k that is ~40 GB. Here the transformer trunk (``get_decoder()``) runs once
and only the hidden states of the positions that predict completion tokens are kept ([B, n, H], small); the
lm head + float32 log_softmax then run over ``chunk_size`` positions at a time (fewer when B * chunk * V would
pass :data:`LOGITS_PER_CHUNK`), so few logits exist at once. Under autograd each chunk is wrapped in
``torch.utils.checkpoint``: the backward pass recomputes that chunk's logits instead of keeping every chunk's
logits alive until backward. A batch whose logits all fit in that budget (a small vocabulary, short
completions) is scored in one piece, with nothing recomputed.

When G completions continue the same prompt, :func:`shared_prompt_logprobs` encodes that prompt once for the
group (through :class:`~.lean_decoder.LeanDecoder`) instead of G times; :func:`microbatch_logprobs` picks it
when the architecture allows.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from .lean_decoder import LeanDecoder, additive_mask, prefill_mask, sdpa

# At most this many float32 logits exist per chunk (B × positions × vocabulary), whatever logprob_chunk_size says:
# 16 Mi floats = 64 MiB, plus as much for the log-softmax. With a 150k vocabulary and 8 rows that is 13 positions.
LOGITS_PER_CHUNK = 16 * 2**20

# Config fields of models whose lm head output is post-processed in forward() in ways not reproduced here
# (Cohere's logit_scale, Granite's logits_scaling): such models take the plain forward() path.
_UNSUPPORTED_HEAD_POSTPROCESSING = ("logit_scale", "logits_scaling")


def position_ids_from_mask(attention_mask: Tensor) -> Tensor:
    """[B, L] positions that start at 0 on each row's first real token, so left padding does not shift them.

    Pad positions get 0 (cumsum - 1 would be -1 there); their values never matter since nothing attends to them.
    """
    return (attention_mask.long().cumsum(dim=-1) - 1).clamp(min=0)


def completion_logprobs(
    model: nn.Module,
    input_ids: Tensor,
    attention_mask: Tensor,
    n_completion: int,
    *,
    temperature: float = 1.0,
    chunk_size: int = 64,
    return_entropy: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """Log-probs of the last ``n_completion`` tokens of each row of ``input_ids`` under ``model``.

    Args:
        model: a transformers causal LM, or a peft PeftModel wrapping one (LoRA; honours ``disable_adapter()``).
        input_ids: [B, L] prompt (left-padded) followed by the completion (right-padded if ragged).
        attention_mask: [B, L] 1 on real tokens.
        n_completion: n, the number of trailing positions to score; 1 <= n < L (token t is predicted by the
            logits at t - 1, so the first scored token needs a predecessor).
        temperature: logits are divided by it, so the log-probs are those of the distribution actually sampled.
        chunk_size: positions per lm-head chunk; trades peak memory for fewer, larger matmuls.
        return_entropy: also return the entropy of the (tempered) next-token distribution at each position.

    Returns:
        logp [B, n] float32, or (logp [B, n], entropy [B, n]). Padded completion positions hold the log-prob of
        whatever pad token sits there; the caller masks them out.
    """
    if input_ids.dim() != 2 or attention_mask.shape != input_ids.shape:
        raise ValueError("input_ids and attention_mask must both be [B, L]")
    batch, length = input_ids.shape
    if not 0 < n_completion < length:
        raise ValueError(f"n_completion must be in [1, {length - 1}], got {n_completion}")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")

    position_ids = position_ids_from_mask(attention_mask)
    features, project = _completion_features(model, input_ids, attention_mask, position_ids, n_completion)
    # features [B, n, H] (or [B, n, V] logits on the fallback path): row t predicts completion token t.
    targets = input_ids[:, length - n_completion :]  # [B, n]
    # forward() applies soft-capping itself, so only the decoder path (project is the bare lm head) needs it.
    softcap = _final_logit_softcap(model) if isinstance(project, nn.Module) else None
    return score_features(
        features, targets, project, temperature=temperature, chunk_size=chunk_size,
        return_entropy=return_entropy, softcap=softcap,
    )


def sampling_logprobs_are_exact(model: nn.Module) -> bool:
    """Whether the log-probs the fast sampler records equal this model's training-mode log-probs to float32
    rounding: its weights are float32 (bfloat16 decoding drifts from a full forward pass by ~1e-2) and no
    dropout is active (a training-mode pass would be random). Then they can serve as the old policy's."""
    if any(p.dtype != torch.float32 for p in model.parameters()):
        return False
    for module in model.modules():
        if isinstance(module, nn.Dropout) and module.p > 0:
            return False
        if getattr(getattr(module, "config", None), "attention_dropout", 0) or getattr(module, "attention_dropout", 0):
            return False
    return True


def microbatch_logprobs(
    model: nn.Module,
    batch,
    *,
    shared_prompt: bool,
    temperature: float = 1.0,
    chunk_size: int = 64,
    return_entropy: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """Log-probs [B, t] of a :class:`~.rollout.MicroBatch`'s completions under ``model``: with each prompt
    encoded once (:func:`shared_prompt_logprobs`) when ``shared_prompt`` and the model's architecture allows
    it, else each row as one sequence (:func:`completion_logprobs`). Both give the same numbers."""
    decoder = LeanDecoder.of(model) if shared_prompt else None
    if decoder is not None:
        return shared_prompt_logprobs(
            decoder, batch.prompt_ids, batch.prompt_mask, batch.row_prompt, batch.completion_ids,
            temperature=temperature, chunk_size=chunk_size, return_entropy=return_entropy,
        )
    return completion_logprobs(
        model, batch.input_ids, batch.attention_mask, batch.n_completion,
        temperature=temperature, chunk_size=chunk_size, return_entropy=return_entropy,
    )


def shared_prompt_logprobs(
    decoder: LeanDecoder,
    prompt_ids: Tensor,
    prompt_mask: Tensor,
    row_prompt: Tensor,
    completion_ids: Tensor,
    *,
    temperature: float = 1.0,
    chunk_size: int = 64,
    return_entropy: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """Log-probs of completions that continue shared prompts, each prompt encoded once (Prefix Grouper).

    Equal (to float rounding) to :func:`completion_logprobs` on the rows ``prompt + completion``, gradients
    included: the prompt pass runs once per distinct prompt, and each completion attends to its prompt's keys
    and values, through which the gradient of every completion flows back into the shared prompt pass.
    For G completions of an Lp-token prompt this encodes Lp + G·t tokens instead of G·(Lp + t).

    Args:
        decoder: the lean pass of the model (:meth:`LeanDecoder.of`; honours ``disable_adapter()``).
        prompt_ids, prompt_mask: [Pg, Lp] distinct prompts, left-padded.
        row_prompt: [B] index of the prompt each completion row continues.
        completion_ids: [B, t] completions (right-padded; padding is scored too, the caller masks it).
        temperature, chunk_size, return_entropy: as in :func:`completion_logprobs`.
    """
    if prompt_ids.dim() != 2 or prompt_mask.shape != prompt_ids.shape:
        raise ValueError("prompt_ids and prompt_mask must both be [Pg, Lp]")
    if completion_ids.dim() != 2 or row_prompt.shape != completion_ids.shape[:1]:
        raise ValueError("completion_ids must be [B, t] and row_prompt [B]")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    dtype, device = decoder.dtype, prompt_ids.device
    prefix: dict[int, tuple[Tensor, Tensor]] = {}

    def keep(index: int, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        prefix.setdefault(index, (k, v))  # a checkpointed recompute must not replace what completions used
        return k, v

    prompt_hidden = decoder.forward(
        prompt_ids, position_ids_from_mask(prompt_mask), sdpa(prefill_mask(prompt_mask.bool(), dtype), keep)
    )  # [Pg, Lp, H]
    t = completion_ids.shape[1]
    steps = torch.arange(t, device=device)
    positions = prompt_mask.long().sum(dim=1)[row_prompt].unsqueeze(1) + steps  # [B, t]
    allowed = torch.cat(
        [
            prompt_mask.bool()[row_prompt][:, None, None, :].expand(-1, 1, t, -1),  # the row's real prompt tokens
            (steps[None, :] <= steps[:, None]).expand(len(row_prompt), 1, t, t),  # causal within the completion
        ],
        dim=-1,
    )  # [B, 1, t, Lp + t]

    def attend(index: int, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        pk, pv = prefix[index]
        return torch.cat([pk[row_prompt], k], dim=2), torch.cat([pv[row_prompt], v], dim=2)

    hidden = decoder.forward(completion_ids, positions, sdpa(additive_mask(allowed, dtype), attend))  # [B, t, H]
    # completion token 0 is predicted by the prompt's last position, token j by completion position j - 1
    features = torch.cat([prompt_hidden[row_prompt, -1:], hidden[:, :-1]], dim=1)  # [B, t, H]
    return score_features(
        features, completion_ids, decoder.head, temperature=temperature, chunk_size=chunk_size,
        return_entropy=return_entropy, softcap=None,
    )


def score_features(
    features: Tensor,
    targets: Tensor,
    project: Callable[[Tensor], Tensor],
    *,
    temperature: float,
    chunk_size: int,
    return_entropy: bool,
    softcap: float | None,
) -> Tensor | tuple[Tensor, Tensor]:
    """Token log-probs (and entropies) of ``targets`` [B, n] from ``features`` [B, n, *] that ``project`` turns
    into logits, ``chunk_size`` positions at a time (fewer when B × chunk × vocabulary would exceed
    :data:`LOGITS_PER_CHUNK`), each chunk checkpointed when a backward pass will follow.

    When all B × n × vocabulary logits fit in :data:`LOGITS_PER_CHUNK` they are computed at once and kept for the
    backward pass: recomputing them would cost a second pass through the LM head (12% of the tiny demo model's
    update) to save memory that is not needed.
    """
    batch, n = targets.shape

    def score(feat: Tensor, tgt: Tensor) -> tuple[Tensor, Tensor]:
        # feat [B, c, H], tgt [B, c] -> token log-prob [B, c], entropy [B, c]
        logits = project(feat).float()  # [B, c, V]: the only vocabulary-sized tensor, one chunk at a time
        if softcap is not None:
            logits = torch.tanh(logits / softcap) * softcap
        logits = logits / temperature
        log_probs = F.log_softmax(logits, dim=-1)
        token_logp = log_probs.gather(-1, tgt.unsqueeze(-1)).squeeze(-1)
        if return_entropy:
            entropy = -(log_probs.exp() * log_probs).sum(-1)
        else:
            entropy = token_logp.new_zeros(())  # placeholder; checkpoint needs tensor outputs
        return token_logp, entropy

    # Checkpoint only when a backward pass will happen (a frozen reference model under no_grad has none).
    use_checkpoint = torch.is_grad_enabled() and (
        features.requires_grad
        or (isinstance(project, nn.Module) and any(p.requires_grad for p in project.parameters()))
    )
    vocab = _vocabulary_size(project, features)
    if batch * n * vocab <= LOGITS_PER_CHUNK:  # small enough to hold whole: one chunk, nothing recomputed
        step, use_checkpoint = max(1, n), False
    else:
        step = max(1, min(chunk_size, LOGITS_PER_CHUNK // max(1, batch * vocab)))
    logps: list[Tensor] = []
    entropies: list[Tensor] = []
    for start in range(0, n, step):
        feat = features[:, start : start + step]
        tgt = targets[:, start : start + step]
        if use_checkpoint:
            # Non-reentrant checkpoint also tracks parameters used inside (the lm head / LoRA on it), not only
            # tensor inputs; only feat and the outputs are saved, the chunk's logits are recomputed in backward.
            token_logp, entropy = checkpoint(score, feat, tgt, use_reentrant=False)
        else:
            token_logp, entropy = score(feat, tgt)
        logps.append(token_logp)
        entropies.append(entropy)

    logp = torch.cat(logps, dim=1)  # [B, n]
    if return_entropy:
        return logp, torch.cat(entropies, dim=1)
    return logp


def _vocabulary_size(project: Callable[[Tensor], Tensor], features: Tensor) -> int:
    weight = getattr(project, "weight", None)
    if isinstance(weight, Tensor) and weight.dim() == 2:
        return int(weight.shape[0])
    return int(features.shape[-1])  # the fallback path's features are the logits themselves


def _completion_features(
    model: nn.Module, input_ids: Tensor, attention_mask: Tensor, position_ids: Tensor, n_completion: int
) -> tuple[Tensor, Callable[[Tensor], Tensor]]:
    """Run the model once; return what predicts each completion token and how to turn it into logits.

    Decoder path: hidden states [B, n, H] and the lm head. Fallback (no separable trunk/head): full forward,
    logits sliced to [B, n, V] and the identity -- the log_softmax is still chunked.
    """
    length = input_ids.shape[1]
    predicting = slice(length - n_completion - 1, length - 1)  # logits at t-1 predict token t
    split = _trunk_and_head(model)
    if split is not None:
        decoder, head = split
        out = decoder(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=False
        )
        hidden = out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]  # [B, L, H]
        return hidden[:, predicting], head
    out = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=False)
    return out.logits[:, predicting], _identity


def _trunk_and_head(model: nn.Module) -> tuple[nn.Module, nn.Module] | None:
    """(decoder trunk, lm head) when running them separately reproduces ``model(...).logits``, else None.

    Works for transformers causal LMs and for peft PeftModels around them (attribute access is forwarded to the
    wrapped model, whose modules carry the LoRA layers, so ``disable_adapter()`` applies too). Prompt-learning
    adapters (prefix/prompt tuning) inject inputs in PeftModel.forward and therefore take the fallback path.
    """
    peft_config = getattr(model, "active_peft_config", None)
    if peft_config is not None and getattr(peft_config, "is_prompt_learning", False):
        return None
    config = getattr(model, "config", None)
    if any(getattr(config, name, None) not in (None, 1, 1.0) for name in _UNSUPPORTED_HEAD_POSTPROCESSING):
        return None
    get_decoder = getattr(model, "get_decoder", None)
    get_head = getattr(model, "get_output_embeddings", None)
    if not callable(get_decoder) or not callable(get_head):
        return None
    try:
        decoder, head = get_decoder(), get_head()
    except (AttributeError, NotImplementedError, ValueError):
        return None
    if not isinstance(decoder, nn.Module) or not isinstance(head, nn.Module):
        return None
    # get_decoder() may hand back the whole model (it returns `self` when it finds no sub-module); then the
    # "trunk" would already apply the head. A real trunk never contains the head module itself.
    if any(sub is head for sub in decoder.modules()):
        return None
    return decoder, head


def _final_logit_softcap(model: nn.Module) -> float | None:
    # Gemma-2/3 squash logits with cap * tanh(logits / cap) inside forward(); the decoder path must do the same.
    config = getattr(model, "config", None)
    cap = getattr(config, "final_logit_softcapping", None)
    if cap is None and config is not None and hasattr(config, "get_text_config"):
        cap = getattr(config.get_text_config(), "final_logit_softcapping", None)
    return float(cap) if cap else None


def _identity(x: Tensor) -> Tensor:
    return x
