"""The public plugin API (rlstruct.plugin_api, re-exported by ``rlstruct``) and its defaults.

- one import surface: every name a plugin author needs comes from ``rlstruct``, without torch;
- ``system_prompt`` + ``user_prompt`` give the default ``build_prompt``;
- ``random_record`` gives the default ``synthetic`` (the core's split scheme, seeded, de-duplicated);
- a component left as the base method is not applicable: weight 0, ``None`` in breakdowns and
  summaries, ``null`` in JSON, passed over by gating; a config weight for it is an error.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

import rlstruct
from rlstruct import Parsed, Prompt, Record, Task, applicable_components, generate_split
from rlstruct.reward import RewardConfigError, RewardSpec, combine, iter_components, score_inline
from rlstruct.sandbox import RewardPool, SandboxLimits

ISSUE_NAMES = [  # the surface issue 14 promises, by name
    "Task", "Parsed", "Prompt", "Record", "RecordError", "RewardComponent", "hookimpl", "generate_split",
    "safe_json_loads", "parse_json_completion", "strip_json_fence", "parse_untrusted_xml", "strip_xml_fence",
    "f1", "normalize_text",
]


# -- one public surface ------------------------------------------------------------------------
@pytest.mark.parametrize("name", ISSUE_NAMES)
def test_name_is_public_from_rlstruct(name):
    assert name in rlstruct.__all__
    assert getattr(rlstruct, name) is getattr(rlstruct.plugin_api, name)


def test_public_names_are_the_implementations():
    from rlstruct import json_safety, scoring_helpers, splits, task, xml_safety

    assert rlstruct.Task is task.Task and rlstruct.generate_split is splits.generate_split
    assert rlstruct.parse_json_completion is json_safety.parse_json_completion
    assert rlstruct.f1 is scoring_helpers.f1 and rlstruct.normalize_text is scoring_helpers.normalize_text
    assert rlstruct.parse_untrusted_xml is xml_safety.parse_untrusted
    assert sorted(rlstruct.__all__) == sorted(rlstruct.plugin_api.__all__)


def test_bounded_parsers_refuse_hostile_text():
    with pytest.raises(rlstruct.UnsafeInput):
        rlstruct.parse_json_completion("[" * 10_000)
    with pytest.raises(rlstruct.UnsafeInput):
        rlstruct.safe_json_loads('{"x": NaN}')
    assert rlstruct.parse_json_completion('```json\n{"a": 1}\n```') == {"a": 1}
    bomb = '<!DOCTYPE r [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><r>&b;</r>'
    with pytest.raises(rlstruct.UnsafeXml, match="DOCTYPE"):
        rlstruct.parse_untrusted_xml(bomb)
    assert rlstruct.parse_untrusted_xml(rlstruct.strip_xml_fence("```xml\n<r><a>1</a></r>\n```")).find("a").text == "1"
    assert rlstruct.f1(["a", "b"], ["a"]) == pytest.approx(2 / 3)
    assert rlstruct.normalize_text("  Hello,   World! ") == "hello, world"


def test_import_rlstruct_stays_light():
    code = "import sys, rlstruct; from rlstruct import *; print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# -- small tasks using the defaults ------------------------------------------------------------
class Echo(Task):
    """Repeat a number as JSON ``{"n": N}``: structure and content only."""

    name = "echo"
    system_prompt = "Reply with JSON."

    def random_record(self, rng: random.Random) -> Record:
        return {"n": rng.randint(0, 10**6)}

    def user_prompt(self, record: Record) -> str:
        return f"Repeat {record['n']}"

    def structure(self, record: Record, completion: str) -> Parsed:
        try:
            value = rlstruct.parse_json_completion(completion)
        except ValueError:
            return Parsed(0.0)
        return Parsed(1.0, value) if isinstance(value, dict) else Parsed(0.0)

    def content(self, record: Record, parsed: dict) -> float:
        return float(parsed.get("n") == record["n"])


class EchoChecked(Echo):
    """Echo with a validity component, so gating after a not-applicable format is visible."""

    def validity(self, record: Record, parsed: dict) -> float:
        return 1.0 if set(parsed) == {"n"} else 0.5


class Bare(Task):
    name = "bare"


def test_default_build_prompt_is_system_then_user():
    prompt = Echo().build_prompt({"n": 3})
    assert prompt == Prompt(messages=[
        {"role": "system", "content": "Reply with JSON."}, {"role": "user", "content": "Repeat 3"},
    ])


def test_default_build_prompt_without_system_prompt_sends_only_the_user_message():
    class NoSystem(Echo):
        system_prompt = ""

    assert NoSystem().build_prompt({"n": 3}).messages == [{"role": "user", "content": "Repeat 3"}]


def test_task_without_prompt_or_generator_says_what_to_define():
    with pytest.raises(NotImplementedError, match="'bare'.*user_prompt"):
        Bare().build_prompt({})
    with pytest.raises(NotImplementedError, match="'bare'.*random_record"):
        Bare().synthetic("train", 1, 0)


def test_overridden_build_prompt_wins_and_can_reuse_the_default():
    from rlstruct_function_calls import FunctionCallsTask

    task = FunctionCallsTask()
    record = task.synthetic("train", 1, 0)[0]
    prompt = task.build_prompt(record)
    assert prompt.messages == [
        {"role": "system", "content": task.system_prompt}, {"role": "user", "content": record["query"]},
    ]
    assert [t["function"] for t in prompt.tools] == record["tools"]


def test_default_synthetic_is_the_core_split_scheme():
    task = Echo()
    for split in ("train", "validation", "test"):
        expected = generate_split("echo", split, 40, 5, task.random_record, key=task.user_prompt)
        assert task.synthetic(split, 40, 5) == expected
    assert task.synthetic("val", 10, 5) == task.synthetic("validation", 10, 5)
    assert task.synthetic("train", 10, 5) == task.synthetic("train", 30, 5)[:10]  # larger extends smaller
    assert task.synthetic("train", 10, 5) != task.synthetic("train", 10, 6)


def test_default_synthetic_keeps_splits_apart_and_drops_repeats():
    class FewPrompts(Echo):
        def random_record(self, rng: random.Random) -> Record:
            return {"n": rng.randint(0, 199)}  # 200 prompts in all, drawn many times over

    task = FewPrompts()
    splits = {s: [task.user_prompt(r) for r in task.synthetic(s, 15, 0)] for s in ("train", "validation", "test")}
    for prompts in splits.values():
        assert len(prompts) == len(set(prompts)) == 15
    assert not set(splits["train"]) & set(splits["test"])
    assert not set(splits["validation"]) & (set(splits["train"]) | set(splits["test"]))
    with pytest.raises(RuntimeError, match="distinct test prompts"):
        task.synthetic("test", 100, 0)  # only about 20 of the 200 prompts hash into test
    with pytest.raises(ValueError, match="unknown split 'nonsense'"):
        task.synthetic("nonsense", 1, 0)


def test_default_synthetic_does_not_depend_on_the_hash_seed():
    code = (
        f"import json, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); from test_plugin_api import Echo; "
        "print(json.dumps(Echo().synthetic('test', 20, 3)))"
    )
    outputs = {
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                       env={**os.environ, "PYTHONHASHSEED": seed}).stdout
        for seed in ("1", "2")
    }
    assert len(outputs) == 1 and len(json.loads(outputs.pop())) == 20


# -- not-applicable components -----------------------------------------------------------------
def test_unimplemented_components_are_not_applicable():
    assert applicable_components(Echo()) == ("structure", "content")
    assert applicable_components(EchoChecked()) == ("structure", "content", "validity")
    assert applicable_components(Bare()) == ("structure",)  # structure is always required
    spec = RewardSpec.build(Echo(), {})
    assert spec.weights == {"structure": 1.0, "format": 0.0, "content": 1.0, "validity": 0.0}


def test_reference_scores_one_with_nulls_for_missing_components():
    task = Echo()
    breakdown = score_inline(task, RewardSpec.build(task, {}), {"n": 7}, '{"n": 7}')
    assert breakdown.reward == 1.0 and not breakdown.errors
    assert breakdown.components == {"structure": 1.0, "format": None, "content": 1.0, "validity": None}
    out = json.loads(json.dumps(breakdown.to_json()))
    assert out["components"] == {"structure": 1.0, "format": None, "content": 1.0, "validity": None}


def test_wrong_answer_is_scored_only_on_applicable_components():
    task = Echo()
    breakdown = score_inline(task, RewardSpec.build(task, {}), {"n": 7}, '{"n": 8}')
    assert breakdown.components["content"] == 0.0 and breakdown.components["format"] is None
    assert breakdown.reward == 0.5  # (structure 1 + content 0) / 2, not divided by four
    nothing = score_inline(task, RewardSpec.build(task, {}), {"n": 7}, "seven")
    assert nothing.components == {"structure": 0.0, "format": None, "content": 0.0, "validity": None}


def test_gating_passes_over_a_missing_component():
    task = EchoChecked()
    spec = RewardSpec.build(task, {})
    scored = list(iter_components(task, spec, {"n": 7}, '{"n": 7, "extra": 1}'))
    assert scored == [("structure", 1.0, None), ("format", None, None), ("content", 1.0, None), ("validity", 0.5, None)]
    wrong = dict((name, score) for name, score, _ in iter_components(task, spec, {"n": 7}, '{"n": 1}'))
    assert wrong == {"structure": 1.0, "format": None, "content": 0.0, "validity": 0.0}  # gated after content


def test_config_weight_for_a_missing_component_is_an_error_naming_the_key():
    with pytest.raises(RewardConfigError, match=r"^run.toml: reward.weights.format: task 'echo' has no format"):
        RewardSpec.build(Echo(), {}, weights={"format": 1.0}, where="run.toml: reward")
    assert RewardSpec.build(Echo(), {}, weights={"format": 0, "content": 3.0}).weights["content"] == 3.0


def test_combine_leaves_out_none_with_its_weight():
    spec = RewardSpec(weights={"structure": 1.0, "format": 1.0, "content": 1.0, "validity": 1.0})
    assert combine(spec, {"structure": 1.0, "format": None, "content": 0.0, "validity": None}) == 0.5


def test_sandboxed_scoring_keeps_the_nulls():
    task = Echo()
    spec = RewardSpec.build(task, {})
    with RewardPool(task, spec, SandboxLimits(workers=1)) as pool:
        first, second = pool.score([{"n": 1}, {"n": 2}], ['{"n": 1}', "[1]"])
    assert first.components == {"structure": 1.0, "format": None, "content": 1.0, "validity": None}
    assert first.reward == 1.0
    assert second.components == {"structure": 0.0, "format": None, "content": 0.0, "validity": None}


def test_metrics_and_eval_summaries_report_null_for_missing_components(capsys):
    from rlstruct.engine.commands import _print_table
    from rlstruct.engine.evaluate import aggregate
    from rlstruct.engine.metrics import summarise_breakdowns

    task = Echo()
    spec = RewardSpec.build(task, {})
    breakdowns = [score_inline(task, spec, {"n": 1}, c) for c in ('{"n": 1}', '{"n": 2}')]
    metrics = summarise_breakdowns(breakdowns)
    assert metrics["reward/format"] is None and metrics["reward/validity"] is None
    assert metrics["reward/content"] == 0.5 and metrics["reward/structure"] == 1.0
    summary = json.loads(json.dumps(aggregate(breakdowns, spec.names)))
    assert summary["format"] is None and summary["format_mean"] is None
    assert summary["content"] == 0.5 and summary["content_mean"] == 0.5 and summary["reward"] == 0.75
    _print_table({**summary, "protocol": {"task": "echo", "decoding": "greedy", "split": "test"}})  # `rlstruct eval`
    table = {line.split()[0]: line.split()[1:] for line in capsys.readouterr().out.splitlines()[2:]}
    assert table["format"] == ["n/a", "n/a"] and table["content"] == ["0.500", "0.500"]


def test_trl_reward_functions_skip_missing_components(plugin_manager, register_plugin):
    from types import SimpleNamespace

    from rlstruct import hookimpl
    from rlstruct.integrations.trl import reward_functions

    plugin = SimpleNamespace(register_tasks=hookimpl(lambda register: register(Echo())))
    register_plugin(plugin_manager, plugin, "echo-plugin")
    with reward_functions("echo", plugin_manager=plugin_manager, workers=0) as functions:
        assert functions.names == ["structure", "content"]
        assert functions.weights == [0.5, 0.5]
