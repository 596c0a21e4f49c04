"""Ctrl-C while a reward component hangs must not leave the worker spinning as an orphan."""

import os
import signal

import pytest

from rlstruct import Prompt, Task, sandbox
from rlstruct.reward import RewardSpec
from rlstruct.sandbox import RewardPool, SandboxLimits


class HangingTask(Task):
    name = "hanging"

    def build_prompt(self, record):
        return Prompt([{"role": "user", "content": "?"}])

    def structure(self, record, completion):
        while True:
            pass

    def format(self, record, parsed):
        return 1.0

    content = validity = format


def test_interrupt_during_scoring_kills_busy_workers(monkeypatch):
    task = HangingTask()
    pool = RewardPool(task, RewardSpec.build(task, {}), SandboxLimits(timeout_s=30, workers=1)).__enter__()
    started = []
    real_start = sandbox._Worker.__init__

    def remember(self, *a, **k):
        real_start(self, *a, **k)
        started.append(self.pid)

    monkeypatch.setattr(sandbox._Worker, "__init__", remember)
    pool.close()
    calls = {"n": 0}

    def interrupted_wait(conns, timeout=None):
        calls["n"] += 1
        if calls["n"] > 3:  # the job is running (hanging) by now
            raise KeyboardInterrupt
        return []

    monkeypatch.setattr(sandbox, "wait", interrupted_wait)
    try:
        with pytest.raises(KeyboardInterrupt):
            pool.score([{}], ["x"])
        assert started
        for pid in started:
            with pytest.raises(ChildProcessError):  # killed and reaped: no such child any more
                os.waitpid(pid, os.WNOHANG)
    finally:  # if the pool failed to, do not leave a spinning process behind the test run
        for pid in started:
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
