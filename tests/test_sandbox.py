"""RewardPool: a reward component can hang, sleep, raise, return NaN, allocate 8 GB or kill its
process, and scoring still finishes on time with that component at 0 and the error recorded.

Checked for every misbehaviour and for every place it can happen (each hierarchical component and
an extra component): the component scores 0 with its error (or time-out) recorded, later
hierarchical components are 0 (gated) and not reported as errors, extra components are still
computed, results keep input order and the pool keeps working afterwards. The time bound must
also hold when scoring runs off the main thread and inside a daemonic worker process.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import threading
import time
from typing import Any

import pytest

from rlstruct import COMPONENTS, Parsed, Prompt, RewardComponent, Task
from rlstruct.reward import Breakdown, RewardSpec
from rlstruct.sandbox import RewardPool, SandboxLimits

TIMEOUT_S = 0.3
LIMITS = SandboxLimits(timeout_s=TIMEOUT_S, memory_mb=256, workers=2)
MODES = ("hang", "sleep", "raise", "nan", "alloc", "exit")
EXPECTED_ERROR = {
    "hang": "timeout",
    "sleep": "timeout",
    "raise": "RuntimeError: component exploded",
    "nan": "NaN",
    "alloc": "MemoryError",
    "exit": "worker process died",
}
"""Text the recorded error must contain, per misbehaviour."""
pytestmark = pytest.mark.timeout(60)  # a broken time bound fails here instead of hanging the suite


def act(record: dict[str, Any], where: str, score: float = 1.0) -> float:
    """Return ``score``, unless ``record["bad"] == where``: then misbehave as ``record["mode"]`` says."""
    if record.get("bad") != where:
        return score
    mode = record["mode"]
    if mode == "hang":
        while True:  # a busy loop: no signal or exception gets it out
            pass
    if mode == "sleep":
        time.sleep(60)
    if mode == "raise":
        raise RuntimeError("component exploded")
    if mode == "nan":
        return math.nan
    if mode == "alloc":
        return float(len(bytearray(8 * 1024**3)))  # 8 GB
    if mode == "exit":
        os._exit(3)
    raise AssertionError(f"unknown mode {mode!r}")


class MisbehavingTask(Task):
    """Every component returns 1.0 unless the record asks it to misbehave."""

    name = "misbehaving"
    description = "test task whose components misbehave on request"

    def build_prompt(self, record):
        return Prompt(messages=[{"role": "user", "content": "?"}])

    def structure(self, record, completion):
        return Parsed(act(record, "structure"), completion)

    def format(self, record, parsed):
        return act(record, "format")

    def content(self, record, parsed):
        return act(record, "content")

    def validity(self, record, parsed):
        return act(record, "validity")


BAD_EXTRA = RewardComponent("bad-extra", "0.5, or misbehaves on request", lambda r, c, p: act(r, "bad-extra", 0.5))
ECHO_ID = RewardComponent("echo-id", "the record's id / 1000 (shows that order is kept)", lambda r, c, p: r["id"] / 1000)
TASK = MisbehavingTask()
SPEC = RewardSpec.build(TASK, {"bad-extra": BAD_EXTRA, "echo-id": ECHO_ID}, extras={"bad-extra": {}, "echo-id": {}})
NAMES = [*COMPONENTS, "bad-extra", "echo-id"]
PLACES = [None, "structure", "format", None, "content", "validity", "bad-extra", None]
"""Where each record of a batch misbehaves (None: a well-behaved record between the bad ones)."""


def batch(mode: str, places=PLACES, first_id: int = 1) -> list[dict[str, Any]]:
    return [{"id": first_id + i, "bad": bad, "mode": mode} for i, bad in enumerate(places)]


def check(breakdown: Breakdown, record: dict[str, Any]) -> None:
    """The breakdown a record must get: see the module docstring."""
    bad, mode = record["bad"], record["mode"]
    assert list(breakdown.components) == NAMES
    assert breakdown.components["echo-id"] == record["id"] / 1000  # extras computed, order kept
    expected = {**dict.fromkeys(COMPONENTS, 1.0), "bad-extra": 0.5, "echo-id": record["id"] / 1000}
    if bad is None:
        assert breakdown.components == expected
        assert breakdown.errors == {} and breakdown.timeouts == []
    else:
        expected[bad] = 0.0
        if bad in COMPONENTS:
            for later in COMPONENTS[COMPONENTS.index(bad) + 1 :]:
                expected[later] = 0.0  # gated, not run
        assert breakdown.components == expected, (record, breakdown)
        assert set(breakdown.errors) == {bad}, breakdown.errors
        assert EXPECTED_ERROR[mode] in breakdown.errors[bad]
        assert breakdown.timeouts == ([bad] if mode in ("hang", "sleep") else [])
    assert breakdown.reward == pytest.approx(sum(expected.values()) / len(expected))


def good_batch(first_id: int, n: int = 6) -> list[dict[str, Any]]:
    return batch("none", [None] * n, first_id)


@pytest.mark.parametrize("mode", MODES)
def test_misbehaving_component_scores_zero_and_the_pool_carries_on(mode):
    records = batch(mode)
    with RewardPool(TASK, SPEC, LIMITS) as pool:
        start = time.perf_counter()
        results = pool.score(records, ["completion"] * len(records))
        elapsed = time.perf_counter() - start
        assert len(results) == len(records)
        for breakdown, record in zip(results, records):
            check(breakdown, record)
        # 5 bad records on 2 workers: at most 3 time-outs in a row, plus the forks
        assert elapsed < 3 * TIMEOUT_S + 2.0
        if mode in ("hang", "sleep"):
            assert pool.timeouts == 5
        if mode == "exit":
            assert pool.crashes == 5

        again = good_batch(100)
        for breakdown, record in zip(pool.score(again, ["x"] * len(again)), again):
            check(breakdown, record)


def test_mixed_misbehaviour_in_one_batch_keeps_order():
    records = [
        {"id": i, "bad": PLACES[i % len(PLACES)], "mode": MODES[i % len(MODES)]} for i in range(1, 25)
    ]
    with RewardPool(TASK, SPEC, SandboxLimits(timeout_s=TIMEOUT_S, memory_mb=256, workers=3)) as pool:
        results = pool.score(records, ["c"] * len(records))
    assert [r.components["echo-id"] for r in results] == [i / 1000 for i in range(1, 25)]
    for breakdown, record in zip(results, records):
        check(breakdown, record)


def test_inline_mode_still_catches_raise_and_nan():
    records = batch("raise", [None, "format", "bad-extra"]) + batch("nan", ["structure", "validity"], 10)
    with RewardPool(TASK, SPEC, SandboxLimits(workers=0)) as pool:
        results = pool.score(records, ["c"] * len(records))
    for breakdown, record in zip(results, records):
        check(breakdown, record)


def test_length_mismatch_is_an_error():
    with RewardPool(TASK, SPEC, LIMITS) as pool:
        with pytest.raises(ValueError, match="differ in length"):
            pool.score(good_batch(1, 2), ["only one"])


HANG_BATCH = batch("hang", [None, "structure", "content", None])


def test_time_bound_holds_off_the_main_thread():
    """signal.alarm only works on the main thread; the pool must not depend on it."""
    out: dict[str, Any] = {}

    def score() -> None:
        start = time.perf_counter()
        out["results"] = pool.score(HANG_BATCH, ["c"] * len(HANG_BATCH))
        out["elapsed"] = time.perf_counter() - start

    with RewardPool(TASK, SPEC, LIMITS) as pool:  # created on the main thread, used from another
        thread = threading.Thread(target=score, daemon=True)
        thread.start()
        thread.join(timeout=10)
        assert not thread.is_alive(), "scoring on a thread ignored the time bound"
    assert out["elapsed"] < 2 * TIMEOUT_S + 2.0
    for breakdown, record in zip(out["results"], HANG_BATCH):
        check(breakdown, record)


def _score_in_daemon(queue) -> None:
    """Runs inside a daemonic multiprocessing.Process (like a DataLoader worker)."""
    ctx = multiprocessing.get_context("fork")
    try:  # the reason the pool forks by hand: daemonic processes may not start Processes
        ctx.Process(target=time.sleep, args=(0,)).start()
        can_use_multiprocessing = True
    except AssertionError:
        can_use_multiprocessing = False
    with RewardPool(TASK, SPEC, LIMITS) as pool:
        start = time.perf_counter()
        results = pool.score(HANG_BATCH, ["c"] * len(HANG_BATCH))
        elapsed = time.perf_counter() - start
    queue.put((can_use_multiprocessing, elapsed, [(r.reward, r.components, r.errors, r.timeouts) for r in results]))


def test_time_bound_holds_in_a_daemonic_worker_process():
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(target=_score_in_daemon, args=(queue,), daemon=True)
    proc.start()
    try:
        can_use_multiprocessing, elapsed, rows = queue.get(timeout=20)
    finally:
        proc.join(timeout=5)
        if proc.is_alive():
            proc.kill()
    assert proc.exitcode == 0
    assert not can_use_multiprocessing  # the situation the sandbox must handle
    assert elapsed < 2 * TIMEOUT_S + 2.0
    for (reward, components, errors, timeouts), record in zip(rows, HANG_BATCH):
        check(Breakdown(reward, components, errors, timeouts), record)
