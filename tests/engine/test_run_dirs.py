"""Run directories through `rlstruct train`: --resume continues in the run it names, never touches
another run, refuses config changes that break exact resume, saves a checkpoint on Ctrl-C, and turns
unusable directories and full disks into one-line errors."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from rlstruct import cli
from rlstruct.engine import checkpoint as ckpt

ROOT = Path(__file__).parents[2]
CONFIG = ROOT / "tasks" / "gsm8k-json-tiny.toml"


@pytest.fixture(scope="module")
def gsm_model(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("rundirs") / "model"
    assert cli.main(["tiny-model", str(out), "--task", "gsm8k-json", "--vocab-size", "400", "--hidden", "32"]) == 0
    return out


def small(model: Path, steps: int, **extra: object) -> list[str]:
    """--set flags for a 2 x 2 rollout, 8 new tokens, no evaluation at the end."""
    values = {
        "model.name_or_path": json.dumps(str(model)), "grpo.steps": steps, "grpo.prompts_per_step": 2,
        "grpo.group_size": 2, "grpo.max_new_tokens": 8, "run.quiet": "true", "run.eval_at_end": "false",
        "run.save_every": 1, "reward.workers": 1, **extra,
    }
    return [arg for key, value in values.items() for arg in ("--set", f"{key}={value}")]


def steps_in(run: Path) -> list[int]:
    return [json.loads(l)["step"] for l in (run / "metrics.jsonl").read_text().splitlines()]


def tree_digest(path: Path) -> dict[str, str]:
    """Every file under ``path`` with the hash of its bytes (to prove a directory was left alone)."""
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(path.rglob("*")) if p.is_file()}


def fake_other_run(path: Path) -> dict[str, str]:
    """A directory that looks like another, finished run of 10 steps."""
    (path / "final").mkdir(parents=True)
    (path / "final" / "model.safetensors").write_bytes(b"another run's weights")
    (path / "metrics.jsonl").write_text("".join(json.dumps({"step": i, "reward_mean": 0.5}) + "\n" for i in range(1, 11)))
    return tree_digest(path)


def one_line_error(err: str) -> str:
    lines = [l for l in err.splitlines() if l.strip() and not l.startswith(("Loading weights", "Writing model"))]
    assert lines and "Traceback" not in err, err
    assert lines[-1].startswith("rlstruct: error: "), err
    return lines[-1]


@pytest.fixture(scope="module")
def base_run(gsm_model, tmp_path_factory) -> Path:
    """A finished 2-step run (checkpoints at steps 1 and 2); tests copy it before changing anything."""
    out = tmp_path_factory.mktemp("base") / "run"
    assert cli.main(["train", str(CONFIG), *small(gsm_model, 2), "--output-dir", str(out)]) == 0
    return out


def copy_run(base_run: Path, tmp_path: Path, name: str = "x") -> Path:
    dest = tmp_path / name
    shutil.copytree(base_run, dest)
    # the run's own config.toml names its directory: keep it true for the copy, as a user's run would be
    text = (dest / "config.toml").read_text().replace(json.dumps(str(base_run)), json.dumps(str(dest)))
    (dest / "config.toml").write_text(text)
    return dest


# -- --resume continues where it says ------------------------------------------------------------
@pytest.mark.slow
def test_resume_continues_in_the_resumed_run_and_leaves_the_configs_run_alone(gsm_model, base_run, tmp_path, capsys):
    x = copy_run(base_run, tmp_path)
    other = tmp_path / "other"  # the config's run.output_dir: another user's finished run
    before = fake_other_run(other)
    args = ["train", str(CONFIG), *small(gsm_model, 3, **{"run.output_dir": json.dumps(str(other))}), "--resume", str(x)]
    assert cli.main(args) == 0  # raising grpo.steps needs no flag
    assert steps_in(x) == [1, 2, 3]
    assert [p.name for p in ckpt.list_checkpoints(x / "checkpoints")] == ["step-000002", "step-000003"]
    assert (x / "final" / "model.safetensors").is_file()
    assert json.loads(ckpt.resolve_resume(x).joinpath("state.json").read_text())["step"] == 3
    assert tree_digest(other) == before  # not truncated, not overwritten
    assert f"model in {x / 'final'}" in capsys.readouterr().out


@pytest.mark.slow
def test_resume_into_a_new_output_dir_copies_history_and_never_writes_another_run(gsm_model, base_run, tmp_path, capsys):
    x = copy_run(base_run, tmp_path)
    source_before = tree_digest(x)
    busy = tmp_path / "busy"
    busy_before = fake_other_run(busy)
    args = ["train", str(CONFIG), *small(gsm_model, 3), "--resume", str(x)]
    assert cli.main([*args, "--output-dir", str(busy)]) == 1
    err = one_line_error(capsys.readouterr().err)
    assert str(busy) in err and "another run" in err
    assert tree_digest(busy) == busy_before and not (busy / "config.toml").exists()

    fork = tmp_path / "fork"
    assert cli.main([*args, "--output-dir", str(fork)]) == 0
    assert steps_in(fork) == [1, 2, 3]  # history up to the checkpoint, then the new step
    assert (fork / "final").is_dir() and [p.name for p in ckpt.list_checkpoints(fork / "checkpoints")] == ["step-000003"]
    assert tree_digest(x) == source_before  # the resumed run itself is left as it was


@pytest.mark.slow
def test_resume_refuses_config_changes_that_break_exactness(gsm_model, base_run, tmp_path, capsys):
    x = copy_run(base_run, tmp_path)
    before = tree_digest(x)
    changed = small(gsm_model, 3, **{"grpo.group_size": 4, "run.seed": 7})
    assert cli.main(["train", str(CONFIG), *changed, "--resume", str(x)]) == 1
    err = one_line_error(capsys.readouterr().err)
    assert "grpo.group_size (2 -> 4)" in err and "run.seed (0 -> 7)" in err and "--allow-config-change" in err
    assert str(x / "config.toml") in err
    assert "grpo.steps" not in err  # raising the step count is a safe change
    assert tree_digest(x) == before  # refused before anything was written

    other_task = small(gsm_model, 3, **{"task.name": '"json-recipes"'})
    assert cli.main(["train", str(CONFIG), *other_task, "--resume", str(x)]) == 1
    assert "task.name ('gsm8k-json' -> 'json-recipes')" in capsys.readouterr().err

    # an explicit flag accepts the change, says so, and the new value takes effect
    new_lr = small(gsm_model, 3, **{"grpo.learning_rate": 0.002})
    assert cli.main(["train", str(CONFIG), *new_lr, "--resume", str(x), "--allow-config-change"]) == 0
    assert "grpo.learning_rate (0.0005 -> 0.002)" in capsys.readouterr().err
    lines = [json.loads(l) for l in (x / "metrics.jsonl").read_text().splitlines()]
    assert [l["step"] for l in lines] == [1, 2, 3] and lines[-1]["lr"] == pytest.approx(0.002)


# -- errors, not tracebacks ---------------------------------------------------------------------------
def test_resume_without_a_checkpoint_is_a_one_line_error(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    for target in (empty, tmp_path / "missing"):
        assert cli.main(["train", str(CONFIG), "--resume", str(target)]) == 1
        err = one_line_error(capsys.readouterr().err)
        assert f"--resume {target}" in err
    assert list(empty.iterdir()) == []


@pytest.mark.parametrize("where", ["under_a_file", "proc", "read_only"])
def test_unusable_output_directory_is_a_one_line_error(tmp_path, capsys, where):
    if where == "under_a_file":
        (tmp_path / "file").write_text("x")
        out = tmp_path / "file" / "run"
    elif where == "proc":
        out = Path("/proc/rlstruct-no-such-dir/run")  # cannot be created, even by root
    else:
        if os.geteuid() == 0:
            pytest.skip("root ignores directory permissions")
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        out = ro / "run"
    try:
        assert cli.main(["train", str(CONFIG), "--set", "model.name_or_path=/x", "--output-dir", str(out)]) == 1
    finally:
        if where == "read_only":
            (tmp_path / "ro").chmod(0o700)
    err = one_line_error(capsys.readouterr().err)
    assert str(out) in err and "run.output_dir" in err


@pytest.mark.slow
@pytest.mark.parametrize("how", ["torch_save_raises", "file_write_fails"])
def test_full_disk_while_checkpointing_keeps_the_last_good_checkpoint(gsm_model, tmp_path, capsys, monkeypatch, how):
    out = tmp_path / "run"
    real_save = torch.save
    calls = {"n": 0}

    def fill_disk(obj, f, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:  # the second checkpoint (step 2)
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *args, **kwargs)

    class FullFile:
        """A file on a disk that fills up after a few bytes: torch turns the failed write into its own
        RuntimeError ("unexpected pos"), as it does on a real full disk."""

        def __init__(self, fh):
            self.fh, self.written = fh, 0

        def write(self, data):
            self.written += len(data)
            if self.written > 100:
                raise OSError(errno.ENOSPC, "No space left on device")
            return self.fh.write(data)

        def __getattr__(self, name):
            return getattr(self.fh, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

    def open_on_a_full_disk(path, mode="r", *args, **kwargs):
        fh = open(path, mode, *args, **kwargs)
        if Path(path).name != "trainer_state.pt" or "w" not in mode:
            return fh
        calls["n"] += 1
        return FullFile(fh) if calls["n"] == 2 else fh

    if how == "torch_save_raises":
        monkeypatch.setattr(torch, "save", fill_disk)
    else:
        monkeypatch.setattr(ckpt, "open", open_on_a_full_disk, raising=False)
    assert cli.main(["train", str(CONFIG), *small(gsm_model, 3), "--output-dir", str(out)]) == 1
    err = one_line_error(capsys.readouterr().err)
    assert "no space left on device" in err and "step-000002" in err and "step-000001" in err, err
    root = out / "checkpoints"
    assert [p.name for p in ckpt.list_checkpoints(root)] == ["step-000001"]
    assert not list(root.glob(".tmp-*"))  # the partial write is gone, its space given back
    state, trainer = ckpt.load_trainer_state(root / "step-000001")
    assert state["step"] == 1 and "optimizer" in trainer
    # once there is space again, the run resumes from it
    monkeypatch.undo()
    assert cli.main(["train", str(CONFIG), *small(gsm_model, 3), "--resume", str(out)]) == 0
    assert steps_in(out) == [1, 2, 3]


# -- Ctrl-C ---------------------------------------------------------------------------------------------
SIGINT_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from rlstruct import cli
    from rlstruct.engine import grpo

    out = Path({out!r})
    real_step = grpo._train_step

    def step_that_waits(run, state):
        line = real_step(run, state)
        if state.step + 1 == 2:  # inside step 2: tell the parent, then wait for its Ctrl-C
            (out.parent / "IN_STEP_2").write_text("1")
            deadline = time.monotonic() + 60
            while not (out.parent / "SENT").exists() and time.monotonic() < deadline:
                time.sleep(0.05)
        return line

    grpo._train_step = step_that_waits
    sys.exit(cli.main({args!r}))
    """
)


def start_training(tmp_path: Path, args: list[str]) -> subprocess.Popen:
    out = tmp_path / "run"
    script = SIGINT_SCRIPT.format(out=str(out), args=args)
    # its own process group, so the signal reaches the reward workers too, as a terminal's Ctrl-C does
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 180
    while not (tmp_path / "IN_STEP_2").exists():
        assert proc.poll() is None, proc.communicate()[1].decode()[-3000:]
        assert time.monotonic() < deadline, "training never reached step 2"
        time.sleep(0.05)
    return proc


@pytest.mark.slow
def test_first_sigint_checkpoints_the_last_complete_step_and_resumes_exactly(gsm_model, tmp_path):
    out = tmp_path / "run"
    args = ["train", str(CONFIG), *small(gsm_model, 4, **{"run.save_every": 3}), "--output-dir", str(out)]
    proc = start_training(tmp_path, args)
    os.killpg(proc.pid, signal.SIGINT)
    time.sleep(0.5)
    (tmp_path / "SENT").write_text("1")
    _, err = proc.communicate(timeout=120)
    err = err.decode()
    assert proc.returncode == 130, err[-3000:]
    assert "Traceback" not in err
    assert f"checkpoint saved in {out / 'checkpoints' / 'step-000002'}" in err and f"--resume {out}" in err
    assert [p.name for p in ckpt.list_checkpoints(out / "checkpoints")] == ["step-000002"]  # not a save_every step
    assert steps_in(out) == [1, 2] and not (out / "final").exists()

    # resuming it (with the run's own config.toml) gives exactly the parameters of an uninterrupted run
    assert cli.main(["train", str(out / "config.toml"), "--resume", str(out)]) == 0
    straight = tmp_path / "straight"
    assert cli.main(["train", str(CONFIG), *small(gsm_model, 4, **{"run.save_every": 3}), "--output-dir", str(straight)]) == 0
    from safetensors.torch import load_file

    a, b = load_file(out / "final" / "model.safetensors"), load_file(straight / "final" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    ra = [json.loads(l)["reward_mean"] for l in (out / "metrics.jsonl").read_text().splitlines()]
    rb = [json.loads(l)["reward_mean"] for l in (straight / "metrics.jsonl").read_text().splitlines()]
    assert ra == rb and len(ra) == 4


@pytest.mark.slow
def test_second_sigint_stops_at_once(gsm_model, tmp_path):
    out = tmp_path / "run"
    args = ["train", str(CONFIG), *small(gsm_model, 4, **{"run.save_every": 3}), "--output-dir", str(out)]
    proc = start_training(tmp_path, args)
    os.killpg(proc.pid, signal.SIGINT)
    time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGINT)  # the step is still running (SENT is never written)
    _, err = proc.communicate(timeout=30)  # well before the 60 s the step would otherwise wait
    assert proc.returncode == 130, err.decode()[-3000:]
    assert ckpt.list_checkpoints(out / "checkpoints") == []  # no checkpoint of the unfinished step


# -- eval --model RUN/final --------------------------------------------------------------------------------
@pytest.mark.slow
def test_eval_of_a_run_uses_the_runs_own_config(gsm_model, tmp_path, capsys):
    out = tmp_path / "run"
    protocol = {"task.eval_limit": 3, "eval.max_new_tokens": 5, "reward.extras": '{length = {weight = 0.5, max_chars = 7}}'}
    assert cli.main(["train", str(CONFIG), *small(gsm_model, 1, **protocol), "--output-dir", str(out)]) == 0
    capsys.readouterr()
    assert cli.main(["eval", "--model", str(out / "final"), "--task", "gsm8k-json", "--json"]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out.strip().splitlines()[-1])
    assert result["n"] == 3  # the run's task.eval_limit, not the default 64
    assert "length" in result  # the run's extra reward component
    assert f"{out / 'config.toml'}" in captured.err
