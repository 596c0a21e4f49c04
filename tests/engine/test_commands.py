"""The engine's commands end to end through the CLI, on a tiny model built by `rlstruct tiny-model`."""

import json
import tomllib
from pathlib import Path

import pytest

from rlstruct import cli
from rlstruct.config import load_config
from rlstruct.engine.checkpoint import list_checkpoints

ROOT = Path(__file__).parents[2]


@pytest.fixture(scope="module")
def gsm_model(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cmd") / "model"
    assert cli.main(["tiny-model", str(out), "--task", "gsm8k-json", "--vocab-size", "400", "--hidden", "64"]) == 0
    return out


def _overrides(model: Path, out: Path) -> list[str]:
    return [
        "--set", f'model.name_or_path="{model}"', "--set", "grpo.steps=2", "--set", "grpo.prompts_per_step=2",
        "--set", "grpo.group_size=2", "--set", "grpo.max_new_tokens=8", "--set", "eval.max_new_tokens=8",
        "--set", "task.eval_limit=3", "--set", "run.quiet=true", "--set", f'run.output_dir="{out}"',
    ]


@pytest.mark.slow
def test_train_writes_a_complete_run_directory(gsm_model, tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["train", str(ROOT / "tasks" / "gsm8k-json-tiny.toml"), *_overrides(gsm_model, out)]) == 0
    for name in ("config.toml", "metrics.jsonl", "samples.jsonl", "eval.json", "eval_samples.jsonl", "final"):
        assert (out / name).exists(), name
    resolved = load_config(out / "config.toml")
    assert resolved.grpo.steps == 2 and resolved.model.name_or_path == str(gsm_model)
    assert resolved.reward.extras == {"length": {"weight": 0.1, "max_chars": 600}}
    lines = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    assert [l["step"] for l in lines] == [1, 2] and "reward/length" in lines[0]
    assert [p.name for p in list_checkpoints(out / "checkpoints")] == ["step-000002"]
    summary = json.loads((out / "eval.json").read_text())
    assert summary["n"] == 3 and summary["protocol"]["decoding"] == "greedy"

    # eval --json on the trained model: the documented keys, each a share in [0, 1]
    capsys.readouterr()
    rows_file = tmp_path / "rows.jsonl"
    assert cli.main(["eval", "--model", str(out / "final"), "--task", "gsm8k-json", "--limit", "3",
                     "--max-new-tokens", "8", "--json", "-o", str(rows_file)]) == 0
    rows = [json.loads(l) for l in rows_file.read_text().splitlines()]
    assert [r["index"] for r in rows] == [0, 1, 2] and all({"completion", "reward", "components"} <= set(r) for r in rows)
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in ("n", "reward", "structure", "format", "content", "validity"):
        assert key in result
    assert result["n"] == 3
    assert all(0.0 <= result[k] <= 1.0 for k in ("structure", "format", "content", "validity", "structure_mean"))

    # a fresh run pointed at the same directory is refused: it would mix two runs' checkpoints
    before = (out / "config.toml").read_text()
    args = ["train", str(ROOT / "tasks" / "gsm8k-json-tiny.toml"), *_overrides(gsm_model, out), "--set", "grpo.steps=3"]
    assert cli.main(args) == 1
    assert "--resume" in capsys.readouterr().err
    assert (out / "config.toml").read_text() == before
    # ... while --resume continues it (one more step)
    assert cli.main([*args, "--resume", str(out)]) == 0
    assert [json.loads(l)["step"] for l in (out / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3]


@pytest.mark.slow
def test_sft_lowers_the_loss_and_saves_a_loadable_model(gsm_model, tmp_path, capsys):
    from transformers import AutoModelForCausalLM

    out = tmp_path / "sft"
    args = ["sft", str(ROOT / "tasks" / "gsm8k-json-tiny.toml"), "--set", f'model.name_or_path="{gsm_model}"',
            "--set", "sft.steps=25", "--set", "sft.batch_size=4", "--set", "run.quiet=true", "--output-dir", str(out)]
    assert cli.main(args) == 0
    line = capsys.readouterr().out
    first, last = (float(x) for x in line.split("loss ")[1].split(";")[0].split(" -> "))
    assert last < first * 0.8, line
    AutoModelForCausalLM.from_pretrained(out)


def test_every_task_config_in_tasks_dir_is_valid():
    from rlstruct.mixture import bind_tasks
    from rlstruct.plugins import PluginManager

    pm = PluginManager()
    configs = sorted((ROOT / "tasks").glob("*.toml"))
    assert configs
    for path in configs:
        cfg = load_config(path)
        assert bind_tasks(cfg, pm, str(path))  # every task known, reward tables valid (mixture-tiny: three)
        tomllib.loads(path.read_text())


@pytest.mark.slow
def test_grpo_step_benchmark_runs_and_reports_its_device():
    import subprocess
    import sys

    cmd = [sys.executable, str(ROOT / "benchmarks" / "grpo_step.py"), "--task", "gsm8k-json", "--hidden", "32",
           "--prompts", "2", "--group", "2", "--max-new-tokens", "4", "--warmup", "0", "--steps", "1", "--device", "cpu"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=300).stdout
    result = json.loads(out.strip().splitlines()[-1])
    assert result["device"] == "cpu" and result["measured_steps"] == 1 and result["completion_tokens_per_s"] > 0


def test_tiny_model_rejects_a_width_that_does_not_split_into_heads(tmp_path, capsys):
    assert cli.main(["tiny-model", str(tmp_path / "m"), "--hidden", "66"]) == 2  # a usage error
    assert "multiple of 4" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()
