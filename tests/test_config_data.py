"""Task configs (rlstruct.config) and record loading (rlstruct.data): every mistake a user can make
gives an error that names the file and the key or line at fault."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import time
import typing
from pathlib import Path

import pytest

from rlstruct.config import Config, ConfigError, describe, field_docs, load_config
from rlstruct.data import DataError, load_records

MINIMAL = '[task]\nname = "key-value"\n\n[model]\nname_or_path = "some/model"\n'


def write_config(tmp_path: Path, text: str, name: str = "cfg.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def config_error(path: Path, overrides: list[str] | None = None) -> str:
    with pytest.raises(ConfigError) as excinfo:
        load_config(path, overrides)
    message = str(excinfo.value)
    assert message.startswith(str(path)), message  # every config error names the file
    return message


# -- config: loading ---------------------------------------------------------------------------------
def test_minimal_config_loads_with_defaults(tmp_path):
    cfg = load_config(write_config(tmp_path, MINIMAL))
    assert cfg.task.name == "key-value" and cfg.model.name_or_path == "some/model"
    assert cfg.grpo == Config().grpo


def test_unknown_key_names_file_dotted_key_and_suggestion(tmp_path):
    message = config_error(write_config(tmp_path, MINIMAL + "[grpo]\nstepz = 10\n"))
    assert "unknown key 'grpo.stepz'" in message
    assert "did you mean 'grpo.steps'" in message


def test_unknown_section_is_named_with_suggestion(tmp_path):
    message = config_error(write_config(tmp_path, MINIMAL + "[grpoo]\nsteps = 10\n"))
    assert "unknown key 'grpoo'" in message and "'grpo'" in message


def test_unknown_key_without_close_match_lists_known_keys(tmp_path):
    message = config_error(write_config(tmp_path, MINIMAL + "[eval]\nzzzz = 1\n"))
    assert "eval.zzzz" in message and "greedy" in message


def config_with(section: str | None, line: str) -> str:
    """MINIMAL plus ``line`` in ``[section]`` (``None``: a top-level key)."""
    tables = {"task": ['name = "key-value"'], "model": ['name_or_path = "some/model"']}
    top = [line] if section is None else []
    if section is not None:
        tables.setdefault(section, []).append(line)
    return "".join(f"{l}\n" for l in top) + "".join(
        f"[{name}]\n" + "".join(f"{l}\n" for l in lines) for name, lines in tables.items()
    )


@pytest.mark.parametrize(
    "section, line, expected",
    [
        ("grpo", 'steps = "ten"', "grpo.steps must be an integer"),
        ("grpo", "steps = 10.5", "grpo.steps must be an integer"),
        ("grpo", "learning_rate = true", "grpo.learning_rate must be a number"),
        ("model", 'lora = "yes"', "model.lora must be a bool"),
        ("model", 'dtype = "fp8"', "model.dtype must be one of 'auto', 'float32', 'bfloat16', 'float16'"),
        ("grpo", 'adam_betas = "0.9"', "grpo.adam_betas must be a list"),
        ("grpo", 'adam_betas = [0.9, "x"]', "grpo.adam_betas[1] must be a number"),
        ("reward", "weights = 3", "reward.weights must be a table"),
        ("reward.weights", 'content = "high"', "reward.weights.content must be a number"),
        (None, 'run = "fast"', "[run] must be a table"),
    ],
)
def test_wrong_types_name_the_key(tmp_path, section, line, expected):
    message = config_error(write_config(tmp_path, config_with(section, line)))
    assert expected in message


@pytest.mark.parametrize("missing", ["task.name", "model.name_or_path"])
def test_missing_required_key_is_named(tmp_path, missing):
    text = MINIMAL.replace('name = "key-value"', "") if missing == "task.name" else MINIMAL.replace('name_or_path = "some/model"', "")
    assert f"missing required key {missing!r}" in config_error(write_config(tmp_path, text))


def test_invalid_toml_and_missing_file(tmp_path):
    assert "invalid TOML" in config_error(write_config(tmp_path, "[task\nname = 1\n"))
    assert "no such config file" in config_error(tmp_path / "nope.toml")


def test_range_errors_name_the_key(tmp_path):
    assert "grpo.group_size must be >= 2" in config_error(write_config(tmp_path, MINIMAL + "[grpo]\ngroup_size = 1\n"))


# -- config: --set overrides ---------------------------------------------------------------------------
def test_set_overrides_parse_toml_values(tmp_path):
    path = write_config(tmp_path, '[task]\nname = "key-value"\n')  # model.name_or_path only via --set
    cfg = load_config(
        path,
        [
            "grpo.steps=10",
            "grpo.learning_rate=3e-5",
            "model.lora=false",
            "grpo.adam_betas=[0.8, 0.95]",
            "model.name_or_path=models/tiny",  # not TOML: taken as a bare string
            'run.output_dir="runs/kv 1"',
            "reward.weights={content = 2.0}",
            "task.name=key-value",
        ],
    )
    assert cfg.grpo.steps == 10 and isinstance(cfg.grpo.steps, int)
    assert cfg.grpo.learning_rate == 3e-5
    assert cfg.model.lora is False
    assert cfg.grpo.adam_betas == [0.8, 0.95]
    assert cfg.model.name_or_path == "models/tiny"
    assert cfg.run.output_dir == "runs/kv 1"
    assert cfg.reward.weights == {"content": 2.0}
    assert cfg.task.name == "key-value"


@pytest.mark.parametrize(
    "override, expected",
    [
        ("grpo.steps", "must look like section.key=value"),
        ("steps=3", "must name a section and a key"),
        ("grpo.steps=ten", "grpo.steps must be an integer"),
        ("grpo.stepz=3", "did you mean 'grpo.steps'"),
        ("task.name.x=1", "'name' is not a table"),
    ],
)
def test_bad_set_overrides_are_named(tmp_path, override, expected):
    assert expected in config_error(write_config(tmp_path, MINIMAL), [override])


# -- config: documentation ---------------------------------------------------------------------------
SECTIONS = [(f.name, typing.get_type_hints(Config)[f.name]) for f in dataclasses.fields(Config)]


@pytest.mark.parametrize("section, cls", SECTIONS, ids=[s for s, _ in SECTIONS])
def test_every_config_field_has_a_docstring(section, cls):
    docs = field_docs(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    assert [n for n in names if not docs.get(n, "").strip()] == [], f"[{section}] fields without a docstring"
    assert cls.__doc__ and cls.__doc__.strip()


def test_describe_lists_every_key_with_its_doc():
    text = describe()
    for section, cls in SECTIONS:
        assert f"[{section}]" in text
        docs = field_docs(cls)
        for f in dataclasses.fields(cls):
            assert f"  {f.name} = " in text, f"{section}.{f.name}"
            assert docs[f.name] in text


# -- data --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def kv(example_plugin_module):
    return example_plugin_module.KeyValueTask()


GOOD = {"facts": {"city": "oslo", "colour": "teal"}, "keys": ["city"]}
GOOD_2 = {"facts": {"city": "lima", "colour": "red"}, "keys": ["colour", "city"]}


def data_error(task, source, **kwargs) -> str:
    with pytest.raises(DataError) as excinfo:
        load_records(task, str(source), **kwargs)
    return str(excinfo.value)


def test_jsonl_loads_and_skips_blank_lines(kv, tmp_path):
    path = tmp_path / "ok.jsonl"
    path.write_text(json.dumps(GOOD) + "\n\n  \n" + json.dumps(GOOD_2) + "\n")
    assert load_records(kv, str(path)) == [GOOD, GOOD_2]
    assert load_records(kv, str(path), limit=1) == [GOOD]


def test_jsonl_malformed_line_names_file_and_line(kv, tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(GOOD) + "\n\n" + '{"facts": {"city": \n')
    assert f"{path}:3: invalid JSON" in data_error(kv, path)


def test_jsonl_non_utf8_line_is_named(kv, tmp_path):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(json.dumps(GOOD).encode() + b"\n" + '{"facts": {"city": "S\xe3o Paulo"}}'.encode("latin-1") + b"\n")
    assert f"{path}:2: not valid UTF-8" in data_error(kv, path)


def test_jsonl_record_failing_normalize_names_line_and_key(kv, tmp_path):
    path = tmp_path / "invalid.jsonl"
    bad = {"facts": {"city": "oslo"}, "keys": ["city", "planet"]}
    path.write_text("\n".join(json.dumps(r) for r in (GOOD, GOOD_2, bad)) + "\n")
    message = data_error(kv, path)
    assert f"{path}:3:" in message and "keys[1]" in message


def test_jsonl_line_that_is_not_an_object(kv, tmp_path):
    path = tmp_path / "list.jsonl"
    path.write_text("[1, 2]\n")
    assert f"{path}:1: a record must be a JSON object" in data_error(kv, path)


def test_json_list_and_dict_of_splits(kv, tmp_path):
    flat = tmp_path / "flat.json"
    flat.write_text(json.dumps([GOOD, GOOD_2]))
    assert load_records(kv, str(flat)) == [GOOD, GOOD_2]

    splits = tmp_path / "splits.json"
    splits.write_text(json.dumps({"train": [GOOD], "test": [GOOD_2]}))
    assert load_records(kv, str(splits), split="test") == [GOOD_2]
    assert load_records(kv, str(splits), split="train") == [GOOD]
    message = data_error(kv, splits, split="validation")
    assert "no split 'validation'" in message and "train" in message and "test" in message

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([GOOD, {"facts": {}, "keys": []}]))
    message = data_error(kv, bad)
    assert f"{bad}[1]" in message and "'facts'" in message

    scalar = tmp_path / "scalar.json"
    scalar.write_text("3")
    assert "expected a list of records or an object of splits" in data_error(kv, scalar)


def test_parquet_file(kv, tmp_path):
    import datasets

    path = tmp_path / "records.parquet"
    datasets.Dataset.from_list([GOOD, GOOD_2]).to_parquet(str(path))
    assert load_records(kv, str(path)) == [GOOD, GOOD_2]

    bad = tmp_path / "bad.parquet"
    datasets.Dataset.from_list([GOOD, {"facts": {"city": "lima", "colour": "red"}, "keys": ["planet"]}]).to_parquet(str(bad))
    message = data_error(kv, bad)
    assert f"{bad}[row 1]" in message and "keys[0]" in message


def test_corrupt_parquet_is_a_data_error(kv, tmp_path):
    """Core bug: data._rows_from_file lets pyarrow's ArrowInvalid escape (the CLI prints a traceback)."""
    path = tmp_path / "corrupt.parquet"
    path.write_bytes(b"this is not a parquet file")
    assert str(path) in data_error(kv, path)


@pytest.mark.parametrize("name", ["missing.jsonl", "missing.json", "missing.parquet"])
def test_missing_file_is_named(kv, tmp_path, name):
    assert data_error(kv, tmp_path / name) == f"{tmp_path / name}: no such file"


def test_unsupported_existing_file(kv, tmp_path):
    path = tmp_path / "records.csv"
    path.write_text("a,b\n")
    assert "unsupported file type" in data_error(kv, path)


def test_negative_limit(kv):
    assert "limit must be >= 0" in data_error(kv, "synthetic", limit=-1)


def test_synthetic_source_normalises_and_limits(kv):
    records = load_records(kv, "synthetic", "test", limit=5, seed=2)
    assert records == kv.synthetic("test", 5, 2)
    assert load_records(kv, None, limit=3) == load_records(kv, "", limit=3) == kv.synthetic("train", 3, 0)


def test_hf_without_default_dataset(kv):
    assert "has no default Hugging Face data set" in data_error(kv, "hf")


def test_hub_name_offline_is_a_clear_error(run_cli, example_plugin_site):
    """A data set name with no network (offline mode forces it) gives a DataError, fast."""
    start = time.perf_counter()
    try:
        result = run_cli(
            "data", "--task", "key-value", "--source", "someone/no-such-dataset:cfg", "--limit", "1",
            pythonpath=[example_plugin_site], env={"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}, timeout=20,
        )
    except subprocess.TimeoutExpired:
        pytest.skip("loading a Hub name offline took over 20 s here")
    if time.perf_counter() - start > 20:
        pytest.skip("loading a Hub name offline took over 20 s here")
    assert result.returncode == 1, result.stdout
    assert "Traceback" not in result.stderr
    assert "could not load data set 'someone/no-such-dataset' (config 'cfg') split 'train'" in result.stderr
