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

A pool can hold several tasks (a mixture, :mod:`rlstruct.mixture`): each row is sent with its
route, the name of its task, and scored by that task's components and reward spec only. The workers
are forked once and hold every route.

The same workers refine error types (:meth:`RewardPool.refine`, ``Task.error_type``: plugin code on
model output too), so training and eval classify every step without forking again after the model
is loaded.

Workers die with their parent: on Linux each one asks the kernel for ``SIGKILL`` when the thread
that forked it ends (``PR_SET_PDEATHSIG``; used when forked from the main thread, which lives as
long as the process); otherwise a watchdog thread in the worker exits once its parent is gone. A
``kill -9`` of the main process therefore leaves no worker spinning. :class:`SandboxLimits`
refuses settings that would switch the bounds off by accident (a NaN or negative time-out...).

:func:`bounded_map` applies the same bounds to any per-item function; the data loader uses it to
check untrusted records (:func:`rlstruct.data.load_records`).
"""

from __future__ import annotations

import ctypes
import math
import os
import pickle
import signal
import sys
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection, Pipe, wait
from multiprocessing.sharedctypes import RawArray
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence, TypeVar

from .error_types import refine_error_type
from .errors import UsageError
from .reward import Breakdown, RewardSpec, combine, iter_components, score_inline
from .task import COMPONENTS, Record, Task, applicable_components


class SandboxSettingError(UsageError, ValueError):
    """A :class:`SandboxLimits` setting is out of range; the message names the setting."""


@dataclass(frozen=True)
class SandboxLimits:
    """Bounds applied to every reward component (checked on creation: see each field)."""

    timeout_s: float = 2.0
    """Wall-clock seconds one component may take before its worker is killed (finite, > 0)."""
    memory_mb: int = 1024
    """Extra address space (MiB) a worker may allocate beyond its size at fork time (integer > 0)."""
    workers: int = 2
    """Worker processes scoring in parallel (integer >= 0; 0: score inline, with no time or memory bound)."""

    def __post_init__(self) -> None:
        # The last line of defence: a NaN time-out never expires (every comparison with NaN is
        # false), and a negative worker count used to mean "inline, unbounded" silently.
        timeout = self.timeout_s
        is_number = isinstance(timeout, (int, float)) and not isinstance(timeout, bool)
        if not (is_number and math.isfinite(timeout) and timeout > 0):
            raise SandboxSettingError(f"timeout_s must be a finite number of seconds > 0, got {timeout!r}")
        for name, value, least in (("memory_mb", self.memory_mb, 1), ("workers", self.workers, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise SandboxSettingError(f"{name} must be an integer >= {least}, got {value!r}")


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
# enforce per-component deadlines without a message per component. A worker writes _START before
# _COMP, so a parent that sees a component running never pairs it with a stale start time.
_POS, _COMP, _START = 0, 1, 2
_IDLE = -1.0

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
_WATCH_PARENT_S = 0.2


def _load_prctl() -> Any:
    """libc's ``prctl`` on Linux (looked up once, in the parent), else ``None``."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _load_prctl()


def _watch_parent(parent_pid: int) -> None:
    while True:
        if os.getppid() != parent_pid:  # re-parented: the process that forked us is gone
            os._exit(1)
        time.sleep(_WATCH_PARENT_S)


def _die_with_parent(parent_pid: int, forked_on_main_thread: bool) -> None:
    """Make this (just forked) worker exit when ``parent_pid`` dies, even mid-computation.

    ``PR_SET_PDEATHSIG`` fires when the *thread* that forked us ends, so it is only used for a
    fork from the main thread; a fork from any other thread gets the watchdog thread instead.
    """
    armed = False
    if forked_on_main_thread and _PRCTL is not None:
        armed = _PRCTL(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
    if os.getppid() != parent_pid:  # the parent died before the signal was armed
        os._exit(1)
    if not armed:
        threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True).start()


def _fork(child_main: Callable[[Connection], None], memory_mb: int) -> tuple[int, Connection]:
    """Fork a bounded worker running ``child_main(conn)``; return its pid and the parent's end.

    The child ignores Ctrl-C (the parent handles it and kills us), dies with the parent, caps
    its address space at its size now plus ``memory_mb`` and never returns into the caller.
    """
    parent_end, child_end = Pipe(duplex=True)
    parent_pid = os.getpid()
    on_main = threading.current_thread() is threading.main_thread()
    # Flush so buffered output is not written twice (once by the child at exit).
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # child
        code = 0
        try:
            parent_end.close()
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            _die_with_parent(parent_pid, on_main)
            _set_memory_limit(memory_mb)
            child_main(child_end)
        except BaseException:  # noqa: BLE001 - never return into the parent's code
            code = 1
        finally:
            os._exit(code)
    child_end.close()
    return pid, parent_end


def _reap(pid: int, conn: Connection) -> None:
    """SIGKILL a worker, wait for it and close our end of its pipe."""
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass
    conn.close()


Routes = Mapping[str, tuple[Task, RewardSpec]]
"""Route name (a task's name) -> the task and reward spec that score the rows sent along it."""


_REFINE = "refine"
"""Kind of a refinement job, sent as ``(_REFINE, items)``; a scoring job is a plain list of rows."""


def _worker_main(conn: Connection, progress, routes: Routes) -> None:
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        if isinstance(job, tuple) and job[0] == _REFINE:
            conn.send(_refine_job(job[1], progress, routes))
        else:
            conn.send(_score_job(job, progress, routes))  # one message per job, not per component


def _refine_job(items: list[tuple[str, Record, str, Breakdown, str]], progress, routes: Routes) -> list[str]:
    """The refined error type of each ``(route, record, completion, breakdown, default)`` item."""
    out = []
    for pos, (route, record, completion, breakdown, default) in enumerate(items):
        progress[_START] = time.monotonic()  # start, then position, then busy: see _POS
        progress[_POS] = pos
        progress[_COMP] = 0
        out.append(refine_error_type(routes[route][0], record, completion, breakdown, default))
    progress[_COMP] = _IDLE
    return out


def _score_job(job: list[tuple[str, Record, str, tuple[int, ...]]], progress, routes: Routes) -> list[list[Any]]:
    """The scored components ``(name, value, error)`` of each ``(route, record, completion, skip)`` row."""
    results = []
    for pos, (route, record, completion, skip) in enumerate(job):
        progress[_POS] = pos
        items = []
        task, spec = routes[route]
        components = iter_components(task, spec, record, completion, skip=skip)
        index = 0
        while True:
            progress[_START] = time.monotonic()
            progress[_COMP] = index
            try:
                items.append(next(components))
            except StopIteration:
                break
            index += 1
        results.append(items)
    progress[_COMP] = _IDLE
    return results


class _Worker:
    def __init__(self, routes: Routes, memory_mb: int) -> None:
        self.progress = RawArray("d", 3)  # shared memory, inherited by the fork
        self.progress[_COMP] = _IDLE
        progress = self.progress
        self.pid, self.conn = _fork(lambda conn: _worker_main(conn, progress, routes), memory_mb)

    def running(self) -> tuple[int, int, float] | None:
        """(position in job, component index, start time) of the component being computed, or None."""
        comp = self.progress[_COMP]
        if comp == _IDLE:
            return None
        return int(self.progress[_POS]), int(comp), self.progress[_START]

    def kill(self) -> None:
        _reap(self.pid, self.conn)

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
    route: str
    record: Record
    completion: str
    skip: dict[int, str]  # component index -> why it was stopped (time-out or crash)
    timeouts: list[str]
    unexplained_crashes: int = 0


class RewardPool:
    """Scores completions, in parallel, with bounded components: for one task and reward spec, or for
    several (a mixture), each row by its own task's reward only.

    ``RewardPool(task, spec, limits)`` scores every row with ``task`` and ``spec``.
    ``RewardPool(routes={name: (task, spec), ...}, limits=limits)`` holds several; :meth:`score` then
    takes the route of each row. Workers are forked once and hold every route, so a mixture costs no
    more processes than one task.

    Use as a context manager; :meth:`score` is safe to call from any thread (one call at a time).
    Work goes to workers in jobs of several completions and comes back in one message per job;
    the per-component deadline is read from shared memory, so it costs no message.
    """

    max_job_size = 16

    def __init__(
        self,
        task: Task | None = None,
        spec: RewardSpec | None = None,
        limits: SandboxLimits | None = None,
        *,
        routes: Routes | None = None,
    ) -> None:
        if routes is None:
            if task is None or spec is None:
                raise TypeError("RewardPool needs a task and a spec, or routes")
            routes = {task.name: (task, spec)}
        elif task is not None or spec is not None:
            raise TypeError("RewardPool takes a task and a spec, or routes, not both")
        if not routes:
            raise ValueError("RewardPool needs at least one route")
        self.routes: dict[str, tuple[Task, RewardSpec]] = dict(routes)
        # the first route's task and spec (the only ones of a single-task pool)
        self.task, self.spec = next(iter(self.routes.values()))
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
        return _Worker(self.routes, self.limits.memory_mb)

    def _send(self, worker: _Worker, payload: Any) -> _Worker:
        """Send a job to ``worker``; one that died while idle is replaced and the job goes to the new one."""
        try:
            worker.conn.send(payload)
        except OSError:  # BrokenPipeError included
            worker.kill()
            worker = self._spawn()
            worker.conn.send(payload)
        return worker

    def _row_routes(self, n: int, routes: Sequence[str] | None) -> list[str]:
        """The route of each of ``n`` rows: ``routes`` checked, or the only route of the pool."""
        if routes is None:
            if len(self.routes) > 1:
                raise ValueError(f"this pool scores {len(self.routes)} tasks ({', '.join(self.routes)}); "
                                 "pass the task of each row as routes=")
            return [next(iter(self.routes))] * n
        routes = list(routes)
        if len(routes) != n:
            raise ValueError("routes and completions differ in length")
        unknown = sorted(set(routes) - set(self.routes))
        if unknown:
            raise ValueError(f"unknown route(s) {', '.join(map(repr, unknown))}; this pool scores {', '.join(self.routes)}")
        return routes

    def score(
        self, records: Sequence[Record], completions: Sequence[str], routes: Sequence[str] | None = None
    ) -> list[Breakdown]:
        """Score ``completions[i]`` against ``records[i]`` with the task and spec of ``routes[i]`` (a
        route name given at creation; ``None``: the pool's only route); results keep the input order."""
        if len(records) != len(completions):
            raise ValueError("records and completions differ in length")
        row_routes = self._row_routes(len(records), routes)
        if self._inline:
            return [score_inline(*self.routes[k], r, c) for k, r, c in zip(row_routes, records, completions)]
        if not self._idle:
            self._idle = [self._spawn() for _ in range(self.limits.workers)]
        return _ScoringCall(self, row_routes, records, completions).run()

    def refine(self, items: Sequence[tuple[str, Record, str, Breakdown, str]]) -> list[str]:
        """The error type of each ``(route, record, completion, breakdown, default)`` item, in input order:
        ``task.error_type(record, completion, breakdown)`` of the route's task when it names a class of
        :data:`rlstruct.error_types.ERROR_TYPES`, else ``default`` (also when it raises).

        Runs in the pool's workers (inline for an inline pool), each call bounded like a reward component:
        one that overruns ``limits.timeout_s`` or kills its worker keeps its default, the worker is replaced
        and the other items are still refined. Not to be called while :meth:`score` runs on another thread.
        """
        items = list(items)
        self._row_routes(len(items), [item[0] for item in items])  # unknown routes named before any work
        if self._inline:
            return [refine_error_type(self.routes[route][0], record, completion, breakdown, default)
                    for route, record, completion, breakdown, default in items]
        return _RefineCall(self, items).run()


_DIED = "worker process died (out of memory or a crash in native code)"


class _ScoringCall:
    """One :meth:`RewardPool.score` call on worker processes: the rows still to send (``todo``, a
    stack), the jobs out on workers (``busy``) and the breakdowns so far (``results``, input order).

    :meth:`run` loops dispatch -> collect -> expire until every row has a breakdown. A worker that
    overruns the time-out or dies is killed and replaced; the component it was running is marked
    (scored 0 with the reason) and its job re-queued, so the rows' other components still count.
    """

    def __init__(
        self, pool: RewardPool, row_routes: list[str], records: Sequence[Record], completions: Sequence[str]
    ) -> None:
        self.pool = pool
        self.timeout_s = pool.limits.timeout_s
        self.names_of = {k: spec.names for k, (_, spec) in pool.routes.items()}
        # a component a task does not implement stays None even when a crash lost the whole job
        self.absent_of = {
            k: {n: None for n in COMPONENTS if n not in applicable_components(task)}
            for k, (task, _) in pool.routes.items()
        }
        n = len(records)
        self.todo = [_Item(i, row_routes[i], records[i], completions[i], {}, []) for i in range(n)][::-1]
        self.results: list[Breakdown | None] = [None] * n
        self.busy: dict[Connection, tuple[_Worker, list[_Item]]] = {}
        self.job_size = max(1, min(pool.max_job_size, -(-n // pool.limits.workers)))

    def run(self) -> list[Breakdown]:
        try:
            while self.todo or self.busy:
                self._dispatch()
                self._collect()
                self._expire_overdue()
        finally:  # interrupted (Ctrl-C) or failed: never leave a busy worker spinning as an orphan
            for worker, _ in self.busy.values():
                worker.kill()
        return [r for r in self.results if r is not None]

    def _dispatch(self) -> None:
        """Hand a job of up to ``job_size`` rows to every idle worker while rows remain."""
        idle = self.pool._idle
        while self.todo and idle:
            job = [self.todo.pop() for _ in range(min(self.job_size, len(self.todo)))]
            self._start(idle.pop(), job)

    def _start(self, worker: _Worker, job: list[_Item]) -> None:
        payload = [(it.route, it.record, it.completion, tuple(it.skip)) for it in job]
        worker = self.pool._send(worker, payload)
        self.busy[worker.conn] = (worker, job)

    def _wait_s(self) -> float:
        """How long to wait for results: until the earliest component deadline, at most 50 ms."""
        now = time.monotonic()
        running = [w.running() for w, _ in self.busy.values()]
        wait_s = min((r[2] + self.timeout_s - now for r in running if r), default=0.05)
        return max(0.0, min(wait_s, 0.05))

    def _collect(self) -> None:
        """Take the results of every job that came back; a worker whose pipe broke died mid-job."""
        for conn in wait(list(self.busy), timeout=self._wait_s()):
            worker, job = self.busy.pop(conn)  # type: ignore[index]
            try:
                scored_job = conn.recv()
            except (EOFError, OSError):
                self.pool.crashes += 1
                self._fail(worker, job, _DIED, timed_out=False)
                continue
            for item, scored in zip(job, scored_job):
                self._finish(item, scored)
            self.pool._idle.append(worker)

    def _expire_overdue(self) -> None:
        """Kill every worker whose running component has overrun the time-out."""
        now = time.monotonic()
        for conn, (worker, job) in list(self.busy.items()):
            where = worker.running()
            if where is not None and now - where[2] > self.timeout_s:
                del self.busy[conn]
                self.pool.timeouts += 1
                self._fail(worker, job, f"timeout: took over {self.timeout_s:g} s", timed_out=True)

    def _fail(self, worker: _Worker, job: list[_Item], why: str, *, timed_out: bool) -> None:
        """Kill the worker; mark the running component; re-queue the job (its results are lost)."""
        where = worker.running()
        worker.kill()
        self.pool._idle.append(self.pool._spawn())
        if where is not None and where[0] < len(job) and where[1] < len(self.names_of[job[where[0]].route]):
            item = job[where[0]]
            item.skip[where[1]] = why
            if timed_out:
                item.timeouts.append(self.names_of[item.route][where[1]])
            self.todo.extend(reversed(job))
            return
        self._retry_or_give_up(job, why)

    def _retry_or_give_up(self, job: list[_Item], why: str) -> None:
        # Died outside any component (e.g. sending results): retry once, then give up on the job.
        for item in job:
            item.unexplained_crashes += 1
            if item.unexplained_crashes >= 2:
                item.skip = {i: why for i in range(len(self.names_of[item.route]))}
                self._finish(item, [])
            else:
                self.todo.append(item)

    def _finish(self, item: _Item, scored: list[tuple[str, float, str | None]]) -> None:
        """Assemble the row's breakdown from its scored components and the ones skipped (with why)."""
        names, absent, spec = self.names_of[item.route], self.absent_of[item.route], self.pool.routes[item.route][1]
        components, errors = {}, {}
        for name, value, error in scored:
            components[name] = value
            if error:
                errors[name] = error
        for index, why in item.skip.items():
            errors[names[index]] = why
        self.results[item.index] = Breakdown(
            reward=combine(spec, components),
            components={n: components.get(n, absent.get(n, 0.0)) for n in names},
            errors=errors,
            timeouts=item.timeouts,
        )


_UNEXPLAINED = -1
"""A refinement job's worker died outside any item (e.g. sending its results)."""


class _RefineCall:
    """One :meth:`RewardPool.refine` call: all items still to refine go to one worker as one job.

    A job comes back in one message, so when an item overruns or kills the worker, the results of the
    items before it are lost too: that item keeps its default, the worker is replaced and the job is
    sent again without it. A worker that dies outside any item gets one retry; a second such death
    leaves the rest at their defaults (never a loop).
    """

    def __init__(self, pool: RewardPool, items: list[tuple[str, Record, str, Breakdown, str]]) -> None:
        self.pool = pool
        self.items = items
        self.results = [item[4] for item in items]  # every item keeps its default until refined

    def run(self) -> list[str]:
        todo = list(range(len(self.items)))
        unexplained = 0
        while todo:
            failed_at = self._run_job(todo)
            if failed_at is None:
                break
            if failed_at == _UNEXPLAINED:
                unexplained += 1
                if unexplained >= 2:
                    break
                continue
            todo = todo[:failed_at] + todo[failed_at + 1 :]
        return self.results

    def _run_job(self, todo: list[int]) -> int | None:
        """Refine the items ``todo`` on an idle worker (spawned if none is); ``None`` when it answered,
        else the position in ``todo`` of the item that overran or crashed (or ``_UNEXPLAINED``)."""
        pool = self.pool
        worker = pool._idle.pop() if pool._idle else pool._spawn()
        payload = (_REFINE, [self.items[i] for i in todo])
        try:
            worker = pool._send(worker, payload)
            answer, failed_at = self._wait(worker, len(todo))
        except BaseException:  # interrupted (Ctrl-C) or failed: never leave a busy worker spinning
            worker.kill()
            raise
        if answer is None:
            worker.kill()
            pool._idle.append(pool._spawn())
            return failed_at
        for i, value in zip(todo, answer, strict=True):
            self.results[i] = value
        pool._idle.append(worker)
        return None

    def _wait(self, worker: _Worker, n: int) -> tuple[list[str] | None, int]:
        """The worker's answer, or ``None`` and the position of the item that overran or crashed it."""
        timeout_s = self.pool.limits.timeout_s
        while True:
            where = worker.running()
            now = time.monotonic()
            if where is not None and now - where[2] > timeout_s:
                return None, where[0]
            wait_s = 0.05 if where is None else max(0.0, min(0.05, where[2] + timeout_s - now))
            if not worker.conn.poll(wait_s):
                continue
            try:
                return worker.conn.recv(), _UNEXPLAINED
            except (EOFError, OSError):
                where = worker.running()  # what it was running when it died
                return None, where[0] if where is not None and where[0] < n else _UNEXPLAINED


# -- any per-item function, bounded -------------------------------------------------------------
T = TypeVar("T")
R = TypeVar("R")


class BoundedCallError(Exception):
    """An item of :func:`bounded_map` overran its time or memory bound, crashed its worker or
    could not be sent to it. ``index`` is the item's position in the input."""

    def __init__(self, index: int, reason: str) -> None:
        super().__init__(reason)
        self.index = index
        self.reason = reason


_OK, _RAISED, _OUT_OF_MEMORY = 0, 1, 2


def _map_worker_main(conn: Connection, progress, fn: Callable[[Any], Any]) -> None:
    while True:
        try:
            batch = conn.recv()
        except (EOFError, OSError):
            return
        if batch is None:
            return
        out: list[tuple[int, bytes | None, str]] = []
        for pos, item in enumerate(batch):
            progress[_START] = time.monotonic()  # start, then position, then busy: see _POS
            progress[_POS] = pos
            progress[_COMP] = 0
            try:
                out.append((_OK, pickle.dumps(fn(item)), ""))
            except MemoryError:
                out.append((_OUT_OF_MEMORY, None, ""))
                break
            except Exception as exc:  # noqa: BLE001 - handed to the parent, which raises it
                out.append((_RAISED, *_pickled_exception(exc)))
                break  # the first failure ends the batch: later items must not run (or hang) first
        progress[_COMP] = _IDLE
        conn.send(out)


def _pickled_exception(exc: BaseException) -> tuple[bytes | None, str]:
    text = f"{type(exc).__name__}: {str(exc)[:500]}"
    try:
        blob = pickle.dumps(exc)
        pickle.loads(blob)  # some exceptions pickle but cannot be rebuilt
    except Exception:  # noqa: BLE001
        return None, text
    return blob, text


def _batches(items: Iterable[T], size: int) -> Iterator[tuple[list[T], Exception | None]]:
    """Batches of ``items``; an error raised while reading items ends the batch it falls in
    and comes with it, so the items before it are processed first (errors keep their order)."""
    iterator = iter(items)
    while True:
        batch: list[T] = []
        try:
            for item in iterator:
                batch.append(item)
                if len(batch) >= size:
                    break
        except Exception as exc:  # noqa: BLE001 - re-raised by the caller after this batch
            yield batch, exc
            return
        if not batch:
            return
        yield batch, None


def _pickled_batch(batch: list[Any], done: int) -> bytes:
    try:
        return pickle.dumps(batch)
    except Exception:  # noqa: BLE001 - find the item at fault (RecursionError included)
        for offset, item in enumerate(batch):
            try:
                pickle.dumps(item)
            except Exception as exc:  # noqa: BLE001 - e.g. nested too deeply to pickle
                raise BoundedCallError(
                    done + offset, f"could not start: the item cannot be sent to a worker ({type(exc).__name__})"
                ) from None
        raise


def bounded_map(
    fn: Callable[[T], R], items: Iterable[T], limits: SandboxLimits, batch_size: int = 32
) -> Iterator[R]:
    """Yield ``fn(item)`` for every item, in order, each call bounded by ``limits``.

    ``fn`` runs in one forked worker (with ``limits.workers == 0``, or where ``os.fork`` is
    missing, it runs inline, unbounded). A call past ``limits.timeout_s`` seconds or
    ``limits.memory_mb`` MiB, or one that kills the worker, raises :class:`BoundedCallError`
    with the item's index. An exception ``fn`` raises is raised here (rebuilt from its pickle; a
    ``RuntimeError`` with its text when it cannot be). Either way nothing after that item runs
    and the worker is killed. Results must be picklable. Uses no signals, so it works on any
    thread.
    """
    if limits.workers <= 0 or not hasattr(os, "fork"):
        yield from map(fn, items)
        return
    progress = RawArray("d", 3)
    progress[_COMP] = _IDLE
    pid, conn = _fork(lambda end: _map_worker_main(end, progress, fn), limits.memory_mb)
    done = 0
    try:
        for batch, read_error in _batches(items, batch_size):
            if batch:
                conn.send_bytes(_pickled_batch(batch, done))
                for offset, (kind, blob, text) in enumerate(_wait_for_batch(conn, progress, limits, done)):
                    if kind == _OUT_OF_MEMORY:
                        raise BoundedCallError(done + offset, f"ran out of memory (over {limits.memory_mb} MiB)")
                    if kind == _RAISED:
                        if blob is None:
                            raise RuntimeError(text)
                        raise pickle.loads(blob)
                    yield pickle.loads(blob)  # type: ignore[arg-type]
                done += len(batch)
            if read_error is not None:
                raise read_error
    finally:
        _reap(pid, conn)  # finished, failed or abandoned: the worker never outlives the call


def _wait_for_batch(conn: Connection, progress, limits: SandboxLimits, done: int) -> list[Any]:
    """The worker's results for the batch just sent; :class:`BoundedCallError` on an overrun."""
    while not conn.poll(0.05):
        if progress[_COMP] == _IDLE:
            continue  # finished: the results are on their way
        where, started = int(progress[_POS]), progress[_START]
        if time.monotonic() - started > limits.timeout_s:
            raise BoundedCallError(done + where, f"took over {limits.timeout_s:g} s")
    try:
        return conn.recv()
    except (EOFError, OSError):
        where = int(progress[_POS]) if progress[_COMP] != _IDLE else 0
        raise BoundedCallError(
            done + where, f"crashed its worker (out of memory, over {limits.memory_mb} MiB, or a crash in native code)"
        ) from None
