"""run.report_to trackers: name checks, what gets logged, and every backend read back with its own reader.

Each backend test skips (with the extra to install) when its library is absent; all run offline.
"""

from __future__ import annotations

import json
import math
import os
import struct
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from rlstruct.tracking import (
    KNOWN_TRACKERS,
    TrackingError,
    check_report_to,
    flatten_numbers,
    open_trackers,
    sample_table,
)

CONFIG = {"task": {"name": "json-recipes"}, "grpo": {"learning_rate": 1e-5, "group_size": 8}, "run": {"report_to": []}}
LINES = [
    {"step": 1, "loss": 0.5, "reward/structure": 0.25, "nan_skipped": False, "device": "cpu", "kl": None,
     "reward_errors_by_component": {"format": 2}},
    {"step": 2, "loss": 0.125, "reward/structure": 0.75, "nan_skipped": True, "device": "cpu", "kl": 0.01},
]
SAMPLES = [
    {"prompt": "Give a recipe.", "completion": '{"name": "soup"}', "reward": 0.5,
     "components": {"structure": 1.0, "format": 0.5, "content": 0.0, "validity": None}, "error": None,
     "error_type": "missing-key"},
    {"prompt": "Give a recipe.", "completion": "not json", "reward": 0.0,
     "components": {"structure": 0.0, "format": 0.0, "content": 0.0, "validity": None}, "error": None,
     "error_type": "not-parseable"},
]


def _log_everything(names: list[str], run_dir: Path, run_name: str) -> None:
    with open_trackers(names, run_dir, CONFIG, run_name) as tracker:
        for line in LINES:
            tracker.log_metrics(line["step"], line)
        tracker.log_samples(2, SAMPLES)


# --------------------------------------------------------------------------------------------
# Names and what is logged (no tracking library needed)
# --------------------------------------------------------------------------------------------


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(TrackingError) as info:
        check_report_to(["tensorbord"])
    message = str(info.value)
    assert "run.report_to[0]" in message and "'tensorbord'" in message
    assert all(name in message for name in KNOWN_TRACKERS)
    assert "\n" not in message


def test_report_to_must_be_a_list_of_names():
    with pytest.raises(TrackingError, match="expected a list"):
        check_report_to("wandb")
    with pytest.raises(TrackingError, match=r"run.report_to\[1\]: expected a tracker name"):
        check_report_to(["wandb", 3], check_installed=False)
    assert check_report_to(["mlflow", "wandb", "mlflow"], check_installed=False) == ["mlflow", "wandb"]
    assert check_report_to([]) == []


def test_missing_library_names_the_extra(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    with pytest.raises(TrackingError) as info:
        open_trackers(["wandb"], Path("unused"), CONFIG, "r")
    assert 'pip install "rlstruct[wandb]"' in str(info.value)
    assert str(info.value).startswith("run.report_to:")


def test_library_that_fails_to_import_names_the_extra(monkeypatch, tmp_path):
    import importlib.util

    real = importlib.util.find_spec
    # Found on disk but broken on import (a half-installed package): still one line naming the extra.
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object() if name == "trackio" else real(name, *a))
    monkeypatch.setitem(sys.modules, "trackio", None)
    with pytest.raises(TrackingError, match=r'rlstruct\[trackio\]'):
        open_trackers(["trackio"], tmp_path, CONFIG, "r")


def test_checking_names_imports_no_tracking_library():
    # Config validation calls check_report_to; it must stay cheap (no tracking library imported).
    code = textwrap.dedent(
        """
        import sys, rlstruct.tracking as t
        try:
            t.check_report_to(["tensorboard", "wandb", "trackio", "mlflow"])
        except t.TrackingError:
            pass  # a library not installed here; the look-up still ran
        print(sorted({m.split(".")[0] for m in sys.modules} & {"tensorboard", "wandb", "trackio", "mlflow"}))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_flatten_numbers_keeps_numbers_only():
    flat = flatten_numbers(LINES[0])
    assert flat == {"loss": 0.5, "reward/structure": 0.25, "nan_skipped": 0.0, "reward_errors_by_component/format": 2.0}
    assert math.isnan(flatten_numbers({"loss": float("nan")})["loss"])  # a NaN loss must stay visible


def test_sample_table_has_completion_each_component_and_error_type():
    columns, data = sample_table(SAMPLES)
    assert columns == ["prompt", "completion", "reward", "structure", "format", "content", "validity", "error_type"]
    assert data[1] == ["Give a recipe.", "not json", 0.0, 0.0, 0.0, 0.0, None, "not-parseable"]
    columns, _ = sample_table([{"completion": "x", "components": {"structure": 1.0}}])
    assert columns == ["completion", "structure"]  # no error_type column when no row has one


def test_no_trackers_is_a_silent_tracker(tmp_path):
    with open_trackers([], tmp_path, CONFIG, "r") as tracker:
        tracker.log_metrics(1, LINES[0])
        tracker.log_samples(1, SAMPLES)
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------------------------
# Backends, each read back with its own reader
# --------------------------------------------------------------------------------------------


def test_tensorboard_events_read_back_with_tensorboard(tmp_path):
    pytest.importorskip("tensorboard", reason='needs the tensorboard extra: pip install "rlstruct[tensorboard]"')
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _log_everything(["tensorboard"], tmp_path, "tb")
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    assert [(e.step, e.value) for e in events.Scalars("loss")] == [(1, 0.5), (2, 0.125)]
    assert [(e.step, e.value) for e in events.Scalars("nan_skipped")] == [(1, 0.0), (2, 1.0)]
    assert [e.value for e in events.Scalars("reward_errors_by_component/format")] == [2.0]
    assert "device" not in events.Tags()["scalars"]
    config_text = events.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
    assert json.loads(config_text.removeprefix("```json\n").removesuffix("\n```")) == CONFIG
    (samples,) = events.Tensors("samples/text_summary")
    table = samples.tensor_proto.string_val[0].decode()
    assert samples.step == 2
    assert table.splitlines()[0] == "| prompt | completion | reward | structure | format | content | validity | error_type |"
    assert "| not-parseable |" in table and '{"name": "soup"}' in table


def _wandb_records(path: Path):
    """Records of a W&B transaction log (``run-ID.wandb``): LevelDB log blocks holding protobufs."""
    from wandb.proto import wandb_internal_pb2

    raw = path.read_bytes()
    assert raw[:4] == b":W&B"
    block, pos, pending = 32768, 7, b""
    while pos + 7 <= len(raw):
        left = block - pos % block
        if left < 7:  # block trailer too small for a header: zero padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", raw[pos : pos + 7])
        if kind == 0:
            pos += left
            continue
        data, pos = raw[pos + 7 : pos + 7 + length], pos + 7 + length
        pending = data if kind in (1, 2) else pending + data
        if kind in (1, 4):  # FULL or LAST: a whole record
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            yield record


def _read_wandb_log(log: Path) -> tuple[dict, dict, str | None]:
    """(history by step, config, run display name) from an offline run's log as written so far."""
    history, config, name = {}, {}, None
    for record in _wandb_records(log):
        kind = record.WhichOneof("record_type")
        if kind == "history":
            items = {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in record.history.item}
            history[items["_step"]] = items
        elif kind == "run":
            name = record.run.display_name
            config.update({i.key: json.loads(i.value_json) for i in record.run.config.update})
        elif kind == "config":
            config.update({i.key: json.loads(i.value_json) for i in record.config.update})
    return history, config, name


def test_wandb_offline_run_reads_back(tmp_path, monkeypatch):
    pytest.importorskip("wandb", reason='needs the wandb extra: pip install "rlstruct[wandb]"')
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb-dir"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    (tmp_path / "wandb-dir").mkdir()
    _log_everything(["wandb"], tmp_path / "run", "wb-test")

    (log,) = (tmp_path / "wandb-dir").glob("wandb/offline-run-*/run-*.wandb")
    # wandb's service process may still be flushing the log after finish() returns on a busy machine:
    # read it until the run record and the last history row are there (or give up after 30 s).
    deadline = time.monotonic() + 30
    while True:
        try:
            history, config, name = _read_wandb_log(log)
        except Exception:  # noqa: BLE001 - a record cut in the middle of being written
            history, config, name = {}, {}, None
        if (name is not None and 2 in history) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert name == "wb-test"
    assert {k: config[k] for k in CONFIG} == CONFIG
    assert history[1]["loss"] == 0.5 and history[1]["reward/structure"] == 0.25
    assert history[2]["loss"] == 0.125 and history[2]["nan_skipped"] == 1.0
    assert "device" not in history[1] and "kl" not in history[1]
    table_file = log.parent / "files" / history[2]["samples/path"]
    table = json.loads(table_file.read_text())
    assert table["columns"][-1] == "error_type" and "validity" in table["columns"]
    assert [row[1] for row in table["data"]] == ['{"name": "soup"}', "not json"]


def test_trackio_local_run_reads_back(tmp_path):
    pytest.importorskip("trackio", reason='needs the trackio extra: pip install "rlstruct[trackio]"')
    # trackio reads TRACKIO_DIR when it is imported, so the run happens in a fresh interpreter.
    script = textwrap.dedent(
        f"""
        import json, sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_tracking import _log_everything
        from pathlib import Path
        _log_everything(["trackio"], Path({str(tmp_path / "run")!r}), "tio-test")
        from trackio.sqlite_storage import SQLiteStorage
        print("RESULT" + json.dumps({{"logs": SQLiteStorage.get_logs("rlstruct", "tio-test"),
                                      "config": SQLiteStorage.get_run_config("rlstruct", "tio-test")}}, default=str))
        """
    )
    env = {**os.environ, "TRACKIO_DIR": str(tmp_path / "trackio")}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(next(l for l in out.stdout.splitlines() if l.startswith("RESULT"))[len("RESULT"):])
    metrics = {log["step"]: log for log in result["logs"] if "loss" in log}
    assert metrics[1]["loss"] == 0.5 and metrics[2]["loss"] == 0.125 and metrics[2]["nan_skipped"] == 1.0
    assert "device" not in metrics[1]
    (samples,) = [log["samples"] for log in result["logs"] if "samples" in log]
    assert samples["_value"][1]["completion"] == "not json" and samples["_value"][1]["error_type"] == "not-parseable"
    assert {k: result["config"][k] for k in CONFIG} == CONFIG
    assert (tmp_path / "trackio" / "rlstruct.db").is_file()


def test_mlflow_local_store_reads_back(tmp_path, monkeypatch):
    pytest.importorskip("mlflow", reason='needs the mlflow extra: pip install "rlstruct[mlflow]"')
    pytest.importorskip("sqlalchemy", reason='MLflow\'s local store needs SQLAlchemy: pip install "rlstruct[mlflow]"')
    from mlflow.tracking import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    run_dir = tmp_path / "run"
    _log_everything(["mlflow"], run_dir, "ml-test")

    client = MlflowClient(tracking_uri=f"sqlite:///{run_dir / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("rlstruct").experiment_id])
    assert run.info.run_name == "ml-test" and run.info.status == "FINISHED"
    assert [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, "loss")] == [(1, 0.5), (2, 0.125)]
    assert "device" not in run.data.metrics
    assert run.data.params["grpo.group_size"] == "8" and run.data.params["task.name"] == "json-recipes"
    local = Path(client.download_artifacts(run.info.run_id, "", str(tmp_path / "download")))
    assert json.loads((local / "config.json").read_text()) == CONFIG
    table = json.loads((local / "samples" / "step_000002.json").read_text())
    assert table["columns"][-1] == "error_type"
    assert table["data"][0][table["columns"].index("format")] == 0.5
    assert (run_dir / "mlflow-artifacts").is_dir()  # artifacts stay inside the run directory


def test_two_trackers_at_once_both_receive_everything(tmp_path, monkeypatch):
    pytest.importorskip("tensorboard", reason='needs the tensorboard extra: pip install "rlstruct[tensorboard]"')
    pytest.importorskip("mlflow", reason='needs the mlflow extra: pip install "rlstruct[mlflow]"')
    pytest.importorskip("sqlalchemy", reason='needs the mlflow extra: pip install "rlstruct[mlflow]"')
    from mlflow.tracking import MlflowClient
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    _log_everything(["tensorboard", "mlflow"], tmp_path, "both")
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    assert [e.value for e in events.Scalars("reward/structure")] == [0.25, 0.75]
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("rlstruct").experiment_id])
    assert [m.value for m in client.get_metric_history(run.info.run_id, "reward/structure")] == [0.25, 0.75]
