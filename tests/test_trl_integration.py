"""rlstruct's TRL integration, exercised against the installed TRL.

The batches are fed through TRL's own ``GRPOTrainer._calculate_rewards`` (on a stand-in trainer
object), so the functions receive exactly the arguments TRL passes; one test trains a real
``GRPOTrainer`` for one step on CPU.
"""

from __future__ import annotations

import inspect
import json
import time
import warnings
from collections import defaultdict
from types import SimpleNamespace
from typing import Any

import pytest

trl = pytest.importorskip("trl")
torch = pytest.importorskip("torch")

from trl import GRPOTrainer  # noqa: E402
from trl.trainer.utils import get_callable_name, is_async_callable  # noqa: E402

from rlstruct import Parsed, Prompt, Task, hookimpl  # noqa: E402
from rlstruct.data import load_records  # noqa: E402
from rlstruct.integrations.trl import (  # noqa: E402
    TASK_COLUMN,
    completion_text,
    decode_record,
    prompt_messages,
    reward_functions,
    to_trl_dataset,
)
from rlstruct.plugins import PluginManager  # noqa: E402
from rlstruct.reward import RewardSpec, score_inline  # noqa: E402
from rlstruct.sandbox import RewardPool  # noqa: E402

TASK = "gsm8k-json"
GROUP = 4


@pytest.fixture(scope="module")
def pm() -> PluginManager:
    manager = PluginManager()
    if TASK not in manager.tasks:
        pytest.skip(f"task {TASK!r} did not load: {[i.error for i in manager.errors()]}")
    return manager


@pytest.fixture(scope="module")
def dataset(pm):
    return to_trl_dataset(TASK, "synthetic", "train", limit=3, plugin_manager=pm)


@pytest.fixture
def rewards(pm):
    funcs = reward_functions(TASK, extras={"length": {"weight": 0.5}}, plugin_manager=pm, workers=1)
    yield funcs
    funcs.close()


# -- helpers ------------------------------------------------------------------------------------
def fake_trainer(funcs) -> SimpleNamespace:
    """The attributes ``GRPOTrainer._calculate_rewards`` reads, for custom reward functions."""
    metrics: dict[str, list[float]] = defaultdict(list)
    extra: dict[str, list[Any]] = defaultdict(list)
    return SimpleNamespace(
        accelerator=SimpleNamespace(device=torch.device("cpu"), is_main_process=True),
        args=SimpleNamespace(report_to=[]),
        state=SimpleNamespace(global_step=0),
        environments=None,
        reward_funcs=list(funcs),
        reward_processing_classes=[None] * len(funcs),
        reward_func_names=[get_callable_name(f) for f in funcs],
        _log_completion_extra=lambda column, values: extra[column].extend(values),
        _log_metric=lambda name, value: metrics[name].append(value),
        metrics=metrics,
    )


def trl_rewards(funcs, inputs: list[dict], completions: list) -> tuple[torch.Tensor, SimpleNamespace]:
    """Rewards per completion and function, computed by TRL's own ``_calculate_rewards``."""
    trainer = fake_trainer(funcs)
    prompts = [row["prompt"] for row in inputs]
    ids = [[1, 2, 3]] * len(completions)
    return GRPOTrainer._calculate_rewards(trainer, inputs, prompts, completions, ids), trainer


def repeated_rows(dataset, group: int = GROUP) -> list[dict]:
    """Data set rows as TRL's sampler hands them over: each prompt repeated ``group`` times."""
    return [dict(dataset[i]) for i in range(len(dataset)) for _ in range(group)]


def candidate_texts(task: Task, record: dict) -> list[str]:
    reference = task.reference_completion(record)
    wrong = json.dumps({"reasoning": "I guessed.", "answer": 123456789})
    return [reference, f"```json\n{reference}\n```", wrong, "no JSON here"]


def as_messages(texts: list[str]) -> list[list[dict[str, str]]]:
    return [[{"role": "assistant", "content": t}] for t in texts]


HOSTILE = [
    "[" * 100_000,
    '{"a":' * 100_000,
    "x" * 10_000_000,
    '{"reasoning": "' + "9" * 5_000_000 + '", "answer": 1}',
    '{"reasoning": "r", "answer": 1e999999999}',
    '{"reasoning": "r", "answer": NaN}',
    '{"reasoning": "r", "answer": Infinity}',
    '{"reasoning": "\udcff", "answer": 1}',
    b'{"reasoning": "\xff\xfe", "answer": 1}'.decode("utf-8", errors="surrogateescape"),
    "",
    "   \n\t ",
]


# -- the shape TRL expects ----------------------------------------------------------------------
def test_functions_have_the_signature_trl_calls(rewards, dataset) -> None:
    assert isinstance(rewards, list) and len(rewards) == 5
    names = [get_callable_name(f) for f in rewards]
    assert names == [f"rlstruct_{n}" for n in ("structure", "format", "content", "validity", "length")]
    rows = repeated_rows(dataset, 1)
    for func in rewards:
        params = inspect.signature(func).parameters
        assert any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        assert {"prompts", "completions", "completion_ids"} <= set(params)
        assert not is_async_callable(func)
        out = func(
            prompts=[r["prompt"] for r in rows],
            completions=["{}"] * len(rows),
            completion_ids=[[0]] * len(rows),
            record=[r["record"] for r in rows],
            trainer_state=None,
        )
        assert isinstance(out, list) and len(out) == len(rows)
        assert all(type(v) is float for v in out)


def test_weights_match_the_spec_and_normalise(pm) -> None:
    with reward_functions(TASK, weights={"content": 3.0}, extras={"length": {"weight": 2.0}}, plugin_manager=pm,
                          workers=0) as funcs:
        assert funcs.names == ["structure", "format", "content", "validity", "length"]
        assert funcs.spec_weights == [1.0, 1.0, 3.0, 1.0, 2.0]
        assert funcs.weights == pytest.approx([w / 8.0 for w in funcs.spec_weights])
    with reward_functions(TASK, components=["content", "structure"], plugin_manager=pm, workers=0) as funcs:
        assert [f.__name__ for f in funcs] == ["rlstruct_content", "rlstruct_structure"]
        assert funcs.weights == [0.5, 0.5]
    for bad in (["nope"], [], ["content", "content"]):
        with pytest.raises(ValueError, match="components"):
            reward_functions(TASK, components=bad, plugin_manager=pm, workers=0)


# -- values --------------------------------------------------------------------------------------
@pytest.mark.parametrize("conversational", [False, True], ids=["plain", "conversational"])
def test_values_equal_score_inline(rewards, dataset, pm, conversational: bool) -> None:
    task = pm.task(TASK)
    spec = RewardSpec.build(task, pm.rewards, None, {"length": {"weight": 0.5}})
    inputs = repeated_rows(dataset)
    records = [decode_record(row["record"]) for row in inputs]
    texts = [t for i in range(len(dataset)) for t in candidate_texts(task, records[i * GROUP])]
    completions = as_messages(texts) if conversational else list(texts)

    table, trainer = trl_rewards(rewards, inputs, completions)

    assert table.shape == (len(texts), len(rewards))
    totals = (table * torch.tensor(rewards.weights)).sum(dim=1)
    for row, (record, text) in enumerate(zip(records, texts)):
        expected = score_inline(task, spec, record, text)
        assert table[row].tolist() == pytest.approx([expected.components[n] for n in rewards.names], abs=1e-6)
        assert totals[row].item() == pytest.approx(expected.reward, abs=1e-5)
    assert table[0].tolist() == pytest.approx([1.0] * 5)  # the reference earns everything
    assert trainer.metrics["rlstruct/error_rate"] == [0.0]
    assert rewards.stats()["batches_scored"] == 1


def test_hostile_completions_stay_bounded(rewards, dataset, pm) -> None:
    task = pm.task(TASK)
    spec = RewardSpec.build(task, pm.rewards, None, {"length": {"weight": 0.5}})
    row = dict(dataset[0])
    record = decode_record(row["record"])
    for conversational in (False, True):
        completions = as_messages(HOSTILE) if conversational else list(HOSTILE)
        start = time.perf_counter()
        table, _ = trl_rewards(rewards, [row] * len(HOSTILE), completions)
        assert time.perf_counter() - start < 1.0 * len(HOSTILE)
        assert ((table >= 0) & (table <= 1)).all()
        for index, text in enumerate(HOSTILE):
            expected = score_inline(task, spec, record, text)
            assert not expected.errors, (index, expected.errors)
            assert table[index].tolist() == pytest.approx([expected.components[n] for n in rewards.names])
    stats = rewards.stats()
    assert stats["component_errors"] == {} and stats["timeouts"] == 0 and stats["failed_completions"] == 0


# -- one scoring per batch ----------------------------------------------------------------------
def test_each_batch_is_scored_once(pm, dataset, monkeypatch) -> None:
    task = pm.task(TASK)
    calls = {"score": 0, "structure": 0}
    real_score, real_structure = RewardPool.score, task.structure

    def counting_score(self, records, completions):
        calls["score"] += 1
        return real_score(self, records, completions)

    def counting_structure(record, completion):
        calls["structure"] += 1
        return real_structure(record, completion)

    monkeypatch.setattr(RewardPool, "score", counting_score)
    monkeypatch.setattr(task, "structure", counting_structure)  # workers=0: scored in this process
    inputs = repeated_rows(dataset)
    record0 = decode_record(inputs[0]["record"])
    texts = candidate_texts(task, record0) * len(dataset)
    with reward_functions(TASK, extras={"length": {}}, plugin_manager=pm, workers=0) as funcs:
        trl_rewards(funcs, inputs, as_messages(texts))
        assert calls == {"score": 1, "structure": len(texts)}
        assert funcs.stats()["cache_hits"] == len(funcs) - 1

        trl_rewards(funcs, inputs, as_messages(texts))  # same content, new objects: nothing rescored
        assert calls["score"] == 1

        trl_rewards(funcs, inputs, as_messages(texts[::-1]))  # a new batch is always scored
        assert calls == {"score": 2, "structure": 2 * len(texts)}
        assert funcs.stats()["batches_scored"] == 2


# -- errors are counted, not raised --------------------------------------------------------------
class ProbeTask(Task):
    """A test task: content raises on ``boom``, validity hangs on ``sleep``; records vary in keys."""

    name = "trl-probe"
    default_weights = {"structure": 1.0, "format": 1.0, "content": 1.0, "validity": 1.0}

    def synthetic(self, split: str, size: int, seed: int) -> list[dict]:
        return [{"id": i, "extra": {"k": [i, None]}} if i % 2 else {"id": i, "note": "é\u2028"} for i in range(size)]

    def build_prompt(self, record: dict) -> Prompt:
        tools = [{"type": "function", "function": {"name": "echo", "parameters": {}}}] if record["id"] % 2 else None
        return Prompt([{"role": "user", "content": f"Say {record['id']}."}], tools=tools)

    def reference_completion(self, record: dict) -> str:
        return str(record["id"])

    def structure(self, record: dict, completion: str) -> Parsed:
        text = completion.strip()
        return Parsed(1.0 if text else 0.0, text)

    def format(self, record: dict, parsed: Any) -> float:
        return 1.0

    def content(self, record: dict, parsed: Any) -> float:
        if parsed == "boom":
            raise ValueError("boom")
        return 1.0 if parsed in (str(record["id"]), "sleep") else 0.0

    def validity(self, record: dict, parsed: Any) -> float:
        if parsed == "sleep":
            time.sleep(5)
        return 1.0


class ProbePlugin:
    @hookimpl
    def register_tasks(self, register) -> None:
        register(ProbeTask())


@pytest.fixture(scope="module")
def probe_pm() -> PluginManager:
    manager = PluginManager(load_entry_points=False)
    manager.register(ProbePlugin(), name="probe")
    return manager


def test_component_errors_and_timeouts_are_counted(probe_pm) -> None:
    dataset = to_trl_dataset("trl-probe", limit=1, plugin_manager=probe_pm)
    inputs = repeated_rows(dataset, 4)
    completions = ["0", "boom", "sleep", 42]  # 42: not a completion shape at all
    with reward_functions("trl-probe", plugin_manager=probe_pm, workers=1, timeout_s=0.3) as funcs:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            table, trainer = trl_rewards(funcs, inputs, completions)
        assert table.tolist() == [[1, 1, 1, 1], [1, 1, 0, 0], [1, 1, 1, 0], [0, 0, 0, 0]]
        stats = funcs.stats()
        assert stats["component_errors"] == {"content": 1, "validity": 1}
        assert "ValueError: boom" in stats["last_errors"]["content"]
        assert stats["timeouts"] == 1 and stats["bad_completions"] == 1 and stats["failed_completions"] == 3
        assert trainer.metrics["rlstruct/error_rate"] == [0.75]
        assert trainer.metrics["rlstruct/timeout_rate"] == [0.25]
        assert sorted(str(w.message).split("'")[3] for w in caught) == ["content", "validity"]


def test_bad_data_is_reported_clearly(probe_pm, pm, dataset) -> None:
    with reward_functions("trl-probe", plugin_manager=probe_pm, workers=0) as funcs:
        with pytest.raises(KeyError, match="to_trl_dataset"):
            funcs[0](prompts=["p"], completions=["0"], completion_ids=[[1]], other=["x"])
        with pytest.raises(ValueError, match="row 0"):
            funcs[0](prompts=["p"], completions=["0"], completion_ids=[[1]], record=["[1, 2]"])
        rows = repeated_rows(dataset, 1)  # gsm8k rows given to the probe task's reward
        with pytest.raises(ValueError, match="gsm8k-json"):
            trl_rewards(funcs, rows, ["0"] * len(rows))


# -- data set -------------------------------------------------------------------------------------
def test_dataset_round_trips_records_exactly(probe_pm) -> None:
    task = probe_pm.task("trl-probe")
    dataset = to_trl_dataset("trl-probe", "synthetic", "test", limit=6, plugin_manager=probe_pm)
    records = load_records(task, "synthetic", "test", 6)
    assert dataset.column_names == ["prompt", "record", TASK_COLUMN]
    assert [decode_record(v) for v in dataset["record"]] == records  # keys differ per row: no nulls added
    assert dataset["prompt"] == [prompt_messages(task.build_prompt(r)) for r in records]
    assert "Available tools (JSON):" in dataset[1]["prompt"][0]["content"]  # tools folded into a system turn
    assert dataset[0]["prompt"] == [{"role": "user", "content": "Say 0."}]
    with reward_functions("trl-probe", plugin_manager=probe_pm, workers=0) as funcs:
        table, _ = trl_rewards(funcs, [dict(r) for r in dataset], [task.reference_completion(r) for r in records])
        assert (table == 1).all()


def test_every_task_dataset_round_trips_and_rewards_its_references(pm) -> None:
    for name, task in pm.tasks.items():
        dataset = to_trl_dataset(name, "synthetic", "train", limit=4, plugin_manager=pm)
        records = load_records(task, "synthetic", "train", 4)
        assert [decode_record(v) for v in dataset["record"]] == records, name
        references = [task.reference_completion(r) for r in records]
        with reward_functions(name, plugin_manager=pm, workers=0) as funcs:
            table, _ = trl_rewards(funcs, [dict(r) for r in dataset], as_messages(references))
        assert table.tolist() == [[1.0] * len(funcs)] * len(records), name


def test_completion_text_reads_trl_message_shapes() -> None:
    assert completion_text("  {} ") == "  {} "
    assert completion_text([{"role": "assistant", "content": "a"}]) == "a"
    assert completion_text({"role": "assistant", "content": [{"type": "text", "text": "x"}, {"type": "image"}]}) == "x"
    parsed_calls = [
        {"role": "assistant", "content": "", "tool_calls": [
            {"type": "function", "function": {"name": "f", "arguments": {"a": 1}}},
            {"name": "g", "arguments": '{"b": 2}'},
        ]},
        {"role": "tool", "name": "f", "content": "result"},
    ]
    assert completion_text(parsed_calls) == (
        '<tool_call>\n{"name": "f", "arguments": {"a": 1}}\n</tool_call>\n'
        '<tool_call>\n{"name": "g", "arguments": {"b": 2}}\n</tool_call>'
    )
    for unusable in (None, 3, [1], [{"role": "assistant", "tool_calls": "x"}]):
        assert completion_text(unusable) is None


def test_function_calls_parsed_by_trl_score_like_text(pm) -> None:
    if "function-calls" not in pm.tasks:
        pytest.skip("function-calls task not loaded")
    task = pm.task("function-calls")
    dataset = to_trl_dataset("function-calls", limit=2, plugin_manager=pm)
    records = [decode_record(v) for v in dataset["record"]]
    completions = [
        [{"role": "assistant", "content": "", "tool_calls": [
            {"type": "function", "function": {"name": a["name"], "arguments": a["arguments"]}} for a in r["answers"]
        ]}]
        for r in records
    ]
    with reward_functions("function-calls", plugin_manager=pm, workers=0) as funcs:
        table, _ = trl_rewards(funcs, [dict(r) for r in dataset], completions)
    assert (table == 1).all(), table
    assert task.name == "function-calls"


# -- a real trainer ------------------------------------------------------------------------------
@pytest.mark.slow
def test_grpo_trainer_runs_one_step_and_logs_each_component(pm, tmp_path) -> None:
    from trl import GRPOConfig

    from rlstruct.tiny import build_tiny_model, default_corpus

    funcs = reward_functions(TASK, plugin_manager=pm, workers=1)  # fork before the model exists
    try:
        model_dir = build_tiny_model(tmp_path / "tiny", default_corpus(300))
        dataset = to_trl_dataset(TASK, limit=8, plugin_manager=pm)
        warnings.simplefilter("ignore", FutureWarning)  # transformers' own deprecations; pytest restores filters
        args = GRPOConfig(
            output_dir=str(tmp_path / "out"),
            max_steps=1,
            per_device_train_batch_size=4,
            num_generations=4,
            max_completion_length=8,
            report_to=[],
            use_cpu=True,
            logging_steps=1,
            save_strategy="no",
            reward_weights=funcs.weights,
        )
        trainer = GRPOTrainer(model=str(model_dir), reward_funcs=funcs, args=args, train_dataset=dataset)
        trainer.train()
        logged = trainer.state.log_history[0]
        for name in funcs.names:
            assert f"rewards/rlstruct_{name}/mean" in logged
            assert 0.0 <= logged[f"rewards/rlstruct_{name}/mean"] <= 1.0
        assert "rlstruct/error_rate" in logged and "rlstruct/timeout_rate" in logged
        stats = funcs.stats()
        assert stats["batches_scored"] == 1 and stats["cache_hits"] == len(funcs) - 1
        assert stats["completions_scored"] == 4
    finally:
        funcs.close()
