"""A plugin reusing a built-in task's name: the message names the task and both ways out, each with
everything it would take away (blocking the built-in plugin also removes its other tasks)."""

from __future__ import annotations

import pytest

from rlstruct import Parsed, Prompt, Task, hookimpl
from rlstruct.plugins import BLOCK_ENV, PluginConflictError, PluginManager


class _Named(Task):
    description = "a task of a third-party plugin"

    def __init__(self, name: str) -> None:
        self.name = name

    def synthetic(self, split, size, seed):
        return [{"n": i} for i in range(size)]

    def build_prompt(self, record):
        return Prompt(messages=[{"role": "user", "content": str(record["n"])}])

    def structure(self, record, completion):
        return Parsed(1.0, completion)

    def format(self, record, parsed):
        return 1.0

    def content(self, record, parsed):
        return 1.0

    def validity(self, record, parsed):
        return 1.0


class Newcomer:
    @hookimpl
    def register_tasks(self, register):
        register(_Named("json-recipes"))  # the built-in json plugin's task name
        register(_Named("my-invoices"))


def test_conflict_with_a_builtin_task_names_both_options_and_what_each_removes(monkeypatch):
    monkeypatch.delenv("RLSTRUCT_PLUGINS", raising=False)
    monkeypatch.delenv(BLOCK_ENV, raising=False)
    pm = PluginManager()
    builtin = pm.task_plugin("json-recipes")
    builtin_tasks = sorted(n for n in pm.tasks if pm.task_plugin(n).name == builtin.name)
    assert len(builtin_tasks) > 1  # blocking it takes away more than the clashing task
    pm.register(Newcomer(), "invoices")
    with pytest.raises(PluginConflictError) as excinfo:
        pm.task("json-recipes")
    message = str(excinfo.value)
    assert "\n" not in message and "task 'json-recipes'" in message
    block_new, block_builtin = f"{BLOCK_ENV}=invoices", f"{BLOCK_ENV}={builtin.name}"
    assert block_new in message and block_builtin in message
    assert message.index(block_new) < message.index(block_builtin)  # the newcomer is suggested first
    new_part = message[message.index(block_new): message.index(block_builtin)]
    old_part = message[message.index(block_builtin):]
    assert "json-recipes, my-invoices" in new_part
    assert ", ".join(builtin_tasks) in old_part and "built-in" in old_part
    # the newcomer's other task stays usable; its plugin carries the same message
    assert "my-invoices" in pm.tasks and "json-recipes" not in pm.tasks
    assert pm.plugins()[[i.name for i in pm.plugins()].index("invoices")].error == message
