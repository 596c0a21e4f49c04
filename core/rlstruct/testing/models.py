"""A tiny local model for plugin tests: a chat tokenizer for prompt checks, and a smoke train.

Everything is built offline with :mod:`rlstruct.tiny` (a Qwen2-shaped model of a few hundred
thousand parameters and a BPE tokenizer trained on the spot, with a ChatML template), so plugin
tests need no download. Building one takes a few seconds, mostly importing torch.
"""

from __future__ import annotations

import atexit
import json
import math
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable

from ..task import Task
from .inprocess import resolve_task
from .report import fail_if

TEST_MODEL_SHAPE = {"vocab_size": 512, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2}
"""Small enough that a GRPO step on CPU takes a second or two."""

_process_tokenizer: Any = None


def tiny_model(out_dir: str | Path, tasks: Iterable[Task | str] = (), records_per_task: int = 100, seed: int = 0) -> Path:
    """Build a tiny model and tokenizer into ``out_dir``; returns the path (a ``from_pretrained`` dir).

    The tokenizer learns from a generic corpus plus, for each of ``tasks``, the prompts and
    reference completions of ``records_per_task`` synthetic train records, so the task's text
    takes fewer tokens. Any text still encodes: the tokenizer is byte-level.
    """
    from ..tiny import TinyModelConfig, build_tiny_model, default_corpus

    corpus = default_corpus(400, seed)
    for item in tasks:
        task = resolve_task(item)
        for record in task.synthetic("train", records_per_task, seed):
            corpus.extend(m["content"] for m in task.build_prompt(record).messages)
            reference = task.reference_completion(record)
            if reference:
                corpus.append(reference)
    return build_tiny_model(out_dir, corpus, TinyModelConfig(seed=seed, **TEST_MODEL_SHAPE))


def load_tokenizer(model_dir: str | Path) -> Any:
    """The tokenizer of a model directory, exactly as the trainer loads it."""
    from ..engine.model import load_tokenizer as engine_load_tokenizer

    return engine_load_tokenizer(str(model_dir))


def kit_tokenizer() -> Any:
    """A chat tokenizer built once per process (in a temporary directory removed at exit)."""
    global _process_tokenizer
    if _process_tokenizer is None:
        root = tempfile.mkdtemp(prefix="rlstruct-kit-model-")
        atexit.register(shutil.rmtree, root, True)
        _process_tokenizer = load_tokenizer(tiny_model(Path(root) / "model"))
    return _process_tokenizer


def smoke_train(
    task: Task | str,
    model_dir: str | Path,
    out_dir: str | Path,
    steps: int = 2,
    max_new_tokens: int = 16,
    extras: dict[str, dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Train ``model_dir`` on ``task`` with GRPO for a few CPU steps; return the metrics lines.

    Runs the real trainer (rollouts, reward workers, loss, checkpoint) on 2 prompts × 2 completions
    per step, and fails with :class:`~rlstruct.testing.ContractFailure` when a step is missing, a
    loss or reward is not finite, a reward component erred or the final model was not saved.
    """
    from ..config import Config, EvalConfig, GRPOConfig, ModelConfig, RewardConfig, RunConfig, TaskConfig
    from ..engine.grpo import train
    from ..plugins import PluginManager
    from ..reward import RewardSpec

    task = resolve_task(task)
    out = Path(out_dir)
    cfg = Config(
        task=TaskConfig(name=task.name, train_limit=8, eval_limit=2),
        reward=RewardConfig(workers=1, timeout_s=10.0, extras=dict(extras or {})),
        model=ModelConfig(name_or_path=str(model_dir), lora=False),
        grpo=GRPOConfig(
            steps=steps, prompts_per_step=2, group_size=2, max_new_tokens=max_new_tokens,
            max_prompt_tokens=1024 - max_new_tokens, micro_batch_size=4, learning_rate=1e-3,
        ),
        eval=EvalConfig(max_new_tokens=max_new_tokens),
        run=RunConfig(output_dir=str(out), save_every=steps, quiet=True, log_every=10_000, eval_at_end=False),
    )
    rewards = PluginManager().rewards if extras else {}
    spec = RewardSpec.build(task, rewards, extras=cfg.reward.extras)
    train(cfg, task, spec, out, progress=False)
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    problems = []
    if len(lines) != steps:
        problems.append(f"{len(lines)} metrics lines for {steps} steps")
    for line in lines:
        for key in ("loss", "reward_mean"):
            if not (isinstance(line.get(key), (int, float)) and math.isfinite(line[key])):
                problems.append(f"step {line.get('step')}: {key} = {line.get(key)!r}")
        if line.get("reward_errors"):
            problems.append(f"step {line.get('step')}: reward errors {line.get('reward_errors_by_component')}")
    if not (out / "final").is_dir():
        problems.append(f"no final model in {out / 'final'}")
    fail_if(task.name, "smoke-train", problems)
    return lines
