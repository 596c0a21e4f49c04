"""Experiment tracking: send metrics lines, the resolved config and sample tables to TensorBoard, W&B,
trackio and/or MLflow (``run.report_to``).

Each backend is written through its own library, installed by the optional extra of the same name
(``pip install "rlstruct[wandb]"``). Nothing here imports a tracking library until a tracker is opened,
so :func:`check_report_to` is cheap enough to run while a config is validated.

Usage::

    tracker = open_trackers(["tensorboard", "wandb"], run_dir, config_dict, run_name="x")
    tracker.log_metrics(step, line)       # numbers only; strings and None are skipped
    tracker.log_samples(step, rows)       # completion + each component (+ error_type) as a table
    tracker.close()

Where each backend writes by default:

- ``tensorboard``: event files in ``RUN_DIR/tensorboard`` (``tensorboard --logdir RUN_DIR``);
- ``wandb``: a W&B run in project ``WANDB_PROJECT`` (else ``rlstruct``), local files under ``WANDB_DIR``
  (else ``RUN_DIR``); ``WANDB_MODE=offline`` keeps everything local;
- ``trackio``: trackio's local database (``TRACKIO_DIR``, default ``~/.cache/huggingface/trackio``), project
  ``rlstruct``; ``trackio show`` opens it;
- ``mlflow``: ``MLFLOW_TRACKING_URI`` when set, else a SQLite store ``RUN_DIR/mlflow.db`` with artifacts in
  ``RUN_DIR/mlflow-artifacts``; experiment ``MLFLOW_EXPERIMENT_NAME`` (else ``rlstruct``).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .errors import RunError

__all__ = [
    "KNOWN_TRACKERS",
    "CompositeTracker",
    "Tracker",
    "TrackingError",
    "check_report_to",
    "flatten_numbers",
    "open_trackers",
    "sample_table",
]

KNOWN_TRACKERS: dict[str, str] = {
    "tensorboard": "tensorboard",
    "wandb": "wandb",
    "trackio": "trackio",
    "mlflow": "mlflow",
}
"""Tracker name -> the module its library provides (the extra to install has the tracker's name)."""

DEFAULT_PROJECT = "rlstruct"


class TrackingError(RunError, ValueError):
    """A tracker name is unknown, its library is missing, or the tracker could not start. One line."""


def _install_hint(name: str) -> str:
    return f'pip install "rlstruct[{name}]"'


def check_report_to(names: Any, key: str = "run.report_to", check_installed: bool = True) -> list[str]:
    """Validate a ``report_to`` value without importing any tracking library; return the names in order.

    ``names`` must be a list of strings from :data:`KNOWN_TRACKERS` (duplicates are dropped). With
    ``check_installed`` a name whose library is not installed is an error naming the extra to install
    (``importlib.util.find_spec`` only looks the module up, it does not import it).
    """
    if isinstance(names, str) or not isinstance(names, (list, tuple)):
        raise TrackingError(f"{key}: expected a list of tracker names like [\"tensorboard\"], got {names!r}")
    known = ", ".join(KNOWN_TRACKERS)
    out: list[str] = []
    for index, name in enumerate(names):
        if not isinstance(name, str):
            raise TrackingError(f"{key}[{index}]: expected a tracker name (string), got {name!r}")
        if name not in KNOWN_TRACKERS:
            raise TrackingError(f"{key}[{index}]: unknown tracker {name!r}; known: {known}")
        if name not in out:
            out.append(name)
    if check_installed:
        for name in out:
            if importlib.util.find_spec(KNOWN_TRACKERS[name]) is None:
                raise TrackingError(
                    f"{key}: {name!r} needs the {KNOWN_TRACKERS[name]} library, which is not installed: "
                    f"{_install_hint(name)}"
                )
    return out


# --------------------------------------------------------------------------------------------
# What gets logged
# --------------------------------------------------------------------------------------------


def flatten_numbers(line: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """The numeric values of a metrics line as floats, nested mappings flattened to ``outer/inner``.

    Booleans become 0/1 (``nan_skipped`` is worth a curve); strings, ``None`` and lists are skipped;
    ``step`` at the top level is the x-axis, not a metric. NaN and infinities are kept: a NaN loss is
    exactly what a user needs to see.
    """
    out: dict[str, float] = {}
    for key, value in line.items():
        name = f"{prefix}{key}"
        if not prefix and key == "step":
            continue
        if isinstance(value, Mapping):
            out.update(flatten_numbers(value, prefix=f"{name}/"))
        elif isinstance(value, bool):
            out[name] = float(value)
        elif isinstance(value, (int, float)):
            out[name] = float(value)
    return out


def sample_table(rows: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    """``(columns, data)`` of a sample table: prompt (when present), completion, reward (when present),
    one column per reward component, and ``error_type`` when any row has one.

    Rows are ``samples.jsonl`` items: ``{"prompt", "completion", "reward", "components": {...},
    "error_type"?}``; components may also be top-level keys of a row. A component a task does not
    implement (``None``) stays ``None``.
    """
    components: list[str] = []
    for row in rows:
        for name in row.get("components") or {}:
            if name not in components:
                components.append(name)
    columns = [c for c in ("prompt", "completion", "reward") if any(c in row for row in rows)]
    if "completion" not in columns:
        columns.insert(0, "completion")
    columns += components
    if any(row.get("error_type") is not None for row in rows):
        columns.append("error_type")
    data = []
    for row in rows:
        comps = row.get("components") or {}
        values: list[Any] = []
        for column in columns:
            value = comps[column] if column in comps else row.get(column)
            values.append(value if value is None or isinstance(value, (int, float)) else str(value))
        data.append(values)
    return columns, data


def _config_json(config: Mapping[str, Any]) -> str:
    return json.dumps(config, indent=2, sort_keys=False, default=str, ensure_ascii=False)


def _flatten_params(config: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flatten_params(value, prefix=f"{name}."))
        else:
            out[name] = json.dumps(value, default=str, ensure_ascii=False) if not isinstance(value, str) else value
    return out


# --------------------------------------------------------------------------------------------
# Trackers
# --------------------------------------------------------------------------------------------


class Tracker:
    """One tracking destination. Every method is a no-op here; backends override what they support."""

    name = "none"

    def log_config(self, config: Mapping[str, Any]) -> None:
        """Record the resolved config (called once, by :func:`open_trackers`)."""

    def log_metrics(self, step: int, line: Mapping[str, Any]) -> None:
        """Record the numeric values of one metrics line at ``step``."""

    def log_samples(self, step: int, rows: Sequence[Mapping[str, Any]]) -> None:
        """Record a table of sample completions with their reward breakdown at ``step``."""

    def close(self) -> None:
        """Flush and finish; the tracker is not used afterwards."""

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class CompositeTracker(Tracker):
    """Fans every call out to several trackers (none at all is a valid, silent tracker)."""

    name = "composite"

    def __init__(self, trackers: Iterable[Tracker] = ()) -> None:
        self.trackers = list(trackers)

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.trackers]

    def log_config(self, config: Mapping[str, Any]) -> None:
        for tracker in self.trackers:
            tracker.log_config(config)

    def log_metrics(self, step: int, line: Mapping[str, Any]) -> None:
        for tracker in self.trackers:
            tracker.log_metrics(step, line)

    def log_samples(self, step: int, rows: Sequence[Mapping[str, Any]]) -> None:
        if rows:
            for tracker in self.trackers:
                tracker.log_samples(step, rows)

    def close(self) -> None:
        # Close every tracker even if one fails, then report the first failure.
        first: BaseException | None = None
        for tracker in self.trackers:
            try:
                tracker.close()
            except Exception as exc:  # noqa: BLE001 - re-raised below
                first = first or exc
        self.trackers = []
        if first is not None:
            raise first


def _markdown_cell(value: Any) -> str:
    text = "" if value is None else (f"{value:.4g}" if isinstance(value, float) else str(value))
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", "<br>")


class TensorBoardTracker(Tracker):
    """Scalars, the config and sample tables (as markdown text) in TensorBoard event files."""

    name = "tensorboard"

    def __init__(self, run_dir: Path) -> None:
        from torch.utils.tensorboard import SummaryWriter  # writes with the tensorboard package

        self.log_dir = run_dir / "tensorboard"
        self.writer = SummaryWriter(log_dir=str(self.log_dir))

    def log_config(self, config: Mapping[str, Any]) -> None:
        self.writer.add_text("config", "```json\n" + _config_json(config) + "\n```", global_step=0)

    def log_metrics(self, step: int, line: Mapping[str, Any]) -> None:
        for key, value in flatten_numbers(line).items():
            self.writer.add_scalar(key, value, global_step=step)

    def log_samples(self, step: int, rows: Sequence[Mapping[str, Any]]) -> None:
        columns, data = sample_table(rows)
        lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
        lines += ["| " + " | ".join(_markdown_cell(v) for v in row) + " |" for row in data]
        self.writer.add_text("samples", "\n".join(lines), global_step=step)

    def close(self) -> None:
        self.writer.close()


class WandbTracker(Tracker):
    """A W&B run: metrics with ``step``, the config, and a ``samples`` table per logged step."""

    name = "wandb"

    def __init__(self, run_dir: Path, run_name: str, project: str | None) -> None:
        import wandb

        self._wandb = wandb
        self.run = wandb.init(
            project=project or os.environ.get("WANDB_PROJECT") or DEFAULT_PROJECT,
            name=run_name,
            dir=os.environ.get("WANDB_DIR") or str(run_dir),
            reinit="create_new",  # several runs in one process (tests, sweeps) must not share state
        )

    def log_config(self, config: Mapping[str, Any]) -> None:
        self.run.config.update(json.loads(_config_json(config)), allow_val_change=True)

    def log_metrics(self, step: int, line: Mapping[str, Any]) -> None:
        self.run.log(flatten_numbers(line), step=step)

    def log_samples(self, step: int, rows: Sequence[Mapping[str, Any]]) -> None:
        columns, data = sample_table(rows)
        self.run.log({"samples": self._wandb.Table(columns=columns, data=data)}, step=step)

    def close(self) -> None:
        self.run.finish()


class TrackioTracker(Tracker):
    """A trackio run in its local database: metrics, the config and ``samples`` tables."""

    name = "trackio"

    def __init__(self, run_dir: Path, run_name: str, project: str | None) -> None:
        import trackio

        self._trackio = trackio
        self.project = project or DEFAULT_PROJECT
        # embed=False: never start a dashboard server from inside a training run; no system monitors.
        self.run = trackio.init(
            project=self.project, name=run_name, embed=False,
            auto_log_cpu=False, auto_log_gpu=False,
        )

    def log_config(self, config: Mapping[str, Any]) -> None:
        # trackio stores a run's config with its first logged metrics; open_trackers calls this before any.
        self.run.config.update(json.loads(_config_json(config)))

    def log_metrics(self, step: int, line: Mapping[str, Any]) -> None:
        self.run.log(flatten_numbers(line), step=step)

    def log_samples(self, step: int, rows: Sequence[Mapping[str, Any]]) -> None:
        columns, data = sample_table(rows)
        self.run.log({"samples": self._trackio.Table(columns=columns, data=data)}, step=step)

    def close(self) -> None:
        self.run.finish()


_MLFLOW_BAD_CHARS = re.compile(r"[^A-Za-z0-9_\-. :/]")
_MLFLOW_PARAM_CHARS = 6000  # MLflow's limit on a parameter value


class MlflowTracker(Tracker):
    """An MLflow run: metrics by step, the config as parameters and ``config.json``, samples as tables."""

    name = "mlflow"

    def __init__(self, run_dir: Path, run_name: str, project: str | None) -> None:
        from mlflow.tracking import MlflowClient

        uri = os.environ.get("MLFLOW_TRACKING_URI")
        artifacts = None
        if not uri:
            # A store of its own per run directory, so nothing lands in the working directory.
            uri = f"sqlite:///{(run_dir / 'mlflow.db').resolve()}"
            artifacts = (run_dir / "mlflow-artifacts").resolve().as_uri()
        self.tracking_uri = uri
        self.client = MlflowClient(tracking_uri=uri)
        experiment_name = project or os.environ.get("MLFLOW_EXPERIMENT_NAME") or DEFAULT_PROJECT
        experiment = self.client.get_experiment_by_name(experiment_name)
        experiment_id = (
            experiment.experiment_id if experiment is not None
            else self.client.create_experiment(experiment_name, artifact_location=artifacts)
        )
        self.run_id = self.client.create_run(experiment_id, run_name=run_name).info.run_id
        self._params_logged = False

    def log_config(self, config: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        self.client.log_dict(self.run_id, json.loads(_config_json(config)), "config.json")
        if not self._params_logged:  # MLflow parameters cannot change once logged
            params = [Param(k, v[:_MLFLOW_PARAM_CHARS]) for k, v in _flatten_params(config).items()]
            for start in range(0, len(params), 100):  # log_batch takes at most 100 parameters
                self.client.log_batch(self.run_id, params=params[start : start + 100])
            self._params_logged = True

    def log_metrics(self, step: int, line: Mapping[str, Any]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(_MLFLOW_BAD_CHARS.sub("_", k), v, now, step) for k, v in flatten_numbers(line).items()]
        for start in range(0, len(metrics), 1000):  # log_batch takes at most 1000 metrics
            self.client.log_batch(self.run_id, metrics=metrics[start : start + 1000])

    def log_samples(self, step: int, rows: Sequence[Mapping[str, Any]]) -> None:
        columns, data = sample_table(rows)
        table = {column: [row[i] for row in data] for i, column in enumerate(columns)}
        with warnings.catch_warnings():  # pandas deprecation noise from inside MLflow
            warnings.simplefilter("ignore")
            self.client.log_table(self.run_id, data=table, artifact_file=f"samples/step_{step:06d}.json")

    def close(self) -> None:
        self.client.set_terminated(self.run_id)


def _open_one(name: str, run_dir: Path, run_name: str, project: str | None) -> Tracker:
    if name == "tensorboard":
        return TensorBoardTracker(run_dir)
    if name == "wandb":
        return WandbTracker(run_dir, run_name, project)
    if name == "trackio":
        return TrackioTracker(run_dir, run_name, project)
    return MlflowTracker(run_dir, run_name, project)


def open_trackers(
    names: Sequence[str],
    run_dir: str | Path,
    config: Mapping[str, Any],
    run_name: str,
    *,
    project: str | None = None,
    key: str = "run.report_to",
) -> CompositeTracker:
    """Open one tracker per name and log ``config`` to each; returns them as one :class:`CompositeTracker`.

    ``names``: see :func:`check_report_to` (an empty list gives a tracker that does nothing).
    ``run_dir``: the run directory (created if missing); local backends write under it.
    ``project``: W&B project / trackio project / MLflow experiment (default: each library's environment
    variable, else ``rlstruct``). A missing library or a backend that cannot start raises
    :class:`TrackingError` naming ``key``; trackers already opened are closed first.
    """
    names = check_report_to(names, key=key)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    opened = CompositeTracker()
    try:
        for name in names:
            try:
                tracker = _open_one(name, run_dir, run_name, project)
            except ImportError as exc:
                raise TrackingError(
                    f"{key}: {name!r} could not import {exc.name or 'its library'}: {_install_hint(name)}"
                ) from None
            except Exception as exc:  # noqa: BLE001 - any start-up failure becomes one line naming the key
                first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
                raise TrackingError(f"{key}: {name!r} could not start: {first_line}") from None
            opened.trackers.append(tracker)
        opened.log_config(config)
    except BaseException:
        try:
            opened.close()
        except Exception:  # noqa: BLE001 - the original error matters more
            pass
        raise
    return opened

