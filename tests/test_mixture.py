"""Mixtures of tasks: [[task.mixture]] config and its errors, per-step sampling, routed scoring across
plugins, per-task metrics and the macro mean of a mixture evaluation. (Training: tests/engine/test_mixture_train.py.)"""

from __future__ import annotations

import tomllib
from collections import Counter
from pathlib import Path

import pytest

from rlstruct.config import ConfigError, from_dict, load_config
from rlstruct.data import load_records
from rlstruct.engine.grpo import prompt_indices
from rlstruct.engine.metrics import summarise_breakdowns
from rlstruct.engine.task_batches import TrainingTasks
from rlstruct.engine.tomlwrite import dumps
from rlstruct.mixture import (
    TaskPositions,
    bind_tasks,
    mixture_eval_summary,
    step_counts,
    task_entries,
    task_metrics,
)
from rlstruct.plugins import PluginManager, UnknownTaskError
from rlstruct.reward import Breakdown, RewardConfigError, RewardSpec, score_inline
from rlstruct.sandbox import RewardPool, SandboxLimits

MODEL = '[model]\nname_or_path = "some/model"\n'
TWO = """
[task]
train_limit = 100
eval_limit = 8
[reward.extras.length]
weight = 0.1
max_chars = 600
[[task.mixture]]
name = "gsm8k-json"
weight = 2.0
[[task.mixture]]
name = "key-value"
data_seed = 3
[task.mixture.reward]
weights = {validity = 2.0}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mix.toml"
    path.write_text(text + MODEL)
    return path


@pytest.fixture
def plugins(example_plugin_module) -> PluginManager:
    """The built-in plugins plus the third-party example plugin (key-value), registered in-process."""
    pm = PluginManager()
    pm.register(example_plugin_module, name="example-kv")
    return pm


# -- config ----------------------------------------------------------------------------------------------
def test_entries_take_task_defaults_their_own_keys_and_reward_tables(tmp_path):
    cfg = load_config(write(tmp_path, TWO))
    gsm, kv = task_entries(cfg)
    assert (gsm.where, gsm.name, gsm.weight, kv.weight) == ("task.mixture[0]", "gsm8k-json", 2.0, 1.0)
    assert gsm.settings.train_limit == kv.settings.train_limit == 100  # from [task]
    assert (gsm.settings.data_seed, kv.settings.data_seed) == (0, 3)  # the entry's own
    # no reward table: [reward]'s weights and extras; a table: its own weights, [reward]'s extras
    assert gsm.reward_weights == {} and gsm.reward_extras == {"length": {"weight": 0.1, "max_chars": 600}}
    assert kv.reward_weights == {"validity": 2.0} and kv.reward_extras == gsm.reward_extras


def test_a_single_task_config_is_one_entry_of_weight_one(tmp_path):
    cfg = load_config(write(tmp_path, '[task]\nname = "gsm8k-json"\ndifficulty = 0.3\n'))
    (entry,) = task_entries(cfg)
    assert (entry.where, entry.name, entry.weight, entry.settings is cfg.task) == ("task", "gsm8k-json", 1.0, True)
    assert entry.schedule().difficulty(5) == 0.3


def test_the_resolved_config_of_a_mixture_reads_back_identically(tmp_path):
    text = TWO.replace('data_seed = 3\n', 'data_seed = 3\ndifficulty = 0.2\n[task.mixture.curriculum]\nkind = "linear"\nend = 0.9\n')
    cfg = load_config(write(tmp_path, text.replace('name = "key-value"', 'name = "xml-records"')))
    assert from_dict(tomllib.loads(dumps(cfg))) == cfg


@pytest.mark.parametrize(
    "edit, message",
    [
        (('data_seed = 3', 'sourse = "x.jsonl"'), "task.mixture[1].sourse: unknown key (did you mean 'source'?)"),
        (('data_seed = 3', 'train_limit = "many"'), "task.mixture[1].train_limit must be an integer, got 'many'"),
        (('data_seed = 3', 'train_limit = 0'), "task.mixture[1].train_limit must be >= 1, got 0"),
        (('data_seed = 3', 'weight = 0'), "task.mixture[1].weight must be > 0"),
        (('data_seed = 3', 'weight = -1.5'), "task.mixture[1].weight must be > 0"),
        (('name = "key-value"', 'source = "synthetic"'), "task.mixture[1].name: missing"),
        (('name = "key-value"', 'name = "gsm8k-json"'), "task.mixture[1].name: task 'gsm8k-json' is already task.mixture[0]"),
        (('data_seed = 3', 'difficulty = 1.5'), "task.mixture[1].difficulty: expected a number from 0 to 1"),
        (('data_seed = 3', 'curriculum = {kind = "zigzag"}'), "task.mixture[1].curriculum.kind: unknown kind 'zigzag'"),
        (('data_seed = 3', 'curriculum = {kind = "linear", stpes = 3}'), "task.mixture[1].curriculum.stpes: unknown key"),
        (('data_seed = 3', 'source = "po.jsonl"\ndifficulty = 0.4'),
         "task.mixture[1].difficulty: only synthetic data has a difficulty, and task.mixture[1].source is 'po.jsonl'"),
        (('weights = {validity = 2.0}', 'timeout_s = 5.0'), "task.mixture[1].reward.timeout_s: unknown key"),
        (('weights = {validity = 2.0}', 'weights = {content = -1.0}'), "task.mixture[1].reward.weights.content must be >= 0"),
        (('train_limit = 100', 'train_limit = 100\nname = "gsm8k-json"'), "task.name: a config with [[task.mixture]]"),
        (('train_limit = 100', 'train_limit = 100\ndifficulty = 0.3'),
         "task.difficulty: in a config with [[task.mixture]], set difficulty in each entry"),
    ],
)
def test_config_errors_name_the_entry_in_one_line(tmp_path, edit, message):
    old, new = edit
    assert old in TWO
    path = write(tmp_path, TWO.replace(old, new, 1))
    with pytest.raises(ConfigError) as excinfo:
        load_config(path)
    text = str(excinfo.value)
    assert text.startswith(f"{path}: {message}") and "\n" not in text, text


def test_single_task_difficulty_and_curriculum_are_checked_at_load(tmp_path):
    for body, message in [
        ('difficulty = 2', "task.difficulty: expected a number from 0 to 1, got 2.0"),
        ('difficulty = 0.2\ncurriculum = {start = 0.1}', "task.difficulty: give either task.difficulty or task.curriculum.start"),
        ('source = "hf"\ncurriculum = {kind = "linear"}', "task.curriculum: only synthetic data has a difficulty"),
    ]:
        path = write(tmp_path, f'[task]\nname = "gsm8k-json"\n{body}\n')
        with pytest.raises(ConfigError, match="^" + str(path).replace(".", r"\.") + ": " + message.replace(".", r"\.")):
            load_config(path)


def test_binding_errors_name_the_entry(tmp_path, plugins):
    cases = [
        (('name = "key-value"', 'name = "no-such-task"'), UnknownTaskError, "task.mixture[1].name: unknown task 'no-such-task'"),
        (('weights = {validity = 2.0}', 'weights = {bogus = 1.0}'), RewardConfigError,
         "task.mixture[1].reward.weights.bogus: unknown component"),
        (('weights = {validity = 2.0}', 'extras = {nope = {weight = 1.0}}'), RewardConfigError,
         "task.mixture[1].reward.extras.nope: unknown reward component"),
        (('data_seed = 3', 'difficulty = 0.4'), ConfigError,  # key-value's generator takes no difficulty
         "task.mixture[1].difficulty: task 'key-value' has no difficulty"),
    ]
    for (old, new), error, message in cases:
        path = write(tmp_path, TWO.replace(old, new))
        cfg = load_config(path)
        with pytest.raises(error) as excinfo:
            bind_tasks(cfg, plugins, str(path))
        assert str(excinfo.value).startswith(f"{path}: {message}"), str(excinfo.value)


def test_bound_tasks_come_from_two_plugins_with_their_own_reward_specs(tmp_path, plugins):
    gsm, kv = bind_tasks(load_config(write(tmp_path, TWO)), plugins)
    assert plugins.task_plugin(gsm.name).name != plugins.task_plugin(kv.name).name  # built-in and third-party
    assert [e.component.name for e in gsm.spec.extras] == [e.component.name for e in kv.spec.extras] == ["length"]
    assert kv.spec.weights["validity"] == 2.0 and gsm.spec.weights["validity"] == 1.0


# -- sampling ------------------------------------------------------------------------------------------
def test_step_counts_follow_the_weights_exactly_in_expectation_and_closely_each_step():
    weights, per_step = [2.0, 1.0, 1.0], 6  # shares 3, 1.5, 1.5
    totals = Counter()
    for step in range(400):
        counts = step_counts(weights, per_step, step, seed=7)
        assert sum(counts) == per_step and counts[0] == 3 and set(counts[1:]) <= {1, 2}
        assert counts == step_counts(weights, per_step, step, seed=7)  # deterministic in (seed, step)
        totals.update({k: c for k, c in enumerate(counts)})
    assert totals[0] == 1200 and abs(totals[1] - 600) < 60 and totals[1] + totals[2] == 1200
    assert step_counts([1.0], 5, 3, 0) == [5]
    # a task whose share is below one prompt still gets its share over many steps
    small = sum(step_counts([1.0, 9.0], 2, s, 0)[0] for s in range(1000))
    assert abs(small - 200) < 40


def test_task_positions_are_the_same_replayed_from_zero_or_stepped_through():
    walk = TaskPositions([1.0, 3.0], 4, seed=1)
    stepped = [walk(s) for s in range(50)]
    assert stepped == [TaskPositions([1.0, 3.0], 4, seed=1)(s) for s in range(50)]
    assert walk(10) == stepped[10]  # going back replays from zero
    assert all(sum(p) == 4 * s for s, p in enumerate(stepped))


class _Echo:
    """A stand-in renderer: the prompt text of a record is its JSON."""

    def __call__(self, task, records):
        import json

        return [json.dumps(r, sort_keys=True) for r in records]


def _training_tasks(cfg, tasks) -> TrainingTasks:
    out = TrainingTasks.for_run(cfg, tasks, None)
    out.load(warn=lambda line: None)
    out.set_renderer(_Echo())
    return out


def test_a_single_task_takes_exactly_the_records_prompt_indices_gives(tmp_path, plugins):
    cfg = load_config(write(tmp_path, '[task]\nname = "gsm8k-json"\ntrain_limit = 10\n[grpo]\nprompts_per_step = 4\ngroup_size = 3\n'))
    task = plugins.task("gsm8k-json")
    tasks = TrainingTasks.for_run(cfg, task, RewardSpec.build(task, plugins.rewards))
    tasks.load(warn=lambda line: None)
    tasks.set_renderer(_Echo())
    records = load_records(task, "synthetic", "train", 10, 0)
    for step in range(7):  # crosses epochs
        batch = tasks.batch(step)
        expected = prompt_indices(10, 4, step, cfg.run.seed)
        assert batch.records == [records[i] for i in expected for _ in range(3)]
        assert batch.routes == ["gsm8k-json"] * 12


def test_each_group_is_one_record_of_one_task_and_counts_follow_the_weights(tmp_path, plugins):
    cfg = load_config(write(tmp_path, TWO + "[grpo]\nprompts_per_step = 3\ngroup_size = 4\n"))
    tasks = _training_tasks(cfg, bind_tasks(cfg, plugins))
    seen = Counter()
    for step in range(30):
        batch = tasks.batch(step)
        assert len(batch.records) == len(batch.routes) == 12 and len(batch.prompts) == len(batch.tasks) == 3
        for p in range(3):
            group = slice(p * 4, (p + 1) * 4)
            assert len(set(batch.routes[group])) == 1 and batch.routes[p * 4] == batch.tasks[p]
            assert all(r is batch.records[p * 4] for r in batch.records[group])
            # the record belongs to that task (its keys), and the prompt is that record's
            assert ("facts" in batch.records[p * 4]) == (batch.tasks[p] == "key-value")
        seen.update(batch.tasks)
    assert seen["gsm8k-json"] == 60 and seen["key-value"] == 30  # weight 2 : 1 of 3 prompts is exact


# -- scoring -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("workers", [1, 0], ids=["forked", "inline"])
def test_a_mixed_batch_from_two_plugins_is_scored_each_row_by_its_own_task(tmp_path, plugins, workers):
    gsm, kv = bind_tasks(load_config(write(tmp_path, TWO)), plugins)
    g_records = load_records(gsm.task, "synthetic", "train", 3, 0)
    k_records = load_records(kv.task, "synthetic", "train", 3, 0)
    records, routes, texts = [], [], []
    for g_rec, k_rec in zip(g_records, k_records):  # interleaved, so a shifted route would show
        records += [g_rec, k_rec]
        routes += ["gsm8k-json", "key-value"]
        texts += [gsm.task.reference_completion(g_rec), kv.task.reference_completion(k_rec)]
    # each task raises on the other's records: scored by the wrong task, a row records an error
    assert score_inline(gsm.task, gsm.spec, k_records[0], texts[0]).errors
    assert score_inline(kv.task, kv.spec, g_records[0], texts[1]).errors
    pool_routes = {t.name: (t.task, t.spec) for t in (gsm, kv)}
    with RewardPool(routes=pool_routes, limits=SandboxLimits(timeout_s=10, workers=workers)) as pool:
        scored = pool.score(records, texts, routes)
        with pytest.raises(ValueError, match="pass the task of each row"):
            pool.score(records, texts)
        with pytest.raises(ValueError, match="unknown route"):
            pool.score(records[:1], texts[:1], ["json-recipes"])
    for b, record, text, route in zip(scored, records, texts, routes):
        task, spec = pool_routes[route]
        assert b.errors == {}, b.errors
        assert b.components == score_inline(task, spec, record, text).components
        assert list(b.components) == spec.names
    # the key-value rows are weighted by their own spec (validity 2), the gsm8k rows by theirs
    assert [round(b.reward, 6) for b in scored[1::2]] == [
        round(score_inline(kv.task, kv.spec, r, t).reward, 6) for r, t in zip(k_records, texts[1::2])]


# -- metrics -----------------------------------------------------------------------------------------------
def _b(reward, **components) -> Breakdown:
    return Breakdown(reward=reward, components=components)


def test_per_task_metrics_of_a_fixed_batch_are_each_tasks_own_means():
    routes = ["a", "a", "b", "b", "b", "a"]
    breakdowns = [
        _b(1.0, structure=1.0, format=1.0, length=0.5),
        _b(0.5, structure=1.0, format=0.0, length=1.0),
        _b(0.25, structure=1.0, format=None, recall=0.0),
        _b(0.75, structure=1.0, format=None, recall=1.0),
        _b(0.0, structure=0.0, format=None, recall=0.0),
        _b(0.0, structure=0.0, format=0.0, length=0.0),
    ]
    names = {"a": ["structure", "format", "length"], "b": ["structure", "format", "recall"], "c": ["structure"]}
    out = task_metrics(routes, breakdowns, names)
    assert out["rows/a"] == 3 and out["rows/b"] == 3 and out["rows/c"] == 0
    assert out["reward/a"] == pytest.approx(0.5) and out["reward/b"] == pytest.approx(1 / 3)
    assert out["reward/a/format"] == pytest.approx(1 / 3) and out["reward/a/length"] == pytest.approx(0.5)
    assert out["reward/b/structure"] == pytest.approx(2 / 3) and out["reward/b/recall"] == pytest.approx(1 / 3)
    assert out["reward/b/format"] is None  # b does not implement format
    assert out["reward/c"] is None and out["reward/c/structure"] is None  # no rows: null, never 0
    # the overall means take each component over the rows that have it: no zeros from the other task
    overall = summarise_breakdowns(breakdowns)
    assert overall["reward/length"] == pytest.approx(0.5) and overall["reward/recall"] == pytest.approx(1 / 3)
    assert overall["reward/format"] == pytest.approx(1 / 3) and overall["reward/structure"] == pytest.approx(4 / 6)


def test_mixture_eval_summary_reports_each_task_and_the_macro_mean():
    a = {"n": 4, "reward": 0.5, "structure": 1.0, "structure_mean": 1.0, "format": None, "format_mean": None,
         "length": 0.0, "length_mean": 0.5, "protocol": {"task": "a", "decoding": "greedy", "records": 4}}
    b = {"n": 8, "reward": 0.25, "structure": 0.5, "structure_mean": 0.75, "format": 0.5, "format_mean": 0.5,
         "protocol": {"task": "b", "decoding": "greedy", "records": 8}}
    out = mixture_eval_summary({"a": a, "b": b}, "test")
    assert out["tasks"] == {"a": a, "b": b}
    macro = out["macro"]
    assert (macro["n"], macro["tasks"]) == (12, 2)
    assert macro["reward"] == pytest.approx(0.375) and macro["structure_mean"] == pytest.approx(0.875)
    assert macro["format"] == 0.5 and macro["length_mean"] == 0.5  # over the tasks that have each
    assert out["protocol"]["tasks"] == ["a", "b"] and out["protocol"]["split"] == "test"
    assert "records" not in out["protocol"]



def test_a_time_out_in_one_task_leaves_the_other_tasks_rows_scored(tmp_path, plugins):
    import time

    from rlstruct import Parsed, Task

    class Slow(Task):
        name = "slow"

        def structure(self, record, completion):
            if completion == "hang":
                time.sleep(30)  # killed by the pool's time bound
            return Parsed(1.0, completion)

    slow = Slow()
    gsm, kv = bind_tasks(load_config(write(tmp_path, TWO)), plugins)
    k_record = load_records(kv.task, "synthetic", "train", 1, 0)[0]
    routes = {"slow": (slow, RewardSpec.build(slow, {})), "key-value": (kv.task, kv.spec)}
    rows = [("slow", {}, "hang"), ("key-value", k_record, kv.task.reference_completion(k_record)), ("slow", {}, "ok")]
    with RewardPool(routes=routes, limits=SandboxLimits(timeout_s=0.5, workers=1)) as pool:
        hung, good, fine = pool.score([r for _, r, _ in rows], [c for _, _, c in rows], [k for k, _, _ in rows])
    assert hung.timeouts == ["structure"] and hung.reward == 0.0 and list(hung.components) == routes["slow"][1].names
    assert good.errors == {} and good.reward == score_inline(kv.task, kv.spec, k_record, rows[1][2]).reward
    assert "length" in good.components and "length" not in fine.components  # each row has its own task's components
    assert fine.errors == {} and fine.reward == 1.0
