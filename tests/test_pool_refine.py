"""Error-type refinement in the reward pool's long-lived workers (RewardPool.refine).

Training and eval classify every step; the refinement (``Task.error_type``, plugin code on model
output) must stay bounded like reward components without forking a worker per call after the model
is loaded. Checked: the pool gives the same classes as the inline refinement; a refinement that
sleeps past the time-out, raises, returns junk or kills its worker keeps its default while the
other items of the same call are still refined; the pool still scores afterwards; and no process is
forked by a classification through the pool (trainer path: TrainingTasks.classify).
"""

from __future__ import annotations

import os
import time

import pytest

from rlstruct import Parsed, Prompt, Task
from rlstruct.config import TaskConfig
from rlstruct.engine.task_batches import StepBatch, TrainingTasks
from rlstruct.error_types import classify_completions
from rlstruct.mixture import MixtureTask, TaskEntry
from rlstruct.reward import RewardSpec, score_inline
from rlstruct.sandbox import RewardPool, SandboxLimits

pytestmark = pytest.mark.timeout(60)  # a broken time bound fails here instead of hanging the suite

TIMEOUT_S = 0.5
LIMITS = SandboxLimits(timeout_s=TIMEOUT_S, memory_mb=256, workers=2)


class Refiner(Task):
    """Validity always fails (default class ``implausible``); ``error_type`` acts on the completion."""

    name = "refiner"

    def build_prompt(self, record):
        return Prompt([{"role": "user", "content": "x"}])

    def structure(self, record, completion):
        return Parsed(1.0, completion)

    def format(self, record, parsed):
        return 1.0

    def validity(self, record, parsed):
        return 0.0

    def error_type(self, record, completion, breakdown):
        if completion == "raise":
            raise RuntimeError("bug in a plugin")
        if completion == "sleep":
            time.sleep(60)
        if completion == "junk":
            return "my-own-class"
        if completion == "number":
            return 42
        if completion == "exit":
            os._exit(3)
        if completion == "breakdown":  # the worker sees the row's own breakdown
            return "wrong-type" if breakdown.components["validity"] == 0.0 else "empty"
        return record["want"]  # ... and its own record


class OtherRefiner(Refiner):
    """Another task: always ``schema-violation`` (shows each route is refined by its own task)."""

    name = "other-refiner"

    def error_type(self, record, completion, breakdown):
        return "schema-violation"


TASK, OTHER = Refiner(), OtherRefiner()
SPEC, OTHER_SPEC = RewardSpec.build(TASK, {}), RewardSpec.build(OTHER, {})


def rows(completions: list[str], wants: list[str] | None = None, task: Task = TASK, spec: RewardSpec = SPEC):
    """Records, completions and breakdowns of one call (record i wants ``wants[i]``)."""
    wants = wants or ["missing-key"] * len(completions)
    records = [{"want": w} for w in wants]
    return records, completions, [score_inline(task, spec, r, c) for r, c in zip(records, completions)]


def classify(records, completions, breakdowns, **kwargs):
    return classify_completions(TASK, records, completions, breakdowns, [False] * len(records), **kwargs)


def test_the_pool_refines_like_the_inline_refinement():
    records, completions, breakdowns = rows(
        ["a", "breakdown", "raise", "junk", "number", "b"], ["missing-key", "x", "x", "x", "x", "invented-key"]
    )
    inline = classify(records, completions, breakdowns, limits=SandboxLimits(workers=0))
    assert inline == ["missing-key", "wrong-type", "implausible", "implausible", "implausible", "invented-key"]
    with RewardPool(TASK, SPEC, LIMITS) as pool:
        assert classify(records, completions, breakdowns, pool=pool) == inline
        assert classify(records, completions, breakdowns, pool=pool) == inline  # the workers keep serving
    with RewardPool(TASK, SPEC, SandboxLimits(workers=0)) as inline_pool:
        assert classify(records, completions, breakdowns, pool=inline_pool) == inline


def test_an_overrunning_refinement_keeps_its_default_and_the_others_are_refined():
    records, completions, breakdowns = rows(
        ["a", "b", "sleep", "c", "sleep", "d"],
        ["missing-key", "invented-key", "x", "wrong-type", "x", "wrong-value"],
    )
    with RewardPool(TASK, SPEC, LIMITS) as pool:
        began = time.monotonic()
        types = classify(records, completions, breakdowns, pool=pool)
        assert time.monotonic() - began < 2 * TIMEOUT_S + 10  # stopped, not waited for (60 s each)
        # "a" and "b" were answered in the job that the first sleeper lost: sent again and refined
        assert types == ["missing-key", "invented-key", "implausible", "wrong-type", "implausible", "wrong-value"]
        assert classify(*rows(["e"], ["extra-text"]), pool=pool) == ["extra-text"]


def test_a_refinement_that_kills_its_worker_keeps_its_default_and_the_pool_still_scores():
    records, completions, breakdowns = rows(["a", "exit", "b"], ["missing-key", "x", "invented-key"])
    with RewardPool(TASK, SPEC, LIMITS) as pool:
        assert classify(records, completions, breakdowns, pool=pool) == ["missing-key", "implausible", "invented-key"]
        scored = pool.score([{"want": "x"}] * 3, ["p", "q", "r"])
        assert [b.components["validity"] for b in scored] == [0.0, 0.0, 0.0]
        assert [b.errors for b in scored] == [{}, {}, {}]
        assert classify(*rows(["c"], ["wrong-value"]), pool=pool) == ["wrong-value"]


def test_each_route_is_refined_by_its_own_task():
    with RewardPool(routes={"a": (TASK, SPEC), "b": (OTHER, OTHER_SPEC)}, limits=LIMITS) as pool:
        records, completions, breakdowns = rows(["x", "y"], ["missing-key", "invented-key"])
        items = [("b", records[0], "x", breakdowns[0], "implausible"), ("a", records[1], "y", breakdowns[1], "implausible")]
        assert pool.refine(items) == ["schema-violation", "invented-key"]
        assert classify(records, completions, breakdowns, pool=pool, route="a") == ["missing-key", "invented-key"]
        with pytest.raises(ValueError, match="'b'.*'other-refiner'"):  # route "b" holds another task
            classify(records, completions, breakdowns, pool=pool, route="b")
        with pytest.raises(ValueError, match="'nope'"):
            pool.refine([("nope", records[0], "x", breakdowns[0], "implausible")])


def test_a_pool_without_the_route_is_not_used():
    records, completions, breakdowns = rows(["x"], ["invented-key"])
    with RewardPool(OTHER, OTHER_SPEC, LIMITS) as pool:  # holds "other-refiner" only
        assert classify(records, completions, breakdowns, pool=pool) == ["invented-key"]


def _no_fork(*args, **kwargs):
    raise AssertionError("os.fork called: classification forked a new process")


def test_classifying_through_the_pool_forks_no_process(monkeypatch):
    records, completions, breakdowns = rows(["a", "b"], ["missing-key", "invented-key"])
    with RewardPool(TASK, SPEC, LIMITS) as pool:
        monkeypatch.setattr(os, "fork", _no_fork)
        for _ in range(3):
            assert classify(records, completions, breakdowns, pool=pool) == ["missing-key", "invented-key"]
        with pytest.raises(AssertionError, match="os.fork called"):  # without the pool it would fork
            classify(records, completions, breakdowns, limits=LIMITS)


def _bound(route: str, task: Task, spec: RewardSpec) -> MixtureTask:
    entry = TaskEntry(f"task.mixture[{route}]", TaskConfig(name=route), 1.0, {}, {}, "reward")
    return MixtureTask(entry, task, spec, None)


def test_the_trainers_classification_uses_the_pool_and_forks_no_process(monkeypatch):
    tasks = TrainingTasks(
        [_bound("first", TASK, SPEC), _bound("second", OTHER, OTHER_SPEC)],
        seed=0, prompts_per_step=2, group_size=2, mixture=True,
    )
    routes = ["first", "second", "first", "second"]
    records = [{"want": w} for w in ("missing-key", "x", "wrong-type", "x")]
    completions = ["a", "b", "c", "d"]
    breakdowns = [score_inline(*tasks.routes[k], r, c) for k, r, c in zip(routes, records, completions)]
    batch = StepBatch(["first", "second"], ["p", "q"], records, routes)
    with RewardPool(routes=tasks.routes, limits=LIMITS) as pool:
        monkeypatch.setattr(os, "fork", _no_fork)
        types = tasks.classify(batch, completions, breakdowns, [False] * 4, pool)
    assert types == ["missing-key", "schema-violation", "wrong-type", "schema-violation"]
