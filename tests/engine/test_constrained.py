"""Constrained-decoding baseline: schemas per record, and generation with the schema enforced by xgrammar."""

from __future__ import annotations

import importlib.util
import json

import pytest
import torch
from jsonschema import Draft202012Validator

from rlstruct import Prompt
from rlstruct.engine.constrained import ConstrainedDecodingUnavailable, constrained_generate, schema_for
from rlstruct.engine.rollout import render_prompt

# Every path through this schema is short, so a random tiny model must finish it within the token budget.
SMALL = {
    "type": "object",
    "properties": {
        "ok": {"type": "boolean"},
        "n": {"type": "integer", "minimum": 0, "maximum": 9},
        "unit": {"enum": ["g", "kg", "ml"]},
    },
    "required": ["ok", "n", "unit"],
    "additionalProperties": False,
}


def _valid(text: str, schema: dict) -> bool:
    try:
        value = json.loads(text)
    except ValueError:
        return False
    return Draft202012Validator(schema).is_valid(value)


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    pytest.importorskip("xgrammar", reason='needs the constrained extra: pip install "rlstruct[constrained]"')
    from transformers import AutoModelForCausalLM

    from rlstruct.engine.model import load_tokenizer

    tok = load_tokenizer(str(tiny_model_dir))
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    prompts = [
        render_prompt(tok, Prompt([{"role": "user", "content": f"Reply with the JSON object, please ({i})."}]))
        for i in range(4)
    ]
    return model, tok, prompts


# --------------------------------------------------------------------------------------------
# Generation (tiny model, CPU)
# --------------------------------------------------------------------------------------------


def test_greedy_output_always_parses_and_validates(tiny):
    model, tok, prompts = tiny
    free, _ = constrained_generate(model, tok, prompts, [None] * 4, max_new_tokens=40)
    # The random tiny model left alone does not write this object: the constraint is what makes it valid.
    assert not any(_valid(text, SMALL) for text in free)

    texts, stats = constrained_generate(model, tok, prompts, [SMALL] * 4, max_new_tokens=40)
    assert all(_valid(text, SMALL) for text in texts), texts
    assert stats.constrained == [True] * 4 and stats.truncated == [False] * 4
    assert stats.compile_failures == 0 and stats.no_schema == 0
    # Not compared with re-tokenised texts: a grammar-driven decoder may spell the same text in other tokens.
    assert 4 * 10 < stats.generated_tokens < 4 * 40
    assert stats.tokens_per_second > 0
    assert json.loads(json.dumps(stats.to_json()))["constrained_completions"] == 4


def test_a_budget_too_small_for_the_schema_is_flagged_truncated(tiny):
    model, tok, prompts = tiny
    texts, stats = constrained_generate(model, tok, prompts, [SMALL] * 4, max_new_tokens=5)
    assert stats.truncated == [True] * 4 and stats.generated_tokens == 4 * 5
    assert all(t.startswith('{"ok"') and not _valid(t, SMALL) for t in texts), texts


def test_sampled_groups_stay_valid_and_follow_their_prompt(tiny):
    model, tok, prompts = tiny
    other = {"type": "array", "items": {"type": "boolean"}, "minItems": 1, "maxItems": 3}
    torch.manual_seed(0)
    texts, stats = constrained_generate(
        model, tok, prompts[:2], [SMALL, other], max_new_tokens=40, greedy=False, temperature=1.0, group_size=3,
    )
    assert len(texts) == 6 and stats.completions == 6 and stats.prompts == 2
    assert all(_valid(t, SMALL) for t in texts[:3]) and all(_valid(t, other) for t in texts[3:]), texts


def test_bad_schemas_are_counted_not_raised(tiny):
    model, tok, prompts = tiny
    schemas = [{"type": "nonsense"}, SMALL, {"$ref": "#/$defs/missing"}, "not a schema"]
    texts, stats = constrained_generate(model, tok, prompts, schemas, max_new_tokens=40, batch_size=3)
    assert len(texts) == 4
    assert stats.compile_failures == 3
    assert stats.constrained == [False, True, False, False]  # the failed ones were decoded freely
    assert _valid(texts[1], SMALL)
    assert stats.failure_reasons[0] == 'prompt 0: Unsupported type "nonsense"'
    assert stats.failure_reasons[1].startswith("prompt 2: ") and "missing" in stats.failure_reasons[1]
    assert stats.failure_reasons[2] == "prompt 3: schema is a str, not a JSON object"
    assert all("\n" not in reason for reason in stats.failure_reasons)


def test_every_builtin_task_schema_compiles(tiny):
    from rlstruct_function_calls.task import FunctionCallsTask
    from rlstruct_json.recipes import JsonRecipesTask
    from rlstruct_json.schema import JsonSchemaTask

    model, tok, prompts = tiny
    schemas = [schema_for(task, record) for task in (JsonRecipesTask(), JsonSchemaTask(), FunctionCallsTask())
               for record in task.synthetic("test", 8, 0)]
    assert all(isinstance(s, dict) for s in schemas)
    _, stats = constrained_generate(model, tok, [prompts[0]] * len(schemas), schemas, max_new_tokens=1, batch_size=32)
    assert stats.compile_failures == 0, stats.failure_reasons


def test_missing_engine_names_the_extra(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "xgrammar" else real(name, *a))
    with pytest.raises(ConstrainedDecodingUnavailable, match=r'pip install "rlstruct\[constrained\]"'):
        constrained_generate(object(), object(), ["p"], [SMALL], max_new_tokens=4)


# --------------------------------------------------------------------------------------------
# Which schema a record implies
# --------------------------------------------------------------------------------------------


def test_json_recipes_uses_the_plugins_schema_file():
    from rlstruct_json.recipes import JsonRecipesTask
    from rlstruct_json.recipes.schema import RECIPE_SCHEMA

    task = JsonRecipesTask()
    record = task.synthetic("test", 1, 0)[0]
    assert schema_for(task, record) == RECIPE_SCHEMA
    assert Draft202012Validator(RECIPE_SCHEMA).is_valid(json.loads(task.reference_completion(record)))


def test_json_schema_uses_the_records_schema_even_as_a_string():
    from rlstruct_json.schema import JsonSchemaTask

    task = JsonSchemaTask()
    assert schema_for(task, {"prompt": "x", "schema": SMALL}) == SMALL
    assert schema_for(task, {"prompt": "x", "schema": json.dumps(SMALL)}) == SMALL
    assert schema_for(task, {"prompt": "x", "schema": "{not json"}) is None


def test_function_calls_schema_accepts_the_reference_and_rejects_unknown_tools():
    from rlstruct_function_calls.calls_schema import calls_schema as function_calls_schema
    from rlstruct_function_calls.task import FunctionCallsTask

    task = FunctionCallsTask()
    for record in task.synthetic("test", 6, 0):
        validator = Draft202012Validator(schema_for(task, record))
        assert validator.is_valid(json.loads(task.reference_completion(record)))
        assert not validator.is_valid([{"name": "no_such_tool", "arguments": {}}])
        assert not validator.is_valid([])
    openai_style = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {
        "x": {"type": "integer"}}, "required": ["x"]}}}]
    validator = Draft202012Validator(function_calls_schema(openai_style))
    assert validator.is_valid([{"name": "f", "arguments": {"x": 1}}])
    assert not validator.is_valid([{"name": "f", "arguments": {"x": "one"}}])


def test_only_the_tasks_own_json_schema_method_counts(toy_task):
    assert schema_for(toy_task, {"prompt": "x"}) is None  # a task that implies no schema

    class NamedLikeABuiltin(type(toy_task)):
        name = "json-schema"  # the engine never looks at names: no method, no schema

    assert schema_for(NamedLikeABuiltin(), {"prompt": "x", "schema": {"type": "string"}}) is None

    class WithSchema(type(toy_task)):
        def json_schema(self, record):
            return SMALL

    assert schema_for(WithSchema(), {"prompt": "x"}) == SMALL

    class Broken(type(toy_task)):
        def json_schema(self, record):
            raise KeyError("schema")

    assert schema_for(Broken(), {"prompt": "x"}) is None  # counted as no schema, never a crash


def test_the_engine_names_no_plugin():
    from pathlib import Path

    source = (Path(__file__).parents[2] / "core" / "rlstruct" / "engine" / "constrained.py").read_text()
    for name in ("json-recipes", "function-calls", "rlstruct_json", "recipe.schema.json"):
        assert name not in source
