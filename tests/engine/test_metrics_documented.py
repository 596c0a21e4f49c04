"""docs/metrics.md names every key that training writes to metrics.jsonl, and nothing it never writes."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from rlstruct import Parsed, Task, hookimpl
from rlstruct.error_types import ERROR_TYPES

from .conftest import DigitsTask, small_config

DOC = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"


def documented_keys() -> list[str]:
    """First-column keys of the page's `| key | ...` tables (``reward/<component>`` and the like)."""
    keys: list[str] = []
    for table in re.split(r"\n\s*\n", DOC.read_text(encoding="utf-8")):
        if table.lstrip().startswith("| key |"):
            keys += re.findall(r"^\| `([^`]+)` \|", table, re.M)
    return keys


def pattern(key: str) -> re.Pattern[str]:
    """``reward/<task>/<component>`` -> a regex where each ``<placeholder>`` is one path segment."""
    return re.compile("^" + re.sub(r"<[a-z]+>", "[^/]+", re.escape(key).replace(r"\<", "<").replace(r"\>", ">")) + "$")


def undocumented(written: set[str], keys: list[str]) -> set[str]:
    patterns = [pattern(k) for k in keys]
    return {key for key in written if not any(p.match(key) for p in patterns)}


def test_the_page_lists_every_error_type_and_matches_keys_by_segment():
    doc = DOC.read_text(encoding="utf-8")
    for name in ERROR_TYPES:
        assert f"| `{name}` |" in doc, f"docs/metrics.md does not list the error type {name!r}"
    keys = documented_keys()
    assert "reward_mean" in keys and "errors/<type>" in keys and "reward/<task>/<component>" in keys
    assert undocumented({"reward/structure", "errors/empty", "reward/t/format", "rows/t"}, keys) == set()
    assert undocumented({"reward_sum", "errors/a/b"}, keys) == {"reward_sum", "errors/a/b"}


class Graded(DigitsTask):
    """The toy digits task, with records that accept a difficulty (so a curriculum can drive it)."""

    name = "toy-graded"

    def synthetic(self, split, size, seed, difficulty=None):
        return super().synthetic(split, size, seed)


class Flaky(Task):
    """Parses everything, has no format or validity, and its content always raises: reward errors every step."""

    name = "toy-flaky"
    description = "content raises"
    default_weights = {"structure": 1.0, "content": 1.0}

    def synthetic(self, split, size, seed):
        return [{"prompt": f"Say anything ({split} {i})."} for i in range(size)]

    def user_prompt(self, record):
        return record["prompt"]

    def structure(self, record, completion):
        return Parsed(1.0, completion)

    def content(self, record, parsed):
        raise ValueError("content is broken on purpose")


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines() if line.strip()]


@pytest.mark.slow
def test_every_key_a_training_run_writes_is_documented(tiny_model_dir, tmp_path):
    from rlstruct.engine.grpo import train
    from rlstruct.mixture import bind_tasks
    from rlstruct.plugins import PluginManager
    from rlstruct.reward import RewardSpec

    tiny = dict(steps=2, prompts_per_step=2, group_size=2, max_new_tokens=4, micro_batch_size=4)
    curriculum = {"kind": "linear", "start": 0.0, "end": 1.0, "steps": 1}
    # a single task on a curriculum: `difficulty`
    single = small_config(tiny_model_dir, tmp_path / "single", **tiny)
    single.task.name, single.task.curriculum = Graded.name, dict(curriculum)
    train(single, Graded(), RewardSpec.build(Graded(), {}), tmp_path / "single", progress=False)
    # a mixture with a curriculum and a task whose content raises: the per-task and reward-error keys
    pm = PluginManager(load_entry_points=False)
    pm.register(SimpleNamespace(register_tasks=hookimpl(lambda register: (register(Graded()), register(Flaky())))),
                name="toy-plugin")
    mixed = small_config(tiny_model_dir, tmp_path / "mixed", **tiny)
    mixed.task.name = ""
    mixed.task.mixture = [{"name": Graded.name, "curriculum": dict(curriculum)}, {"name": Flaky.name}]
    train(mixed, bind_tasks(mixed, pm), None, tmp_path / "mixed", progress=False)

    lines = _lines(tmp_path / "single") + _lines(tmp_path / "mixed")
    written = {key for line in lines for key in line}
    keys = documented_keys()
    assert undocumented(written, keys) == set(), "add these keys to docs/metrics.md"
    never = [k for k in keys if not any(pattern(k).match(w) for w in written)]
    assert never == [], "docs/metrics.md documents keys no run wrote"
    assert any(line.get("reward_errors_by_component") for line in lines)
