"""Training sends its metrics, resolved config and sample tables to run.report_to trackers; error types and
the auto prompt limit reach the metrics; task.skip_bad_records reaches the training data."""

from __future__ import annotations

import json

import pytest

from rlstruct.engine.grpo import train

from .conftest import small_config, spec_for


def test_two_step_train_logs_to_tensorboard(tiny_model_dir, tmp_path, toy_task):
    pytest.importorskip("tensorboard", reason='needs the tensorboard extra: pip install "rlstruct[tensorboard]"')
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    cfg = small_config(tiny_model_dir, out, steps=2)
    cfg.run.report_to = ["tensorboard"]
    cfg.run.samples_per_step = 2
    train(cfg, toy_task, spec_for(toy_task), out, progress=False)

    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    # every metrics line, read back with TensorBoard's own reader
    assert [(e.step, e.value) for e in events.Scalars("loss")] == [(1, pytest.approx(lines[0]["loss"])),
                                                                    (2, pytest.approx(lines[1]["loss"]))]
    assert [e.value for e in events.Scalars("reward/format")] == pytest.approx([l["reward/format"] for l in lines])
    assert [e.value for e in events.Scalars("errors/implausible")] == [l["errors/implausible"] for l in lines]
    # the resolved config: max_prompt_tokens 0 (auto) became the model's context minus max_new_tokens
    context = json.loads((tiny_model_dir / "config.json").read_text())["max_position_embeddings"]
    config_text = events.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
    logged = json.loads(config_text.removeprefix("```json\n").removesuffix("\n```"))
    assert logged["run"]["report_to"] == ["tensorboard"]
    assert logged["grpo"]["max_prompt_tokens"] == context - cfg.grpo.max_new_tokens
    # sample tables with the completion, each component and error_type
    tables = events.Tensors("samples/text_summary")
    assert [t.step for t in tables] == [1, 2]
    header = tables[0].tensor_proto.string_val[0].decode().splitlines()[0]
    assert header.startswith("| prompt | completion | reward | structure | format | content | validity")
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert all("error_type" in s for s in samples)


def test_error_types_are_counted_in_every_metrics_line(tiny_model_dir, tmp_path, toy_task):
    out = tmp_path / "run"
    cfg = small_config(tiny_model_dir, out, steps=1)
    cfg.run.samples_per_step = cfg.grpo.prompts_per_step * cfg.grpo.group_size  # every completion of the step
    train(cfg, toy_task, spec_for(toy_task), out, progress=False)
    (line,) = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    samples = [json.loads(l) for l in (out / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 8
    # toy-digits scores only format below 1.0 (a completion that is not all digits): the core's class for it
    for sample in samples:
        assert sample["error_type"] == ("schema-violation" if sample["components"]["format"] < 1.0 else None)
    counts = {k: v for k, v in line.items() if k.startswith("errors/")}
    assert counts.pop("errors/schema-violation") == sum(s["error_type"] is not None for s in samples)
    assert counts and set(counts.values()) == {0}  # every other class is there, at 0


def test_a_missing_tracker_library_stops_train_before_the_model_loads(tmp_path, monkeypatch, capsys):
    import importlib.util

    from rlstruct import cli

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    config = tmp_path / "c.toml"
    config.write_text('[task]\nname = "gsm8k-json"\n[model]\nname_or_path = "no/such-model"\n'
                      '[run]\nreport_to = ["wandb"]\n')
    assert cli.main(["train", str(config), "--output-dir", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and 'pip install "rlstruct[wandb]"' in err and str(config) in err
    assert not (tmp_path / "run").exists()


def test_an_unknown_tracker_is_a_config_error(tmp_path, capsys):
    from rlstruct import cli

    config = tmp_path / "c.toml"
    config.write_text('[task]\nname = "gsm8k-json"\n[model]\nname_or_path = "m"\n[run]\nreport_to = ["tensorbord"]\n')
    assert cli.main(["train", str(config)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"rlstruct: error: {config}: run.report_to[0]: unknown tracker 'tensorbord'")
