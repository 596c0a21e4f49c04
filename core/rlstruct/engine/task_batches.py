"""The prompts of each training step, for one task or a mixture, with curricula moving their difficulty.

:class:`TrainingTasks` holds the tasks of a run (bound by :func:`rlstruct.mixture.bind_tasks`, or one
task handed to :func:`rlstruct.engine.grpo.train`), their training records and rendered prompts, and
their curriculum schedules. Each step it

1. splits the step's P prompts between the tasks (:func:`rlstruct.mixture.step_counts`) and takes each
   task's records from its own seeded stream (:func:`rlstruct.mixture.records_at`): a group is always
   G completions of one record of one task, and everything depends on ``(seed, step)`` alone;
2. regenerates a task's synthetic records when its schedule gives a new difficulty (the last few
   difficulties are kept, so a schedule going back and forth does not regenerate);
3. after scoring, reports each task's means and difficulty and shows each schedule its task's mean
   reward (:meth:`TrainingTasks.step_metrics`).

A single task takes exactly the records it took before mixtures existed
(:func:`rlstruct.engine.grpo.prompt_indices`), so single-task runs are unchanged.
"""

from __future__ import annotations

import sys
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from ..config import Config
from ..data import DataError, load_records
from ..mixture import MixtureTask, TaskEntry, TaskPositions, records_at, step_counts, task_metrics
from ..reward import Breakdown, RewardSpec
from ..task import Record, Task

if TYPE_CHECKING:
    from ..sandbox import RewardPool

Render = Callable[[Task, list[Record]], list[str]]
"""Renders records of a task into prompt texts and checks their length (the trainer's chat template)."""

_CACHED_DIFFICULTIES = 4
"""Record sets kept per task, by difficulty (a linear schedule needs one, an adaptive one a few)."""


@dataclass
class StepBatch:
    """What one step trains on: P prompts, and N = P·G group-contiguous rows."""

    tasks: list[str]
    """The task of each prompt."""
    prompts: list[str]
    """Each prompt, rendered."""
    records: list[Record]
    """The record of each row (G rows per prompt, a group's rows next to each other)."""
    routes: list[str]
    """The task of each row (the reward pool's route)."""
    difficulty: dict[str, float] = field(default_factory=dict)
    """The difficulty of each task that has a schedule, at this step."""


class _TaskData:
    """One task's records and prompts at its current difficulty, with a few earlier sets kept."""

    def __init__(self, bound: MixtureTask) -> None:
        self.bound = bound
        self.difficulty: float | None = None
        self.records: list[Record] = []
        self.prompts: list[str] = []  # empty until a renderer is set
        self._cache: OrderedDict[float | None, tuple[list[Record], list[str]]] = OrderedDict()

    def load(self, difficulty: float | None, warn: Callable[[str], None], render: Render | None) -> None:
        """Make the records at ``difficulty`` current (from the cache, else loaded and, with ``render``, rendered)."""
        if difficulty in self._cache:
            self._cache.move_to_end(difficulty)
            self.records, self.prompts = self._cache[difficulty]
        else:
            self.records = _load_training_records(self.bound, difficulty, warn)
            self.prompts = render(self.bound.task, self.records) if render is not None else []
            self._cache[difficulty] = (self.records, self.prompts)
            while len(self._cache) > _CACHED_DIFFICULTIES:
                self._cache.popitem(last=False)
        self.difficulty = difficulty


def _load_training_records(bound: MixtureTask, difficulty: float | None, warn: Callable[[str], None]) -> list[Record]:
    """A task's training records (``difficulty`` for its synthetic generator), skipped rows reported."""
    from ..data_skip import SkippedRecords

    s = bound.settings
    skipped = SkippedRecords() if s.skip_bad_records else None
    records = load_records(bound.task, s.source, s.train_split, s.train_limit, s.data_seed,
                           difficulty=difficulty, skipped=skipped)
    for line in skipped.report() if skipped is not None else []:
        warn(line if line.startswith(" ") else f"rlstruct: warning: {line}")
    if not records:
        raise DataError(f"task {bound.name!r}: no training records from source {s.source!r}")
    return records


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class TrainingTasks:
    """The tasks of a run and the records each step draws from them (see the module docstring)."""

    def __init__(
        self, tasks: Sequence[MixtureTask], *, seed: int, prompts_per_step: int, group_size: int, mixture: bool
    ) -> None:
        if not tasks:
            raise ValueError("a run needs at least one task")
        self.tasks = list(tasks)
        self.seed, self.per_step, self.group_size = seed, prompts_per_step, group_size
        self.mixture = mixture
        """Whether the config is a mixture: metrics then carry per-task keys, difficulty as difficulty/<task>."""
        self._data = [_TaskData(t) for t in self.tasks]
        self._positions = TaskPositions([t.weight for t in self.tasks], prompts_per_step, seed)
        self._render: Render | None = None
        self._warn: Callable[[str], None] = _stderr

    @classmethod
    def for_run(cls, cfg: Config, task: Task | Sequence[MixtureTask], spec: RewardSpec | None) -> "TrainingTasks":
        """The tasks of ``train(cfg, task, spec)``: one task and its spec (with ``[task]``'s settings,
        difficulty and curriculum), or tasks bound by :func:`rlstruct.mixture.bind_tasks`."""
        from ..mixture import is_mixture

        if isinstance(task, Task):
            if spec is None:
                raise TypeError("train() needs the task's RewardSpec")
            entry = TaskEntry("task", cfg.task, 1.0, dict(cfg.reward.weights), dict(cfg.reward.extras), "reward")
            bound = [MixtureTask(entry, task, spec, entry.schedule())]
        else:  # fresh schedules: a run never starts from another run's curriculum state
            bound = [MixtureTask(t.entry, t.task, t.spec, t.entry.schedule()) for t in task]
        return cls(bound, seed=cfg.run.seed, prompts_per_step=cfg.grpo.prompts_per_step,
                   group_size=cfg.grpo.group_size, mixture=is_mixture(cfg) or len(bound) > 1)

    # -- set-up ------------------------------------------------------------------------------------------------
    def load(self, warn: Callable[[str], None] = _stderr) -> None:
        """Load every task's training records at its first step's difficulty (before the model loads)."""
        self._warn = warn
        for data in self._data:
            schedule = data.bound.schedule
            data.load(None if schedule is None else schedule.difficulty(0), warn, None)

    def set_renderer(self, render: Render) -> None:
        """Render every current prompt now (a prompt too long stops the run before step 1); record sets
        of a later difficulty are rendered and checked as they are generated."""
        self._render = render
        for data in self._data:
            data.prompts[:] = render(data.bound.task, data.records)

    @property
    def routes(self) -> dict[str, tuple[Task, RewardSpec]]:
        """``{task name: (task, spec)}`` for :class:`rlstruct.sandbox.RewardPool`."""
        return {t.name: (t.task, t.spec) for t in self.tasks}

    @property
    def first(self) -> tuple[list[Record], list[str]]:
        """The first task's current records and prompts."""
        return self._data[0].records, self._data[0].prompts

    # -- each step ----------------------------------------------------------------------------------------------
    def difficulties(self, step: int) -> dict[str, float]:
        """The difficulty of each task with a schedule at ``step``."""
        return {t.name: t.schedule.difficulty(step) for t in self.tasks if t.schedule is not None}

    def batch(self, step: int) -> StepBatch:
        """The prompts and rows of ``step`` (records regenerated first where a difficulty moved)."""
        if self._render is None:
            raise RuntimeError("set_renderer() must be called before batch()")
        counts = step_counts([t.weight for t in self.tasks], self.per_step, step, self.seed)
        positions = self._positions(step)
        difficulty = self.difficulties(step)
        out = StepBatch([], [], [], [], difficulty)
        for data, count, position in zip(self._data, counts, positions):
            if count == 0:
                continue
            name = data.bound.name
            if name in difficulty and difficulty[name] != data.difficulty:
                data.load(difficulty[name], self._warn, self._render)
            # one task: the stream of prompt_indices(), so single-task runs take the records they always took
            key = str(self.seed) if len(self.tasks) == 1 else f"{self.seed}:{name}"
            for i in records_at(len(data.records), position, count, key):
                out.tasks.append(name)
                out.prompts.append(data.prompts[i])
                out.records.extend([data.records[i]] * self.group_size)
                out.routes.extend([name] * self.group_size)
        return out

    def step_metrics(self, step: int, batch: StepBatch, breakdowns: Sequence[Breakdown]) -> dict[str, Any]:
        """The step's per-task figures and difficulties; shows each schedule its task's mean reward.

        A mixture gets ``reward/<task>``, ``reward/<task>/<component>``, ``rows/<task>`` and
        ``difficulty/<task>``; a single task only ``difficulty`` (when it has a schedule).
        """
        out: dict[str, Any] = {}
        if self.mixture:
            out.update(task_metrics(batch.routes, breakdowns, {t.name: t.spec.names for t in self.tasks}))
        for t in self.tasks:
            if t.schedule is None:
                continue
            out["difficulty" if not self.mixture else f"difficulty/{t.name}"] = batch.difficulty[t.name]
            rewards = [b.reward for b, route in zip(breakdowns, batch.routes) if route == t.name]
            if rewards:  # a task without prompts this step neither extends nor ends a streak
                t.schedule.observe(step, sum(rewards) / len(rewards))
        return out

    def classify(
        self, batch: StepBatch, completions: Sequence[str], breakdowns: Sequence[Breakdown],
        truncated: Sequence[bool], pool: RewardPool,
    ) -> list[str | None]:
        """The error type of every row (:func:`rlstruct.error_types.classify_completions`), each row
        classified by its own task.

        ``pool``: the run's reward pool (built from :attr:`routes`); the refinement runs in its workers,
        bounded by its limits, each task's rows along the route of its name (no worker forked per call)."""
        from ..error_types import classify_completions

        types: list[str | None] = [None] * len(completions)
        for t in self.tasks:
            rows = [i for i, route in enumerate(batch.routes) if route == t.name]
            if not rows:
                continue
            found = classify_completions(
                t.task, [batch.records[i] for i in rows], [completions[i] for i in rows],
                [breakdowns[i] for i in rows], [bool(truncated[i]) for i in rows], pool.limits, pool=pool, route=t.name,
            )
            for i, value in zip(rows, found):
                types[i] = value
        return types

    # -- checkpoints ------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """What the schedules remember (``{task: state}``), for ``TrainState.extra["curriculum"]``."""
        return {t.name: t.schedule.state_dict() for t in self.tasks if t.schedule is not None}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` (a resumed run's schedules continue where they were)."""
        for t in self.tasks:
            if t.schedule is not None and t.name in state:
                t.schedule.load_state_dict(state[t.name])
