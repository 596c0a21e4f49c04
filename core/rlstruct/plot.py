"""``rlstruct plot RUN_DIR``: a run's training dynamics as one PNG, drawn from its metrics.jsonl.

Three panels share the step axis: the mean of each reward component per step (raw, faint, and
smoothed), the mean completion length, and the KL to the reference policy. The reward panel is
the picture the demo is about: with a hierarchical reward, structure is learned before content.

matplotlib is an optional dependency (the ``plot`` extra), imported only when a plot is drawn.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Sequence

from .errors import RunError, UsageError

COMPONENTS = ("structure", "format", "content", "validity")
INSTALL_HINT = "pip install 'rlstruct[plot]'"  # the extra that brings matplotlib


class PlotError(RunError, ValueError):
    """The run directory cannot be plotted; the message names the file and line at fault."""


class PlotExtraMissing(RunError, ImportError):
    """matplotlib is not installed."""


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """The lines of ``RUN_DIR/metrics.jsonl`` (or of the file itself when given one), in step order."""
    path = Path(run_dir)
    if path.is_dir():
        path = path / "metrics.jsonl"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PlotError(f"{path}: no such file (is this a run directory written by `rlstruct train`?)") from None
    except OSError as exc:
        raise PlotError(f"{path}: {exc.strerror}") from None
    lines = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise PlotError(f"{path}:{lineno}: invalid JSON: {exc.msg}") from None
        if not isinstance(item, dict) or not isinstance(item.get("step"), int):
            raise PlotError(f"{path}:{lineno}: expected an object with an integer 'step'")
        lines.append(item)
    if not lines:
        raise PlotError(f"{path}: no steps recorded yet")
    return sorted(lines, key=lambda item: item["step"])


def smooth(values: Sequence[float | None], window: int) -> list[float | None]:
    """Trailing moving average over the last ``window`` defined values (None stays None).

    Trailing, not centred, so the curve at step s uses only steps up to s, as a live log would.
    """
    out: list[float | None] = []
    recent: list[float] = []
    for value in values:
        if value is None:
            out.append(None)
            continue
        recent.append(float(value))
        if len(recent) > window:
            recent.pop(0)
        out.append(sum(recent) / len(recent))
    return out


def default_window(n_steps: int) -> int:
    """About a tenth of the run, at least 1: enough to see the trend through GRPO's step-to-step noise."""
    return max(1, round(n_steps / 10))


def _series(lines: list[dict[str, Any]], key: str) -> list[float | None]:
    values = []
    for line in lines:
        value = line.get(key)
        values.append(float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None)
    return values


def _import_pyplot():
    try:
        import matplotlib
    except ImportError:
        raise PlotExtraMissing(f"drawing a plot needs matplotlib: {INSTALL_HINT}") from None
    matplotlib.use("Agg")  # files only: no display needed (servers, CI)
    import matplotlib.pyplot as plt

    return plt


def plot_run(run_dir: str | Path, output: str | Path, title: str | None = None, window: int | None = None) -> Path:
    """Draw the training dynamics of the run in ``run_dir`` into the PNG ``output``; returns its path.

    Raises :class:`PlotError` for a missing or malformed metrics.jsonl, :class:`PlotExtraMissing`
    when matplotlib is not installed.
    """
    lines = read_metrics(run_dir)
    plt = _import_pyplot()
    steps = [line["step"] for line in lines]
    window = window or default_window(len(steps))

    fig, (ax_reward, ax_len, ax_kl) = plt.subplots(
        3, 1, figsize=(8, 8.5), sharex=True, gridspec_kw={"height_ratios": [2.2, 1, 1]}
    )
    colours = dict(zip(COMPONENTS, ("tab:blue", "tab:orange", "tab:green", "tab:red")))
    extra_colours = ("tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan")
    # a mixture's per-task keys (rows/<task>, reward/<task>, reward/<task>/<component>) are not components
    tasks = sorted({k[len("rows/"):] for line in lines for k in line if k.startswith("rows/")})
    extras = sorted({k[len("reward/"):] for line in lines for k in line if k.startswith("reward/") and k.count("/") == 1}
                    - set(COMPONENTS) - set(tasks))
    for name in (*COMPONENTS, *extras):
        raw = _series(lines, f"reward/{name}")
        if all(v is None for v in raw):  # the task does not implement it, or the run predates it
            continue
        colour = colours.get(name) or extra_colours[extras.index(name) % len(extra_colours)]
        ax_reward.plot(steps, raw, color=colour, alpha=0.2, linewidth=1)
        ax_reward.plot(steps, smooth(raw, window), color=colour, linewidth=2, label=name,
                       linestyle="-" if name in COMPONENTS else "--")
    for index, name in enumerate(tasks):  # each task's total reward, dotted
        raw = _series(lines, f"reward/{name}")
        ax_reward.plot(steps, smooth(raw, window), color=extra_colours[(len(extras) + index) % len(extra_colours)],
                       linewidth=2, linestyle=":", label=f"{name} (reward)")
    ax_reward.set_ylabel("mean reward component")
    ax_reward.set_ylim(-0.02, 1.02)
    ax_reward.legend(loc="lower right", ncol=3, fontsize="small")
    ax_reward.grid(alpha=0.3)
    ax_reward.set_title(title or f"Training dynamics: {Path(run_dir)}")

    for ax, key, label in ((ax_len, "completion_len_mean", "completion tokens (mean)"), (ax_kl, "kl", "KL to reference")):
        raw = _series(lines, key)
        if any(v is not None for v in raw):
            ax.plot(steps, raw, color="tab:gray", alpha=0.3, linewidth=1)
            ax.plot(steps, smooth(raw, window), color="black", linewidth=1.8)
        else:
            ax.text(0.5, 0.5, f"no '{key}' in metrics.jsonl", ha="center", va="center", transform=ax.transAxes)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    from matplotlib.ticker import MaxNLocator

    ax_kl.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_kl.set_xlabel(f"GRPO step (bold: trailing mean over {window} step{'s' if window > 1 else ''})")

    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(output, dpi=110)
    plt.close(fig)
    return output


def plot_command(args: argparse.Namespace) -> int:
    """``rlstruct plot RUN_DIR [-o FILE.png]``."""
    source = Path(args.run_dir)
    run_dir = source if source.is_dir() or not source.suffix else source.parent
    output = Path(args.output) if args.output else run_dir / "training_dynamics.png"
    if args.window is not None and args.window < 1:
        raise UsageError(f"--window must be >= 1, got {args.window}")
    path = plot_run(args.run_dir, output, window=args.window)  # PlotError, PlotExtraMissing: one line from cli.main
    print(f"plot written to {path}")
    return 0


def add_plot_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``plot`` sub-command's arguments (kept here so cli.py only registers the command)."""
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run directory (with metrics.jsonl) or a metrics.jsonl file")
    parser.add_argument("-o", "--output", metavar="FILE.png", help="where to write the plot (default RUN_DIR/training_dynamics.png)")
    parser.add_argument("--window", type=int, default=None, help="smoothing window in steps (default: a tenth of the run)")
