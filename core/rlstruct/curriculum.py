"""Difficulty of synthetic data, and curricula that move it during training.

**Difficulty** is a float in [0, 1] that a task's synthetic generator turns into concrete knobs
(how many ingredients, how deep a schema, how many operations...; each task documents its own).
``0`` is the easiest setting, ``1`` the hardest, and :data:`DEFAULT_DIFFICULTY` (0.5) is the
default: every built-in generator gives exactly the records it gave before difficulty existed, so
leaving it unset changes nothing. Generators map difficulty to knobs with :func:`level` and
:func:`int_range`, which pass through the default knob values at 0.5.

Difficulty is an optional extension of the :class:`~rlstruct.task.Task` API: a task supports it
when its ``synthetic`` method accepts a ``difficulty`` keyword (``synthetic(split, size, seed,
difficulty=None)``). :func:`call_synthetic` is how the core asks for records: it passes the
keyword only when a difficulty is set, so tasks that ignore the extension keep working, and it
refuses clearly when a difficulty is asked of a task that cannot honour it.

**Curricula** (config ``[task.curriculum]``, :class:`CurriculumConfig`) give the difficulty of
each training step:

- ``constant``: always ``start``;
- ``linear``: from ``start`` at step 0 to ``end`` at step ``steps``, then ``end``;
- ``adaptive``: starts at ``start`` and rises by ``increment`` (never past ``end``) each time the
  step's group-mean reward has been at least ``threshold`` for ``patience`` consecutive steps.

A schedule is deterministic: its difficulty depends only on the step and on the rewards it was
shown, and :meth:`Schedule.state_dict` / :meth:`Schedule.load_state_dict` carry what it
remembers through a checkpoint, so a resumed run continues exactly.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, ClassVar, Mapping

from .errors import UsageError

if TYPE_CHECKING:  # the task module is only needed for types here
    from .task import Record, Task

__all__ = [
    "DEFAULT_DIFFICULTY",
    "AdaptiveSchedule",
    "ConstantSchedule",
    "CurriculumConfig",
    "CurriculumError",
    "LinearSchedule",
    "Schedule",
    "call_synthetic",
    "check_difficulty",
    "int_level",
    "int_range",
    "level",
    "schedule_from_config",
    "supports_difficulty",
]

DEFAULT_DIFFICULTY = 0.5
"""The difficulty used when none is given; built-in generators reproduce their original data here."""

CURRICULUM_KINDS: tuple[str, ...] = ("constant", "linear", "adaptive")
"""The values ``[task.curriculum] kind`` accepts."""


class CurriculumError(UsageError, ValueError):
    """A difficulty or curriculum setting is invalid; the message starts with the key at fault."""


# -- difficulty values -----------------------------------------------------------------------------
def check_difficulty(value: Any, where: str = "difficulty") -> float:
    """Return ``value`` as a float if it is a number in [0, 1]; else raise :class:`CurriculumError`.

    ``where`` names the setting in the message (e.g. ``task.difficulty``). Booleans are refused
    (``true`` is not a difficulty) and so are NaN and infinities.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise CurriculumError(f"{where}: expected a number from 0 to 1, got {type(value).__name__} {value!r}")
    number = float(value)
    if not math.isfinite(number) or not 0.0 <= number <= 1.0:
        raise CurriculumError(f"{where}: expected a number from 0 to 1, got {value!r}")
    return number


def level(difficulty: float, easy: float, default: float, hard: float) -> float:
    """The knob value at ``difficulty``: ``easy`` at 0, ``default`` at 0.5, ``hard`` at 1.

    Linear between those three points, so it is exactly ``default`` at :data:`DEFAULT_DIFFICULTY`
    (which is how generators keep their original data there).
    """
    if difficulty <= DEFAULT_DIFFICULTY:
        return _lerp(easy, default, difficulty / DEFAULT_DIFFICULTY)
    return _lerp(default, hard, (difficulty - DEFAULT_DIFFICULTY) / (1.0 - DEFAULT_DIFFICULTY))


def _lerp(a: float, b: float, t: float) -> float:
    """``a`` at t=0, ``b`` at t=1, exactly: ``a + (b - a) * t`` can miss ``b`` by a rounding error."""
    return a * (1.0 - t) + b * t if 0.0 < t < 1.0 else (a if t <= 0.0 else b)


def int_level(difficulty: float, easy: int, default: int, hard: int) -> int:
    """:func:`level` rounded to the nearest integer (halves round up, unlike ``round``)."""
    return math.floor(level(difficulty, easy, default, hard) + 0.5)


def int_range(
    difficulty: float, easy: tuple[int, int], default: tuple[int, int], hard: tuple[int, int]
) -> tuple[int, int]:
    """An inclusive ``(low, high)`` range whose ends move like :func:`int_level` (``low <= high``)."""
    low = int_level(difficulty, easy[0], default[0], hard[0])
    high = int_level(difficulty, easy[1], default[1], hard[1])
    return low, max(low, high)


# -- the Task API extension ------------------------------------------------------------------------
def supports_difficulty(task: Task) -> bool:
    """Whether ``task.synthetic`` accepts a ``difficulty`` keyword (or any keyword, ``**kwargs``)."""
    try:
        parameters = inspect.signature(task.synthetic).parameters.values()
    except (TypeError, ValueError):  # a builtin or otherwise unintrospectable callable
        return False
    return any(
        (p.name == "difficulty" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)) or p.kind is p.VAR_KEYWORD
        for p in parameters
    )


def call_synthetic(task: Task, split: str, size: int, seed: int, difficulty: float | None = None) -> list[Record]:
    """``task.synthetic(split, size, seed)``, with ``difficulty=`` passed only when it is not ``None``.

    Raises :class:`CurriculumError` when ``difficulty`` is out of [0, 1], or when it is set and the
    task's ``synthetic`` does not accept it (a third-party task that did not adopt the extension).
    """
    if difficulty is None:
        return task.synthetic(split, size, seed)
    value = check_difficulty(difficulty)
    if not supports_difficulty(task):
        raise CurriculumError(
            f"difficulty: task {task.name!r} does not support a difficulty (its synthetic() takes no "
            "'difficulty' keyword); leave difficulty unset for it"
        )
    return task.synthetic(split, size, seed, difficulty=value)


# -- schedules -------------------------------------------------------------------------------------
class Schedule:
    """The difficulty of each training step. ``step`` counts completed steps (0 for the first).

    Call :meth:`difficulty` before a step and :meth:`observe` after it with the step's group-mean
    reward. Schedules that remember nothing return ``{}`` from :meth:`state_dict`.
    """

    kind: ClassVar[str] = ""

    def difficulty(self, step: int) -> float:
        """The difficulty to generate the records of ``step`` with."""
        raise NotImplementedError

    def observe(self, step: int, mean_reward: float) -> None:
        """Record the group-mean reward of ``step`` (after it ran). The default ignores it."""

    def state_dict(self) -> dict[str, Any]:
        """What the schedule remembers, as JSON-serialisable values (for checkpoints)."""
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (a resumed run then continues exactly)."""

    def log(self, step: int) -> dict[str, float]:
        """Metrics for the ``step`` line of ``metrics.jsonl``: ``{"difficulty": value}``."""
        return {"difficulty": self.difficulty(step)}


@dataclass(frozen=True)
class ConstantSchedule(Schedule):
    """The same difficulty at every step."""

    value: float = DEFAULT_DIFFICULTY
    """The difficulty, in [0, 1]."""

    kind: ClassVar[str] = "constant"

    def difficulty(self, step: int) -> float:
        """Always :attr:`value`."""
        return self.value


@dataclass(frozen=True)
class LinearSchedule(Schedule):
    """From ``start`` at step 0 to ``end`` at step ``steps``, then ``end`` (``end < start`` lowers it)."""

    start: float
    """Difficulty of the first step."""
    end: float
    """Difficulty reached at step ``steps`` and kept afterwards."""
    steps: int
    """Number of steps the change takes (at least 1)."""

    kind: ClassVar[str] = "linear"

    def __post_init__(self) -> None:
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            raise ValueError(f"linear curriculum: steps must be an integer >= 1, got {self.steps!r}")

    def difficulty(self, step: int) -> float:
        """``start + (end - start) * min(step, steps) / steps``."""
        progress = min(max(step, 0), self.steps) / self.steps
        return _tidy(self.start + (self.end - self.start) * progress)


@dataclass
class AdaptiveSchedule(Schedule):
    """Raise the difficulty when the model keeps doing well.

    After each step, a group-mean reward of at least ``threshold`` extends a streak and anything
    lower ends it; when the streak reaches ``patience`` steps, the difficulty rises by
    ``increment`` (capped at ``end``) and the streak starts over. It never goes down.
    """

    start: float
    """Difficulty of the first step."""
    end: float
    """The highest difficulty the schedule reaches."""
    threshold: float
    """Group-mean reward (in [0, 1]) a step needs to count towards the streak."""
    patience: int
    """How many consecutive good steps raise the difficulty (at least 1)."""
    increment: float
    """How much one raise adds (> 0)."""
    current: float = -1.0
    """The difficulty now (state; starts at ``start``)."""
    streak: int = 0
    """Consecutive steps at or above ``threshold`` since the last raise (state)."""
    last_step: int = -1
    """The last step observed (state; -1 before any), so a step is never counted twice."""

    kind: ClassVar[str] = "adaptive"
    _STATE: ClassVar[tuple[str, ...]] = ("current", "streak", "last_step")

    def __post_init__(self) -> None:
        if self.current < 0:
            self.current = self.start

    def difficulty(self, step: int) -> float:
        """The current difficulty (what the rewards seen so far earned)."""
        return self.current

    def observe(self, step: int, mean_reward: float) -> None:
        """Count ``step``'s group-mean reward; raise the difficulty after ``patience`` good steps.

        Raises ``ValueError`` when ``step`` is not after the last observed one (each step is counted
        once, also across a resume). A non-finite reward ends the streak.
        """
        if step <= self.last_step:
            raise ValueError(f"curriculum: step {step} was already observed (last observed step {self.last_step})")
        self.last_step = step
        if math.isfinite(mean_reward) and mean_reward >= self.threshold:
            self.streak += 1
        else:
            self.streak = 0
        if self.streak >= self.patience:
            self.current = _tidy(min(self.end, self.current + self.increment))
            self.streak = 0

    def state_dict(self) -> dict[str, Any]:
        """``{"current", "streak", "last_step"}``."""
        return {name: getattr(self, name) for name in self._STATE}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`'s values; a missing or mistyped key is a ``ValueError`` naming it."""
        current = check_difficulty(state.get("current"), "curriculum state current")
        for name in ("streak", "last_step"):
            value = state.get(name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"curriculum state {name}: expected an integer, got {value!r}")
        self.current, self.streak, self.last_step = current, state["streak"], state["last_step"]


def _tidy(value: float) -> float:
    """Round away float noise (0.1 + 0.2) so logged difficulties read cleanly; still deterministic."""
    return round(value, 12)


# -- configuration -------------------------------------------------------------------------------
@dataclass(frozen=True)
class CurriculumConfig:
    """The ``[task.curriculum]`` table. Keys a kind does not use are ignored.

    Construction does not check values; :meth:`from_mapping` and :meth:`build` call :meth:`validate`.
    """

    kind: str = "constant"
    """``constant``, ``linear`` or ``adaptive`` (see the module docstring)."""
    start: float = DEFAULT_DIFFICULTY
    """Difficulty of the first step, in [0, 1] (default: ``[task] difficulty`` if set, else 0.5)."""
    end: float = 1.0
    """``linear``: difficulty reached after ``steps``; ``adaptive``: the ceiling. In [0, 1]."""
    steps: int = 100
    """``linear``: steps from ``start`` to ``end`` (>= 1)."""
    threshold: float = 0.8
    """``adaptive``: group-mean reward (in [0, 1]) a step needs to count as good."""
    patience: int = 5
    """``adaptive``: consecutive good steps before the difficulty rises (>= 1)."""
    increment: float = 0.1
    """``adaptive``: how much one rise adds (> 0, at most 1)."""

    def validate(self, where: str = "task.curriculum") -> None:
        """Raise :class:`CurriculumError` naming ``where.key`` for the first invalid value."""
        if self.kind not in CURRICULUM_KINDS:
            raise CurriculumError(f"{where}.kind: unknown kind {self.kind!r} (known: {', '.join(CURRICULUM_KINDS)})")
        for key in ("start", "end", "threshold"):
            check_difficulty(getattr(self, key), f"{where}.{key}")
        for key in ("steps", "patience"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise CurriculumError(f"{where}.{key}: expected an integer >= 1, got {value!r}")
        increment = self.increment
        if isinstance(increment, bool) or not isinstance(increment, (int, float)) or not 0 < increment <= 1:
            raise CurriculumError(f"{where}.increment: expected a number in (0, 1], got {increment!r}")
        if self.kind == "adaptive" and self.end < self.start:
            raise CurriculumError(f"{where}.end: the adaptive ceiling {self.end} is below start {self.start}")

    @classmethod
    def from_mapping(
        cls, raw: Mapping[str, Any], where: str = "task.curriculum", default_start: float | None = None
    ) -> CurriculumConfig:
        """Build from a config table; unknown keys and bad values raise :class:`CurriculumError`.

        ``default_start`` (the task's ``difficulty``) is the start when ``raw`` has none.
        """
        if not isinstance(raw, Mapping):
            raise CurriculumError(f"{where}: expected a table, got {type(raw).__name__}")
        known = {f.name for f in fields(cls)}
        for key in raw:
            if key not in known:
                raise CurriculumError(f"{where}.{key}: unknown key (known: {', '.join(sorted(known))})")
        values = dict(raw)
        if "start" not in values and default_start is not None:
            values["start"] = default_start
        config = cls(**values)
        config.validate(where)
        return config

    def build(self) -> Schedule:
        """A fresh schedule of this kind (adaptive state starts at ``start``); validates first."""
        self.validate()
        if self.kind == "constant":
            return ConstantSchedule(float(self.start))
        if self.kind == "linear":
            return LinearSchedule(float(self.start), float(self.end), self.steps)
        return AdaptiveSchedule(
            float(self.start), float(self.end), float(self.threshold), self.patience, float(self.increment)
        )


def schedule_from_config(
    difficulty: Any = None, curriculum: Mapping[str, Any] | None = None, where: str = "task"
) -> Schedule | None:
    """The schedule for a ``[task]`` table's ``difficulty`` and ``curriculum`` values.

    ``None`` when neither is set (the task's generator then runs at its default, with no
    ``difficulty`` keyword). A ``difficulty`` alone is a constant schedule; with a curriculum it is
    the curriculum's ``start`` unless that is given too, which is an error (two starts).
    """
    level_ = None if difficulty is None else check_difficulty(difficulty, f"{where}.difficulty")
    if curriculum is None:
        return None if level_ is None else ConstantSchedule(level_)
    if level_ is not None and isinstance(curriculum, Mapping) and "start" in curriculum:
        raise CurriculumError(
            f"{where}.difficulty: give either {where}.difficulty or {where}.curriculum.start, not both"
        )
    return CurriculumConfig.from_mapping(curriculum, f"{where}.curriculum", default_start=level_).build()
