"""The demo's report: per-checkpoint metrics, report.json, report.md and the terminal table.

Everything here works on plain dicts (an evaluation summary from ``rlstruct eval``, its per-completion
rows, metrics.jsonl lines), so it needs neither torch nor a model and is tested on its own.
"""

from __future__ import annotations

from typing import Any, Sequence

METRIC_KEYS = (
    "structure_rate", "format_rate", "content_mean", "validity_mean", "reward_mean", "completion_tokens_mean",
)
"""The fields of one checkpoint's result under one decoding protocol (report.json's ``M``)."""

STAGES = ("sft", "grpo")
OPTIONAL_STAGES = ("sft_constrained",)
"""Rows added when they could be measured: the SFT model decoded under its task's JSON Schema (the paper's
constrained-decoding baseline; needs the `constrained` extra and a task with ``json_schema``)."""
DECODINGS = ("sampled", "greedy")  # sampled first: it is the headline (greedy output saturates after SFT)

# (report.json key, column in the paper's table, how the value is printed)
COLUMNS = (
    ("structure_rate", "structural accuracy", "pct"),
    ("format_rate", "schema validity", "pct"),
    ("content_mean", "content", "mean"),
    ("validity_mean", "validity", "mean"),
    ("reward_mean", "reward", "mean"),
    ("completion_tokens_mean", "length (tokens)", "tokens"),
)
ROW_NAMES = {"sft": "SFT", "grpo": "SFT+GRPO", "sft_constrained": "SFT + constrained decoding"}


def checkpoint_metrics(summary: dict[str, Any], rows: Sequence[dict[str, Any]]) -> dict[str, float | None]:
    """One checkpoint's ``M`` from an evaluation summary and its rows (``rlstruct eval --json -o ROWS``).

    Rates and means come from the summary (``structure`` is already the share of completions scoring
    1.0, ``content_mean`` the mean); a component the task does not implement stays ``None``. The
    summary has no length, so ``completion_tokens_mean`` is the mean of the rows' ``completion_tokens``
    (generated tokens up to and including the end-of-turn token, as GRPO's ``completion_len_mean``).
    """
    if not rows:
        raise ValueError("no evaluation rows: nothing was generated")
    return {
        "structure_rate": summary.get("structure"),
        "format_rate": summary.get("format"),
        "content_mean": summary.get("content_mean"),
        "validity_mean": summary.get("validity_mean"),
        "reward_mean": summary["reward"],
        "completion_tokens_mean": sum(row["completion_tokens"] for row in rows) / len(rows),
    }


def build_report(task: str, seconds: float, device: str, model: dict[str, Any], protocol: dict[str, Any],
                 results: dict[str, dict[str, dict[str, float | None]]]) -> dict[str, Any]:
    """report.json, with exactly the documented top-level keys, in the documented order."""
    return {
        "task": task,
        "seconds": round(float(seconds), 1),
        "device": device,
        "model": model,
        "protocol": protocol,
        "results": {stage: {d: results[stage][d] for d in DECODINGS} for stage in (*STAGES, *OPTIONAL_STAGES)
                    if stage in results},
    }


def _cell(value: float | None, kind: str) -> str:
    if value is None:
        return "n/a"
    if kind == "pct":
        return f"{100 * value:.1f}%"
    if kind == "tokens":
        return f"{value:.0f}"
    return f"{value:.3f}"


def table_rows(report: dict[str, Any], decoding: str) -> list[list[str]]:
    """Header and one row per checkpoint (SFT, SFT+GRPO) of the paper's table for ``decoding``."""
    header = ["", *(title for _, title, _ in COLUMNS)]
    rows = [header]
    for stage in (*STAGES, *OPTIONAL_STAGES):
        if stage not in report["results"]:
            continue
        m = report["results"][stage][decoding]
        rows.append([ROW_NAMES[stage], *(_cell(m[key], kind) for key, _, kind in COLUMNS)])
    return rows


def markdown_table(report: dict[str, Any], decoding: str) -> str:
    rows = table_rows(report, decoding)
    lines = ["| " + " | ".join(rows[0]) + " |", "| " + " | ".join(["---"] + ["---:"] * (len(rows[0]) - 1)) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows[1:]]
    return "\n".join(lines)


def text_table(report: dict[str, Any], decoding: str) -> str:
    """The same table aligned for a terminal."""
    rows = table_rows(report, decoding)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.rjust(w) if i else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths)))
                     for row in rows)


def verdict(report: dict[str, Any]) -> str:
    """One sentence: the sampled structure-rate gain in points and whether content fell."""
    before, after = report["results"]["sft"]["sampled"], report["results"]["grpo"]["sampled"]
    s0, s1 = before["structure_rate"], after["structure_rate"]
    if s0 is None or s1 is None:
        gain = "The task does not score structure, so there is no structural-accuracy gain to report"
    else:
        points = 100 * (s1 - s0)
        if round(points, 1) == 0:
            gain = f"On sampled held-out completions GRPO left structural accuracy unchanged at {100 * s1:.1f}%"
        else:
            gain = (f"On sampled held-out completions GRPO {'raised' if points > 0 else 'lowered'} structural accuracy "
                    f"from {100 * s0:.1f}% to {100 * s1:.1f}% ({points:+.1f} points)")
    c0, c1 = before["content_mean"], after["content_mean"]
    if c0 is None or c1 is None:
        content = "the task does not score content"
    elif c1 < c0:
        content = f"content fell from {c0:.3f} to {c1:.3f}"
    else:
        content = f"content did not fall ({c0:.3f} -> {c1:.3f})"
    return f"{gain}; {content}."


def training_trend(metrics: Sequence[dict[str, Any]], window: int) -> str:
    """How each reward component moved during GRPO (trailing means at the start and the end)."""
    parts = []
    for name in ("structure", "format", "content", "validity"):
        values = [line.get(f"reward/{name}") for line in metrics]
        values = [v for v in values if isinstance(v, (int, float))]
        if not values:
            continue
        w = min(window, len(values))
        start, end = sum(values[:w]) / w, sum(values[-w:]) / w
        parts.append(f"{name} {start:.2f} -> {end:.2f}")
    if not parts:
        return ""
    return (f"Mean training reward per component over the first and the last {min(window, len(metrics))} of "
            f"{len(metrics)} GRPO steps: " + ", ".join(parts) + ".")


def protocol_paragraph(report: dict[str, Any], config_path: str, max_new_tokens: int) -> str:
    p = report["protocol"]
    s = p["sampled"]
    split = "held-out test-split" if p["split"] == "test" else f"{p['split']}-split"
    return (
        f"Both checkpoints are evaluated with the protocol fixed in `{config_path}` before any result was seen: "
        f"the same {p['prompts']} {split} prompts (never trained on), decoded greedily (one completion each) and "
        f"sampled at temperature {s['temperature']:g} with {s['completions_per_prompt']} completions each "
        f"({p['prompts'] * s['completions_per_prompt']} completions), at most {max_new_tokens} new tokens. "
        "Structural accuracy is the share of completions that parse (structure reward 1.0), schema validity the "
        "share that meet the task's schema exactly (format reward 1.0); content, validity and reward are means in "
        "[0, 1]; length is the mean completion length in tokens. Sampled figures are the headline: a tiny model's "
        "greedy output is near its ceiling after SFT, while sampling shows how reliable its whole output "
        "distribution is. Settings are tuned with `--split validation`, never on the test split."
    )


def reward_failures(eval_summaries: Sequence[dict[str, Any]], metrics: Sequence[dict[str, Any]]) -> str:
    """A warning when reward components timed out or raised: those completions scored 0, by the clock
    of a possibly busy machine, so the numbers may not repeat. Empty when none did."""
    evals = sum(int(s.get("reward_timeouts", 0)) + int(s.get("reward_errors", 0)) for s in eval_summaries)
    train = sum(int(m.get("reward_timeouts", 0)) + int(m.get("reward_errors", 0)) for m in metrics)
    if not evals and not train:
        return ""
    return (f"Warning: {evals} reward component(s) timed out or failed during evaluation and {train} during GRPO; "
            "each scored 0. Time-outs depend on how busy the machine was, so these numbers may not repeat "
            "(raise reward.timeout_s, or see eval/*.jsonl for the errors).")


def render_markdown(report: dict[str, Any], *, config_path: str, max_new_tokens: int, command: str,
                    plot_file: str | None, plot_note: str | None, trend: str, warning: str = "") -> str:
    """report.md: headline sentence, the sampled and greedy tables, the protocol, the plot."""
    model = report["model"]
    lines = [
        f"# rlstruct demo: {report['task']}",
        "",
        verdict(report),
        "",
        *([warning, ""] if warning else []),
        f"## Sampled (temperature {report['protocol']['sampled']['temperature']:g}, "
        f"{report['protocol']['sampled']['completions_per_prompt']} completions per prompt)",
        "",
        markdown_table(report, "sampled"),
        "",
        "## Greedy",
        "",
        markdown_table(report, "greedy"),
        "",
        "## Protocol",
        "",
        protocol_paragraph(report, config_path, max_new_tokens),
        "",
        "## Training dynamics",
        "",
    ]
    if trend:
        lines += [trend, ""]
    if plot_file:
        lines += [f"![training dynamics]({plot_file})", ""]
    if plot_note:
        lines += [plot_note, ""]
    lines += [
        "## Run",
        "",
        f"`{command}` on {report['device']} in {report['seconds']:.0f} s; model: {model['parameters']:,} parameters "
        f"({', '.join(f'{k} {v}' for k, v in model.items() if k != 'parameters')}).",
        "",
    ]
    return "\n".join(lines)
