"""Reward scoring throughput of every registered task, on one CPU core.

For each task the benchmark builds ``--n`` (record, completion) pairs, deterministically: 40 %
reference completions, 35 % mutated references (1 to 3 edits: deleted or duplicated spans,
swapped characters, changed digits, truncation, a code fence or prose around it), 15 % junk text
and 10 % hostile text (deep nesting, a 1 MB string, huge numbers, NaN, lone surrogates, entity
declarations, empty and blank text). It then scores them twice with the task's default reward
spec, with the process pinned to one core:

- inline: :func:`rlstruct.reward.score_inline`, one completion at a time (timed one by one);
- pool: :class:`rlstruct.sandbox.RewardPool` with one worker process (which inherits the pinning,
  so scoring, pickling and the pipe all share the core), in batches of ``--batch``.

Usage::

    python benchmarks/reward_throughput.py [--tasks gsm8k-json,function-calls] [--n 2000]
        [--batch 64] [--seed 0] [--json [PATH]]

``--json`` alone prints the results as JSON instead of the table; ``--json PATH`` writes them to
PATH as well as printing the table. See benchmarks/README.md for how to read the output.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import string
import sys
import time
from dataclasses import asdict, dataclass
from typing import Sequence

from rlstruct.data import load_records
from rlstruct.plugins import PluginManager
from rlstruct.reward import RewardSpec, score_inline
from rlstruct.sandbox import RewardPool, SandboxLimits
from rlstruct.task import Record, Task

MIX = (("reference", 0.40), ("mutated", 0.35), ("junk", 0.15), ("hostile", 0.10))
"""Share of each kind of completion."""
RECORDS_PER_TASK = 64
"""Distinct records the completions are spread over."""

HOSTILE: tuple[str, ...] = (
    "[" * 100_000,
    '{"a":' * 100_000,
    "<a>" * 100_000,
    "x" * 1_000_000,
    '{"answer": 1e999999999, "value": ' + "9" * 10_000 + "}",
    '{"answer": NaN, "reasoning": Infinity}',
    '{"text": "\udcff\ud800"}',
    b'{"text": "\xff\xfe\xc3"}'.decode("utf-8", errors="surrogateescape"),
    '<!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;">]><r>&b;&b;&b;</r>',
    '[{"name": "f", "arguments": ' + '{"a": ' * 60 + "1" + "}" * 60 + "}]",
    "",
    " \n\t  \n",
)


@dataclass
class TaskResult:
    """One row of the table."""

    task: str
    n: int
    inline_per_s: float
    pool_per_s: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    step_ms: float
    """Mean wall time of one pool batch of ``--batch`` completions."""
    step_max_ms: float
    errors: int
    """Completions whose breakdown has an error (inline scoring)."""
    timeouts: int
    """Components stopped by the pool's time bound."""


# -- completions ----------------------------------------------------------------------------------
def mutate(text: str, rng: random.Random) -> str:
    """Apply one to three random edits to ``text``."""
    for _ in range(rng.randint(1, 3)):
        n = len(text)
        op = rng.randrange(9)
        i, j = sorted((rng.randint(0, n), rng.randint(0, n)))
        if op == 0 and n:  # delete a span
            text = text[:i] + text[j:]
        elif op == 1:  # duplicate a span
            text = text[:j] + text[i:j] + text[j:]
        elif op == 2 and n >= 2:  # swap two characters
            k = rng.randrange(n - 1)
            text = text[:k] + text[k + 1] + text[k] + text[k + 2 :]
        elif op == 3:  # change the digits
            text = "".join(rng.choice(string.digits) if c.isdigit() and rng.random() < 0.5 else c for c in text)
        elif op == 4:  # truncate
            text = text[:i]
        elif op == 5:
            text = f"```json\n{text}\n```"
        elif op == 6:
            text = f"Sure! Here is the answer:\n{text}\nHope this helps."
        elif op == 7:  # insert a stray character
            text = text[:i] + rng.choice('{}[]<>",:/ \n') + text[i:]
        else:  # rename a quoted word
            text = text.replace('"', '"x', 1)
    return text


def junk(rng: random.Random) -> str:
    """Random text: letters and punctuation, or structure-shaped fragments."""
    if rng.random() < 0.5:
        return "".join(rng.choice(string.printable) for _ in range(rng.randint(0, 400)))
    pieces = ['{"', '": ', "[", "]", "}", "<a>", "</a>", ", ", '"x"', "1.5", "null", "true", "\n"]
    return "".join(rng.choice(pieces) for _ in range(rng.randint(1, 80)))


def build_pairs(task: Task, n: int, seed: int) -> tuple[list[Record], list[str], list[str]]:
    """``n`` records, completions and their kinds for ``task`` (same arguments, same pairs)."""
    records = load_records(task, "synthetic", "test", RECORDS_PER_TASK, seed)
    if not records:
        raise ValueError("the synthetic generator gave no records")
    references = [task.reference_completion(r) for r in records]
    if any(ref is None for ref in references):
        raise ValueError("some records have no reference completion")
    rng = random.Random(f"{seed}:{task.name}:throughput")
    kinds = [kind for kind, share in MIX for _ in range(round(share * n))][:n]
    kinds += ["reference"] * (n - len(kinds))
    rng.shuffle(kinds)
    out_records, completions = [], []
    hostile = 0
    for kind in kinds:
        index = rng.randrange(len(records))
        reference = references[index]
        if kind == "reference":
            text = reference
        elif kind == "mutated":
            text = mutate(reference, rng)
        elif kind == "junk":
            text = junk(rng)
        else:
            text = HOSTILE[hostile % len(HOSTILE)]
            hostile += 1
        out_records.append(records[index])
        completions.append(text)
    return out_records, completions, kinds


# -- measuring --------------------------------------------------------------------------------------
def pin_to_one_core() -> int | None:
    """Pin this process (and the workers it forks later) to its first allowed core."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    core = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {core})
    return core


def percentile(sorted_values: Sequence[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def measure(task: Task, spec: RewardSpec, n: int, batch: int, seed: int, timeout_s: float) -> TaskResult:
    records, completions, _ = build_pairs(task, n, seed)
    times: list[float] = []
    errors = 0
    for record, completion in zip(records, completions):
        start = time.perf_counter()
        breakdown = score_inline(task, spec, record, completion)
        times.append(time.perf_counter() - start)
        errors += bool(breakdown.errors)
    times.sort()
    limits = SandboxLimits(timeout_s=timeout_s, workers=1)
    with RewardPool(task, spec, limits) as pool:
        pool.score(records[:1], completions[:1])  # warm up the worker
        step_times = []
        for first in range(0, n, batch):
            start = time.perf_counter()
            pool.score(records[first : first + batch], completions[first : first + batch])
            step_times.append(time.perf_counter() - start)
        timeouts = pool.timeouts
    pool_total = sum(step_times)
    full_steps = [t for t, first in zip(step_times, range(0, n, batch)) if first + batch <= n] or step_times
    return TaskResult(
        task=task.name,
        n=n,
        inline_per_s=n / sum(times) if sum(times) else float("inf"),
        pool_per_s=n / pool_total if pool_total else float("inf"),
        p50_ms=1000 * percentile(times, 0.50),
        p99_ms=1000 * percentile(times, 0.99),
        max_ms=1000 * times[-1],
        step_ms=1000 * statistics.fmean(full_steps),
        step_max_ms=1000 * max(full_steps),
        errors=errors,
        timeouts=timeouts,
    )


def table(results: list[TaskResult], batch: int) -> str:
    header = ("task", "n", "inline/s", "pool/s", "p50 ms", "p99 ms", "max ms", f"step({batch}) ms", "errors", "timeouts")
    rows = [
        (
            r.task, str(r.n), f"{r.inline_per_s:,.0f}", f"{r.pool_per_s:,.0f}", f"{r.p50_ms:.3f}", f"{r.p99_ms:.3f}",
            f"{r.max_ms:.1f}", f"{r.step_ms:.1f} (max {r.step_max_ms:.1f})", str(r.errors), str(r.timeouts),
        )
        for r in results
    ]
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))
             for row in (header, *rows)]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def summary(results: list[TaskResult], batch: int) -> str:
    slowest = max(results, key=lambda r: r.step_ms)
    inline_ms = 1000 * batch / slowest.inline_per_s
    return (
        f"GRPO step budget: a step of {batch} completions takes {slowest.step_ms:.1f} ms to score on one core "
        f"through the pool ({inline_ms:.1f} ms inline; slowest task: {slowest.task}, worst batch "
        f"{slowest.step_max_ms:.1f} ms)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", default="", help="comma-separated task names (default: every registered task)")
    parser.add_argument("--n", type=int, default=2000, help="completions per task (default 2000)")
    parser.add_argument("--batch", type=int, default=64, help="completions per pool call, as in one GRPO step (64)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout-s", type=float, default=2.0, help="pool time bound per component (2.0)")
    parser.add_argument("--json", nargs="?", const="-", default=None, metavar="PATH",
                        help="print JSON instead of the table, or with PATH also write it there")
    args = parser.parse_args(argv)
    if args.n < 1 or args.batch < 1:
        parser.error("--n and --batch must be at least 1")

    log = sys.stderr if args.json == "-" else sys.stdout
    core = pin_to_one_core()
    pm = PluginManager()
    for info in pm.errors():
        print(f"skipped plugin {info.name}: {info.error}", file=log)
    available = pm.tasks
    wanted = [t.strip() for t in args.tasks.split(",") if t.strip()] or list(available)
    results: list[TaskResult] = []
    for name in wanted:
        if name not in available:
            print(f"skipped task {name}: not registered (known: {', '.join(available) or 'none'})", file=log)
            continue
        task = available[name]
        try:
            spec = RewardSpec.build(task, pm.rewards)
            results.append(measure(task, spec, args.n, args.batch, args.seed, args.timeout_s))
        except Exception as exc:  # a plugin in progress must not stop the others
            print(f"skipped task {name}: {type(exc).__name__}: {exc}", file=log)
    if not results:
        print("no task could be measured", file=log)
        return 1
    payload = {"core": core, "n": args.n, "batch": args.batch, "seed": args.seed,
               "results": [asdict(r) for r in results]}
    if args.json == "-":
        json.dump(payload, sys.stdout, indent=2)
        print()
        return 0
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(payload, fh, indent=2)
    print(f"pinned to CPU core {core}" if core is not None else "could not pin to one core")
    print(table(results, args.batch))
    print(summary(results, args.batch))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
