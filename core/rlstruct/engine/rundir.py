"""Run directories: where a run writes, which run a ``--resume`` continues, and what may change on resume.

Rules, so that two runs are never mixed or overwritten:

- a fresh run refuses a directory that already holds checkpoints;
- ``--resume DIR`` continues in the run directory DIR belongs to (DIR itself, or RUN for
  ``RUN/checkpoints/step-N``) unless ``--output-dir`` names another directory, which must then hold no
  run (no checkpoints, metrics, samples or ``final/``);
- a resumed run's config is compared with the run's saved ``config.toml``: changing a key that makes
  the continuation differ from an uninterrupted run is refused unless explicitly allowed.
"""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from typing import Any

from ..config import Config, ConfigError, from_dict, to_dict
from ..errors import RunError
from . import checkpoint as ckpt


class RunDirectoryInUse(RunError, FileExistsError):
    """A run was pointed at a directory that holds another run; nothing was written."""


class ResumeError(RunError, ValueError):
    """``--resume`` names nothing resumable, or the config changed in a way that breaks exact resume."""


class OutputDirError(RunError, OSError):
    """The run directory cannot be created or written."""


# Files and folders that mark a directory as holding a run's results (config.toml alone does not:
# it is written first, so a run that failed before its first step leaves only that).
RUN_OUTPUTS = ("checkpoints", "metrics.jsonl", "samples.jsonl", "final")

SAFE_ON_RESUME = (
    "grpo.steps",
    "grpo.max_nan_steps",
    "reward.workers",
    "task.eval_split",
    "task.eval_limit",
    "run.output_dir",
    "run.save_every",
    "run.keep_last",
    "run.samples_per_step",
    "run.quiet",
    "run.log_every",
    "run.eval_at_end",
    "run.report_to",
    "eval.*",
    "sft.*",
)
"""Keys a resumed run may change freely: they bound the run's length, say where and how often it
writes, or only affect evaluation after training. Every other key changes the training trajectory
(even micro-batch size and device change floating-point results), so changing it needs
``--allow-config-change``."""


def run_dir_of(resume: str | Path) -> Path | None:
    """The run directory ``resume`` belongs to: itself, RUN for ``RUN/checkpoints/step-N``, or ``None``
    for a checkpoint directory kept outside any run."""
    resume = Path(resume)
    if (resume / "state.json").is_file():
        return resume.parent.parent if resume.parent.name == "checkpoints" else None
    return resume


def find_checkpoint(resume: str | Path) -> Path:
    """The checkpoint ``--resume`` names (a run's latest, or the checkpoint directory itself), or a
    :class:`ResumeError` saying why there is none."""
    resume = Path(resume)
    if not resume.exists():
        raise ResumeError(f"--resume {resume}: no such directory")
    if not resume.is_dir():
        raise ResumeError(f"--resume {resume}: not a directory (give a run directory or one of its checkpoints)")
    try:
        return ckpt.resolve_resume(resume)
    except FileNotFoundError:
        raise ResumeError(
            f"--resume {resume}: no complete checkpoint to resume from ({resume / 'checkpoints'} has no step-* "
            "directory); start it afresh without --resume"
        ) from None


def check_steps(checkpoint: Path, steps: int) -> None:
    """Refuse, before a model loads, to resume a checkpoint past the configured ``grpo.steps``."""
    try:
        step = int(json.loads((checkpoint / "state.json").read_text())["step"])
    except (OSError, ValueError, KeyError, TypeError):
        raise ResumeError(f"{checkpoint / 'state.json'}: unreadable; the checkpoint is damaged") from None
    if step > steps:
        raise ResumeError(
            f"grpo.steps = {steps} is below the step of {checkpoint} ({step}); raise grpo.steps to train on from there"
        )


def choose_output_dir(resume: str | Path | None, output_dir_flag: str | None, config_output_dir: str) -> Path:
    """Where a run writes: ``--output-dir``, else the resumed run's own directory, else ``run.output_dir``."""
    if output_dir_flag:
        return Path(output_dir_flag)
    if resume is not None:
        own = run_dir_of(resume)
        if own is not None:
            return own
    return Path(config_output_dir)


def run_outputs(path: Path) -> list[str]:
    """The run outputs present in ``path`` (empty when it holds no run)."""
    found = []
    for name in RUN_OUTPUTS:
        item = path / name
        if name == "checkpoints":
            if ckpt.list_checkpoints(item):
                found.append(name + "/")
        elif item.exists():
            found.append(name + ("/" if item.is_dir() else ""))
    return found


def check_run_dirs(output_dir: Path, resume_from: Path | None) -> None:
    """Refuse before anything is written when the run would mix with or overwrite another run.

    A fresh run needs a directory without checkpoints; a resumed run writes into the run it resumes,
    or into a directory that holds no run at all.
    """
    if resume_from is None:
        if ckpt.list_checkpoints(output_dir / "checkpoints"):
            raise RunDirectoryInUse(
                f"{output_dir} already holds checkpoints of an earlier run; continue it with "
                f"--resume {output_dir}, or choose another --output-dir (nothing was overwritten)"
            )
        return
    own = run_dir_of(resume_from)
    if own is not None and same_dir(own, output_dir):
        return
    present = run_outputs(output_dir)
    if present:
        source = own if own is not None else resume_from
        raise RunDirectoryInUse(
            f"{output_dir} holds another run ({', '.join(present)}); a run resumed from {source} writes only "
            f"into {source} or into a new directory (nothing was overwritten)"
        )


def same_dir(a: Path, b: Path) -> bool:
    """Whether two paths name the same directory (existing or not)."""
    return os.path.abspath(a) == os.path.abspath(b) or (a.exists() and b.exists() and os.path.samefile(a, b))


def prepare_output_dir(path: Path) -> None:
    """Create the run directory and prove it writable, with a one-line error naming it if not."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise OutputDirError(f"run directory {path} (run.output_dir): a file of that name is in the way") from None
    except NotADirectoryError:
        raise OutputDirError(f"run directory {path} (run.output_dir): a parent of it is a file, not a directory") from None
    except OSError as exc:
        raise OutputDirError(f"run directory {path} (run.output_dir): cannot create it: {exc.strerror}") from None
    probe = path / f".write-test-{os.getpid()}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise OutputDirError(f"run directory {path} (run.output_dir): cannot write in it: {exc.strerror}") from None


# -- the config of a resumed run --------------------------------------------------------------------
def _flatten(cfg: Config) -> dict[str, Any]:
    return {f"{section}.{key}": value for section, table in to_dict(cfg).items() for key, value in table.items()}


def _is_safe(key: str) -> bool:
    return key in SAFE_ON_RESUME or f"{key.split('.')[0]}.*" in SAFE_ON_RESUME


def config_changes(saved: Config, new: Config) -> dict[str, tuple[Any, Any]]:
    """Every key whose value differs between ``saved`` and ``new``: ``{key: (saved, new)}``."""
    old, cur = _flatten(saved), _flatten(new)
    return {key: (old[key], cur[key]) for key in cur if old.get(key) != cur[key]}


def load_saved_config(path: Path) -> Config:
    """A run's saved config.toml (written by ``rlstruct train``), with defaults filled in."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ResumeError(
            f"{path}: missing, so the resumed config cannot be checked against the run's; "
            "pass --allow-config-change to resume anyway"
        ) from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ResumeError(f"{path}: unreadable ({exc}); pass --allow-config-change to resume anyway") from None
    try:
        return from_dict(data, str(path))
    except ConfigError as exc:
        raise ResumeError(f"{exc}; pass --allow-config-change to resume anyway") from None


def check_resume_config(saved_path: Path, cfg: Config, allow_change: bool) -> list[str]:
    """Compare a resumed run's config with its saved ``config.toml``.

    Raises :class:`ResumeError` listing every changed key outside :data:`SAFE_ON_RESUME` (unless
    ``allow_change``). Returns notes for the user: the changes accepted, and what they mean.
    """
    if allow_change and not saved_path.is_file():
        return [f"{saved_path} missing: the config was not compared with the run's"]
    changes = config_changes(load_saved_config(saved_path), cfg)
    unsafe = {k: v for k, v in changes.items() if not _is_safe(k)}
    listed = ", ".join(f"{k} ({old!r} -> {new!r})" for k, (old, new) in unsafe.items())
    if unsafe and not allow_change:
        raise ResumeError(
            f"cannot resume: the config differs from the run's {saved_path} in keys that change training: {listed}; "
            "use the run's values (e.g. `rlstruct train " + str(saved_path) + " --resume ...`), "
            "or pass --allow-config-change to continue with the new ones"
        )
    notes = []
    if unsafe:
        notes.append(f"resuming with a changed config (--allow-config-change): {listed}; the result will differ "
                     "from an uninterrupted run")
    steps = changes.get("grpo.steps")
    if steps and cfg.grpo.lr_schedule != "constant":
        notes.append(f"grpo.steps {steps[0]} -> {steps[1]}: the {cfg.grpo.lr_schedule} learning-rate schedule is "
                     "stretched to the new length from here on")
    return notes
