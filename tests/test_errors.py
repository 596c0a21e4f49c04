"""One error type for users: every user-facing exception is an ``RlstructError``, and ``rlstruct``
prints it as one line with exit status 2 (usage or config) or 1 (the run could not go on)."""

import importlib
from pathlib import Path

import pytest

import rlstruct
from rlstruct import cli
from rlstruct.errors import RlstructError, RunError, UsageError

# (module, class, branch, a base it had before and keeps, so `except ValueError` code still works)
USER_ERRORS = [
    ("rlstruct.config", "ConfigError", UsageError, ValueError),
    ("rlstruct.reward", "RewardConfigError", UsageError, ValueError),
    ("rlstruct.plugins", "UnknownTaskError", UsageError, LookupError),
    ("rlstruct.curriculum", "CurriculumError", UsageError, ValueError),
    ("rlstruct.sandbox", "SandboxSettingError", UsageError, ValueError),
    ("rlstruct.plugins", "PluginConflictError", RunError, LookupError),
    ("rlstruct.data", "DataError", RunError, ValueError),
    ("rlstruct.task", "RecordError", RunError, ValueError),
    ("rlstruct.tracking", "TrackingError", RunError, ValueError),
    ("rlstruct.cli", "CLIError", RunError, Exception),
    ("rlstruct.plot", "PlotError", RunError, ValueError),
    ("rlstruct.plot", "PlotExtraMissing", RunError, ImportError),
    ("rlstruct.scaffold", "ScaffoldError", RunError, ValueError),
    ("rlstruct.engine.rundir", "RunDirectoryInUse", RunError, FileExistsError),
    ("rlstruct.engine.rundir", "ResumeError", RunError, ValueError),
    ("rlstruct.engine.rundir", "OutputDirError", RunError, OSError),
    ("rlstruct.engine.checkpoint", "CheckpointWriteError", RunError, OSError),
    ("rlstruct.engine.rollout", "PromptTooLong", RunError, ValueError),
    ("rlstruct.engine.model", "ModelNotFound", RunError, ValueError),
    ("rlstruct.engine.grpo", "TrainingStopped", RunError, RuntimeError),
    ("rlstruct.engine.interrupt", "TrainingInterrupted", RunError, Exception),
    ("rlstruct.engine.eval_run", "EvalRunError", RunError, ValueError),
    ("rlstruct.engine.constrained", "ConstrainedDecodingUnavailable", RunError, ValueError),
    ("rlstruct.demo.pipeline", "DemoError", RunError, RuntimeError),
]


@pytest.mark.parametrize("module, name, branch, old_base", USER_ERRORS, ids=[row[1] for row in USER_ERRORS])
def test_user_facing_errors_share_one_base_and_keep_their_old_one(module, name, branch, old_base):
    cls = getattr(importlib.import_module(module), name)
    assert issubclass(cls, branch) and issubclass(cls, RlstructError)
    assert issubclass(cls, old_base)


def test_rlstruct_error_is_public():
    assert rlstruct.RlstructError is RlstructError and "RlstructError" in rlstruct.__all__


def _main(capsys, *argv):
    code = cli.main(list(argv))
    return code, capsys.readouterr().err


def test_an_unknown_task_is_a_usage_error_in_one_line(capsys):
    code, err = _main(capsys, "data", "--task", "no-such-task", "--limit", "1")
    assert code == 2
    assert err.startswith("rlstruct: error: unknown task 'no-such-task'") and err.count("\n") == 1
    assert "Traceback" not in err


def test_a_config_error_exits_2_naming_the_file_and_key(capsys, tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text('[task]\nname = "gsm8k-json"\n[grpo]\nstepz = 3\n')
    code, err = _main(capsys, "score", "--task", "gsm8k-json", "--config", str(config), str(tmp_path / "in.jsonl"))
    assert code == 2
    assert err.startswith("rlstruct: error: ") and str(config) in err and "grpo.stepz" in err and err.count("\n") == 1


def test_a_run_failure_exits_1(capsys, tmp_path):
    missing = tmp_path / "no-such.jsonl"
    code, err = _main(capsys, "data", "--task", "gsm8k-json", "--source", str(missing))
    assert code == 1
    assert err.startswith("rlstruct: error: ") and str(missing) in err and "Traceback" not in err


def test_a_message_with_line_breaks_is_still_one_line(capsys, monkeypatch):
    from rlstruct import data

    def load_records(*args, **kwargs):
        raise data.DataError("records.jsonl:3: unreadable\n  because the library said so\n")

    monkeypatch.setattr(data, "load_records", load_records)
    code, err = _main(capsys, "data", "--task", "gsm8k-json")
    assert (code, err) == (1, "rlstruct: error: records.jsonl:3: unreadable; because the library said so\n")


def test_debug_shows_the_traceback_instead(capsys):
    from rlstruct.plugins import UnknownTaskError

    with pytest.raises(UnknownTaskError, match="no-such-task"):
        cli.main(["--debug", "data", "--task", "no-such-task"])


def test_an_interrupted_training_still_exits_130(capsys, monkeypatch):
    from rlstruct import data
    from rlstruct.engine.interrupt import TrainingInterrupted

    def load_records(*args, **kwargs):
        raise TrainingInterrupted(3, 10, Path("run/checkpoints/step-000003"))

    monkeypatch.setattr(data, "load_records", load_records)
    code, err = _main(capsys, "data", "--task", "gsm8k-json")
    assert code == 130 and err.startswith("rlstruct: interrupted at step 3 of 10")
