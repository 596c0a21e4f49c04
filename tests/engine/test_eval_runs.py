"""`rlstruct eval --out DIR`: saved results and summary, resume after a kill, pass@k, --set, --constrained,
prompt limits a user can set, --skip-bad-records, and weight-0 components still being measured."""

from __future__ import annotations

import hashlib
import importlib.util
import itertools
import json
from math import comb
from pathlib import Path

import pytest

from rlstruct import cli
from rlstruct.engine import eval_run
from rlstruct.engine.evaluate import pass_at_k, summarise_rows

TIMING = ("generate_seconds", "tokens_per_second", "batch_seconds")


def _error(err: str) -> str:
    """The one error line of a failed command (progress bars may share stderr)."""
    (line,) = [line for line in err.splitlines() if line.startswith("rlstruct: error:")]
    return line


def _eval(model: Path, *extra: str) -> int:
    return cli.main(["eval", "--model", str(model), "--max-new-tokens", "12", *extra])


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _figures(summary: dict) -> dict:
    skip = {*TIMING, "versions", "model"}
    return {k: v for k, v in summary.items() if k not in skip}


SAMPLED = ["--task", "gsm8k-json", "--limit", "5", "--sample", "--set", "eval.samples_per_prompt=2",
           "--set", "eval.batch_size=2", "--set", "run.seed=3"]


# -- what a saved run holds ----------------------------------------------------------------------------
def test_out_dir_holds_every_completion_and_a_complete_summary(tiny_model_dir, tmp_path, capsys):
    import peft
    import torch
    import transformers

    out = tmp_path / "ev"
    rows_file = tmp_path / "rows.jsonl"
    assert _eval(tiny_model_dir, *SAMPLED, "--out", str(out), "-o", str(rows_file), "--json") == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    rows = _rows(out / "results.jsonl")
    summary = json.loads((out / "summary.json").read_text())
    assert printed == summary and summary["complete"] is True

    # every completion once, with its prompt id, task, breakdown and error type
    assert sorted((r["index"], r["sample"]) for r in rows) == [(i, s) for i in range(5) for s in range(2)]
    assert _rows(rows_file) == rows  # -o still writes the same rows
    for row in rows:
        assert row["task"] == "gsm8k-json"
        assert set(row["components"]) == {"structure", "format", "content", "validity"}
        assert "error_type" in row and (row["error_type"] is None) == (row["reward"] == 1.0)

    # figures recomputed from the rows by hand
    assert summary["n"] == 10
    assert summary["structure_mean"] == pytest.approx(sum(r["components"]["structure"] for r in rows) / 10)
    assert summary["truncated"] == sum(r["truncated"] for r in rows)
    counted = {}
    for row in rows:
        if row["error_type"]:
            counted[row["error_type"]] = counted.get(row["error_type"], 0) + 1
    assert summary["error_types"] == counted
    assert set(summary["pass_at_k"]) == {"1", "2"}  # k up to the completions per prompt
    assert summary["reward_errors"] == 0 and summary["reward_timeouts"] == 0
    assert summary["tokens_per_second"] > 0
    assert summary["completion_tokens"] == sum(r["completion_tokens"] for r in rows)

    # what produced them
    assert summary["protocol"]["completions_per_record"] == 2 and summary["protocol"]["split"] == "test"
    assert summary["protocol"]["decoding"] == "sampled (temperature 1.0)" and summary["seed"] == 3
    capsys.readouterr()
    assert cli.main(["data", "--task", "gsm8k-json", "--split", "test", "--limit", "5"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    digest = hashlib.sha256("".join(json.dumps(r, sort_keys=True, ensure_ascii=False, separators=(",", ":")) + "\n"
                                    for r in records).encode()).hexdigest()
    assert summary["data"]["sha256"] == digest and summary["data"]["source"] == "synthetic"
    assert summary["model"]["resolved"] == str(tiny_model_dir.resolve())
    versions = summary["versions"]
    assert (versions["torch"], versions["transformers"], versions["peft"]) == (
        torch.__version__, transformers.__version__, peft.__version__)
    assert versions["plugins"].get("rlstruct")  # the built-in plugins' distribution


def test_pass_at_k_is_the_unbiased_estimator():
    for n in range(1, 7):
        for c in range(n + 1):
            for k in range(1, n + 1):
                draws = list(itertools.combinations([True] * c + [False] * (n - c), k))
                exact = sum(any(d) for d in draws) / len(draws)  # every equally likely draw of k
                assert pass_at_k(n, c, k) == pytest.approx(exact)
                assert pass_at_k(n, c, k) == pytest.approx(1 - comb(n - c, k) / comb(n, k))


def test_pass_at_k_averages_over_prompts_from_rows():
    def row(index, sample, ok):
        return {"index": index, "sample": sample, "reward": float(ok), "error_type": None if ok else "wrong-value",
                "components": {"structure": 1.0, "format": 1.0, "content": 1.0 if ok else 0.0, "validity": None}}

    rows = [row(0, 0, True), row(0, 1, False), row(0, 2, False), row(1, 0, False), row(1, 1, False), row(1, 2, False)]
    summary = summarise_rows(rows, ["structure", "format", "content", "validity"], 3)
    assert summary["pass_at_k"] == pytest.approx({"1": (1 / 3) / 2, "2": (2 / 3) / 2, "3": 0.5})
    assert summary["pass_at_k_by_component"]["structure"]["1"] == 1.0
    assert "validity" not in summary["pass_at_k_by_component"]  # not applicable to this task


# -- resume --------------------------------------------------------------------------------------------
def test_a_killed_eval_resumes_to_the_rows_of_an_uninterrupted_one(tiny_model_dir, tmp_path, monkeypatch, capsys):
    straight = tmp_path / "straight"
    assert _eval(tiny_model_dir, *SAMPLED, "--out", str(straight)) == 0

    killed = tmp_path / "killed"
    real_append = eval_run.EvalRunDir.append
    calls = {"n": 0}

    def append_then_die(self, rows, start, seconds):
        real_append(self, rows, start, seconds)
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # killed right after the second batch reached the disk

    monkeypatch.setattr(eval_run.EvalRunDir, "append", append_then_die)
    assert _eval(tiny_model_dir, *SAMPLED, "--out", str(killed)) == 130
    monkeypatch.setattr(eval_run.EvalRunDir, "append", real_append)
    assert len(_rows(killed / "results.jsonl")) == 8
    assert json.loads((killed / "summary.json").read_text())["complete"] is False
    with open(killed / "results.jsonl", "a") as fh:  # and a kill in the middle of writing the next line
        fh.write('{"index": 4, "sample": 0, "batch": 4, "comp')

    capsys.readouterr()
    assert _eval(tiny_model_dir, *SAMPLED, "--out", str(killed)) == 0
    resumed = _rows(killed / "results.jsonl")
    assert len(resumed) == 10 and len({(r["index"], r["sample"]) for r in resumed}) == 10
    assert (killed / "results.jsonl").read_bytes() == (straight / "results.jsonl").read_bytes()
    assert _figures(json.loads((killed / "summary.json").read_text())) == _figures(
        json.loads((straight / "summary.json").read_text()))

    # a finished run resumed again generates nothing and changes nothing
    before = (killed / "results.jsonl").read_bytes(), json.loads((killed / "summary.json").read_text())
    assert _eval(tiny_model_dir, *SAMPLED, "--out", str(killed)) == 0
    assert (killed / "results.jsonl").read_bytes() == before[0]
    assert json.loads((killed / "summary.json").read_text()) == before[1]  # timings included: nothing ran


def test_an_eval_killed_by_sigkill_resumes_without_duplicates_or_gaps(tiny_model_dir, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    args = ["--task", "gsm8k-json", "--limit", "6", "--sample", "--set", "eval.samples_per_prompt=2",
            "--set", "eval.batch_size=1", "--set", "run.seed=3"]
    straight = tmp_path / "straight"
    assert _eval(tiny_model_dir, *args, "--out", str(straight)) == 0
    killed = tmp_path / "killed"
    cmd = [sys.executable, "-m", "rlstruct.cli", "eval", "--model", str(tiny_model_dir), "--max-new-tokens", "12",
           *args, "--out", str(killed)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        results = killed / "results.jsonl"
        if results.exists() and results.read_text().count("\n") >= 2:
            break
        time.sleep(0.005)
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)  # no clean-up of any kind
    proc.wait()
    assert _eval(tiny_model_dir, *args, "--out", str(killed)) == 0
    assert (killed / "results.jsonl").read_bytes() == (straight / "results.jsonl").read_bytes()


def test_resuming_with_other_settings_is_refused(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "ev"
    assert _eval(tiny_model_dir, *SAMPLED, "--out", str(out)) == 0
    before = (out / "results.jsonl").read_text()
    capsys.readouterr()
    assert _eval(tiny_model_dir, *SAMPLED, "--set", "eval.temperature=0.5", "--out", str(out)) == 1
    err = _error(capsys.readouterr().err)
    assert "summary.json" in err and "protocol.decoding" in err
    assert _eval(tiny_model_dir, *SAMPLED, "--seed", "1", "--out", str(out)) == 1
    assert "data.data_seed = 0, now 1" in capsys.readouterr().err  # other records (their hash differs too)
    assert (out / "results.jsonl").read_text() == before  # nothing mixed in


# -- config overrides, prompt limits, data ----------------------------------------------------------------
def test_set_works_on_eval_as_on_train(tiny_model_dir, tmp_path, capsys):
    assert _eval(tiny_model_dir, "--task", "gsm8k-json", "--limit", "2", "--sample",
                 "--set", "eval.samples_per_prompt=3", "--json") == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["n"] == 6 and summary["protocol"]["completions_per_record"] == 3
    assert _eval(tiny_model_dir, "--task", "gsm8k-json", "--set", "eval.sample_per_prompt=3") == 2
    err = _error(capsys.readouterr().err)
    assert "eval.sample_per_prompt" in err and "samples_per_prompt" in err


def test_prompt_limit_defaults_to_the_context_and_errors_name_an_eval_flag(tiny_model_dir, tmp_path, capsys):
    context = json.loads((tiny_model_dir / "config.json").read_text())["max_position_embeddings"]
    assert _eval(tiny_model_dir, "--task", "gsm8k-json", "--limit", "1", "--json") == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["protocol"]["max_prompt_tokens"] == context - 12  # auto: context minus --max-new-tokens

    assert _eval(tiny_model_dir, "--task", "gsm8k-json", "--limit", "1", "--max-prompt-tokens", "20") == 1
    err = _error(capsys.readouterr().err)
    assert "grpo.max_prompt_tokens = 20" in err and "raise it with --max-prompt-tokens N" in err

    assert cli.main(["eval", "--model", str(tiny_model_dir), "--task", "gsm8k-json", "--limit", "1",
                     "--max-new-tokens", str(context - 20)]) == 1
    err = _error(capsys.readouterr().err)
    assert "lower eval.max_new_tokens (--max-new-tokens)" in err and f"context of {context}" in err


def test_skip_bad_records_on_eval(tiny_model_dir, tmp_path, capsys):
    capsys.readouterr()
    assert cli.main(["data", "--task", "gsm8k-json", "--split", "test", "--limit", "3"]) == 0
    good = capsys.readouterr().out.splitlines()
    data = tmp_path / "gsm.jsonl"
    data.write_text("\n".join([good[0], '{"question": "no answer here"}', good[1], "not json", good[2]]) + "\n")

    assert _eval(tiny_model_dir, "--task", "gsm8k-json", "--source", str(data)) == 1
    assert f"{data}:2: answer: missing" in capsys.readouterr().err

    out = tmp_path / "ev"
    assert _eval(tiny_model_dir, "--task", "gsm8k-json", "--source", str(data), "--skip-bad-records", "--out", str(out)) == 0
    err = capsys.readouterr().err
    assert "skipped 2 bad record(s)" in err and f"{data}:2: answer: missing" in err and f"{data}:4: invalid JSON" in err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n"] == 3 and summary["data"]["skipped"]["count"] == 2


# -- the constrained-decoding baseline ----------------------------------------------------------------------
SMALL = {"type": "object", "properties": {"ok": {"type": "boolean"}, "n": {"type": "integer", "minimum": 0, "maximum": 9}},
         "required": ["ok", "n"], "additionalProperties": False}
LOOKBEHIND = {"type": "object", "properties": {"code": {"type": "string", "pattern": "(?<=x)y"}}, "required": ["code"]}


def test_constrained_eval_reports_compile_failures_and_speed(tiny_model_dir, tmp_path, capsys):
    pytest.importorskip("xgrammar", reason='needs the constrained extra: pip install "rlstruct[constrained]"')
    data = tmp_path / "schemas.jsonl"
    records = [{"prompt": f"Reply with the object ({i}).", "schema": SMALL} for i in range(3)]
    records.insert(1, {"prompt": "A code.", "schema": LOOKBEHIND})  # valid JSON Schema, but xgrammar cannot compile it
    data.write_text("".join(json.dumps(r) + "\n" for r in records))
    out = tmp_path / "ev"
    assert cli.main(["eval", "--model", str(tiny_model_dir), "--task", "json-schema", "--source", str(data),
                     "--max-new-tokens", "40", "--constrained", "--out", str(out)]) == 0
    table = capsys.readouterr().out
    assert "constrained (xgrammar): 1 compile failure(s)" in table and "tokens/s" in table
    summary = json.loads((out / "summary.json").read_text())
    assert summary["protocol"]["constrained"] is True and summary["protocol"]["decoding"] == "constrained greedy"
    assert summary["constrained"]["compile_failures"] == 1 and summary["constrained"]["no_schema"] == 0
    assert summary["constrained"]["failure_reasons"][0].startswith("prompt 1: ")
    assert summary["constrained"]["tokens_per_second"] > 0
    rows = _rows(out / "results.jsonl")
    assert [r["schema_status"] for r in rows] == ["compiled", "compile-failed", "compiled", "compiled"]
    # the random tiny model writes valid JSON only because the schema is enforced
    assert [r["constrained"] for r in rows] == [True, False, True, True]
    assert all(r["components"]["structure"] == 1.0 and r["components"]["format"] == 1.0 for r in rows if r["constrained"])


def test_constrained_without_the_extra_is_one_line_naming_it(tmp_path, monkeypatch, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "xgrammar" else real(name, *a))
    # no model is needed to find out: the check comes before the model would load
    assert cli.main(["eval", "--model", str(tmp_path / "no-model"), "--task", "json-recipes", "--limit", "1",
                     "--constrained"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and 'pip install "rlstruct[constrained]"' in _error(err)


# -- weight-0 components ------------------------------------------------------------------------------------
def test_weight_0_component_is_scored_and_reported_but_not_rewarded():
    from rlstruct.engine.evaluate import aggregate
    from rlstruct.engine.metrics import summarise_breakdowns
    from rlstruct.plugins import PluginManager
    from rlstruct.reward import RewardSpec
    from rlstruct.sandbox import RewardPool, SandboxLimits

    pm = PluginManager()
    task = pm.task("gsm8k-json")
    record = task.synthetic("test", 1, 0)[0]
    answer = json.loads(task.reference_completion(record))["answer"]
    completion = json.dumps({"reasoning": "no numbers", "answer": answer})  # validity 0.5, the rest 1.0
    watched = RewardSpec.build(task, pm.rewards, weights={"validity": 0.0})
    with RewardPool(task, watched, SandboxLimits(workers=1)) as pool:
        (b,) = pool.score([record], [completion])
    assert b.components["validity"] == 0.5  # computed by the worker although its weight is 0
    assert b.reward == 1.0  # ... and left out of the reward: mean of structure, format, content
    assert summarise_breakdowns([b])["reward/validity"] == 0.5
    assert aggregate([b], watched.names)["validity_mean"] == 0.5
