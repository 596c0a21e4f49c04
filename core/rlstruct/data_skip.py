"""Loading real data past its bad rows: ``--skip-bad-records`` / ``task.skip_bad_records``.

Public data sets have malformed rows (a missing answer, a schema that does not compile, a line that
is not JSON). By default one bad row stops a load with an error naming it, which is right for data a
user wrote. With skipping on, each bad row is left out instead, and counted: :class:`SkippedRecords`
keeps the number and the first few ``file:line: reason`` messages in full, for the command to report.

Each row is still checked in the bounded worker of :func:`rlstruct.data.check_records`: a row too
slow or too large to check is skipped like any other bad row, and checking carries on after it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Any, ClassVar, Iterable, Iterator

from .sandbox import BoundedCallError, SandboxLimits, bounded_map
from .task import Record, Task

__all__ = ["SkippedRecords", "check_records_skipping"]


@dataclass
class SkippedRecords:
    """Rows left out by a load with skipping on."""

    count: int = 0
    """How many rows were skipped."""
    examples: list[str] = field(default_factory=list)
    """The first :attr:`max_examples` as ``location: reason`` (one line each)."""
    max_examples: ClassVar[int] = 5

    def add(self, message: str) -> None:
        self.count += 1
        if len(self.examples) < self.max_examples:
            self.examples.append(message)

    def report(self) -> list[str]:
        """Lines for stderr: a count, then the first few in full (empty when nothing was skipped)."""
        if not self.count:
            return []
        more = self.count - len(self.examples)
        head = f"skipped {self.count} bad record(s)" + (f"; the first {len(self.examples)}:" if more else ":")
        return [head, *(f"  {example}" for example in self.examples)] + ([f"  ... and {more} more"] if more else [])

    def to_json(self) -> dict[str, Any]:
        return {"count": self.count, "first": list(self.examples)}


def _attempt(task: Task, row: tuple[str, Any]) -> tuple[bool, Any]:
    """``(True, record)`` or ``(False, "location: reason")``: a bad row is an answer, not an exception."""
    from .data import DataError, _checked

    where, raw = row
    try:
        return True, _checked(task, raw, where)
    except DataError as exc:
        return False, str(exc)
    except Exception as exc:  # noqa: BLE001 - a plugin's normalize_record failing on this row: skip it too
        return False, f"{where}: normalize_record raised {type(exc).__name__}: {str(exc)[:200]}"


def check_records_skipping(
    task: Task,
    rows: Iterable[tuple[str, Any]],
    limits: SandboxLimits,
    limit: int | None,
    skipped: SkippedRecords,
) -> list[Record]:
    """Check ``(location, raw)`` rows like :func:`rlstruct.data.check_records`, skipping bad ones into
    ``skipped``; stop once ``limit`` good records are in (``None``: all). An error reading the source
    itself (a file that is not JSON at all) still raises."""
    out: list[Record] = []
    if limit == 0:
        return out
    source = iter(rows)
    backlog: list[tuple[str, Any]] = []
    while True:
        taken: list[tuple[str, Any]] = []

        def feed(pending: list[tuple[str, Any]] = backlog, taken: list[tuple[str, Any]] = taken) -> Iterator[tuple[str, Any]]:
            for row in pending:  # rows sent to a worker that died before it reached them
                taken.append(row)
                yield row
            for row in source:
                taken.append(row)
                yield row

        answered = 0
        try:
            for ok, value in bounded_map(partial(_attempt, task), feed(), limits):
                answered += 1
                if ok:
                    out.append(value)
                    if limit is not None and len(out) >= limit:
                        return out
                else:
                    skipped.add(value)
            return out
        except BoundedCallError as exc:
            where = taken[exc.index][0] if exc.index < len(taken) else "a record"
            skipped.add(f"{where}: record check {exc.reason}")
            # the worker answers a batch at once: rows before the failed one may be done but unanswered
            backlog = taken[answered : exc.index] + taken[exc.index + 1 :]
