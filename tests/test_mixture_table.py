"""benchmarks/mixture_table.py reads what mixture_vs_single.sh writes and never fills in a missing figure."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]
SCRIPT = ROOT / "benchmarks" / "mixture_table.py"
TASKS = ("json-recipes", "gsm8k-json", "xml-records")


def _summary(structure: float, reward: float) -> dict:
    return {"n": 128, "structure": structure, "structure_mean": structure, "format": structure / 2,
            "format_mean": structure / 2, "content": 0.1, "content_mean": 0.25, "validity": 0.2,
            "validity_mean": 0.3, "reward": reward}


def _write(directory: Path, skip: str | None = None) -> None:
    for protocol in ("sampled", "greedy"):
        for i, task in enumerate(TASKS):
            (directory / f"{task}-sft.{protocol}.json").write_text(json.dumps(_summary(0.1 * i, 0.2)))
            if f"{task}.{protocol}" != skip:
                (directory / f"{task}.{protocol}.json").write_text(json.dumps(_summary(0.5, 0.6)))
        for name, s in (("mix-sft", 0.3), ("mix", 0.7)):
            data = {"tasks": {t: _summary(s, s) for t in TASKS}, "macro": {"reward": s}, "protocol": {}}
            (directory / f"{name}.{protocol}.json").write_text(json.dumps(data))


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=60)


def test_table_takes_each_task_from_single_and_mixture_files(tmp_path):
    _write(tmp_path)
    result = _run(str(tmp_path), "--json")
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)["figures"]
    assert figures["sampled"]["gsm8k-json"]["single-task SFT"]["structure"] == 0.1
    assert figures["greedy"]["xml-records"]["mixture SFT + GRPO"]["reward"] == 0.7
    assert figures["sampled"]["json-recipes"]["single-task SFT + GRPO"]["content"] == 0.25
    text = _run(str(tmp_path)).stdout
    assert "| gsm8k-json | single-task SFT | 10.0% | 5.0% | 0.250 | 0.300 | 0.200 |" in text


def test_missing_file_is_named_and_left_empty(tmp_path):
    _write(tmp_path, skip="gsm8k-json.sampled")
    result = _run(str(tmp_path), "--json")
    assert result.returncode == 1
    assert "gsm8k-json.sampled.json" in result.stderr
    cells = json.loads(result.stdout)["figures"]["sampled"]["gsm8k-json"]["single-task SFT + GRPO"]
    assert set(cells.values()) == {None}
