"""``rlstruct demo``: its arguments and its error handling. Imports no torch until the demo runs."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from ..errors import RlstructError, RunError, UsageError
from .threads import DEFAULT_THREADS

DESCRIPTION = (
    "The main job in one command: build the tiny model, warm-start it with SFT, evaluate it, train it with GRPO "
    "from the SFT model, evaluate again on held-out prompts (greedy, and sampled with several completions per "
    "prompt, as fixed in the task config), and write report.json, report.md and training_dynamics.png."
)


def add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``demo`` sub-command's arguments (kept here so cli.py only registers the command)."""
    parser.add_argument("--task", default="json-recipes", help="task to run (default json-recipes); its config is tasks/TASK-tiny.toml")
    parser.add_argument("--config", metavar="FILE.toml", help="task config to use instead of tasks/TASK-tiny.toml")
    parser.add_argument("--out", metavar="DIR", help="output directory (default runs/demo-TASK)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="device (auto: CUDA when available)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the model initialisation, training and sampling (the data stay fixed)")
    parser.add_argument("--quick", action="store_true", help="a shortened pipeline (a few steps, few prompts): a smoke check, not a result")
    parser.add_argument("--split", default="test", choices=["test", "validation"],
                        help="held-out split evaluated (default test); tune settings with --split validation")
    parser.add_argument("--threads", type=int, default=DEFAULT_THREADS,
                        help="torch intra-op threads for SFT and the GRPO update (default 0: torch's default, one per "
                             "core); generation uses grpo.decode_threads of the task config (1). On a machine where "
                             "another process holds a core, --threads 1 keeps every stage from waiting on it")
    parser.add_argument("--hidden", type=int, default=None, help="tiny model width (default 128; 64 with --quick)")
    parser.add_argument("--layers", type=int, default=2, help="tiny model depth (default 2)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a key of the task config, e.g. --set grpo.steps=120 (repeatable)")
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier demo in --out")


def canonical_command(args: argparse.Namespace) -> str:
    """The command line that repeats this demo (defaults spelled out where they matter), for report.md."""
    parts = ["rlstruct", "demo", "--task", args.task, "--seed", str(args.seed), "--threads", str(args.threads)]
    for flag, value, default in (("--config", args.config, None), ("--out", args.out, None), ("--device", args.device, "auto"),
                                 ("--split", args.split, "test"), ("--hidden", args.hidden, None), ("--layers", args.layers, 2)):
        if value != default:
            parts += [flag, str(value)]
    for item in args.overrides:
        parts += ["--set", item]
    if args.quick:
        parts.append("--quick")
    return shlex.join(parts)


def demo_command(args: argparse.Namespace) -> int:
    """Run the demo. Every expected failure is an :class:`~rlstruct.errors.RlstructError` that
    ``rlstruct.cli.main`` prints as one line (exit status 2 for a bad option or config, 1 otherwise)."""
    for flag, value, least in (("--threads", args.threads, 0), ("--seed", args.seed, 0), ("--layers", args.layers, 1),
                               ("--hidden", args.hidden if args.hidden is not None else 4, 4)):
        if value < least:
            raise UsageError(f"{flag} must be >= {least}, got {value}")
    from .pipeline import DemoOptions, StageFailed, run_demo

    options = DemoOptions(
        task=args.task, config=Path(args.config) if args.config else None, out=Path(args.out) if args.out else None,
        device=args.device, seed=args.seed, quick=args.quick, split=args.split, threads=args.threads,
        hidden=args.hidden, layers=args.layers, overrides=list(args.overrides), overwrite=args.overwrite,
        command=canonical_command(args),
    )
    try:
        run_demo(options)
    except StageFailed as exc:
        return exc.exit_code
    except RlstructError:  # DemoError is a RuntimeError too: not the CUDA case below
        raise
    except RuntimeError as exc:
        if "CUDA" not in str(exc):  # pick_device: --device cuda on a machine without one
            raise
        raise RunError(f"--device: {exc}") from None
    return 0
