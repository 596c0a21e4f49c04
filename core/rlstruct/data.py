"""Loading a task's records: the task's synthetic generator, a local file, or a Hugging Face data set.

``source`` strings, in the order they are tried:

- ``synthetic`` (or empty): the task's seeded offline generator;
- ``hf``: the task's default public data set (``Task.hf_dataset``, ``Task.hf_config``);
- a path to an existing ``.jsonl``, ``.json`` or ``.parquet`` file;
- anything else: a Hugging Face data set name, loaded with ``datasets.load_dataset``
  (``NAME`` or ``NAME:CONFIG``).

Every record goes through ``Task.normalize_record``; a malformed one stops loading with an error
naming the file and line (or row) and the key at fault. Nothing is silently dropped: with
``--skip-bad-records`` (``skipped=``) bad rows are left out, counted and reported (:mod:`rlstruct.data_skip`).

Records from files and data sets are untrusted: they are checked in a forked worker bounded in time
and memory (:data:`RECORD_CHECK_LIMITS`, through :func:`rlstruct.sandbox.bounded_map`), so a record
that is too costly to check (a catastrophic ``pattern`` in a json-schema record, say) is reported
by file and line instead of stalling the run. Records nested too deeply to read are reported the
same way. (Synthetic records come from the task's own code and are checked inline.)
"""

from __future__ import annotations

import json
from functools import partial
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Mapping, NamedTuple

from .errors import RunError
from .sandbox import BoundedCallError, SandboxLimits, bounded_map
from .task import Record, RecordError, Task

if TYPE_CHECKING:
    from .data_skip import SkippedRecords

FILE_SUFFIXES = (".jsonl", ".json", ".parquet")
RECORD_CHECK_LIMITS = SandboxLimits(timeout_s=10.0, memory_mb=1024, workers=1)
"""Bounds on checking one untrusted record (``normalize_record``): seconds, extra MiB, one worker."""


class DataError(RunError, ValueError):
    """Records could not be loaded; the message names the file and line or the data set."""


class UnreadableRow(NamedTuple):
    """A line of a file that could not be read as a record (the reason); refused when checked, or
    skipped with --skip-bad-records (:mod:`rlstruct.data_skip`)."""

    reason: str


def _rows_from_file(path: Path, split: str) -> Iterator[tuple[str, Any]]:
    """Yield ``(location, raw_row)`` pairs, where location is ``file:line`` or ``file[row]``."""
    if path.suffix == ".jsonl":
        with path.open("rb") as fh:
            for lineno, raw in enumerate(fh, start=1):
                where = f"{path}:{lineno}"
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    yield where, UnreadableRow(f"not valid UTF-8 ({exc.reason} at byte {exc.start})")
                    continue
                if not text.strip():
                    continue
                try:
                    row = json.loads(text)
                except json.JSONDecodeError as exc:
                    row = UnreadableRow(f"invalid JSON: {exc.msg} (column {exc.colno})")
                except RecursionError:
                    row = UnreadableRow("record nested too deeply to read")
                yield where, row
    elif path.suffix == ".json":
        try:
            text = path.read_text(encoding="utf-8")
            data = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DataError(f"{path}: invalid JSON: {exc}") from None
        except RecursionError:
            raise DataError(f"{path}:{_too_deep_line(text)}: record nested too deeply to read") from None
        for index, row in enumerate(_split_rows(path, data, split)):
            yield f"{path}[{index}]", row
    elif path.suffix == ".parquet":
        import datasets

        try:
            table = datasets.load_dataset("parquet", data_files=str(path), split="train")
        except Exception as exc:  # corrupt or not parquet at all
            raise DataError(f"{path}: could not read parquet: {type(exc).__name__}: {exc}") from None
        for index, row in enumerate(table):
            yield f"{path}[row {index}]", row
    else:
        raise DataError(f"{path}: unsupported file type (use {', '.join(FILE_SUFFIXES)})")


def _split_rows(path: Path, data: Any, split: str) -> list[Any]:
    """The records of ``split`` in a parsed ``.json`` file: a list, or an object of split -> list."""
    shapes = 'a list of records or an object of splits (split name -> list of records, e.g. {"train": [...]})'
    if isinstance(data, list):
        return data
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected {shapes}, got a JSON {type(data).__name__}")
    if not any(isinstance(value, list) for value in data.values()):
        keys = ", ".join(map(str, list(data)[:8])) or "none"
        raise DataError(
            f"{path}: expected {shapes}, got a single object (keys: {keys}); "
            "for one record, write [ {...} ] or use a .jsonl file"
        )
    if split not in data:
        raise DataError(f"{path}: no split {split!r} (the file has: {', '.join(map(str, data))})")
    if not isinstance(data[split], list):
        raise DataError(f"{path}: split {split!r} must be a list of records, got {type(data[split]).__name__}")
    return data[split]


def _too_deep_line(text: str) -> int:
    """Line of ``text`` where its JSON nesting is deepest (the record that could not be read)."""
    depth = deepest = 0
    line = deepest_line = 1
    in_string = escaped = False
    for ch in text:
        if ch == "\n":
            line += 1
        elif in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > deepest:
                deepest, deepest_line = depth, line
        elif ch in "]}":
            depth -= 1
    return deepest_line


def _rows_from_hub(name: str, config: str | None, split: str) -> Iterator[tuple[str, Any]]:
    import datasets

    try:
        table = datasets.load_dataset(name, config, split=split)
    except Exception as exc:  # network, unknown name, unknown split...
        raise DataError(
            f"could not load data set {name!r}"
            f"{f' (config {config!r})' if config else ''} split {split!r}: {type(exc).__name__}: {exc}"
        ) from None
    for index, row in enumerate(table):
        yield f"{name}[{split}][row {index}]", row


def load_records(
    task: Task,
    source: str | None = "synthetic",
    split: str = "train",
    limit: int | None = None,
    seed: int = 0,
    limits: SandboxLimits | None = None,
    difficulty: float | None = None,
    skipped: SkippedRecords | None = None,
) -> list[Record]:
    """Load up to ``limit`` normalised records of ``split`` from ``source`` (see module doc).

    ``skipped``: skip malformed rows of a file or data set into it (counted, first few kept in full)
    instead of stopping at the first; ``limit`` then counts good records. ``None``: strict.

    Records from files and data sets are checked within ``limits`` (default
    :data:`RECORD_CHECK_LIMITS`); every problem raises :class:`DataError` naming the record.
    ``difficulty`` (0 to 1) goes to the synthetic generator through
    :func:`rlstruct.curriculum.call_synthetic`; ``None`` keeps the task's default. It is an error
    with any other source and for a task whose generator takes no difficulty.
    """
    source = (source or "synthetic").strip()
    if limit is not None and limit < 0:
        raise DataError(f"limit must be >= 0, got {limit}")
    if difficulty is not None and source != "synthetic":
        raise DataError(f"difficulty: only synthetic data has a difficulty, not source {source!r}")
    if source == "synthetic":
        from .curriculum import call_synthetic

        size = task.synthetic_size if limit is None else limit
        try:
            records = call_synthetic(task, split, size, seed, difficulty)
        except (ValueError, NotImplementedError) as exc:  # unknown split, no generator, bad difficulty
            raise DataError(f"task {task.name!r}, synthetic split {split!r}: {exc}") from None
        return [_checked(task, r, f"{task.name} synthetic[{i}]") for i, r in enumerate(records)]
    if source == "hf":
        if not task.hf_dataset:
            raise DataError(f"task {task.name!r} has no default Hugging Face data set; give a name or a file")
        rows = _rows_from_hub(task.hf_dataset, task.hf_config, split)
    else:
        path = Path(source).expanduser()
        if path.exists():
            rows = _rows_from_file(path, split)
        elif path.suffix in FILE_SUFFIXES:
            raise DataError(f"{source}: no such file")
        else:
            name, _, config = source.partition(":")
            rows = _rows_from_hub(name, config or None, split)
    if skipped is not None:
        from .data_skip import check_records_skipping

        return check_records_skipping(task, rows, limits or RECORD_CHECK_LIMITS, limit, skipped)
    return check_records(task, rows if limit is None else islice(rows, limit), limits)


def check_records(
    task: Task, rows: Iterable[tuple[str, Any]], limits: SandboxLimits | None = None
) -> list[Record]:
    """Normalise and check untrusted ``(location, raw record)`` pairs, each bounded by ``limits``.

    Runs ``task.normalize_record`` in a forked worker (default :data:`RECORD_CHECK_LIMITS`), so a
    record too slow or too large to check raises :class:`DataError` naming its location instead
    of stalling; so does any malformed record. Stops at the first bad record.
    """
    seen: list[str] = []

    def located() -> Iterator[tuple[str, Any]]:
        for where, raw in rows:
            seen.append(where)
            yield where, raw

    bounds = limits or RECORD_CHECK_LIMITS
    try:
        return list(bounded_map(partial(_checked_pair, task), located(), bounds))
    except BoundedCallError as exc:
        where = seen[exc.index] if exc.index < len(seen) else "a record"
        slow = "took over" in exc.reason
        hint = " (a catastrophic regular expression, or a schema too costly to check?)" if slow else ""
        raise DataError(f"{where}: record check {exc.reason}; the record is refused{hint}") from None


def _checked_pair(task: Task, row: tuple[str, Any]) -> Record:
    where, raw = row
    return _checked(task, raw, where)


def _checked(task: Task, raw: Any, where: str) -> Record:
    if isinstance(raw, UnreadableRow):
        raise DataError(f"{where}: {raw.reason}")
    if not isinstance(raw, Mapping):
        raise DataError(f"{where}: a record must be a JSON object, got {type(raw).__name__}")
    try:
        record = task.normalize_record(raw)
    except RecordError as exc:
        raise DataError(f"{where}: {exc}") from None
    except RecursionError:
        raise DataError(f"{where}: record nested too deeply to check") from None
    try:
        json.dumps(record)
    except RecursionError:
        raise DataError(f"{where}: record nested too deeply to check") from None
    except (TypeError, ValueError) as exc:
        raise DataError(f"{where}: record is not JSON-serialisable after normalising: {exc}") from None
    return record
