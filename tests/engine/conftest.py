"""Fixtures for engine tests: a tiny model built locally, and toy tasks registered in-process."""

from __future__ import annotations

from pathlib import Path

import pytest

from rlstruct import Parsed, Prompt, Task
from rlstruct.config import Config, EvalConfig, GRPOConfig, ModelConfig, RewardConfig, RunConfig, TaskConfig
from rlstruct.reward import RewardSpec
from rlstruct.tiny import TinyModelConfig, build_tiny_model, default_corpus


class DigitsTask(Task):
    """Toy task whose reward prefers digits: format = share of non-space characters that are digits.

    Dense (every completion gets a different score), so a working GRPO loop must raise it fast.
    """

    name = "toy-digits"
    description = "Prefer completions made of digits."
    default_weights = {"structure": 0.0, "format": 1.0, "content": 0.0, "validity": 0.0}

    def synthetic(self, split, size, seed):
        return [{"prompt": f"Write some numbers, please ({split} {i})."} for i in range(size)]

    def build_prompt(self, record):
        return Prompt(messages=[{"role": "user", "content": record["prompt"]}])

    def reference_completion(self, record):
        return "12345 67890"

    def structure(self, record, completion):
        return Parsed(1.0, completion)

    def format(self, record, parsed):
        chars = [c for c in parsed if not c.isspace()]
        return sum(c.isdigit() for c in chars) / len(chars) if chars else 0.0

    def content(self, record, parsed):
        return 1.0

    def validity(self, record, parsed):
        return 1.0


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tiny") / "model"
    cfg = TinyModelConfig(vocab_size=320, hidden_size=64, intermediate_size=128, num_hidden_layers=2, seed=0)
    return build_tiny_model(out, default_corpus(400), cfg)


@pytest.fixture
def toy_task() -> DigitsTask:
    return DigitsTask()


def small_config(model_dir: Path, out: Path, **grpo) -> Config:
    """A config small enough for a CPU test step in well under a second."""
    g = dict(steps=4, prompts_per_step=2, group_size=4, max_new_tokens=12, micro_batch_size=4, learning_rate=1e-3)
    g.update(grpo)
    return Config(
        task=TaskConfig(name="toy-digits", train_limit=16, eval_limit=4),
        reward=RewardConfig(workers=1, timeout_s=2.0),
        model=ModelConfig(name_or_path=str(model_dir), lora=False),
        grpo=GRPOConfig(**g),
        eval=EvalConfig(max_new_tokens=12),
        run=RunConfig(output_dir=str(out), save_every=2, quiet=True, log_every=1000, eval_at_end=False),
    )


def spec_for(task: Task, rewards=None, extras=None) -> RewardSpec:
    return RewardSpec.build(task, rewards or {}, extras=extras)
