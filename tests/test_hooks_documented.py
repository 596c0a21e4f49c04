"""The plugin documentation keeps up with the code.

- every hook in rlstruct.hookspecs has a ``## <hook>`` section in docs/plugins.md and is used by
  at least one other test file;
- every code block in docs/plugin-tutorial.md marked ``<!-- file: PATH -->`` appears verbatim in
  tests/example_plugin/PATH, so the tutorial quotes the code that the tests install and run; the
  40-line task it opens with is quoted whole;
- every Python block marked ``<!-- run -->`` runs (next to tests/example_plugin) and prints exactly
  the text block that follows it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from rlstruct.plugins import hook_names

ROOT = Path(__file__).resolve().parent.parent
PLUGINS_DOC = ROOT / "docs" / "plugins.md"
TUTORIAL = ROOT / "docs" / "plugin-tutorial.md"
EXAMPLE_PLUGIN = ROOT / "tests" / "example_plugin"

FILE_BLOCK = re.compile(r"<!-- file: (?P<path>[^ ]+) -->\n```[\w-]*\n(?P<code>.*?)\n```", re.S)
"""A code block labelled as a file of the example plugin: the comment line, then a fenced block."""
RUN_BLOCK = re.compile(r"<!-- run -->\n```python\n(?P<code>.*?)\n```\n\n```text\n(?P<output>.*?)\n```", re.S)
"""A Python block to run, then the fenced text block with exactly what it prints."""
MINIMAL_TASK = "minimal_kv.py"
"""The complete task the tutorial opens with, in tests/example_plugin."""


def test_there_are_hooks():
    assert hook_names() == sorted(set(hook_names())) and "register_tasks" in hook_names()


@pytest.mark.parametrize("hook", hook_names())
def test_hook_has_a_section_in_the_reference(hook):
    headings = re.findall(r"^## (\S+)\s*$", PLUGINS_DOC.read_text(encoding="utf-8"), re.M)
    assert hook in headings, f"docs/plugins.md has no '## {hook}' section"


@pytest.mark.parametrize("hook", hook_names())
def test_hook_is_used_by_a_test(hook):
    users = [
        p.name
        for p in Path(__file__).parent.rglob("test_*.py")
        if p.name != Path(__file__).name and re.search(rf"\b{hook}\b", p.read_text(encoding="utf-8"))
    ]
    assert users, f"no test file other than {Path(__file__).name} uses the hook {hook!r}"


def tutorial_blocks() -> list[tuple[str, str]]:
    return [(m["path"], m["code"]) for m in FILE_BLOCK.finditer(TUTORIAL.read_text(encoding="utf-8"))]


def test_tutorial_labels_every_file_of_the_example_plugin():
    labelled = {path for path, _ in tutorial_blocks()}
    files = {p.relative_to(EXAMPLE_PLUGIN).as_posix() for p in EXAMPLE_PLUGIN.rglob("*") if p.suffix in (".py", ".toml")}
    files = {f for f in files if "egg-info" not in f and not f.startswith("build/")}
    assert labelled == files
    # every `<!-- file:` comment is directly followed by a fenced block (no silently skipped label)
    assert TUTORIAL.read_text(encoding="utf-8").count("<!-- file:") == len(tutorial_blocks())


def test_tutorial_quotes_each_hook_implementation():
    quoted = "\n".join(code for _, code in tutorial_blocks())
    for hook in hook_names():
        assert f"def {hook}(" in quoted


@pytest.mark.parametrize("index", range(len(tutorial_blocks())))
def test_tutorial_code_block_is_verbatim_from_the_example_plugin(index):
    path, code = tutorial_blocks()[index]
    source = (EXAMPLE_PLUGIN / path).read_text(encoding="utf-8")
    assert code.strip(), f"empty code block for {path}"
    assert code in source, f"docs/plugin-tutorial.md block {index} ({path}) is not verbatim in tests/example_plugin/{path}"


def test_tutorial_opens_with_the_whole_minimal_task():
    text = TUTORIAL.read_text(encoding="utf-8")
    first_path, first_code = tutorial_blocks()[0]
    assert first_path == MINIMAL_TASK
    assert first_code + "\n" == (EXAMPLE_PLUGIN / MINIMAL_TASK).read_text(encoding="utf-8")  # whole file
    assert text.index(first_code) < text.index("## Step 1")


def run_blocks() -> list[tuple[str, str]]:
    return [(m["code"], m["output"]) for m in RUN_BLOCK.finditer(TUTORIAL.read_text(encoding="utf-8"))]


def test_tutorial_has_runnable_examples():
    assert run_blocks()
    assert TUTORIAL.read_text(encoding="utf-8").count("<!-- run -->") == len(run_blocks())


@pytest.mark.parametrize("index", range(len(run_blocks())))
def test_tutorial_example_prints_what_the_tutorial_shows(index):
    code, output = run_blocks()[index]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(EXAMPLE_PLUGIN), os.environ.get("PYTHONPATH")]))}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.rstrip("\n") == output
