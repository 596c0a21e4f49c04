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
from typing import Sequence

from .reward import Breakdown, RewardSpec, combine, iter_components, score_inline
from .task import COMPONENTS, Record, Task

DONE = "__done__"


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


def _worker_main(conn: Connection, task: Task, spec: RewardSpec, memory_mb: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and kills us
    _set_memory_limit(memory_mb)
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        record, completion, start = job
        for item in iter_components(task, spec, record, completion, start):
            conn.send(item)
        conn.send(DONE)


class _Worker:
    def __init__(self, task: Task, spec: RewardSpec, memory_mb: int) -> None:
        parent, child = Pipe(duplex=True)
        # Flush so buffered output is not written twice (once by the child at exit).
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # child
            parent.close()
            code = 0
            try:
                _worker_main(child, task, spec, memory_mb)
            except BaseException:  # noqa: BLE001 - never return into the parent's code
                code = 1
            finally:
                os._exit(code)
        child.close()
        self.pid, self.conn = pid, parent

    def kill(self) -> None:
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self._reap()

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

    def _reap(self) -> None:
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass
        self.conn.close()


@dataclass
class _Job:
    index: int
    record: Record
    completion: str
    components: dict[str, float]
    errors: dict[str, str]
    timeouts: list[str]
    next_name: int = 0  # index into spec.names of the component we wait for
    deadline: float = 0.0


class RewardPool:
    """Scores completions for one task and reward spec, in parallel, with bounded components.

    Use as a context manager; :meth:`score` is safe to call from any thread (one call at a time).
    """

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
        pending = [
            _Job(i, records[i], completions[i], {}, {}, []) for i in range(len(records))
        ][::-1]
        results: list[Breakdown | None] = [None] * len(records)
        busy: dict[Connection, tuple[_Worker, _Job]] = {}

        def start(worker: _Worker, job: _Job) -> None:
            try:
                worker.conn.send((job.record, job.completion, job.next_name))
            except (OSError, BrokenPipeError):
                worker.kill()
                worker = self._spawn()
                worker.conn.send((job.record, job.completion, job.next_name))
            job.deadline = time.monotonic() + self.limits.timeout_s
            busy[worker.conn] = (worker, job)

        def finish(job: _Job) -> None:
            for name in names:
                job.components.setdefault(name, 0.0)
            results[job.index] = Breakdown(
                reward=combine(self.spec, job.components),
                components={n: job.components[n] for n in names},
                errors=job.errors,
                timeouts=job.timeouts,
            )

        def fail_current(job: _Job, message: str) -> None:
            """The component we waited for failed hard: score it 0 and skip to the next extra."""
            name = names[job.next_name]
            job.components[name] = 0.0
            job.errors[name] = message
            if job.next_name < len(COMPONENTS):  # gated: the rest of the hierarchy is 0
                for later in COMPONENTS[job.next_name + 1 :]:
                    job.components[later] = 0.0
                job.next_name = len(COMPONENTS)
            else:
                job.next_name += 1

        while pending or busy:
            while pending and self._idle:
                start(self._idle.pop(), pending.pop())
            now = time.monotonic()
            timeout = max(0.0, min(job.deadline for _, job in busy.values()) - now)
            for conn in wait(list(busy), timeout=timeout):
                worker, job = busy.pop(conn)  # type: ignore[index]
                try:
                    item = conn.recv()
                except (EOFError, OSError):
                    self.crashes += 1
                    worker.kill()
                    fail_current(job, "worker process died (out of memory or a crash in native code)")
                    self._requeue(job, pending, finish, len(names))
                    self._idle.append(self._spawn())
                    continue
                if item == DONE:
                    finish(job)
                    self._idle.append(worker)
                    continue
                name, value, error = item
                job.components[name] = value
                if error:
                    job.errors[name] = error
                job.next_name = names.index(name) + 1
                job.deadline = time.monotonic() + self.limits.timeout_s
                busy[conn] = (worker, job)
            now = time.monotonic()
            for conn, (worker, job) in list(busy.items()):
                if now >= job.deadline:
                    del busy[conn]
                    self.timeouts += 1
                    worker.kill()
                    job.timeouts.append(names[job.next_name])
                    fail_current(job, f"timeout: took over {self.limits.timeout_s:g} s")
                    self._requeue(job, pending, finish, len(names))
                    self._idle.append(self._spawn())
        return [r for r in results if r is not None]

    @staticmethod
    def _requeue(job: _Job, pending: list[_Job], finish, total: int) -> None:
        if job.next_name >= total:
            finish(job)
        else:
            pending.append(job)
