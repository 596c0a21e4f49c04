"""CUDA path: bf16 weights, gradient checkpointing, peak-memory tracking. Skipped without a GPU."""

import json

import pytest
import torch

from rlstruct.engine.grpo import train

from .conftest import small_config, spec_for

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def test_grpo_on_cuda_in_bf16_with_lora_and_gradient_checkpointing(tiny_model_dir, toy_task, tmp_path):
    cfg = small_config(tiny_model_dir, tmp_path / "run", steps=3, beta=0.05, num_iterations=2)
    cfg.run.device = "cuda"
    cfg.model.lora = True
    cfg.model.gradient_checkpointing = True
    train(cfg, toy_task, spec_for(toy_task), tmp_path / "run", progress=False)
    lines = [json.loads(l) for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(lines) == 3
    assert all(l["peak_mem_mb"] > 0 for l in lines)
    assert all(not l["nan_skipped"] for l in lines)


def test_auto_dtype_is_bf16_on_cuda():
    from rlstruct.engine.model import pick_dtype

    if torch.cuda.is_bf16_supported():
        assert pick_dtype("auto", torch.device("cuda")) == torch.bfloat16
    assert pick_dtype("auto", torch.device("cpu")) == torch.float32
