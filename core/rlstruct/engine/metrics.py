"""Run outputs: metrics.jsonl (one line per step), samples.jsonl, and reward summaries."""

from __future__ import annotations

import json
import resource
import sys
from pathlib import Path
from typing import Any, Sequence

import torch

from ..error_types import ERROR_TYPES, count_error_types
from ..reward import Breakdown


def summarise_breakdowns(breakdowns: Sequence[Breakdown], error_types: Sequence[str | None] | None = None) -> dict[str, Any]:
    """Mean of every component (``reward/NAME``), plus counts of component errors and time-outs.

    A component the task does not implement (``None`` in every breakdown) is ``None`` (JSON null).
    In a mixture each mean is over the rows whose task has that component (another task's rows lack
    it, or have ``None``: they are left out, never counted as 0).
    A component weighted 0 is still scored, so its mean is here too: the way to watch a signal
    without training on it. With ``error_types`` (one per breakdown, :mod:`rlstruct.error_types`),
    ``errors/<type>`` counts every class of the taxonomy, zeros included, so each is a continuous curve.
    """
    out: dict[str, Any] = {}
    if breakdowns:
        names = dict.fromkeys(name for b in breakdowns for name in b.components)  # every task's, in order
        for name in names:
            scores = [b.components[name] for b in breakdowns if name in b.components]
            applicable = [s for s in scores if s is not None]
            out[f"reward/{name}"] = sum(applicable) / len(applicable) if applicable else None
    out["reward_errors"] = sum(len(b.errors) for b in breakdowns)
    out["reward_timeouts"] = sum(len(b.timeouts) for b in breakdowns)
    errors: dict[str, int] = {}
    for b in breakdowns:
        for name in b.errors:
            errors[name] = errors.get(name, 0) + 1
    if errors:
        out["reward_errors_by_component"] = errors
    if error_types is not None:
        counts = count_error_types(error_types)
        out.update({f"errors/{name}": counts.get(name, 0) for name in ERROR_TYPES})
    return out


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_mb(device: torch.device) -> float:
    """Peak CUDA memory allocated this step, or the process's peak resident set size on CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 1024 if sys.platform != "darwin" else rss / 2**20


def reward_problems(line: dict[str, Any]) -> str | None:
    """One console line about a step's reward errors and time-outs, or ``None`` when there were none."""
    errors, timeouts = line.get("reward_errors", 0), line.get("reward_timeouts", 0)
    if not errors and not timeouts:
        return None
    by = line.get("reward_errors_by_component") or {}
    detail = ", ".join(f"{name} {count}" for name, count in sorted(by.items()))
    return (
        f"step {line['step']}: {errors} reward component error(s), {timeouts} of them time-outs"
        + (f" ({detail})" if detail else "")
        + "; those components scored 0 (details in samples.jsonl and metrics.jsonl)"
    )


class MetricsWriter:
    """Appends to metrics.jsonl and samples.jsonl; on resume drops lines past the resumed step.

    ``history_from``: a run resumed into a new directory starts its files with the resumed run's lines
    up to the checkpoint, so the new directory tells the whole story while the old one is left as it was.
    """

    def __init__(self, output_dir: Path, truncate_after: int = 0, history_from: Path | None = None,
                 tracker: Any = None) -> None:
        self.tracker = tracker  # rlstruct.tracking tracker(s) (run.report_to): sent every line and sample table
        self.metrics = output_dir / "metrics.jsonl"
        self.samples_path = output_dir / "samples.jsonl"
        for path in (self.metrics, self.samples_path):
            source = path if history_from is None else history_from / path.name
            if truncate_after == 0:
                path.write_text("")
            elif source.exists():
                kept = [
                    line for line in source.read_text().splitlines()
                    if line.strip() and json.loads(line)["step"] <= truncate_after
                ]
                path.write_text("".join(line + "\n" for line in kept))
            else:
                path.write_text("")

    def write(self, line: dict[str, Any]) -> None:
        with self.metrics.open("a") as fh:
            fh.write(json.dumps(line) + "\n")
        if self.tracker is not None:
            self.tracker.log_metrics(int(line["step"]), line)

    def samples(self, step: int, items: list[dict[str, Any]]) -> None:
        with self.samples_path.open("a") as fh:
            for item in items:
                fh.write(json.dumps({"step": step, **item}, ensure_ascii=False) + "\n")
        if self.tracker is not None and items:
            self.tracker.log_samples(step, items)
