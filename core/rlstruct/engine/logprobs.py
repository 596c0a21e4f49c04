"""Per-token log-probs of completions without materialising the full-vocabulary logits of the whole batch.

A naive ``log_softmax(model(ids).logits.float())`` holds B * L * V float32 numbers (plus as much again for the
backward pass): for B=64, L=1024, V=150k that is ~40 GB. Here the transformer trunk (``get_decoder()``) runs once
and only the hidden states of the positions that predict completion tokens are kept ([B, n, H], small); the
lm head + float32 log_softmax then run over ``chunk_size`` positions at a time, so at most
B * chunk_size * V logits exist at once. Under autograd each chunk is wrapped in ``torch.utils.checkpoint``:
the backward pass recomputes that chunk's logits instead of keeping every chunk's logits alive until backward.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

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
    logps: list[Tensor] = []
    entropies: list[Tensor] = []
    for start in range(0, n_completion, chunk_size):
        feat = features[:, start : start + chunk_size]
        tgt = targets[:, start : start + chunk_size]
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
