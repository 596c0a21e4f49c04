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

STEP_DIR = re.compile(r"^step-(\d+)$")


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
) -> Path:
    """Write ``root/step-{step}`` atomically, then delete all but the newest ``keep_last``."""
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.glob(".tmp-*"):  # left by a run killed mid-write
        shutil.rmtree(stale, ignore_errors=True)
    final = root / f"step-{step:06d}"
    tmp = root / f".tmp-step-{step:06d}"
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    torch.save(
        {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "rng": rng_state()},
        tmp / "trainer_state.pt",
    )
    (tmp / "state.json").write_text(json.dumps({**state, "step": step}, indent=2))
    _fsync_tree(tmp)
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
