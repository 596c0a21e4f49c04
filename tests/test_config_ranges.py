"""Every numeric config key and command-line flag with a valid range rejects values outside it, NaN and
infinity with one line naming the file and key (or the flag); each key's docstring states its range."""

from __future__ import annotations

import dataclasses
import json
import typing
from pathlib import Path

import pytest

from rlstruct import cli
from rlstruct.config import RANGES, Config, ConfigError, field_docs, load_config

MINIMAL = '[task]\nname = "gsm8k-json"\n[model]\nname_or_path = "some/model"\n'


def write(tmp_path: Path, text: str = MINIMAL) -> Path:
    path = tmp_path / "cfg.toml"
    path.write_text(text)
    return path


def error_for(tmp_path: Path, override: str) -> str:
    path = write(tmp_path)
    with pytest.raises(ConfigError) as excinfo:
        load_config(path, [override])
    message = str(excinfo.value)
    assert message.startswith(f"{path}: ") and "\n" not in message, message
    return message


def numeric_fields() -> list[tuple[str, typing.Any]]:
    """(dotted key, type hint) of every int/float field, list of numbers and table of numbers."""
    out = []
    for section in dataclasses.fields(Config):
        cls = typing.get_type_hints(Config)[section.name]
        for key, hint in typing.get_type_hints(cls).items():
            args = typing.get_args(hint)
            if hint in (int, float) or (args and args[-1] in (int, float)):
                out.append((f"{section.name}.{key}", hint))
    return out


def docstring(dotted: str) -> str:
    section, key = dotted.split(".")
    return field_docs(typing.get_type_hints(Config)[section])[key]


@pytest.mark.parametrize(
    "override, key",
    [
        ("grpo.learning_rate=-1e-4", "grpo.learning_rate must be > 0"),
        ("grpo.learning_rate=nan", "grpo.learning_rate must be a finite number"),
        ("model.lora_r=0", "model.lora_r must be >= 1"),
        ("grpo.epsilon_low=-1", "grpo.epsilon_low must be in [0, 1)"),
        ("task.train_limit=-5", "task.train_limit must be >= 1"),
        ("reward.workers=-2", "reward.workers must be >= 0"),
        ("reward.timeout_s=-1", "reward.timeout_s must be > 0"),
        ("reward.timeout_s=nan", "reward.timeout_s must be a finite number"),
        ("reward.timeout_s=inf", "reward.timeout_s must be a finite number"),
        ("reward.memory_mb=0", "reward.memory_mb must be >= 1"),
        ("grpo.temperature=0", "grpo.temperature must be > 0"),
        ("eval.temperature=-1.0", "eval.temperature must be > 0"),
        ("grpo.top_p=1.5", "grpo.top_p must be in (0, 1]"),
        ("grpo.max_grad_norm=-inf", "grpo.max_grad_norm must be a finite number"),
        ("grpo.adam_betas=[0.9, 1.0]", "grpo.adam_betas[1] must be in [0, 1)"),
        ("reward.weights={content = nan}", "reward.weights.content must be a finite number"),
        ("reward.weights={content = -1.0}", "reward.weights.content must be >= 0"),
        ("run.seed=-1", "run.seed must be >= 0"),
    ],
)
def test_out_of_range_values_name_file_and_key(tmp_path, override, key):
    assert key in error_for(tmp_path, override)


def test_zero_workers_is_the_documented_inline_mode(tmp_path):
    assert load_config(write(tmp_path), ["reward.workers=0"]).reward.workers == 0


def just_outside(dotted: str, hint: typing.Any) -> typing.Any:
    valid = RANGES[dotted]
    if valid.low is not None:
        value = valid.low - 1 if valid.low_inclusive else valid.low
    else:
        value = valid.high + 1 if valid.high_inclusive else valid.high
    item_type = typing.get_args(hint)[-1] if typing.get_args(hint) else hint
    value = item_type(value)
    if typing.get_origin(hint) is list:
        return [value, 0.5]
    if typing.get_origin(hint) is dict:
        return {"structure": value}
    return value


@pytest.mark.parametrize("dotted, hint", numeric_fields(), ids=[k for k, _ in numeric_fields()])
def test_every_numeric_key_has_a_checked_range_stated_in_its_docstring(tmp_path, dotted, hint):
    assert dotted in RANGES, f"{dotted} has no entry in rlstruct.config.RANGES"
    text = RANGES[dotted].text()
    doc = docstring(dotted)
    assert f"Range: {text}." in doc or f"Range: each {text}." in doc, (dotted, doc)
    section, key = dotted.split(".")
    default = getattr(getattr(Config(), section), key)
    items = default if isinstance(default, list) else list(default.values()) if isinstance(default, dict) else [default]
    assert all(v in RANGES[dotted] for v in items), f"the default of {dotted} is outside its own range"
    value = just_outside(dotted, hint)
    message = error_for(tmp_path, f"{dotted}={json.dumps(value) if not isinstance(value, dict) else '{structure = %r}' % value['structure']}")
    assert dotted in message and RANGES[dotted].text() in message


@pytest.mark.parametrize("dotted", [k for k, h in numeric_fields() if float in (h, *typing.get_args(h))])
@pytest.mark.parametrize("bad", ["nan", "inf", "-inf"])
def test_every_float_key_rejects_nan_and_infinity(tmp_path, dotted, bad):
    hint = dict(numeric_fields())[dotted]
    value = f"[{bad}, 0.5]" if typing.get_origin(hint) is list else f"{{structure = {bad}}}" if typing.get_origin(hint) is dict else bad
    assert "must be a finite number" in error_for(tmp_path, f"{dotted}={value}")


# -- flags --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "argv, flag",
    [
        (["score", "--task", "gsm8k-json", "--workers", "-1", "-"], "--workers"),
        (["score", "--task", "gsm8k-json", "--timeout", "nan", "-"], "--timeout"),
        (["score", "--task", "gsm8k-json", "--timeout", "-1", "-"], "--timeout"),
        (["score", "--task", "gsm8k-json", "--timeout", "inf", "-"], "--timeout"),
        (["eval", "--model", "m", "--task", "gsm8k-json", "--limit", "-5"], "--limit"),
        (["eval", "--model", "m", "--task", "gsm8k-json", "--max-new-tokens", "0"], "--max-new-tokens"),
        (["data", "--task", "gsm8k-json", "--limit", "-5"], "--limit"),
        (["data", "--task", "gsm8k-json", "--seed", "-1"], "--seed"),
        (["tiny-model", "out", "--layers", "0"], "--layers"),
    ],
)
def test_out_of_range_flags_are_one_line_errors(argv, flag, capsys):
    with pytest.raises(SystemExit) as excinfo:
        cli.main(argv)
    assert excinfo.value.code != 0
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert f"argument {flag}" in err and "must be" in err


# -- score --config -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def gsm_line() -> str:
    from rlstruct.data import load_records
    from rlstruct.plugins import PluginManager

    record = load_records(PluginManager().task("gsm8k-json"), "synthetic", "train", 1, 0)[0]
    return json.dumps({"record": record, "completion": '{"reasoning": "x", "answer": 1}'}) + "\n"


def test_score_with_a_config_needs_no_model_and_warns_on_another_task(tmp_path, gsm_line, capsys, monkeypatch):

    data = tmp_path / "in.jsonl"
    data.write_text(gsm_line)
    reward_only = tmp_path / "reward.toml"
    reward_only.write_text("[reward]\nworkers = 0\n[reward.weights]\nstructure = 2.0\n")
    assert cli.main(["score", "--task", "gsm8k-json", "--config", str(reward_only), str(data)]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["components"]["structure"] == 1.0 and captured.err == ""

    other = tmp_path / "other.toml"
    other.write_text('[task]\nname = "json-recipes"\n[reward]\nworkers = 0\n')
    assert cli.main(["score", "--task", "gsm8k-json", "--config", str(other), str(data)]) == 0
    err = capsys.readouterr().err
    assert err.startswith("rlstruct: warning:") and "json-recipes" in err and "gsm8k-json" in err and str(other) in err


# -- tiny-model --help ----------------------------------------------------------------------------
def test_tiny_model_help_states_every_default_and_an_example(capsys):
    with pytest.raises(SystemExit):
        cli.main(["tiny-model", "--help"])
    text = capsys.readouterr().out
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices["tiny-model"]
    for action in sub._actions:
        if action.dest in ("help",):
            continue
        assert action.help and len(action.help) > 20, action.dest
        if action.option_strings:
            assert "default" in action.help, f"{action.option_strings[0]}: no default in its help"
    for value in ("(default: 1024)", "(default: 128)", "(default: 2)", "(default: 0)"):
        assert value in " ".join(text.split()), value
    assert "rlstruct tiny-model .tiny/" in text  # an example
