"""pytest fixtures of the contract kit, loaded automatically when rlstruct is installed (entry point
group ``pytest11``; disable with ``-p no:rlstruct``).

- ``rlstruct_check_task``: :func:`rlstruct.testing.check_task` using the session's tokenizer;
- ``rlstruct_tiny_model``: the path of a tiny model built once per session (for smoke training);
- ``rlstruct_tokenizer``: that model's chat tokenizer;
- ``rlstruct_plugin``: ``rlstruct_plugin(module_or_object, name=None)`` registers a plugin
  in-process for the rest of the test (see :func:`rlstruct.testing.registered_plugin`) and returns
  its plugin manager.

This module imports nothing heavy: torch loads only when a fixture that needs a model is used.
"""

from __future__ import annotations

import functools
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest


@pytest.fixture(scope="session")
def rlstruct_tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Qwen2-shaped model with a ChatML tokenizer, built offline once per test session."""
    from .models import tiny_model

    return tiny_model(tmp_path_factory.mktemp("rlstruct-tiny") / "model")


@pytest.fixture(scope="session")
def rlstruct_tokenizer(rlstruct_tiny_model: Path) -> Any:
    """The chat tokenizer of ``rlstruct_tiny_model``."""
    from .models import load_tokenizer

    return load_tokenizer(rlstruct_tiny_model)


@pytest.fixture
def rlstruct_check_task(rlstruct_tokenizer: Any) -> Callable[..., Any]:
    """``rlstruct_check_task(task_or_name, **options)``: run every contract check (see ``check_task``)."""
    from .contract import check_task

    return functools.partial(check_task, tokenizer=rlstruct_tokenizer)


@pytest.fixture
def rlstruct_plugin() -> Iterator[Callable[..., Any]]:
    """``rlstruct_plugin(plugin, name=None, installed=False)``: register in-process until the test ends."""
    from .inprocess import registered_plugin

    with ExitStack() as stack:
        yield lambda plugin, name=None, installed=False: stack.enter_context(
            registered_plugin(plugin, name, installed=installed)
        )
