"""Evaluation: generate on held-out records with a fixed protocol, score, and aggregate.

The protocol (greedy or sampled, split, number of records, completions per record, length cap)
comes from the config or the command line and is written into the result, so a number is never
reported without the protocol that produced it.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from ..reward import Breakdown, RewardSpec
from ..sandbox import RewardPool
from ..task import COMPONENTS, Record, Task
from .rollout import check_prompt_lengths, generate, render_prompt


def aggregate(breakdowns: Sequence[Breakdown], names: Sequence[str]) -> dict[str, Any]:
    """``NAME``: share of completions scoring 1.0 on it; ``NAME_mean``: its mean; ``reward``: mean total."""
    n = len(breakdowns)
    out: dict[str, Any] = {"n": n, "reward": sum(b.reward for b in breakdowns) / n if n else 0.0}
    for name in names:
        scores = [b.components.get(name, 0.0) for b in breakdowns]
        out[name] = sum(s >= 1.0 for s in scores) / n if n else 0.0
        out[f"{name}_mean"] = sum(scores) / n if n else 0.0
    out["reward_errors"] = sum(len(b.errors) for b in breakdowns)
    out["reward_timeouts"] = sum(len(b.timeouts) for b in breakdowns)
    return out


def evaluate(
    model,
    tokenizer,
    task: Task,
    spec: RewardSpec,
    records: Sequence[Record],
    pool: RewardPool,
    *,
    greedy: bool = True,
    temperature: float = 1.0,
    samples_per_prompt: int = 1,
    max_new_tokens: int = 256,
    max_prompt_tokens: int = 1024,
    batch_size: int = 16,
    seed: int = 0,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Return (summary, per-completion rows). Greedy decoding uses one completion per record."""
    group = 1 if greedy else samples_per_prompt
    torch.manual_seed(seed)
    prompts = [render_prompt(tokenizer, task.build_prompt(r)) for r in records]
    check_prompt_lengths(tokenizer, prompts, max_prompt_tokens)
    breakdowns: list[Breakdown] = []
    rows: list[dict[str, Any]] = []
    for start in range(0, len(records), batch_size):
        chunk = list(records[start : start + batch_size])
        rollout = generate(
            model, tokenizer, prompts[start : start + batch_size],
            group_size=group, max_new_tokens=max_new_tokens, max_prompt_tokens=max_prompt_tokens,
            do_sample=not greedy, temperature=temperature,
        )
        expanded = [r for r in chunk for _ in range(group)]
        scored = pool.score(expanded, rollout.texts)
        breakdowns.extend(scored)
        for i, (text, b) in enumerate(zip(rollout.texts, scored)):
            rows.append({"index": start + i // group, "completion": text, "truncated": bool(rollout.truncated[i]), **b.to_json()})
    summary = aggregate(breakdowns, [*COMPONENTS, *(e.component.name for e in spec.extras)])
    summary["protocol"] = {
        "task": task.name,
        "decoding": "greedy" if greedy else f"sampled (temperature {temperature})",
        "records": len(records),
        "completions_per_record": group,
        "max_new_tokens": max_new_tokens,
    }
    return summary, rows
