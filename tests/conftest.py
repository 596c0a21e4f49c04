"""Shared pytest fixtures.

Plugin and CLI fixtures (tests/test_plugins.py, tests/test_config_data.py):

- ``plugin_manager``: a fresh :class:`rlstruct.plugins.PluginManager` that loads no entry points;
- ``register_plugin``: ``register_plugin(pm, obj, name)`` registers a plugin in-process and
  unregisters it when the test ends;
- ``example_plugin_site``: tests/example_plugin installed with pip into a temporary directory,
  the way a user installs a plugin; put the returned directory on ``PYTHONPATH`` for CLI calls;
- ``run_cli``: run ``python -m rlstruct.cli ...`` in a subprocess with extra ``PYTHONPATH`` entries;
- ``example_plugin_module``: the example plugin's module imported in-process from its source.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable, Iterator, Sequence

import pytest

from rlstruct.plugins import ALLOW_ENV, BLOCK_ENV, PluginInfo, PluginManager

TESTS_DIR = Path(__file__).resolve().parent
EXAMPLE_PLUGIN_SRC = TESTS_DIR / "example_plugin"


@pytest.fixture
def plugin_manager() -> PluginManager:
    """A fresh plugin manager with nothing registered (entry points are not loaded)."""
    return PluginManager(load_entry_points=False)


@pytest.fixture
def register_plugin() -> Iterator[Callable[[PluginManager, object, str], PluginInfo]]:
    """``register_plugin(pm, obj, name)``: register ``obj`` in-process; unregistered after the test."""
    registered: list[tuple[PluginManager, str]] = []

    def register(pm: PluginManager, obj: object, name: str) -> PluginInfo:
        info = pm.register(obj, name=name)
        registered.append((pm, name))
        return info

    yield register
    for pm, name in reversed(registered):
        pm.unregister(name)


@pytest.fixture(scope="session")
def example_plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Install tests/example_plugin with pip (offline, no build isolation) into a temporary dir.

    The source is copied first so that the build does not leave ``build/`` or ``*.egg-info`` in
    the repository. Returns the ``--target`` directory (put it on ``PYTHONPATH``).
    """
    root = tmp_path_factory.mktemp("example_plugin")
    source, site = root / "src", root / "site"
    shutil.copytree(EXAMPLE_PLUGIN_SRC, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    cmd = [
        sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
        "--disable-pip-version-check", "--quiet", "--target", str(site), str(source),
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        pytest.fail(f"pip could not install the example plugin:\n{result.stdout}\n{result.stderr}")
    return site


def cli_env(pythonpath: Sequence[Path | str] = (), **extra: str) -> dict[str, str]:
    """The environment for a CLI subprocess: ``pythonpath`` first, plugin filters cleared, offline."""
    env = {k: v for k, v in os.environ.items() if k not in (ALLOW_ENV, BLOCK_ENV, "PYTHONPATH")}
    paths = [str(p) for p in pythonpath]
    if os.environ.get("PYTHONPATH"):
        paths.append(os.environ["PYTHONPATH"])
    if paths:
        env["PYTHONPATH"] = os.pathsep.join(paths)
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", PYTHONIOENCODING="utf-8")
    env.update(extra)
    return env


def run_rlstruct(
    *args: str,
    pythonpath: Sequence[Path | str] = (),
    input: str | bytes | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | str | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess:
    """Run ``python -m rlstruct.cli *args``; stdout and stderr come back as text."""
    result = subprocess.run(
        [sys.executable, "-m", "rlstruct.cli", *args],
        input=input.encode("utf-8") if isinstance(input, str) else input,
        capture_output=True,
        env=cli_env(pythonpath, **(env or {})),
        cwd=cwd,
        timeout=timeout,
    )
    return subprocess.CompletedProcess(
        result.args,
        result.returncode,
        result.stdout.decode("utf-8", errors="replace"),
        result.stderr.decode("utf-8", errors="replace"),
    )


@pytest.fixture(scope="session")
def run_cli(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., subprocess.CompletedProcess]:
    """``run_cli(*args, pythonpath=[...], input=str|bytes, env={...})`` -> CompletedProcess (text).

    Runs in a scratch directory so relative outputs never land in the repository.
    """
    cwd = tmp_path_factory.mktemp("cli_cwd")

    def run(*args: str, **kwargs) -> subprocess.CompletedProcess:
        kwargs.setdefault("cwd", cwd)
        return run_rlstruct(*args, **kwargs)

    return run


@pytest.fixture(scope="session")
def example_plugin_module():
    """The example plugin's module ``rlstruct_example_kv``, imported in-process from its source."""
    sys.path.insert(0, str(EXAMPLE_PLUGIN_SRC))
    try:
        import rlstruct_example_kv
    finally:
        sys.path.remove(str(EXAMPLE_PLUGIN_SRC))
    return rlstruct_example_kv
