"""How the contract kit reports: one line per problem, grouped by check, never a wall of text."""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

MAX_PROBLEMS_SHOWN = 5
"""Problems listed per check; the rest are counted ("and 12 more")."""


def short(value: Any, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters (completions can be 10 MB long)."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 15]}...<{len(text)} chars>"


def describe_exception(exc: BaseException) -> str:
    """``"KeyError: 'word' (at task.py:87)"``: the exception and the line that raised it."""
    frames = traceback.extract_tb(exc.__traceback__) if exc.__traceback__ else []
    where = f" (at {Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {str(exc)[:200]}{where}"


def _listing(problems: Sequence[str]) -> list[str]:
    shown = list(problems[:MAX_PROBLEMS_SHOWN])
    if len(problems) > MAX_PROBLEMS_SHOWN:
        shown.append(f"... and {len(problems) - MAX_PROBLEMS_SHOWN} more")
    return shown


class ContractFailure(AssertionError):
    """A task broke the contract. ``problems`` maps each failed check to its one-line problems.

    An ``AssertionError``, so pytest shows it as a test failure with the message below.
    """

    def __init__(self, task: str, problems: dict[str, list[str]]) -> None:
        self.task = task
        self.problems = problems
        lines = [f"task {task!r} fails the contract check{'s' if len(problems) > 1 else ''} {', '.join(problems)}:"]
        for check, items in problems.items():
            lines.extend(f"  {check}: {line}" for line in _listing(items))
        super().__init__("\n".join(lines))


def fail_if(task: str, check: str, problems: list[str]) -> None:
    """Raise :class:`ContractFailure` for ``check`` when ``problems`` is not empty."""
    if problems:
        raise ContractFailure(task, {check: problems})


@dataclass
class ContractReport:
    """What :func:`rlstruct.testing.check_task` checked: a summary line per passed check."""

    task: str
    passed: dict[str, str] = field(default_factory=dict)
    """Check name -> what was verified (e.g. ``"300 reference completions score 1.0"``)."""
    skipped: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"task {self.task!r}: {len(self.passed)} contract checks passed"]
        lines.extend(f"  {name}: {summary}" for name, summary in self.passed.items())
        if self.skipped:
            lines.append(f"  skipped: {', '.join(self.skipped)}")
        return "\n".join(lines)
