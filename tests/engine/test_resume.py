"""Checkpoints: exact resume, atomic writes that survive SIGKILL, loadable with plain from_pretrained."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from rlstruct.engine import checkpoint as ckpt
from rlstruct.engine.grpo import train

from .conftest import small_config, spec_for


def _params(model_dir: Path, lora: bool) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    name = "adapter_model.safetensors" if lora else "model.safetensors"
    return load_file(model_dir / name)


@pytest.mark.slow
@pytest.mark.parametrize("lora", [True, False], ids=["lora", "full"])
def test_resume_gives_identical_parameters(tiny_model_dir, toy_task, tmp_path, lora):
    # num_iterations 2 and beta > 0 exercise old log-probs, clipping and the (adapter-disabled) reference.
    kw = dict(steps=4, num_iterations=2, beta=0.05, learning_rate=5e-3)
    straight = small_config(tiny_model_dir, tmp_path / "a", **kw)
    straight.model.lora = lora
    train(straight, toy_task, spec_for(toy_task), tmp_path / "a", progress=False)

    half = small_config(tiny_model_dir, tmp_path / "b", **{**kw, "steps": 2})
    half.model.lora = lora
    train(half, toy_task, spec_for(toy_task), tmp_path / "b", progress=False)
    rest = small_config(tiny_model_dir, tmp_path / "b", **kw)
    rest.model.lora = lora
    train(rest, toy_task, spec_for(toy_task), tmp_path / "b", resume_from=tmp_path / "b", progress=False)

    a, b = _params(tmp_path / "a" / "final", lora), _params(tmp_path / "b" / "final", lora)
    assert a.keys() == b.keys() and a
    for key in a:
        assert torch.equal(a[key], b[key]), key
    # the parameters did move, so equality is not trivial
    start = _params(tmp_path / "b" / "checkpoints" / "step-000002", lora)
    assert any(not torch.equal(a[k], start[k]) for k in a)
    # metrics of the resumed run continue without duplicates and match the straight run
    ma = [json.loads(l) for l in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    mb = [json.loads(l) for l in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert [l["step"] for l in mb] == [1, 2, 3, 4]
    assert [l["reward_mean"] for l in ma] == [l["reward_mean"] for l in mb]


@pytest.mark.slow
def test_saved_models_load_with_plain_from_pretrained(tiny_model_dir, toy_task, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cfg = small_config(tiny_model_dir, tmp_path / "run", steps=2)
    cfg.model.lora = True
    train(cfg, toy_task, spec_for(toy_task), tmp_path / "run", progress=False)
    final = tmp_path / "run" / "final"
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    model = PeftModel.from_pretrained(base, final)
    tok = AutoTokenizer.from_pretrained(final)
    ids = tok("hello", return_tensors="pt")["input_ids"]
    assert model(ids).logits.shape[-1] == base.config.vocab_size
    kept = ckpt.list_checkpoints(tmp_path / "run" / "checkpoints")
    assert [p.name for p in kept] == ["step-000002"]
    # `rlstruct eval` loads an adapter directory by merging it into its base model
    from rlstruct.engine.model import load_for_inference

    merged, _ = load_for_inference(str(final), torch.device("cpu"))
    with torch.no_grad():
        assert torch.allclose(merged(ids).logits, model(ids).logits, atol=1e-4)


KILL_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    sys.path.insert(0, {tests!r})
    from engine.conftest import DigitsTask, small_config, spec_for
    from rlstruct.engine import checkpoint as ckpt
    from rlstruct.engine.grpo import train

    real_fsync = ckpt._fsync_tree
    def slow_fsync(path):
        if path.name.endswith("000004"):  # the second checkpoint: hang mid-write, the parent kills us
            (Path({out!r}) / "WRITING").write_text("1")
            time.sleep(60)
        real_fsync(path)
    ckpt._fsync_tree = slow_fsync
    task = DigitsTask()
    cfg = small_config(Path({model!r}), Path({out!r}), steps=6)
    train(cfg, task, spec_for(task), Path({out!r}), progress=False)
    """
)


@pytest.mark.slow
def test_sigkill_during_checkpoint_write_leaves_previous_checkpoint_loadable(tiny_model_dir, toy_task, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    script = KILL_SCRIPT.format(tests=str(Path(__file__).parents[1]), out=str(out), model=str(tiny_model_dir))
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not (out / "WRITING").exists():
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "training never reached the second checkpoint"
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    root = out / "checkpoints"
    assert (root / ".tmp-step-000004").exists()  # the interrupted write
    assert [p.name for p in ckpt.list_checkpoints(root)] == ["step-000002"]
    assert ckpt.resolve_resume(out).name == "step-000002"
    # the previous checkpoint loads and the run resumes to the end from it
    cfg = small_config(tiny_model_dir, out, steps=6)
    train(cfg, toy_task, spec_for(toy_task), out, resume_from=out, progress=False)
    assert [p.name for p in ckpt.list_checkpoints(root)] == ["step-000004", "step-000006"]
    assert not list(root.glob(".tmp-*"))
    steps = [json.loads(l)["step"] for l in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]
