"""docs/hooks.md is generated from rlstruct.hookspecs and the classes the hooks register, and must stay current."""

from pathlib import Path

from rlstruct.hook_docs import describe_hooks_markdown, signature
from rlstruct.plugins import hook_names
from rlstruct.task import Task

DOC = Path(__file__).parents[1] / "docs" / "hooks.md"


def test_hook_reference_is_up_to_date():
    assert DOC.read_text(encoding="utf-8") == describe_hooks_markdown(), (
        "regenerate: python -m rlstruct.hook_docs > docs/hooks.md"
    )


def test_every_hook_and_task_method_is_in_the_reference():
    doc = DOC.read_text(encoding="utf-8")
    for hook in hook_names():
        assert f"## {hook}\n" in doc
    for name in ("structure", "format", "content", "validity", "build_prompt", "random_record", "error_type"):
        assert f"#### `{signature(getattr(Task, name), drop_self=True)}`" in doc
    assert "#### `structure(record: Record, completion: str) -> Parsed`\n\n*Required.*" in doc


def test_a_changed_hook_docstring_makes_the_reference_stale(monkeypatch):
    from rlstruct import hookspecs

    monkeypatch.setattr(hookspecs.register_tasks, "__doc__", "Register tasks, reworded.")
    assert DOC.read_text(encoding="utf-8") != describe_hooks_markdown()
