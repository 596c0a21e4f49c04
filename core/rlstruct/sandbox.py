"""Time- and memory-bounded reward scoring in forked worker processes.

Why processes: a reward component runs on untrusted model output, and pure-Python code cannot be
interrupted from outside. ``signal.alarm`` only works on the main thread of the main interpreter;
threads cannot be killed. A forked worker can be killed from any thread of any process, so the
same bound holds when scoring runs off the main thread, inside a DataLoader worker or a torchrun
rank. Workers are made with ``os.fork`` directly (not ``multiprocessing.Process``), which also
works inside daemonic processes.

Each worker caps its own address space (``RLIMIT_AS``) at its size after the fork plus
``memory_mb``, so a component that allocates without bound gets ``MemoryError`` (scored 0 and
reported) instead of taking the machine down. The parent waits at most ``timeout_s`` for each
component; when one overruns, the worker is killed, that component scores 0 with a ``timeout``
error (and so do the hierarchical components after it, by gating) and a fresh worker carries on.

Create the pool *before* loading a model: forking a small process is cheaper, and the workers
never touch torch.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection, Pipe, wait
from multiprocessing.sharedctypes import RawArray
from typing import Sequence

from .reward import Breakdown, RewardSpec, combine, iter_components, score_inline
from .task import Record, Task


@dataclass(frozen=True)
class SandboxLimits:
    """Bounds applied to every reward component."""

    timeout_s: float = 2.0
    """Wall-clock seconds one component may take before its worker is killed."""
    memory_mb: int = 1024
    """Extra address space (MiB) a worker may allocate beyond its size at fork time."""
    workers: int = 2
    """Worker processes scoring in parallel (0: score inline, with no time or memory bound)."""


def _set_memory_limit(memory_mb: int) -> None:
    try:
        import resource

        with open("/proc/self/statm") as fh:
            pages = int(fh.read().split()[0])
        current = pages * os.sysconf("SC_PAGE_SIZE")
        limit = current + memory_mb * 1024 * 1024
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    except (OSError, ValueError, ImportError):  # not Linux: time bound only
        pass


# Shared progress slots (doubles): what a worker is computing right now, read by the parent to
# enforce per-component deadlines without a message per component.
_POS, _COMP, _START = 0, 1, 2
_IDLE = -1.0


def _worker_main(conn: Connection, progress, task: Task, spec: RewardSpec, memory_mb: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and kills us
    _set_memory_limit(memory_mb)
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        results = []
        for pos, (record, completion, skip) in enumerate(job):
            progress[_POS] = pos
            items = []
            components = iter_components(task, spec, record, completion, skip=skip)
            index = 0
            while True:
                progress[_COMP], progress[_START] = index, time.monotonic()
                try:
                    items.append(next(components))
                except StopIteration:
                    break
                index += 1
            results.append(items)
        progress[_COMP] = _IDLE
        conn.send(results)  # one message per job, not per component


class _Worker:
    def __init__(self, task: Task, spec: RewardSpec, memory_mb: int) -> None:
        parent, child = Pipe(duplex=True)
        self.progress = RawArray("d", 3)  # shared memory, inherited by the fork
        self.progress[_COMP] = _IDLE
        # Flush so buffered output is not written twice (once by the child at exit).
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # child
            parent.close()
            code = 0
            try:
                _worker_main(child, self.progress, task, spec, memory_mb)
            except BaseException:  # noqa: BLE001 - never return into the parent's code
                code = 1
            finally:
                os._exit(code)
        child.close()
        self.pid, self.conn = pid, parent

    def running(self) -> tuple[int, int, float] | None:
        """(position in job, component index, start time) of the component being computed, or None."""
        comp = self.progress[_COMP]
        if comp == _IDLE:
            return None
        return int(self.progress[_POS]), int(comp), self.progress[_START]

    def kill(self) -> None:
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass
        self.conn.close()

    def close(self) -> None:
        try:
            self.conn.send(None)
        except (OSError, BrokenPipeError):
            pass
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            if os.waitpid(self.pid, os.WNOHANG) != (0, 0):
                self.conn.close()
                return
            time.sleep(0.01)
        self.kill()


@dataclass
class _Item:
    index: int
    record: Record
    completion: str
    skip: dict[int, str]  # component index -> why it was stopped (time-out or crash)
    timeouts: list[str]
    unexplained_crashes: int = 0


class RewardPool:
    """Scores completions for one task and reward spec, in parallel, with bounded components.

    Use as a context manager; :meth:`score` is safe to call from any thread (one call at a time).
    Work goes to workers in jobs of several completions and comes back in one message per job;
    the per-component deadline is read from shared memory, so it costs no message.
    """

    max_job_size = 16

    def __init__(self, task: Task, spec: RewardSpec, limits: SandboxLimits | None = None) -> None:
        self.task, self.spec = task, spec
        self.limits = limits or SandboxLimits()
        self._inline = self.limits.workers <= 0 or not hasattr(os, "fork")
        self._idle: list[_Worker] = []
        self.timeouts = 0
        self.crashes = 0

    def __enter__(self) -> "RewardPool":
        if not self._inline:
            self._idle = [self._spawn() for _ in range(self.limits.workers)]
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for worker in self._idle:
            worker.close()
        self._idle = []

    def _spawn(self) -> _Worker:
        return _Worker(self.task, self.spec, self.limits.memory_mb)

    def score(self, records: Sequence[Record], completions: Sequence[str]) -> list[Breakdown]:
        """Score ``completions[i]`` against ``records[i]``; results keep the input order."""
        if len(records) != len(completions):
            raise ValueError("records and completions differ in length")
        if self._inline:
            return [score_inline(self.task, self.spec, r, c) for r, c in zip(records, completions)]
        if not self._idle:
            self._idle = [self._spawn() for _ in range(self.limits.workers)]
        names = self.spec.names
        todo = [_Item(i, records[i], completions[i], {}, []) for i in range(len(records))][::-1]
        results: list[Breakdown | None] = [None] * len(records)
        busy: dict[Connection, tuple[_Worker, list[_Item]]] = {}
        job_size = max(1, min(self.max_job_size, -(-len(records) // self.limits.workers)))

        def start(worker: _Worker, job: list[_Item]) -> None:
            payload = [(it.record, it.completion, tuple(it.skip)) for it in job]
            try:
                worker.conn.send(payload)
            except (OSError, BrokenPipeError):  # died while idle: replace it
                worker.kill()
                worker = self._spawn()
                worker.conn.send(payload)
            busy[worker.conn] = (worker, job)

        def finish(item: _Item, scored: list[tuple[str, float, str | None]]) -> None:
            components, errors = {}, {}
            for name, value, error in scored:
                components[name] = value
                if error:
                    errors[name] = error
            for index, why in item.skip.items():
                errors[names[index]] = why
            results[item.index] = Breakdown(
                reward=combine(self.spec, components),
                components={n: components.get(n, 0.0) for n in names},
                errors=errors,
                timeouts=item.timeouts,
            )

        def fail(worker: _Worker, job: list[_Item], why: str, timed_out: bool) -> None:
            """Kill the worker; mark the running component; re-queue the job (its results are lost)."""
            where = worker.running()
            worker.kill()
            self._idle.append(self._spawn())
            if where is not None and where[0] < len(job) and where[1] < len(names):
                item = job[where[0]]
                item.skip[where[1]] = why
                if timed_out:
                    item.timeouts.append(names[where[1]])
                todo.extend(reversed(job))
                return
            # Died outside any component (e.g. sending results): retry once, then give up on the job.
            for item in job:
                item.unexplained_crashes += 1
                if item.unexplained_crashes >= 2:
                    item.skip = {i: why for i in range(len(names))}
                    finish(item, [])
                else:
                    todo.append(item)

        try:
            while todo or busy:
                while todo and self._idle:
                    job = [todo.pop() for _ in range(min(job_size, len(todo)))]
                    start(self._idle.pop(), job)
                now = time.monotonic()
                deadlines = [w.running() for w, _ in busy.values()]
                wait_s = min((r[2] + self.limits.timeout_s - now for r in deadlines if r), default=0.05)
                for conn in wait(list(busy), timeout=max(0.0, min(wait_s, 0.05))):
                    worker, job = busy.pop(conn)  # type: ignore[index]
                    try:
                        scored_job = conn.recv()
                    except (EOFError, OSError):
                        self.crashes += 1
                        fail(worker, job, "worker process died (out of memory or a crash in native code)", False)
                        continue
                    for item, scored in zip(job, scored_job):
                        finish(item, scored)
                    self._idle.append(worker)
                now = time.monotonic()
                for conn, (worker, job) in list(busy.items()):
                    where = worker.running()
                    if where is not None and now - where[2] > self.limits.timeout_s:
                        del busy[conn]
                        self.timeouts += 1
                        fail(worker, job, f"timeout: took over {self.limits.timeout_s:g} s", True)
        finally:  # interrupted (Ctrl-C) or failed: never leave a busy worker spinning as an orphan
            for worker, _ in busy.values():
                worker.kill()
        return [r for r in results if r is not None]
