"""`--source hf` for each built-in task's public data set, offline, on small fixtures in each set's real row shape.

``datasets.load_dataset`` is replaced by one that loads the fixture file with the library's own ``json``
builder, so rows reach the plugins exactly as a Hub data set delivers them (Arrow types and all) and each
plugin's real conversion code runs. Fixtures (tests/fixtures/hf/, written for these tests):

- GSM8K ``main``: ``question`` and ``answer`` with calculator annotations and a ``#### N`` line;
- Salesforce xLAM function calling: one JSON array; ``tools`` and ``answers`` are JSON *strings*, the
  tools' parameters a flat map with Python-style type strings;
- BFCL: a question file (JSON Lines named .json: ``question`` as turns of chat messages, ``function``
  documents with ``"type": "dict"``) and its possible-answer file (``ground_truth`` with accepted values);
- NousResearch json-mode-eval: ``prompt`` as chat messages, ``schema`` and ``completion`` as JSON strings.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rlstruct import cli
from rlstruct.data import DataError, check_records, load_records
from rlstruct.data_skip import SkippedRecords
from rlstruct.plugins import PluginManager
from rlstruct.reward import RewardSpec, score_inline

datasets = pytest.importorskip("datasets")

FIXTURES = Path(__file__).parent / "fixtures" / "hf"
PM = PluginManager()


@pytest.fixture
def hub(monkeypatch, tmp_path):
    """``datasets.load_dataset`` serving the fixtures; returns the list of (name, config, split) asked for."""
    real = datasets.load_dataset
    asked: list[tuple] = []
    files = {
        ("openai/gsm8k", "main"): lambda split: FIXTURES / "gsm8k" / "main" / f"{split}.jsonl",
        ("Salesforce/xlam-function-calling-60k", None): lambda split: FIXTURES / "xlam" / "xlam_function_calling_60k.json",
        ("NousResearch/json-mode-eval", None): lambda split: FIXTURES / "json-mode-eval" / f"{split}.jsonl",
        ("bfcl-joined", None): lambda split: tmp_path / "bfcl_joined.jsonl",
    }

    def load_dataset(name, config=None, split=None, **kwargs):
        asked.append((name, config, split))
        path = files[(name, config)](split)
        if not path.exists():
            raise ValueError(f"Unknown split {split!r}")
        return real("json", data_files=str(path), split="train", cache_dir=str(tmp_path / "cache"))

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    return asked


def _self_check(task, records):
    """Every converted record's reference completion scores 1.0 on every component: the conversion is sound."""
    spec = RewardSpec.build(task, PM.rewards)
    for record in records:
        breakdown = score_inline(task, spec, record, task.reference_completion(record))
        assert breakdown.reward == 1.0 and not breakdown.errors, (record, breakdown)


def test_gsm8k_main(hub):
    task = PM.task("gsm8k-json")
    records = load_records(task, "hf", "test", None, 0)
    assert hub == [("openai/gsm8k", "main", "test")]
    assert [r["final"] for r in records] == ["72", "7.5", "850", "-20"]
    assert json.loads(task.reference_completion(records[1])) == {"reasoning": "He spends 3 * 2.50 = $7.50.", "answer": 7.5}
    _self_check(task, records)


def test_xlam_json_array_with_json_string_fields(hub):
    task = PM.task("function-calls")
    raw = json.loads((FIXTURES / "xlam" / "xlam_function_calling_60k.json").read_text())
    assert isinstance(raw, list) and all(isinstance(r["tools"], str) and isinstance(r["answers"], str) for r in raw)
    records = load_records(task, "hf", "train", 2, 0)
    assert hub == [("Salesforce/xlam-function-calling-60k", None, "train")]
    assert [r["id"] for r in records] == [0, 1]
    weather = records[0]["tools"][0]["parameters"]
    assert weather["required"] == ["city"] and weather["properties"]["unit"]["default"] == "celsius"
    sum_list = records[1]["tools"][0]["parameters"]["properties"]["numbers"]
    assert sum_list == {"type": "array", "items": {"type": "integer"}, "description": "The numbers."}
    assert records[1]["answers"][1] == {"name": "is_prime", "arguments": {"n": 17}}
    _self_check(task, load_records(task, "hf", "train", None, 0))


def test_bfcl_question_and_answer_files(hub, tmp_path):
    from rlstruct_function_calls.bfcl import join_bfcl

    task = PM.task("function-calls")
    questions = FIXTURES / "bfcl" / "BFCL_v3_simple.json"
    rows = join_bfcl(questions, FIXTURES / "bfcl" / "possible_answer" / "BFCL_v3_simple.json")
    assert [r["id"] for r in rows] == ["simple_0", "simple_1"]  # simple_2 has no answer row
    (tmp_path / "bfcl_joined.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    records = load_records(task, "bfcl-joined", "train", None, 0)
    triangle, mass = records
    assert triangle["query"].startswith("Find the area of a triangle")
    assert triangle["tools"][0]["parameters"]["required"] == ["base", "height"]  # BFCL's "type": "dict" read
    assert triangle["answers"] == [{"name": "calculate_triangle_area", "arguments": {"base": 10, "height": 5, "unit": "units"}}]
    assert mass["answers"][0]["arguments"] == {"value": 3.0, "from_unit": "kg", "to_unit": "lb", "digits": 2}
    _self_check(task, records)


def test_bfcl_question_without_its_answer_names_the_missing_key():
    task = PM.task("function-calls")
    row = json.loads((FIXTURES / "bfcl" / "BFCL_v3_simple.json").read_text().splitlines()[2])
    with pytest.raises(DataError, match=r"^bfcl:3: ground_truth: missing; BFCL keeps the answers in possible_answer"):
        check_records(task, [("bfcl:3", row)])


def test_json_mode_eval_rows(hub):
    task = PM.task("json-schema")
    assert task.hf_dataset == "NousResearch/json-mode-eval"
    records = load_records(task, "hf", "train", None, 0)
    assert hub == [("NousResearch/json-mode-eval", None, "train")]
    assert records[0]["prompt"].startswith("Catalogue the novel")  # the user message, not the system one
    assert records[0]["schema"]["required"] == ["title", "year"] and records[0]["reference"]["year"] == 1998
    _self_check(task, records)


def test_schema_only_rows_get_a_generic_prompt():
    task = PM.task("json-schema")
    (record,) = check_records(task, [("bench[0]", {"json_schema": json.dumps({"type": "integer"}), "unique_id": "x"})])
    assert record["schema"] == {"type": "integer"} and record["prompt"] and record["unique_id"] == "x"


def test_a_split_the_set_does_not_have_is_one_line(hub):
    with pytest.raises(DataError, match=r"could not load data set 'NousResearch/json-mode-eval' split 'test'"):
        load_records(PM.task("json-schema"), "hf", "test", None, 0)


# -- --skip-bad-records ---------------------------------------------------------------------------------
def _gsm_lines() -> list[str]:
    return (FIXTURES / "gsm8k" / "main" / "test.jsonl").read_text().splitlines()


def test_without_skipping_a_bad_row_stays_an_error(tmp_path):
    data = tmp_path / "gsm.jsonl"
    lines = _gsm_lines()
    data.write_text("\n".join([lines[0], '{"question": "q", "answer": "no final line"}', lines[1]]) + "\n")
    with pytest.raises(DataError, match=rf"^{data}:2: answer: no '#### <number>' line"):
        load_records(PM.task("gsm8k-json"), str(data), "test", None, 0)


def test_skipping_counts_and_reports_bad_rows_and_fills_the_limit(tmp_path, capsys):
    data = tmp_path / "gsm.jsonl"
    lines = _gsm_lines()
    bad = [b'{"question": "q", "answer": "no final line"}', b"{not json", b"[1, 2]", b'"text"', b'{"question": 3}',
           b"\xff\xfe"]
    good = [line.encode() for line in lines]
    data.write_bytes(b"\n".join([good[0], *bad, good[1], good[2]]) + b"\n")
    skipped = SkippedRecords()
    records = load_records(PM.task("gsm8k-json"), str(data), "test", 3, 0, skipped=skipped)
    assert [r["final"] for r in records] == ["72", "7.5", "850"]  # the limit counts good records
    assert skipped.count == 6 and len(skipped.examples) == 5
    assert skipped.examples[0] == f"{data}:2: answer: no '#### <number>' line at the end of the answer text"
    assert skipped.examples[1].startswith(f"{data}:3: invalid JSON")
    assert skipped.examples[2] == f"{data}:4: a record must be a JSON object, got list"

    assert cli.main(["data", "--task", "gsm8k-json", "--source", str(data), "--skip-bad-records"]) == 0
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) == 3
    err = captured.err.splitlines()
    assert err[0] == "rlstruct: warning: skipped 6 bad record(s); the first 5:"
    assert err[1] == f"  {skipped.examples[0]}" and err[-1] == "  ... and 1 more"
    assert f"{data}:7: not valid UTF-8" not in captured.err  # beyond the first five: counted only

    assert cli.main(["data", "--task", "gsm8k-json", "--source", str(data)]) == 1
    assert f"{data}:2: answer:" in capsys.readouterr().err


def test_a_row_too_slow_to_check_is_skipped_and_checking_goes_on(tmp_path):
    from rlstruct.data_skip import check_records_skipping
    from rlstruct.sandbox import SandboxLimits

    task = PM.task("json-schema")
    slow = {"prompt": "p", "schema": {"type": "string", "pattern": "^(a+)+$"}, "reference": "a" * 40 + "!"}
    good = [{"prompt": f"p{i}", "schema": {"type": "integer"}, "reference": i} for i in range(3)]
    rows = [("f:1", good[0]), ("f:2", slow), ("f:3", good[1]), ("f:4", good[2])]
    skipped = SkippedRecords()
    records = check_records_skipping(task, rows, SandboxLimits(1.0, 512, 1), None, skipped)
    assert [r["reference"] for r in records] == [0, 1, 2]
    assert skipped.count == 1 and skipped.examples[0].startswith("f:2: record check took over 1 s")
