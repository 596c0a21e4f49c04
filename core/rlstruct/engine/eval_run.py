"""A saved, resumable evaluation run: ``rlstruct eval ... --out DIR``.

``DIR`` holds two files (their names are a contract):

- ``results.jsonl``: one line per completion (prompt id ``index``, ``sample``, ``task``, completion,
  its reward breakdown and ``error_type``; see docs/evaluation.md), appended batch by batch and
  flushed to disk (``fsync``) after each, so a kill loses at most the batch being generated;
- ``summary.json``: the figures of the whole run plus what produced them: protocol, data source with
  a SHA-256 of its records, model path, seed, reward settings and the versions of Python, rlstruct,
  torch, transformers, peft and every plugin distribution. It is written (atomically) before the
  first batch, with ``"complete": false``, rewritten after each batch with that batch's generation
  time (``batch_seconds``: rows carry no timing, so they are the same in every run), and rewritten
  with the figures when the run ends.

Run the same command again with the same ``--out`` and it resumes: the rows of complete batches are
kept (a torn last line or a half-written batch is dropped), only the missing batches are generated,
and since each batch has its own seed the result equals an uninterrupted run. A rerun whose protocol,
data, model, reward settings or versions differ from the saved ``summary.json`` is refused with one
line naming the first difference: rows from two different evaluations are never mixed.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..errors import RunError
from .evaluate import Row, batch_starts, rows_expected

RESULTS = "results.jsonl"
SUMMARY = "summary.json"

CHECKED_ON_RESUME = ("protocol", "data", "model", "seed", "reward_settings", "versions")
"""Parts of ``summary.json`` that must match for a run to resume (the figures themselves need not)."""


class EvalRunError(RunError, ValueError):
    """An evaluation directory cannot be used or resumed; one line naming the file and the difference."""


def records_sha256(records: Sequence[Mapping[str, Any]]) -> str:
    """SHA-256 of the records exactly as the reward sees them (canonical JSON, one per line)."""
    digest = hashlib.sha256()
    for record in records:
        digest.update(json.dumps(record, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def versions(plugin_distributions: Mapping[str, str | None]) -> dict[str, Any]:
    """Versions of Python, the libraries the numbers depend on, and each plugin distribution."""
    from .. import __version__

    return {
        "python": platform.python_version(),
        "rlstruct": __version__,
        "torch": _version("torch"),
        "transformers": _version("transformers"),
        "peft": _version("peft"),
        "plugins": dict(sorted(plugin_distributions.items())),
    }


def plugin_versions(plugin_manager: Any) -> dict[str, str | None]:
    """``{distribution: version}`` of every loaded plugin (in-process plugins have no distribution)."""
    out: dict[str, str | None] = {}
    for info in plugin_manager.plugins():
        if info.distribution:
            out[info.distribution] = info.version
    return out


def _flatten(value: Any, prefix: str) -> dict[str, Any]:
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flatten(item, f"{prefix}.{key}"))
        return out or {prefix: {}}
    return {prefix: value}


def _first_difference(saved: Mapping[str, Any], current: Mapping[str, Any]) -> tuple[str, Any, Any] | None:
    for part in CHECKED_ON_RESUME:
        old, new = _flatten(saved.get(part), part), _flatten(current.get(part), part)
        for key in sorted(set(old) | set(new)):
            if old.get(key) != new.get(key):
                return key, old.get(key), new.get(key)
    return None


class EvalRunDir:
    """The ``--out DIR`` of one evaluation: checks a resume, appends rows durably, writes the summary."""

    def __init__(self, path: Path, metadata_: Mapping[str, Any]) -> None:
        self.path = Path(path)
        self.metadata = dict(metadata_)
        self.results = self.path / RESULTS
        self.summary_path = self.path / SUMMARY
        self.batch_seconds: dict[int, float] = {}

    # -- start or resume -------------------------------------------------------------------------
    def open(self, n_records: int, batch_size: int, group: int) -> tuple[list[Row], dict[int, float]]:
        """Create the directory or check it for a resume; return the rows of the batches already complete
        and their generation seconds by batch start."""
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise EvalRunError(f"{self.path}: --out must be a directory, and this is a file") from None
        except OSError as exc:
            raise EvalRunError(f"{self.path}: cannot create the --out directory: {exc.strerror}") from None
        if not self.summary_path.exists():
            if self.results.exists() and self.results.stat().st_size:
                raise EvalRunError(f"{self.results}: rows without {SUMMARY}; not a run this command can resume "
                                   "(choose another --out)")
            self._write_summary(self._progress())
            self.results.write_text("")
            return [], {}
        try:
            saved = json.loads(self.summary_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise EvalRunError(f"{self.summary_path}: cannot read it to resume ({exc}); choose another --out") from None
        difference = _first_difference(saved, self.metadata)
        if difference is not None:
            key, old, new = difference
            raise EvalRunError(
                f"{self.summary_path}: this evaluation was run with {key} = {json.dumps(old)}, now "
                f"{json.dumps(new)}; rerun with the same settings to resume, or choose another --out"
            )
        saved_seconds = saved.get("batch_seconds") if isinstance(saved.get("batch_seconds"), dict) else {}
        self.batch_seconds = {int(start): float(value) for start, value in saved_seconds.items()}
        rows = self._complete_rows(n_records, batch_size, group)
        self._rewrite_results(rows)
        self._write_summary(self._progress())
        return rows, dict(self.batch_seconds)

    def _progress(self) -> dict[str, Any]:
        return {"complete": False, **self.metadata, "batch_seconds": {str(k): v for k, v in sorted(self.batch_seconds.items())}}

    def _complete_rows(self, n_records: int, batch_size: int, group: int) -> list[Row]:
        """Rows of complete batches; a torn last line (a kill mid-write), incomplete batches and batches whose
        generation time was not recorded (a kill between the two writes) are dropped, to be generated again."""
        if not self.results.exists():
            return []
        lines = self.results.read_text(encoding="utf-8").splitlines()
        rows: list[Row] = []
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except ValueError:
                if number == len(lines):  # the line being written when the run was killed
                    break
                raise EvalRunError(f"{self.results}:{number}: not a JSON row; choose another --out") from None
        by_batch: dict[int, dict[tuple[int, int], Row]] = {}
        for row in rows:
            by_batch.setdefault(int(row.get("batch", -1)), {})[(row["index"], row["sample"])] = row
        complete: list[Row] = []
        for start in batch_starts(n_records, batch_size):
            found = by_batch.get(start, {})
            if len(found) == rows_expected(n_records, batch_size, group, start) and start in self.batch_seconds:
                complete.extend(found[key] for key in sorted(found))
        self.batch_seconds = {start: value for start, value in self.batch_seconds.items()
                              if start in {int(row["batch"]) for row in complete}}
        return complete

    def _rewrite_results(self, rows: Sequence[Row]) -> None:
        tmp = self.results.with_name(RESULTS + ".tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.results)

    # -- during and after ------------------------------------------------------------------------
    def append(self, rows: Sequence[Row], start: int, seconds: float) -> None:
        """Append one batch's rows and force them to disk, then record its generation time."""
        with open(self.results, "a", encoding="utf-8") as fh:
            fh.write("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
            fh.flush()
            os.fsync(fh.fileno())
        self.batch_seconds[start] = seconds
        self._write_summary(self._progress())

    def finish(self, summary: Mapping[str, Any]) -> dict[str, Any]:
        """Write the final ``summary.json`` (figures + metadata, ``"complete": true``); return it."""
        final = {**self._progress(), "complete": True, **summary, **self.metadata}
        self._write_summary(final)
        return final

    def _write_summary(self, data: Mapping[str, Any]) -> None:
        tmp = self.summary_path.with_name(SUMMARY + ".tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.summary_path)
