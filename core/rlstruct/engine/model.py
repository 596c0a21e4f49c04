"""Loading the policy: device and dtype choice, tokenizer set-up, LoRA, and the reference policy.

With LoRA the reference policy is the same model with the adapter disabled (``reference_logits``
below), so no second copy of the weights is ever held. Full fine-tuning with ``beta > 0`` keeps a
frozen copy; with ``beta == 0`` no reference is needed at all.
"""

from __future__ import annotations

import contextlib
import copy
import json
from pathlib import Path
from typing import Iterator

import torch

from ..config import ModelConfig
from ..errors import RunError


def pick_device(name: str = "auto") -> torch.device:
    """``auto``: CUDA when available, else CPU."""
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("run.device = 'cuda' but no CUDA device is available")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def pick_dtype(name: str, device: torch.device) -> torch.dtype:
    """``auto``: bfloat16 on CUDA devices that support it, float32 otherwise (CPU)."""
    if name == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


def quiet_transformers() -> None:
    """Silence transformers' own progress bars (weight loading, shard writing) for log-friendly output."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


class ModelNotFound(RunError, ValueError):
    """``model.name_or_path`` is neither a local model directory nor a reachable Hub model."""


def check_model_source(name_or_path: str, key: str = "model.name_or_path") -> None:
    """Fail early, naming the key, when a model cannot be found (before a long Hub traceback)."""
    path = Path(name_or_path).expanduser()
    looks_local = name_or_path.startswith((".", "/", "~")) or path.exists() or name_or_path.count("/") > 1
    if looks_local:
        if not path.is_dir():
            raise ModelNotFound(f"{key} = {name_or_path!r}: no such directory")
        if not ((path / "config.json").is_file() or (path / "adapter_config.json").is_file()):
            raise ModelNotFound(f"{key} = {name_or_path!r}: not a model directory (no config.json or adapter_config.json)")


def load_tokenizer(name_or_path: str, trust_remote_code: bool = False):
    """Tokenizer with left padding (generation) and a pad token."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(name_or_path, trust_remote_code=trust_remote_code)
    tok.padding_side = "left"
    tok.truncation_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def is_adapter_dir(path: str) -> bool:
    return (Path(path) / "adapter_config.json").is_file()


def load_policy(cfg: ModelConfig, device: torch.device, train: bool = True):
    """Load model and tokenizer for training (LoRA-wrapped when ``cfg.lora``)."""
    from transformers import AutoModelForCausalLM

    check_model_source(cfg.name_or_path)
    dtype = pick_dtype(cfg.dtype, device)
    tokenizer = load_tokenizer(cfg.name_or_path, cfg.trust_remote_code)
    model = AutoModelForCausalLM.from_pretrained(
        cfg.name_or_path, dtype=dtype, trust_remote_code=cfg.trust_remote_code
    ).to(device)
    if model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    if train and cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    if train and cfg.lora:
        from peft import LoraConfig, get_peft_model

        present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
        targets = [t for t in cfg.lora_targets if t in present]
        if not targets:
            raise ValueError(
                f"model.lora_targets: none of {cfg.lora_targets} exist in {cfg.name_or_path} "
                f"(linear modules there include: {', '.join(sorted(present)[:20])})"
            )
        lora = LoraConfig(
            r=cfg.lora_r,
            lora_alpha=cfg.lora_alpha,
            lora_dropout=cfg.lora_dropout,
            target_modules=targets,
            task_type="CAUSAL_LM",
        )
        model = get_peft_model(model, lora)
        if cfg.gradient_checkpointing:
            model.enable_input_require_grads()
    return model, tokenizer


def load_for_inference(path: str, device: torch.device, dtype_name: str = "auto"):
    """Load a full model directory or a LoRA adapter directory (merged for speed) for generation."""
    from transformers import AutoModelForCausalLM

    check_model_source(path, key="--model")
    dtype = pick_dtype(dtype_name, device)
    if is_adapter_dir(path):
        from peft import PeftModel

        base_name = json.loads((Path(path) / "adapter_config.json").read_text())["base_model_name_or_path"]
        base = AutoModelForCausalLM.from_pretrained(base_name, dtype=dtype)
        model = PeftModel.from_pretrained(base, path).merge_and_unload()
        tok_path = path if (Path(path) / "tokenizer_config.json").is_file() else base_name
    else:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
        tok_path = path
    tokenizer = load_tokenizer(tok_path)
    model.to(device).eval()
    if model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def frozen_reference(model, uses_lora: bool, beta: float):
    """The reference model for the KL term: ``None`` when not needed or when LoRA provides it."""
    if beta == 0 or uses_lora:
        return None
    ref = copy.deepcopy(model).eval()
    for p in ref.parameters():
        p.requires_grad_(False)
    return ref


@contextlib.contextmanager
def reference_mode(model, ref_model) -> Iterator[object]:
    """Yield the module that computes reference log-probs: the adapter-disabled policy or the copy."""
    if ref_model is not None:
        yield ref_model
    else:
        with model.disable_adapter():
            yield model
