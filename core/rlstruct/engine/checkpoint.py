"""Atomic checkpoints: written to a temporary directory, fsynced, then renamed into place.

A checkpoint directory ``checkpoints/step-000050/`` holds the model (LoRA adapter or full model)
and tokenizer as ``save_pretrained`` writes them, plus ``trainer_state.pt`` (optimiser,
scheduler, RNG states) and ``state.json`` (step and counters). ``rename`` is atomic on POSIX, so
a run killed at any moment leaves every ``step-*`` directory complete; half-written ones keep
their ``.tmp-`` prefix and are ignored and cleaned up by the next save.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import RunError

STEP_DIR = re.compile(r"^step-(\d+)$")


class CheckpointWriteError(RunError, OSError):
    """A checkpoint could not be written (disk full, permissions); earlier checkpoints are untouched."""


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _fsync_tree(path: Path) -> None:
    for file in path.rglob("*"):
        if file.is_file():
            with open(file, "rb") as fh:
                os.fsync(fh.fileno())
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_checkpoint(
    root: Path,
    step: int,
    model,
    tokenizer,
    optimizer: torch.optim.Optimizer,
    scheduler,
    state: dict[str, Any],
    keep_last: int,
    *,
    model_state: dict[str, Any] | None = None,
    optimizer_state: dict[str, Any] | None = None,
) -> Path:
    """Write ``root/step-{step}`` atomically, then delete all but the newest ``keep_last``.

    ``model_state`` / ``optimizer_state``: full state dicts gathered from a sharded (FSDP) model, written
    instead of the model's and optimiser's own (see distributed.py; only rank 0 calls this).
    """
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.glob(".tmp-*"):  # left by a run killed mid-write
        shutil.rmtree(stale, ignore_errors=True)
    final = root / f"step-{step:06d}"
    tmp = root / f".tmp-step-{step:06d}"
    recorder = None
    try:
        model.save_pretrained(tmp, **({"state_dict": model_state} if model_state is not None else {}))
        tokenizer.save_pretrained(tmp)
        optim = optimizer_state if optimizer_state is not None else optimizer.state_dict()
        with open(tmp / "trainer_state.pt", "wb") as fh:
            recorder = _RecordingFile(fh)
            torch.save({"optimizer": optim, "scheduler": scheduler.state_dict(), "rng": rng_state()}, recorder)
        (tmp / "state.json").write_text(json.dumps({**state, "step": step}, indent=2))
        _fsync_tree(tmp)
    except Exception as exc:  # noqa: BLE001 - filtered just below
        if not _is_write_error(exc):
            raise
        shutil.rmtree(tmp, ignore_errors=True)  # give the space back; earlier checkpoints were not touched
        kept = list_checkpoints(root)
        last = f"the last good checkpoint, {kept[-1]}, is intact" if kept else "no earlier checkpoint exists"
        cause = recorder.error if recorder is not None and recorder.error is not None else exc
        raise CheckpointWriteError(f"could not write checkpoint {final}: {_why(cause)}; {last}") from exc
    if final.exists():  # re-saving the same step (e.g. final save right after a periodic one)
        shutil.rmtree(final)
    os.rename(tmp, final)
    fd = os.open(root, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    for old in list_checkpoints(root)[:-keep_last]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def save_model_dir(path: Path, model, tokenizer, state_dict: dict[str, Any] | None = None) -> None:
    """``save_pretrained`` of model and tokenizer into ``path`` (e.g. ``final/``), with a one-line
    :class:`CheckpointWriteError` when the disk is full or the directory unwritable. ``state_dict``: the
    full weights gathered from a sharded (FSDP) model, saved instead of the model's own."""
    try:
        model.save_pretrained(path, **({"state_dict": state_dict} if state_dict is not None else {}))
        tokenizer.save_pretrained(path)
    except Exception as exc:  # noqa: BLE001 - filtered just below
        if not _is_write_error(exc):
            raise
        kept = list_checkpoints(path.parent / "checkpoints")
        last = f"; the last checkpoint, {kept[-1]}, is intact (resume from it)" if kept else ""
        raise CheckpointWriteError(f"could not write {path}: {_why(exc)}{last}") from exc


class _RecordingFile:
    """A file for ``torch.save`` that keeps the OSError (e.g. ENOSPC) behind torch's own error
    ("[enforce fail at inline_container.cc] unexpected pos"), so the message can say what happened."""

    def __init__(self, fh) -> None:
        self.fh, self.error = fh, None

    def write(self, data) -> int:
        try:
            return self.fh.write(data)
        except OSError as exc:
            self.error = exc
            raise

    def flush(self) -> None:
        self.fh.flush()


def _is_write_error(exc: BaseException) -> bool:
    """Errors of writing files: OSError, and torch's and safetensors' wrappers of it."""
    return isinstance(exc, (OSError, RuntimeError)) or type(exc).__name__ == "SafetensorError"


def _why(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower() if exc.filename is None else f"{exc.filename}: {exc.strerror.lower()}"
    return str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__


def list_checkpoints(root: Path) -> list[Path]:
    """Complete checkpoints under ``root``, oldest first."""
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := STEP_DIR.match(p.name)) and p.is_dir()]
    return [p for _, p in sorted(found)]


def resolve_resume(path: str | Path) -> Path:
    """Accept a run directory (latest checkpoint) or a checkpoint directory."""
    path = Path(path)
    if (path / "state.json").is_file():
        return path
    ckpts = list_checkpoints(path / "checkpoints")
    if not ckpts:
        raise FileNotFoundError(f"{path}: no complete checkpoint to resume from")
    return ckpts[-1]


def load_trainer_state(ckpt: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return ``(state.json, trainer_state.pt)`` of a checkpoint."""
    state = json.loads((ckpt / "state.json").read_text())
    trainer = torch.load(ckpt / "trainer_state.pt", weights_only=False)
    return state, trainer


def load_model_weights(model, ckpt: Path, lora: bool) -> None:
    """Load checkpointed weights into an already built model (same architecture and LoRA config)."""
    from safetensors.torch import load_file

    if lora:
        from peft import set_peft_model_state_dict

        set_peft_model_state_dict(model, load_file(ckpt / "adapter_model.safetensors"))
    else:
        from transformers import AutoModelForCausalLM

        loaded = AutoModelForCausalLM.from_pretrained(ckpt, dtype=next(model.parameters()).dtype)
        model.load_state_dict(loaded.state_dict())
