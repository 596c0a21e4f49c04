"""Old home of the engine's CLI commands; they live in :mod:`rlstruct.cli_engine`, next to the CLI, now."""

from __future__ import annotations

from ..cli_engine import (
    _evaluate_dir,
    _evaluate_tasks,
    _prepare,
    _print_table,
    eval_command,
    run_config_of,
    sft_command,
    tiny_model_command,
    train_command,
)

__all__ = [
    "_evaluate_dir",
    "_evaluate_tasks",
    "_prepare",
    "_print_table",
    "eval_command",
    "run_config_of",
    "sft_command",
    "tiny_model_command",
    "train_command",
]
