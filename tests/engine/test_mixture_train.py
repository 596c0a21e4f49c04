"""Training on a mixture of tasks: per-task metrics and samples, exact resume with a curriculum,
a single task's logged curriculum, and the per-task evaluation of a mixture."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from rlstruct import Parsed, Prompt, Task, hookimpl
from rlstruct.engine.grpo import train
from rlstruct.mixture import bind_tasks
from rlstruct.plugins import PluginManager

from .conftest import DigitsTask, small_config


class LettersTask(Task):
    """Toy task preferring letters, whose records say how many letters to write; ``difficulty`` moves that
    number. Its records have no ``prompt`` key and DigitsTask's no ``letters`` key, so each task's reward
    raises on the other's records: a row scored by the wrong task would show an error."""

    name = "toy-letters"
    description = "Prefer completions made of letters."
    default_weights = {"structure": 0.0, "format": 1.0, "content": 0.0, "validity": 0.0}

    def synthetic(self, split, size, seed, difficulty=None):
        count = 1 + round(9 * (0.5 if difficulty is None else difficulty))
        return [{"letters": count, "id": f"{split}-{i}"} for i in range(size)]

    def build_prompt(self, record):
        return Prompt(messages=[{"role": "user", "content": f"Write {record['letters']} letters ({record['id']})."}])

    def structure(self, record, completion):
        record["letters"]  # raises on another task's record
        return Parsed(1.0, completion)

    def format(self, record, parsed):
        chars = [c for c in parsed if not c.isspace()]
        return sum(c.isalpha() for c in chars) / len(chars) if chars else 0.0


class StrictDigits(DigitsTask):
    def structure(self, record, completion):
        record["prompt"]  # raises on another task's record
        return super().structure(record, completion)


@pytest.fixture
def plugins() -> PluginManager:
    pm = PluginManager(load_entry_points=False)
    pm.register(SimpleNamespace(register_tasks=hookimpl(lambda register: (register(StrictDigits()), register(LettersTask())))),
                name="toy-plugin")
    return pm


ADAPTIVE = {"kind": "adaptive", "start": 0.0, "end": 1.0, "threshold": 0.0, "patience": 1, "increment": 0.25}
"""Rises after every step (any reward is >= 0): the difficulty of step s is 0.25·s, remembered in checkpoints."""


def mixture_config(model_dir: Path, out: Path, steps: int):
    cfg = small_config(model_dir, out, steps=steps, prompts_per_step=3, num_iterations=2, learning_rate=5e-3)
    cfg.task.name = ""
    cfg.task.mixture = [{"name": "toy-digits", "weight": 2.0}, {"name": "toy-letters", "curriculum": dict(ADAPTIVE)}]
    return cfg


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def weights(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(path / "model.safetensors")


@pytest.mark.slow
def test_a_mixture_run_logs_each_task_and_resumes_exactly_with_its_curriculum(tiny_model_dir, plugins, tmp_path):
    straight = mixture_config(tiny_model_dir, tmp_path / "a", steps=4)
    train(straight, bind_tasks(straight, plugins), None, tmp_path / "a", progress=False)

    first = mixture_config(tiny_model_dir, tmp_path / "b", steps=2)
    train(first, bind_tasks(first, plugins), None, tmp_path / "b", progress=False)
    state = json.loads((tmp_path / "b" / "checkpoints" / "step-000002" / "state.json").read_text())
    assert state["extra"]["curriculum"]["toy-letters"] == {"current": 0.5, "streak": 0, "last_step": 1}
    rest = mixture_config(tiny_model_dir, tmp_path / "b", steps=4)
    train(rest, bind_tasks(rest, plugins), None, tmp_path / "b", resume_from=tmp_path / "b", progress=False)

    a, b = weights(tmp_path / "a" / "final"), weights(tmp_path / "b" / "final")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    start = weights(tmp_path / "b" / "checkpoints" / "step-000002")
    assert any(not torch.equal(a[k], start[k]) for k in a)  # training moved the weights

    ma, mb = lines(tmp_path / "a" / "metrics.jsonl"), lines(tmp_path / "b" / "metrics.jsonl")
    keys = ("reward_mean", "reward/toy-digits", "reward/toy-letters", "rows/toy-digits", "difficulty/toy-letters")
    assert [[m[k] for k in keys] for m in ma] == [[m[k] for k in keys] for m in mb]
    # the curriculum rose every step and was restored on resume (a fresh schedule would restart at 0.0)
    assert [m["difficulty/toy-letters"] for m in mb] == [0.0, 0.25, 0.5, 0.75]
    assert "difficulty/toy-digits" not in ma[0] and "difficulty" not in ma[0]
    samples = lines(tmp_path / "b" / "samples.jsonl")
    for m in ma:
        assert m["reward_errors"] == 0  # each row was scored by its own task (each raises on the other's records)
        n_digits, n_letters = m["rows/toy-digits"], m["rows/toy-letters"]
        assert n_digits + n_letters == 3 * 4 and n_digits % 4 == 0 and n_digits >= 8  # weight 2 of 3: 2 or 3 prompts
        mean = (m["reward/toy-digits"] * n_digits + (m["reward/toy-letters"] or 0.0) * n_letters) / 12
        assert m["reward_mean"] == pytest.approx(mean, abs=1e-6)
        assert m["reward/toy-letters/structure"] in (None, 1.0) and m["reward/toy-digits/structure"] == 1.0
        assert m["reward/toy-letters/content"] is None  # letters has no content component
    assert samples and {s["task"] for s in samples} <= {"toy-digits", "toy-letters"}
    for s in samples:  # a sample's prompt is its own task's
        assert ("letters (" in s["prompt"]) == (s["task"] == "toy-letters")


@pytest.mark.slow
def test_a_single_task_curriculum_is_logged_per_step_and_moves_the_records(tiny_model_dir, tmp_path):
    task = LettersTask()
    cfg = small_config(tiny_model_dir, tmp_path / "run", steps=3)
    cfg.task.name = task.name
    cfg.task.curriculum = {"kind": "linear", "start": 0.0, "end": 1.0, "steps": 2}
    from rlstruct.reward import RewardSpec

    train(cfg, task, RewardSpec.build(task, {}), tmp_path / "run", progress=False)
    metrics = lines(tmp_path / "run" / "metrics.jsonl")
    assert [m["difficulty"] for m in metrics] == [0.0, 0.5, 1.0]
    assert not any(k.startswith("rows/") for k in metrics[0])  # a single task: no per-task keys
    asked = {}
    for sample in lines(tmp_path / "run" / "samples.jsonl"):
        asked.setdefault(sample["step"], set()).add(sample["prompt"].split("Write ")[1].split(" ")[0])
    assert asked[1] == {"1"} and asked[3] == {"10"}  # records regenerated at each step's difficulty


@pytest.mark.slow
def test_eval_of_a_mixture_reports_each_task_and_the_macro_mean(tiny_model_dir, plugins, tmp_path):
    from rlstruct.engine.commands import _evaluate_tasks

    cfg = mixture_config(tiny_model_dir, tmp_path / "run", steps=1)
    cfg.task.eval_limit = 3
    cfg.task.mixture[1]["difficulty"] = 0.0  # held out at the entry's difficulty
    del cfg.task.mixture[1]["curriculum"]
    rows_path = tmp_path / "rows.jsonl"
    summary = _evaluate_tasks(str(tiny_model_dir), cfg, bind_tasks(cfg, plugins), rows_path=rows_path,
                              plugin_manager=plugins)
    assert list(summary["tasks"]) == ["toy-digits", "toy-letters"]
    per_task = [summary["tasks"][name]["reward"] for name in ("toy-digits", "toy-letters")]
    assert summary["macro"]["reward"] == pytest.approx(sum(per_task) / 2)
    assert summary["macro"]["n"] == 6 and summary["tasks"]["toy-letters"]["reward_errors"] == 0
    rows = lines(rows_path)
    assert [r["task"] for r in rows] == ["toy-digits"] * 3 + ["toy-letters"] * 3
    assert summary["tasks"]["toy-letters"]["data"]["difficulty"] == 0.0
    assert not list(tmp_path.glob(".rows.jsonl.*"))  # the per-task parts are gone
