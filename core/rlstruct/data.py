"""Loading a task's records: the task's synthetic generator, a local file, or a Hugging Face data set.

``source`` strings, in the order they are tried:

- ``synthetic`` (or empty): the task's seeded offline generator;
- ``hf``: the task's default public data set (``Task.hf_dataset``, ``Task.hf_config``);
- a path to an existing ``.jsonl``, ``.json`` or ``.parquet`` file;
- anything else: a Hugging Face data set name, loaded with ``datasets.load_dataset``
  (``NAME`` or ``NAME:CONFIG``).

Every record goes through ``Task.normalize_record``; a malformed one stops loading with an error
naming the file and line (or row) and the key at fault. Nothing is silently dropped.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator, Mapping

from .task import Record, RecordError, Task

FILE_SUFFIXES = (".jsonl", ".json", ".parquet")


class DataError(ValueError):
    """Records could not be loaded; the message names the file and line or the data set."""


def _rows_from_file(path: Path, split: str) -> Iterator[tuple[str, Any]]:
    """Yield ``(location, raw_row)`` pairs, where location is ``file:line`` or ``file[row]``."""
    if path.suffix == ".jsonl":
        with path.open("rb") as fh:
            for lineno, raw in enumerate(fh, start=1):
                where = f"{path}:{lineno}"
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise DataError(f"{where}: not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
                if not text.strip():
                    continue
                try:
                    yield where, json.loads(text)
                except json.JSONDecodeError as exc:
                    raise DataError(f"{where}: invalid JSON: {exc.msg} (column {exc.colno})") from None
    elif path.suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DataError(f"{path}: invalid JSON: {exc}") from None
        if isinstance(data, dict):
            if split not in data:
                raise DataError(f"{path}: no split {split!r} (the file has: {', '.join(map(str, data))})")
            data = data[split]
        if not isinstance(data, list):
            raise DataError(f"{path}: expected a list of records or an object of splits")
        for index, row in enumerate(data):
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
) -> list[Record]:
    """Load up to ``limit`` normalised records of ``split`` from ``source`` (see module doc)."""
    source = (source or "synthetic").strip()
    if limit is not None and limit < 0:
        raise DataError(f"limit must be >= 0, got {limit}")
    if source == "synthetic":
        size = task.synthetic_size if limit is None else limit
        try:
            records = task.synthetic(split, size, seed)
        except (ValueError, NotImplementedError) as exc:  # unknown split, no generator
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
    out: list[Record] = []
    for where, raw in rows:
        if limit is not None and len(out) >= limit:
            break
        out.append(_checked(task, raw, where))
    return out


def _checked(task: Task, raw: Any, where: str) -> Record:
    if not isinstance(raw, Mapping):
        raise DataError(f"{where}: a record must be a JSON object, got {type(raw).__name__}")
    try:
        record = task.normalize_record(raw)
    except RecordError as exc:
        raise DataError(f"{where}: {exc}") from None
    try:
        json.dumps(record)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{where}: record is not JSON-serialisable after normalising: {exc}") from None
    return record
