"""Run outputs: metrics.jsonl (one line per step), samples.jsonl, and reward summaries."""

from __future__ import annotations

import json
import resource
import sys
from pathlib import Path
from typing import Any, Sequence

import torch

from ..reward import Breakdown


def summarise_breakdowns(breakdowns: Sequence[Breakdown]) -> dict[str, Any]:
    """Mean of every component (``reward/NAME``), plus counts of component errors and time-outs."""
    out: dict[str, Any] = {}
    if breakdowns:
        for name in breakdowns[0].components:
            out[f"reward/{name}"] = sum(b.components.get(name, 0.0) for b in breakdowns) / len(breakdowns)
    out["reward_errors"] = sum(len(b.errors) for b in breakdowns)
    out["reward_timeouts"] = sum(len(b.timeouts) for b in breakdowns)
    errors: dict[str, int] = {}
    for b in breakdowns:
        for name in b.errors:
            errors[name] = errors.get(name, 0) + 1
    if errors:
        out["reward_errors_by_component"] = errors
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


class MetricsWriter:
    """Appends to metrics.jsonl and samples.jsonl; on resume drops lines past the resumed step."""

    def __init__(self, output_dir: Path, truncate_after: int = 0) -> None:
        self.metrics = output_dir / "metrics.jsonl"
        self.samples_path = output_dir / "samples.jsonl"
        for path in (self.metrics, self.samples_path):
            if truncate_after == 0:
                path.write_text("")
            elif path.exists():
                kept = [l for l in path.read_text().splitlines() if l.strip() and json.loads(l)["step"] <= truncate_after]
                path.write_text("".join(l + "\n" for l in kept))

    def write(self, line: dict[str, Any]) -> None:
        with self.metrics.open("a") as fh:
            fh.write(json.dumps(line) + "\n")

    def samples(self, step: int, items: list[dict[str, Any]]) -> None:
        with self.samples_path.open("a") as fh:
            for item in items:
                fh.write(json.dumps({"step": step, **item}, ensure_ascii=False) + "\n")
