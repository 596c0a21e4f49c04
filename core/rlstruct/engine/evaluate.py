"""Evaluation: generate on held-out records with a fixed protocol, score, classify and aggregate.

The protocol (greedy or sampled, split, number of records, completions per record, length caps,
batch size, seed) comes from the config or the command line and is written into the result, so a
number is never reported without the protocol that produced it.

Work goes in batches of ``batch_size`` records, each generated under its own seed
(:func:`batch_seed`), so a batch's completions do not depend on which batches ran before it: an
evaluation resumed after a kill (``rlstruct eval --out DIR``, :mod:`.eval_run`) regenerates exactly
the rows an uninterrupted run would have written. Every figure of the summary is computed from the
rows alone (:func:`summarise_rows`), so a resumed run's summary equals an uninterrupted one's.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from typing import Any, Callable, Iterable, Mapping, Sequence

import torch

from ..error_types import classify_completions, count_error_types, first_failing_component
from ..reward import Breakdown, RewardSpec
from ..sandbox import RewardPool
from ..task import COMPONENTS, Record, Task
from .prompt_budget import PromptBudget, check_prompt_budget
from .rollout import generate, render_prompt

Row = dict[str, Any]


def aggregate(breakdowns: Sequence[Breakdown], names: Sequence[str]) -> dict[str, Any]:
    """``NAME``: share of completions scoring 1.0 on it; ``NAME_mean``: its mean; ``reward``: mean total.

    Both are ``None`` (JSON null) for a component the task does not implement.
    """
    return _aggregate(
        [b.reward for b in breakdowns], [b.components for b in breakdowns],
        sum(len(b.errors) for b in breakdowns), sum(len(b.timeouts) for b in breakdowns), names,
    )


def _aggregate(
    rewards: Sequence[float], components: Sequence[Mapping[str, float | None]], errors: int, timeouts: int,
    names: Sequence[str],
) -> dict[str, Any]:
    n = len(rewards)
    out: dict[str, Any] = {"n": n, "reward": sum(rewards) / n if n else 0.0}
    for name in names:
        scores = [c.get(name, 0.0) for c in components]
        if n and all(s is None for s in scores):  # not applicable to this task
            out[name] = out[f"{name}_mean"] = None
            continue
        scores = [0.0 if s is None else s for s in scores]
        out[name] = sum(s >= 1.0 for s in scores) / n if n else 0.0
        out[f"{name}_mean"] = sum(scores) / n if n else 0.0
    out["reward_errors"] = errors
    out["reward_timeouts"] = timeouts
    return out


def batch_seed(seed: int, start: int) -> int:
    """The sampling seed of the batch starting at record ``start`` (independent of earlier batches)."""
    return (seed * 1_000_003 + start * 7_919 + 17) % 2**31


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased estimate of the chance that at least one of ``k`` completions drawn without replacement
    from ``n`` (``c`` of them correct) is correct: ``1 - C(n-c, k) / C(n, k)`` (Chen et al., 2021),
    computed as a product so it stays exact in floating point for large ``n``."""
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def _pass_table(successes_by_prompt: Iterable[Sequence[bool]], group: int) -> dict[str, float]:
    groups = [list(s) for s in successes_by_prompt]
    if not groups:
        return {}
    return {
        str(k): sum(pass_at_k(len(g), sum(g), k) for g in groups) / len(groups)
        for k in range(1, group + 1)
    }


def summarise_rows(rows: Sequence[Row], names: Sequence[str], group: int, generate_seconds: float = 0.0) -> dict[str, Any]:
    """Every figure of an evaluation from its rows and the time spent generating them (see docs/evaluation.md).

    ``pass_at_k[k]``: for k ≤ completions per record, the unbiased pass@k of a completion that scores
    1.0 on every hierarchical component the task implements, averaged over records;
    ``pass_at_k_by_component[NAME][k]``: the same for scoring 1.0 on that component alone.
    """
    summary = _aggregate(
        [r["reward"] for r in rows], [r["components"] for r in rows],
        sum(len(r.get("error_components") or ()) for r in rows), sum(len(r.get("timeouts") or ()) for r in rows),
        names,
    )
    summary["error_types"] = count_error_types([r.get("error_type") for r in rows])
    summary["truncated"] = sum(bool(r.get("truncated")) for r in rows)
    tokens = sum(int(r.get("completion_tokens") or 0) for r in rows)
    seconds = generate_seconds
    summary["completion_tokens"] = tokens
    summary["generate_seconds"] = round(seconds, 4)
    summary["tokens_per_second"] = round(tokens / seconds, 2) if seconds > 0 else 0.0
    by_prompt: dict[int, list[Row]] = defaultdict(list)
    for row in rows:
        by_prompt[row["index"]].append(row)
    summary["pass_at_k"] = _pass_table(
        ([first_failing_component(r["components"]) is None for r in group_rows] for group_rows in by_prompt.values()),
        group,
    )
    per_component: dict[str, dict[str, float]] = {}
    for name in COMPONENTS:
        if summary.get(name) is None:  # not applicable
            continue
        per_component[name] = _pass_table(
            ([(r["components"].get(name) or 0.0) >= 1.0 for r in group_rows] for group_rows in by_prompt.values()),
            group,
        )
    summary["pass_at_k_by_component"] = per_component
    if any("schema_status" in r for r in rows):
        summary["constrained"] = _constrained_summary(rows, tokens, seconds)
    return summary


def _constrained_summary(rows: Sequence[Row], tokens: int, seconds: float) -> dict[str, Any]:
    first_rows = [r for r in rows if r.get("sample", 0) == 0]  # one per prompt
    reasons = [f"prompt {r['index']}: {r['schema_error']}" for r in first_rows if r.get("schema_error")]
    return {
        "engine": "xgrammar",
        "compile_failures": sum(r.get("schema_status") == "compile-failed" for r in first_rows),
        "no_schema": sum(r.get("schema_status") == "no-schema" for r in first_rows),
        "failure_reasons": reasons[:5],
        "constrained_completions": sum(bool(r.get("constrained")) for r in rows),
        "generated_tokens": tokens,
        "tokens_per_second": round(tokens / seconds, 2) if seconds > 0 else 0.0,
    }


def batch_starts(n_records: int, batch_size: int) -> list[int]:
    """The first record index of every batch."""
    return list(range(0, n_records, batch_size))


def rows_expected(n_records: int, batch_size: int, group: int, start: int) -> int:
    """How many rows the complete batch starting at ``start`` has."""
    return min(batch_size, n_records - start) * group


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
    max_prompt_tokens: int | PromptBudget = 1024,
    batch_size: int = 16,
    seed: int = 0,
    progress: Callable[[int], Any] | None = None,
    constrained: bool = False,
    done_rows: Sequence[Row] = (),
    done_seconds: Mapping[int, float] | None = None,
    on_batch: Callable[[list[Row], int, float], Any] | None = None,
    batches: Iterable[int] | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Return (summary, per-completion rows). Greedy decoding uses one completion per record.

    ``progress(n)`` is called after each batch with its number of completions (e.g. a tqdm bar's
    ``update``). ``constrained``: decode with ``task.json_schema(record)`` enforced (xgrammar,
    :mod:`.constrained`). ``done_rows`` / ``done_seconds``: rows of complete batches from an interrupted
    run and their generation seconds by batch start; those batches are not generated again.
    ``on_batch(rows, start, seconds)`` receives each new batch as soon as it is scored (to write it out).
    ``batches``: the starts of the batches to run (default every one): a process of an evaluation under
    torchrun runs its share (the summary then covers those rows only; see distributed_eval.py).
    Rows hold no timing, so the same protocol always gives the same rows, byte for byte.
    """
    group = 1 if greedy else samples_per_prompt
    budget = max_prompt_tokens if isinstance(max_prompt_tokens, PromptBudget) else PromptBudget(
        max_prompt_tokens, "--max-prompt-tokens N (or --set grpo.max_prompt_tokens=N)")
    prompts = [render_prompt(tokenizer, task.build_prompt(r)) for r in records]
    check_prompt_budget(tokenizer, prompts, budget)
    done_starts = {int(r["batch"]) for r in done_rows}
    wanted = set(batches) if batches is not None else set()
    seconds = dict(done_seconds or {})
    rows: list[Row] = list(done_rows)
    if progress is not None and rows:
        progress(len(rows))
    for start in batch_starts(len(records), batch_size):
        if start in done_starts or (batches is not None and start not in wanted):
            continue
        chunk = list(records[start : start + batch_size])
        torch.manual_seed(batch_seed(seed, start))
        generated = _generate_batch(
            model, tokenizer, task, chunk, prompts[start : start + batch_size], group=group, greedy=greedy,
            temperature=temperature, max_new_tokens=max_new_tokens, max_prompt_tokens=budget.limit,
            constrained=constrained,
        )
        expanded = [r for r in chunk for _ in range(group)]
        scored = pool.score(expanded, generated["texts"])
        types = classify_completions(
            task, expanded, generated["texts"], scored, generated["truncated"], pool.limits, pool=pool)
        seconds[start] = generated["seconds"]
        batch_rows = _batch_rows(task.name, start, group, generated, scored, types, constrained)
        if on_batch is not None:
            on_batch(batch_rows, start, generated["seconds"])
        rows.extend(batch_rows)
        if progress is not None:
            progress(len(batch_rows))
    rows.sort(key=lambda r: (r["index"], r["sample"]))
    summary = summarise_rows(rows, spec.names, group, sum(seconds.values()))
    summary["protocol"] = eval_protocol(
        task.name, greedy=greedy, temperature=temperature, group=group, records=len(records),
        max_new_tokens=max_new_tokens, max_prompt_tokens=budget.limit, batch_size=batch_size, seed=seed,
        constrained=constrained,
    )
    return summary, rows


def _batch_rows(
    task_name: str, start: int, group: int, generated: dict[str, Any], scored: Sequence[Breakdown],
    types: Sequence[str], constrained: bool,
) -> list[Row]:
    """One row per completion of the batch starting at record ``start`` (``group`` completions per record)."""
    batch_rows = []
    for i, (text, b) in enumerate(zip(generated["texts"], scored)):
        row: Row = {
            "index": start + i // group, "sample": i % group, "batch": start, "task": task_name,
            "completion": text, "truncated": bool(generated["truncated"][i]),
            "completion_tokens": int(generated["tokens"][i]),  # EOS counted
            **b.to_json(), "error_components": sorted(b.errors), "timeouts": list(b.timeouts),
            "error_type": types[i],
        }
        if constrained:
            row.update(generated["schema"][i // group], constrained=bool(generated["constrained"][i]))
        batch_rows.append(row)
    return batch_rows


def eval_protocol(
    task_name: str, *, greedy: bool, temperature: float, group: int, records: int, max_new_tokens: int,
    max_prompt_tokens: int, batch_size: int, seed: int, constrained: bool,
) -> dict[str, Any]:
    """The protocol an evaluation reports (and a resumed one must match): everything that shapes its rows."""
    decoding = "greedy" if greedy else f"sampled (temperature {temperature})"
    return {
        "task": task_name,
        "decoding": ("constrained " if constrained else "") + decoding,
        "records": records,
        "completions_per_record": group,
        "max_new_tokens": max_new_tokens,
        "max_prompt_tokens": max_prompt_tokens,
        "batch_size": batch_size,
        "seed": seed,
        "constrained": constrained,
    }


def _generate_batch(
    model, tokenizer, task: Task, chunk: list[Record], prompts: list[str], *, group: int, greedy: bool,
    temperature: float, max_new_tokens: int, max_prompt_tokens: int, constrained: bool,
) -> dict[str, Any]:
    """Texts, truncation, token counts and generation seconds of one batch (plus schema facts when constrained)."""
    if constrained:
        from .constrained import constrained_generate, schema_for

        texts, stats = constrained_generate(
            model, tokenizer, prompts, [schema_for(task, r) for r in chunk], max_new_tokens=max_new_tokens,
            greedy=greedy, temperature=temperature, group_size=group, batch_size=len(prompts),
        )
        return {
            "texts": texts, "truncated": stats.truncated, "tokens": stats.tokens, "seconds": stats.generate_seconds,
            "constrained": stats.constrained,
            "schema": [{"schema_status": status, "schema_error": error}
                       for status, error in zip(stats.schema_status, stats.schema_errors)],
        }
    began = time.perf_counter()
    rollout = generate(
        model, tokenizer, prompts, group_size=group, max_new_tokens=max_new_tokens,
        max_prompt_tokens=max_prompt_tokens, do_sample=not greedy, temperature=temperature,
    )
    seconds = time.perf_counter() - began
    return {
        "texts": rollout.texts, "truncated": [bool(t) for t in rollout.truncated],
        "tokens": [int(n) for n in rollout.completion_mask.sum(dim=1)], "seconds": seconds,
    }
