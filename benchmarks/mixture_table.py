"""Summarise `benchmarks/mixture_vs_single.sh`: per task, held-out figures of the single-task runs and the mixture.

    python benchmarks/mixture_table.py [runs/cmp]          # a Markdown table per protocol (sampled, greedy)
    python benchmarks/mixture_table.py runs/cmp --json     # the same figures as JSON

For each task it reads `<dir>/<task>-sft.<protocol>.json` and `<dir>/<task>.<protocol>.json` (the single-task SFT
model and its GRPO run, evaluated on that task) and the mixture's `mix-sft` and `mix` files (every task of the
mixture evaluated, `{"tasks": {...}, "macro": {...}}`), all written by `rlstruct eval --json`. A file that is
missing is reported and its cells left empty: the table never fills a figure in.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

TASKS = ("json-recipes", "gsm8k-json", "xml-records")
PROTOCOLS = ("sampled", "greedy")
# (column title, summary key): shares of completions scoring 1.0 on a component, then means
COLUMNS = (("structure", "structure"), ("format", "format"), ("content", "content_mean"),
           ("validity", "validity_mean"), ("reward", "reward"))
RUNS = (("single-task SFT", "{task}-sft"), ("single-task SFT + GRPO", "{task}"),
        ("mixture SFT", "mix-sft"), ("mixture SFT + GRPO", "mix"))


def load(directory: Path, name: str, protocol: str, task: str, missing: list[str]) -> dict[str, Any] | None:
    """The summary of ``task`` in ``<directory>/<name>.<protocol>.json`` (a mixture file holds every task)."""
    path = directory / f"{name}.{protocol}.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        missing.append(str(path))
        return None
    except json.JSONDecodeError as exc:
        raise SystemExit(f"{path}: not JSON ({exc})") from exc
    if "tasks" in data:
        summary = data["tasks"].get(task)
        if summary is None:
            missing.append(f"{path}: task {task}")
        return summary
    return data


def figures(directory: Path) -> tuple[dict[str, Any], list[str]]:
    """``{protocol: {task: {run: {column: value}}}}`` and the files or tasks that were missing."""
    missing: list[str] = []
    out: dict[str, Any] = {}
    for protocol in PROTOCOLS:
        for task in TASKS:
            for title, pattern in RUNS:
                summary = load(directory, pattern.format(task=task), protocol, task, missing)
                cells = {col: (summary or {}).get(key) for col, key in COLUMNS}
                out.setdefault(protocol, {}).setdefault(task, {})[title] = cells
    return out, missing


def markdown(table: dict[str, Any]) -> str:
    lines = []
    for protocol, tasks in table.items():
        lines += [f"{protocol}:", "", "| task | run | " + " | ".join(c for c, _ in COLUMNS) + " |",
                  "| --- | --- | " + " | ".join("---:" for _ in COLUMNS) + " |"]
        for task, runs in tasks.items():
            for title, cells in runs.items():
                shown = [_cell(col, cells[col]) for col, _ in COLUMNS]
                lines.append(f"| {task} | {title} | " + " | ".join(shown) + " |")
        lines.append("")
    return "\n".join(lines)


def _cell(column: str, value: Any) -> str:
    if value is None:
        return "-"
    return f"{100 * value:.1f}%" if column in ("structure", "format") else f"{value:.3f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("directory", nargs="?", default="runs/cmp", help="where the script wrote its JSON (runs/cmp)")
    ap.add_argument("--json", action="store_true", help="print JSON instead of Markdown")
    args = ap.parse_args(argv)
    table, missing = figures(Path(args.directory))
    print(json.dumps({"figures": table, "missing": missing}, indent=2) if args.json else markdown(table))
    for item in missing:
        print(f"missing: {item}", file=sys.stderr)
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
