"""`rlstruct demo` end to end (quick mode), its report, and `rlstruct plot`."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

from rlstruct import cli
from rlstruct.demo.report import METRIC_KEYS, markdown_table, verdict
from rlstruct.plot import smooth

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
QUICK_PROMPTS, QUICK_SAMPLES, QUICK_STEPS, QUICK_MAX_NEW = 4, 2, 3, 40  # demo.pipeline.QUICK_OVERRIDES


def _has_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture
def keep_torch_threads():
    before = torch.get_num_threads()  # the demo sets the process's thread count on purpose
    yield
    torch.set_num_threads(before)


def _demo(out: Path, *extra: str) -> int:
    return cli.main(["demo", "--quick", "--out", str(out), *extra])


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="module")
def quick_demo(tmp_path_factory) -> tuple[Path, str]:
    before = torch.get_num_threads()
    out = tmp_path_factory.mktemp("demo") / "out"
    capture = tmp_path_factory.mktemp("demo-log") / "stdout.txt"
    saved = sys.stdout
    with open(capture, "w", encoding="utf-8") as fh:
        sys.stdout = fh
        try:
            code = _demo(out, "--seed", "0")
        finally:
            sys.stdout = saved
    torch.set_num_threads(before)
    assert code == 0, capture.read_text()
    return out, capture.read_text()


@pytest.mark.slow
def test_quick_demo_writes_report_run_directories_and_eval_rows(quick_demo):
    out, stdout = quick_demo
    report = json.loads((out / "report.json").read_text())
    assert list(report) == ["task", "seconds", "device", "model", "protocol", "results"]
    assert report["task"] == "json-recipes" and report["device"] == "cpu"
    assert isinstance(report["seconds"], float) and report["seconds"] > 0
    assert isinstance(report["model"]["parameters"], int) and report["model"]["parameters"] > 10_000
    assert report["protocol"] == {
        "split": "test", "prompts": QUICK_PROMPTS, "greedy": True,
        "sampled": {"temperature": 1.0, "completions_per_prompt": QUICK_SAMPLES},
    }
    # the constrained-decoding row is there exactly when the grammar engine is installed (json-recipes has a schema)
    constrained = importlib.util.find_spec("xgrammar") is not None
    assert set(report["results"]) == {"sft", "grpo"} | ({"sft_constrained"} if constrained else set())
    for stage in report["results"]:
        assert set(report["results"][stage]) == {"sampled", "greedy"}
        for decoding, per_prompt in (("sampled", QUICK_SAMPLES), ("greedy", 1)):
            m = report["results"][stage][decoding]
            assert list(m) == list(METRIC_KEYS)
            assert all(isinstance(m[k], float) for k in METRIC_KEYS), m
            # the report agrees with the eval rows it was computed from
            rows = _rows(out / "eval" / f"{stage}-{decoding}.jsonl")
            assert len(rows) == QUICK_PROMPTS * per_prompt
            assert m["structure_rate"] == sum(r["components"]["structure"] >= 1.0 for r in rows) / len(rows)
            assert m["format_rate"] == sum(r["components"]["format"] >= 1.0 for r in rows) / len(rows)
            assert m["completion_tokens_mean"] == pytest.approx(sum(r["completion_tokens"] for r in rows) / len(rows))
            assert 1 <= m["completion_tokens_mean"] <= QUICK_MAX_NEW
            assert 0.0 <= m["reward_mean"] <= 1.0

    # the SFT model and the GRPO run directory, as the single commands write them
    assert (out / "sft" / "config.json").is_file() and (out / "sft" / "sft.json").is_file()
    assert (out / "grpo" / "final" / "config.json").is_file()
    steps = _rows(out / "grpo" / "metrics.jsonl")
    assert [line["step"] for line in steps] == list(range(1, QUICK_STEPS + 1))
    assert "reward/structure" in steps[0]

    md = (out / "report.md").read_text(encoding="utf-8")
    assert "| SFT |" in md and "| SFT+GRPO |" in md and "structural accuracy" in md
    assert verdict(report) in md and "structural accuracy" in verdict(report)
    if _has_matplotlib():
        assert (out / "training_dynamics.png").read_bytes()[:8] == PNG_MAGIC
        assert "![training dynamics](training_dynamics.png)" in md

    # progress: every stage named, then the table and where the report is
    for number in range(1, 7):
        assert f"[{number}/6]" in stdout
    assert "SFT+GRPO" in stdout and f"report: {out / 'report.md'}" in stdout
    # default --threads 0: torch's own intra-op thread count is left in force and recorded
    assert json.loads((out / "demo.json").read_text())["threads"] == torch.get_num_threads()


@pytest.mark.slow
def test_same_seed_same_numbers_and_no_matplotlib_still_gives_a_report(quick_demo, tmp_path, monkeypatch, capsys,
                                                                       keep_torch_threads):
    first, _ = quick_demo
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if the plot extra were not installed
    again = tmp_path / "again"
    assert _demo(again, "--seed", "0") == 0
    assert "rlstruct[plot]" in capsys.readouterr().err
    a, b = (json.loads((d / "report.json").read_text()) for d in (first, again))
    assert a["results"] == b["results"]
    for name in ("sft-sampled.jsonl", "grpo-sampled.jsonl"):
        assert (first / "eval" / name).read_bytes() == (again / "eval" / name).read_bytes()
    assert not (again / "training_dynamics.png").exists()
    md = (again / "report.md").read_text(encoding="utf-8")
    assert "pip install 'rlstruct[plot]'" in md and "![training dynamics]" not in md

    other = tmp_path / "seed1"
    assert _demo(other, "--seed", "1") == 0
    texts = lambda d: [r["completion"] for r in _rows(d / "eval" / "sft-sampled.jsonl")]  # noqa: E731
    assert texts(other) != texts(first)


@pytest.mark.slow
def test_demo_refuses_to_overwrite_without_the_flag(quick_demo, tmp_path, capsys):
    out, _ = quick_demo
    before = (out / "report.json").read_bytes()
    assert _demo(out) == 1
    err = capsys.readouterr().err.strip()
    assert "--overwrite" in err and len(err.splitlines()) == 1
    assert (out / "report.json").read_bytes() == before


def test_demo_never_deletes_a_directory_it_did_not_write(tmp_path, capsys):
    out = tmp_path / "precious"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    assert _demo(out, "--overwrite") == 1
    err = capsys.readouterr().err.strip()
    assert str(out) in err and "demo.json" in err and len(err.splitlines()) == 1
    assert (out / "notes.txt").read_text() == "keep me"


def test_demo_without_a_config_for_the_task_names_where_it_looked(tmp_path, capsys):
    assert cli.main(["demo", "--task", "no-such-task", "--out", str(tmp_path / "x")]) == 1
    err = capsys.readouterr().err.strip()
    assert "no-such-task-tiny.toml" in err and "--config" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "x").exists()


def test_demo_rejects_a_bad_override_before_any_work(tmp_path, capsys):
    assert cli.main(["demo", "--quick", "--out", str(tmp_path / "x"), "--set", "grpo.stepz=3"]) == 2
    assert "grpo.stepz" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


# -- report -----------------------------------------------------------------------------------------
def _report(sft: dict, grpo: dict) -> dict:
    base = dict.fromkeys(METRIC_KEYS, 0.5)
    return {"results": {"sft": {"sampled": {**base, **sft}, "greedy": base},
                        "grpo": {"sampled": {**base, **grpo}, "greedy": base}}}


def test_verdict_states_the_gain_in_points_and_whether_content_fell():
    up = verdict(_report({"structure_rate": 0.25, "content_mean": 0.2}, {"structure_rate": 0.625, "content_mean": 0.25}))
    assert "25.0% to 62.5% (+37.5 points)" in up and "content did not fall" in up
    down = verdict(_report({"structure_rate": 0.5, "content_mean": 0.3}, {"structure_rate": 0.4, "content_mean": 0.1}))
    assert "lowered" in down and "(-10.0 points)" in down and "content fell from 0.300 to 0.100" in down


def test_table_marks_components_the_task_does_not_score():
    table = markdown_table(_report({"validity_mean": None}, {"validity_mean": None}), "sampled")
    sft_row = next(line for line in table.splitlines() if line.startswith("| SFT |"))
    assert sft_row.split(" | ")[4] == "n/a" and "50.0%" in sft_row


# -- plot --------------------------------------------------------------------------------------------
def test_smooth_is_a_trailing_mean_that_skips_missing_values():
    assert smooth([0.0, 1.0, 1.0, None, 1.0], 2) == [0.0, 0.5, 1.0, None, 1.0]
    assert smooth([1.0, 3.0], 1) == [1.0, 3.0]


def _write_metrics(run: Path, n: int = 12) -> None:
    run.mkdir(parents=True, exist_ok=True)
    lines = [{"step": s, "reward/structure": min(1.0, s / 6), "reward/format": s / 12, "reward/content": s / 24,
              "reward/validity": None, "completion_len_mean": 100 - s, "kl": 0.001 * s} for s in range(1, n + 1)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))


def test_plot_command_draws_any_run(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    run = tmp_path / "run"
    _write_metrics(run)
    assert cli.main(["plot", str(run)]) == 0
    assert (run / "training_dynamics.png").read_bytes()[:8] == PNG_MAGIC
    target = tmp_path / "figs" / "x.png"
    assert cli.main(["plot", str(run), "-o", str(target)]) == 0
    assert target.read_bytes()[:8] == PNG_MAGIC and str(target) in capsys.readouterr().out


def test_plot_errors_name_the_file_and_line(tmp_path, capsys):
    assert cli.main(["plot", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert str(tmp_path / "metrics.jsonl") in err and len(err.splitlines()) == 1
    (tmp_path / "metrics.jsonl").write_text('{"step": 1}\n{not json\n')
    assert cli.main(["plot", str(tmp_path)]) == 1
    assert f"{tmp_path / 'metrics.jsonl'}:2: invalid JSON" in capsys.readouterr().err


def test_plot_without_matplotlib_says_which_extra_to_install(tmp_path, monkeypatch, capsys):
    _write_metrics(tmp_path)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert cli.main(["plot", str(tmp_path)]) == 1
    assert "pip install 'rlstruct[plot]'" in capsys.readouterr().err
    assert not (tmp_path / "training_dynamics.png").exists()


def test_report_warns_when_reward_components_timed_out():
    from rlstruct.demo.report import reward_failures

    assert reward_failures([{"reward_timeouts": 0, "reward_errors": 0}], [{"reward_timeouts": 0}]) == ""
    warning = reward_failures([{"reward_timeouts": 2, "reward_errors": 0}], [{"reward_timeouts": 1, "reward_errors": 0}])
    assert "2 reward component(s)" in warning and "1 during GRPO" in warning and "reward.timeout_s" in warning


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_demo_on_cuda_without_a_gpu_is_one_line_and_writes_nothing(tmp_path, capsys):
    assert cli.main(["demo", "--quick", "--device", "cuda", "--out", str(tmp_path / "x")]) == 1
    err = capsys.readouterr().err.strip()
    assert "cuda" in err.lower() and len(err.splitlines()) == 1
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("option, value", [("--seed", "-1"), ("--threads", "-2"), ("--layers", "0"), ("--hidden", "2")])
def test_demo_rejects_out_of_range_options_in_one_line(option, value, tmp_path, capsys):
    assert cli.main(["demo", "--quick", option, value, "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert option in err and len(err.splitlines()) == 1
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("task", ["json-recipes", "json-schema", "gsm8k-json", "xml-records", "function-calls"])
def test_every_builtin_task_has_a_demo_config_with_a_sampled_protocol(task):
    from rlstruct.config import load_config
    from rlstruct.demo.pipeline import find_task_config

    cfg = load_config(find_task_config(task))
    assert cfg.task.name == task and cfg.task.eval_split == "test"
    assert cfg.eval.greedy and cfg.eval.samples_per_prompt > 1 and cfg.eval.temperature == 1.0
    assert cfg.eval.max_new_tokens == cfg.grpo.max_new_tokens  # evaluated at the length it was trained for
