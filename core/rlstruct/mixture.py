"""Several tasks in one run: ``[[task.mixture]]`` entries, how each step draws prompts from them,
and the per-task figures of a step.

A config names either one task (``[task] name = ...``) or several::

    [task]
    train_limit = 512            # every key of [task] is the default of each entry
    [[task.mixture]]
    name = "json-recipes"
    weight = 2.0                 # share of the prompts, relative to the other entries (default 1)
    [[task.mixture]]
    name = "xml-records"
    source = "data/po.jsonl"
    [task.mixture.reward]        # this task's own reward weights and extras (default: [reward]'s)
    weights = {validity = 2.0}

:func:`task_entries` turns either form into a list of :class:`TaskEntry` (a single ``[task]`` is one
entry of weight 1), checking every key with an error that names the entry (``task.mixture[1].source``,
entries counted from 0). :func:`bind_tasks` looks the tasks up in a plugin manager and builds each
one's :class:`~rlstruct.reward.RewardSpec` and curriculum schedule: the trainer is handed the bound
tasks and never imports a plugin.

Sampling (:func:`step_counts`, :class:`TaskPositions`): the P prompts of a step are split between the
tasks in proportion to their weights: each task gets the whole part of its share ``P·w/Σw``, and the
remaining prompts go to tasks with probability equal to the fractional parts (systematic sampling, so
every step's counts are as close to the weights as whole prompts allow). The draw is seeded by
``(seed, step)`` alone, so a resumed run sees the same prompts. Within a task, records are taken from
seeded permutations, one epoch after another, exactly as a single-task run takes them; a one-task
config takes the very same records as before mixtures existed.

Metrics (:func:`task_metrics`): the mean reward and component means of each task's own rows, so a
task's figure is never pulled down by zeros (or ``None``) from the rows of other tasks.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import random
import typing
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from .config import RANGES, Config, ConfigError, TaskConfig, _check
from .curriculum import CurriculumError, Schedule, schedule_from_config, supports_difficulty

if TYPE_CHECKING:  # only for types: this module imports no plugin machinery at run time
    from .plugins import PluginManager
    from .reward import Breakdown, RewardSpec
    from .task import Task

__all__ = [
    "ENTRY_ONLY_KEYS",
    "MixtureTask",
    "TaskEntry",
    "bind_tasks",
    "check_task_settings",
    "is_mixture",
    "mixture_eval_summary",
    "step_counts",
    "task_entries",
    "task_metrics",
    "TaskPositions",
    "records_at",
]

ENTRY_ONLY_KEYS = ("weight", "reward")
"""Keys a ``[[task.mixture]]`` entry takes besides those of ``[task]``."""

_NOT_IN_ENTRIES = ("mixture",)
"""Keys of ``[task]`` an entry cannot set (no mixtures inside mixtures)."""

_REWARD_KEYS = ("weights", "extras")
"""Keys of an entry's ``reward`` table; the bounds (time, memory, workers) are the run's, in ``[reward]``."""


@dataclass(frozen=True)
class TaskEntry:
    """One task of a run, as configured: its settings, its share of the prompts and its reward table."""

    where: str
    """The config key it comes from: ``task`` (a single task) or ``task.mixture[i]``."""
    settings: TaskConfig
    """Its ``[task]`` settings: ``[task]``'s values overridden by the entry's own (``mixture`` empty)."""
    weight: float
    """Its share of each step's prompts, relative to the other entries' weights (> 0)."""
    reward_weights: Mapping[str, float]
    """Component weight overrides (the entry's ``reward.weights``, else ``[reward] weights``)."""
    reward_extras: Mapping[str, Mapping[str, Any]]
    """Extra components (the entry's ``reward.extras``, else ``[reward.extras]``)."""
    reward_where: str
    """The key its reward table comes from (``task.mixture[i].reward`` or ``reward``), for errors."""

    @property
    def name(self) -> str:
        """The task's name, as ``rlstruct tasks`` lists it."""
        return self.settings.name

    def schedule(self) -> Schedule | None:
        """A fresh curriculum schedule for this task (``None``: no difficulty set, the generator's own)."""
        return schedule_from_config(self.settings.difficulty, self.settings.curriculum or None, self.where)


def is_mixture(cfg: Config) -> bool:
    """Whether ``cfg`` names its tasks in ``[[task.mixture]]`` (even a single one)."""
    return bool(cfg.task.mixture)


# -- reading the config ------------------------------------------------------------------------------------
def task_entries(cfg: Config, where: str = "<config>") -> list[TaskEntry]:
    """The tasks ``cfg`` trains on, every key checked; :class:`ConfigError` names ``where`` and the key.

    Without ``[[task.mixture]]`` it is ``[task]`` alone, weight 1, with ``[reward]``'s weights and extras.
    """
    if not cfg.task.mixture:
        _check_difficulty_settings(cfg.task, "task", where)
        return [TaskEntry("task", cfg.task, 1.0, dict(cfg.reward.weights), dict(cfg.reward.extras), "reward")]
    if cfg.task.name:
        raise ConfigError(
            f"{where}: task.name: a config with [[task.mixture]] names its tasks in the entries; "
            f"leave task.name out (got {cfg.task.name!r})"
        )
    for key, unset in (("difficulty", None), ("curriculum", {})):
        if getattr(cfg.task, key) != unset:  # a default for all would bind tasks that take no difficulty
            raise ConfigError(
                f"{where}: task.{key}: in a config with [[task.mixture]], set {key} in each entry that should have it"
            )
    entries: list[TaskEntry] = []
    seen: dict[str, str] = {}
    for index, raw in enumerate(cfg.task.mixture):
        entry = _entry(cfg, index, raw, where)
        if entry.name in seen:
            raise ConfigError(
                f"{where}: {entry.where}.name: task {entry.name!r} is already {seen[entry.name]} "
                "(each task appears once; its weight sets its share)"
            )
        seen[entry.name] = entry.where
        entries.append(entry)
    return entries


def check_task_settings(cfg: Config, where: str = "<config>") -> None:
    """Check ``[task]``'s difficulty and curriculum and every ``[[task.mixture]]`` entry (called by
    :func:`rlstruct.config.load_config`); a problem is a :class:`ConfigError` naming the key."""
    task_entries(cfg, where)


def _entry(cfg: Config, index: int, raw: Mapping[str, Any], where: str) -> TaskEntry:
    prefix = f"task.mixture[{index}]"
    hints = typing.get_type_hints(TaskConfig)
    allowed = [name for name in hints if name not in _NOT_IN_ENTRIES] + list(ENTRY_ONLY_KEYS)
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(allowed)})"
            raise ConfigError(f"{where}: {prefix}.{key}: unknown key{hint}")
        if key in hints:
            values[key] = _check(value, hints[key], f"{prefix}.{key}", where)
    if not values.get("name"):
        raise ConfigError(f"{where}: {prefix}.name: missing (the task's name, as `rlstruct tasks` lists it)")
    for key, value in values.items():
        valid = RANGES.get(f"task.{key}")
        if valid is not None and value not in valid:
            raise ConfigError(f"{where}: {prefix}.{key} {valid.requirement()}, got {value!r}")
    weight = _check(raw.get("weight", 1.0), float, f"{prefix}.weight", where)
    if not weight > 0:
        raise ConfigError(f"{where}: {prefix}.weight must be > 0 (its share of the prompts), got {weight!r}")
    inherited = {f.name: getattr(cfg.task, f.name) for f in dataclasses.fields(TaskConfig)}
    settings = TaskConfig(**{**inherited, "mixture": [], **values})  # [task]'s keys are the defaults
    _check_difficulty_settings(settings, prefix, where)
    weights, extras, reward_where = dict(cfg.reward.weights), dict(cfg.reward.extras), "reward"
    if "reward" in raw:
        weights, extras = _entry_reward(raw["reward"], f"{prefix}.reward", where, weights, extras)
        reward_where = f"{prefix}.reward"
    return TaskEntry(prefix, settings, weight, weights, extras, reward_where)


def _entry_reward(
    table: Any, key: str, where: str, weights: dict[str, float], extras: dict[str, Any]
) -> tuple[dict[str, float], dict[str, Any]]:
    """An entry's ``reward`` table: ``weights`` and ``extras`` replace ``[reward]``'s (each one given)."""
    from .config import RewardConfig

    if not isinstance(table, Mapping):
        raise ConfigError(f"{where}: [{key}] must be a table")
    hints = typing.get_type_hints(RewardConfig)
    for name, value in table.items():
        if name not in _REWARD_KEYS:
            raise ConfigError(
                f"{where}: {key}.{name}: unknown key (a task's own reward table takes {' and '.join(_REWARD_KEYS)}; "
                "time-out, memory and workers are the run's, in [reward])"
            )
        checked = _check(value, hints[name], f"{key}.{name}", where)
        if name == "weights":
            for component, weight in checked.items():
                if weight not in RANGES["reward.weights"]:
                    raise ConfigError(f"{where}: {key}.weights.{component} must be >= 0, got {weight!r}")
            weights = checked
        else:
            extras = checked
    return weights, extras


def _check_difficulty_settings(settings: TaskConfig, origin: str, where: str) -> None:
    """A difficulty or curriculum is valid and only given for synthetic data."""
    if settings.difficulty is None and not settings.curriculum:
        return
    try:
        schedule_from_config(settings.difficulty, settings.curriculum or None, origin)
    except CurriculumError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    if (settings.source or "synthetic").strip() != "synthetic":
        key = f"{origin}.difficulty" if settings.difficulty is not None else f"{origin}.curriculum"
        raise ConfigError(
            f"{where}: {key}: only synthetic data has a difficulty, and {origin}.source is {settings.source!r}"
        )


# -- binding to plugins ------------------------------------------------------------------------------------
@dataclass
class MixtureTask:
    """A task of a run, bound: the plugin's task object, its reward spec and its curriculum schedule."""

    entry: TaskEntry
    task: Task
    spec: RewardSpec
    schedule: Schedule | None

    @property
    def name(self) -> str:
        return self.entry.name

    @property
    def weight(self) -> float:
        return self.entry.weight

    @property
    def settings(self) -> TaskConfig:
        return self.entry.settings


def bind_tasks(cfg: Config, plugins: PluginManager, where: str = "<config>") -> list[MixtureTask]:
    """Look up every task of ``cfg`` and build its reward spec and schedule; errors name the entry.

    Raises :class:`ConfigError` (bad keys, a difficulty for a task that takes none),
    :class:`rlstruct.plugins.UnknownTaskError` / ``PluginConflictError`` (the name, prefixed with the
    entry's key in a mixture) and :class:`rlstruct.reward.RewardConfigError` (weights, extras).
    """
    from .reward import RewardSpec
    from .task import COMPONENTS

    bound = []
    for entry in task_entries(cfg, where):
        try:
            task = plugins.task(entry.name)
        except LookupError as exc:  # unknown task or a conflict between two plugins
            if entry.where == "task":
                raise
            raise type(exc)(f"{where}: {entry.where}.name: {exc}") from None
        spec = RewardSpec.build(
            task, plugins.rewards, entry.reward_weights, entry.reward_extras, where=f"{where}: {entry.reward_where}"
        )
        schedule = entry.schedule()
        if schedule is not None and not supports_difficulty(task):
            key = "difficulty" if entry.settings.difficulty is not None else "curriculum"
            raise ConfigError(
                f"{where}: {entry.where}.{key}: task {task.name!r} has no difficulty (its synthetic() takes "
                "no 'difficulty' keyword); leave it out for this task"
            )
        if entry.where != "task" and entry.name in {*COMPONENTS, *(e.component.name for e in spec.extras)}:
            raise ConfigError(
                f"{where}: {entry.where}.name: task {entry.name!r} has the name of a reward component, so "
                f"reward/{entry.name} would mean two things in metrics.jsonl"
            )
        bound.append(MixtureTask(entry, task, spec, schedule))
    return bound


# -- sampling ------------------------------------------------------------------------------------------------
def step_counts(weights: Sequence[float], per_step: int, step: int, seed: int) -> list[int]:
    """How many of ``step``'s ``per_step`` prompts each task gets, in proportion to ``weights``.

    Each task gets the whole part of ``per_step·w/Σw``; the prompts left over go one each to tasks
    chosen with probability equal to their fractional parts, by systematic sampling with one uniform
    number seeded by ``(seed, step)``. Exact rational arithmetic, so the counts are the same on every
    machine; they always sum to ``per_step``.
    """
    if len(weights) == 1:
        return [per_step]
    exact = [Fraction(w) for w in weights]
    total = sum(exact)
    shares = [per_step * w / total for w in exact]
    counts = [math.floor(s) for s in shares]
    left = per_step - sum(counts)
    if left:
        point = Fraction(random.Random(f"{seed}:mixture:{step}").random())  # in [0, 1)
        edge = Fraction(0)
        for k, share in enumerate(shares):
            edge += share - counts[k]
            if left and point < edge:  # each fraction is < 1, so at most one point falls in a task's part
                counts[k] += 1
                point += 1
                left -= 1
    return counts


class TaskPositions:
    """Where each task's record stream stands at a step: the prompts it got in all earlier steps.

    ``positions(step)`` replays :func:`step_counts` from the last step it computed (or from 0), so
    asking for consecutive steps costs one step each, and any step (a resume) is computed exactly.
    """

    def __init__(self, weights: Sequence[float], per_step: int, seed: int) -> None:
        self.weights, self.per_step, self.seed = list(weights), per_step, seed
        self._step, self._positions = 0, [0] * len(self.weights)

    def __call__(self, step: int) -> list[int]:
        if step < self._step:
            self._step, self._positions = 0, [0] * len(self.weights)
        while self._step < step:
            counts = step_counts(self.weights, self.per_step, self._step, self.seed)
            self._positions = [p + c for p, c in zip(self._positions, counts)]
            self._step += 1
        return list(self._positions)


def records_at(n_records: int, start: int, count: int, key: str) -> list[int]:
    """Record indices ``start`` to ``start + count`` of the stream that walks seeded permutations of
    ``range(n_records)``, one epoch after another (permutation of epoch e seeded by ``"{key}:epoch:{e}"``)."""
    out: list[int] = []
    position = start
    while len(out) < count:
        epoch, offset = divmod(position, n_records)
        order = list(range(n_records))
        random.Random(f"{key}:epoch:{epoch}").shuffle(order)
        take = order[offset : offset + count - len(out)]
        out.extend(take)
        position += len(take)
    return out


# -- per-task figures ------------------------------------------------------------------------------------------
def task_metrics(
    routes: Sequence[str], breakdowns: Sequence[Breakdown], components: Mapping[str, Sequence[str]]
) -> dict[str, Any]:
    """Per-task means of a step: ``reward/<task>``, ``reward/<task>/<component>`` and ``rows/<task>``.

    ``routes[i]`` names the task of ``breakdowns[i]``; ``components`` maps each task of the run to its
    component names (its spec's), so every task has its keys at every step. Each mean is over that
    task's own rows; it is ``None`` (JSON null) when the task had no rows this step, and a component's
    is ``None`` when the task does not implement it.
    """
    if len(routes) != len(breakdowns):
        raise ValueError("routes and breakdowns differ in length")
    out: dict[str, Any] = {}
    for name, names in components.items():
        rows = [b for b, route in zip(breakdowns, routes) if route == name]
        out[f"rows/{name}"] = len(rows)
        out[f"reward/{name}"] = sum(b.reward for b in rows) / len(rows) if rows else None
        for component in names:
            scores = [b.components.get(component) for b in rows]
            present = [s for s in scores if s is not None]
            out[f"reward/{name}/{component}"] = sum(present) / len(present) if present else None
    return out


# -- evaluation ------------------------------------------------------------------------------------------------
def mixture_eval_summary(summaries: Mapping[str, Mapping[str, Any]], split: str | None = None) -> dict[str, Any]:
    """The result of evaluating each task of a mixture: ``{"tasks": {task: summary}, "macro": {...},
    "protocol": {...}}``.

    ``macro`` holds the unweighted mean over tasks of ``reward`` and of every component's share
    (``NAME``) and mean (``NAME_mean``), each over the tasks that have it (a task without the component,
    ``None``, is left out), plus ``n``, the completions of all tasks, and ``tasks``, how many were evaluated.
    """
    keys: dict[str, None] = {"reward": None}
    for summary in summaries.values():
        for key in summary:
            if key.endswith("_mean") and key[: -len("_mean")] in summary:
                keys[key[: -len("_mean")]] = None
                keys[key] = None
    macro: dict[str, Any] = {"n": sum(int(s.get("n") or 0) for s in summaries.values()), "tasks": len(summaries)}
    for key in keys:
        values = [s[key] for s in summaries.values() if isinstance(s.get(key), (int, float))]
        macro[key] = sum(values) / len(values) if values else None
    first = next(iter(summaries.values()), {})
    protocol = dict(first.get("protocol") or {})
    protocol.pop("records", None)  # each task has its own count (in its summary)
    protocol.update(task="mixture: " + ", ".join(summaries), tasks=list(summaries))
    if split is not None:
        protocol["split"] = split
    return {"tasks": {name: dict(s) for name, s in summaries.items()}, "macro": macro, "protocol": protocol}
