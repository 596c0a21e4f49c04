"""How long a prompt may be: ``grpo.max_prompt_tokens``, by default what the model can hold.

``grpo.max_prompt_tokens = 0`` (the default) means *auto*: the model's context length
(``max_position_embeddings`` in its config) minus the completion budget (``max_new_tokens`` of the
command: ``grpo.max_new_tokens`` for training, ``eval.max_new_tokens`` for evaluation). A prompt
longer than the limit is an error, never cut silently, and the error names a setting the running
command accepts (``--set grpo.max_prompt_tokens=N`` for train, ``--max-prompt-tokens N`` for eval).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from .rollout import PromptTooLong

__all__ = ["PromptBudget", "PromptTooLong", "check_prompt_budget", "context_length", "resolve_prompt_budget"]

_CONTEXT_ATTRIBUTES = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length", "n_ctx")
_TOKENIZER_UNBOUNDED = 10**6  # transformers' "no limit" model_max_length is a huge sentinel


def context_length(model: Any, tokenizer: Any = None) -> int | None:
    """The model's context length in tokens, from its config (or the tokenizer's ``model_max_length``)."""
    config = getattr(model, "config", None)
    if config is not None and hasattr(config, "get_text_config"):
        config = config.get_text_config()
    for name in _CONTEXT_ATTRIBUTES:
        value = getattr(config, name, None)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(limit, int) and 0 < limit < _TOKENIZER_UNBOUNDED:
        return limit
    return None


@dataclass(frozen=True)
class PromptBudget:
    """The prompt limit in force and how a user of the running command changes it."""

    limit: int
    """Longest prompt allowed, in tokens."""
    how_to_raise: str
    """The setting the running command accepts, e.g. ``--set grpo.max_prompt_tokens=N``."""
    auto_from: tuple[int, int, str] | None = None
    """``(context length, max_new_tokens, its key)`` when the limit was derived from the model (auto)."""

    def describe(self) -> str:
        if self.auto_from is None:
            return f"grpo.max_prompt_tokens = {self.limit}"
        context, new_tokens, key = self.auto_from
        return (f"the prompt limit is {self.limit} tokens (grpo.max_prompt_tokens = 0, auto: the model's context of "
                f"{context} tokens minus {key} = {new_tokens})")


def resolve_prompt_budget(
    configured: int, model: Any, tokenizer: Any, max_new_tokens: int, *, new_tokens_key: str, how_to_raise: str
) -> PromptBudget:
    """The prompt limit: ``configured`` when > 0, else the model's context minus ``max_new_tokens`` (auto).

    Raises :class:`PromptTooLong` (one line naming the settings) when auto leaves no room or the model's
    context length is unknown.
    """
    if configured > 0:
        return PromptBudget(configured, how_to_raise)
    context = context_length(model, tokenizer)
    if context is None:
        raise PromptTooLong(
            "grpo.max_prompt_tokens = 0 (auto) but the model's config states no context length "
            f"(max_position_embeddings); set the limit: {how_to_raise}"
        )
    limit = context - max_new_tokens
    if limit < 1:
        raise PromptTooLong(
            f"{new_tokens_key} = {max_new_tokens} leaves no room for a prompt in the model's context of {context} "
            f"tokens; lower {new_tokens_key}"
        )
    return PromptBudget(limit, how_to_raise, (context, max_new_tokens, new_tokens_key))


def check_prompt_budget(tokenizer: Any, prompts: Sequence[str], budget: PromptBudget) -> None:
    """Stop with a one-line error rather than silently cutting prompts longer than ``budget.limit``."""
    lengths = [len(ids) for ids in tokenizer(list(prompts), add_special_tokens=False)["input_ids"]]
    too_long = [(i, n) for i, n in enumerate(lengths) if n > budget.limit]
    if not too_long:
        return
    index, n = max(too_long, key=lambda item: item[1])
    if budget.auto_from is None:
        fix = f"raise it with {budget.how_to_raise}; 0 means the model's context length minus the completion budget"
    else:
        fix = f"lower {budget.auto_from[2]}, or shorten the prompts"
    raise PromptTooLong(
        f"{budget.describe()}, but {len(too_long)} of {len(prompts)} prompts are longer (the longest, record "
        f"{index}, has {n} tokens); {fix}"
    )
