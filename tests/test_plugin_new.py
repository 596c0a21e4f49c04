"""``rlstruct plugin new NAME [--dir DIR]``: the scaffold installs with ``pip install -e`` and its
generated tests (the contract kit, the task's own, a smoke train) pass as generated."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest

from rlstruct import cli
from rlstruct.config import load_config
from rlstruct.scaffold import new_plugin

GENERATED_FILES = [
    ".gitignore",
    "README.md",
    "pyproject.toml",
    "rlstruct_yaml_records/__init__.py",
    "rlstruct_yaml_records/task.py",
    "tasks/yaml-records-tiny.toml",
    "tests/test_rlstruct_yaml_records.py",
]


def files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


BAD_NAMES = ["Bad_Name", "9lives", "double--dash", "trailing-", "under_score", "x" * 41, "rlstruct-x", "yaml.records"]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_a_bad_name_is_a_one_line_usage_error(name, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["plugin", "new", name, "--dir", str(tmp_path / "p")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"rlstruct plugin new: error: argument NAME: {name!r}")
    assert not (tmp_path / "p").exists()


@pytest.mark.parametrize("taken", ["json", "json-recipes"])
def test_a_name_an_installed_plugin_uses_is_refused(taken, tmp_path, capsys):
    assert cli.main(["plugin", "new", taken, "--dir", str(tmp_path / "p")]) == 1
    err = capsys.readouterr().err
    assert err == (
        f"rlstruct: error: the name {taken!r} is already used by the installed plugin 'json' (rlstruct 0.1.0); "
        "choose another\n"
    )
    assert not (tmp_path / "p").exists()


def test_a_directory_in_use_is_refused_and_left_alone(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    assert cli.main(["plugin", "new", "yaml-records", "--dir", str(tmp_path)]) == 1
    assert f"{tmp_path}: already exists and is not an empty directory" in capsys.readouterr().err
    assert files_under(tmp_path) == ["notes.txt"]


def test_default_directory_is_rlstruct_name_in_the_current_directory(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["plugin", "new", "yaml-records"]) == 0
    assert files_under(tmp_path / "rlstruct-yaml-records") == GENERATED_FILES
    assert "pip install -e '.[test]'" in capsys.readouterr().out


def test_generated_project_is_complete_and_consistent(tmp_path):
    root = new_plugin("yaml-records", tmp_path / "p")
    assert files_under(root) == GENERATED_FILES
    for path in root.rglob("*"):
        if path.is_file():
            assert "{{" not in path.read_text(), path  # every placeholder filled
    project = tomllib.loads((root / "pyproject.toml").read_text())
    assert project["project"]["name"] == "rlstruct-yaml-records"
    assert project["project"]["entry-points"]["rlstruct"] == {"yaml-records": "rlstruct_yaml_records"}
    task_source = (root / "rlstruct_yaml_records" / "task.py").read_text()
    tree = ast.parse(task_source)
    task_class = next(n for n in tree.body if isinstance(n, ast.ClassDef))
    methods = {n.name for n in task_class.body if isinstance(n, ast.FunctionDef)}
    assert task_class.name == "YamlRecordsTask"
    assert {"random_record", "user_prompt", "structure", "format", "content", "validity"} <= methods
    assert not {"synthetic", "build_prompt"} & methods  # the API defaults do that work
    for component in ("structure", "format", "content", "validity"):
        assert f"TODO({component})" in task_source
    cfg = load_config(root / "tasks" / "yaml-records-tiny.toml")
    assert cfg.task.name == "yaml-records" and cfg.model.name_or_path == ".tiny/yaml-records"
    assert "rlstruct_check_task" in (root / "tests" / "test_rlstruct_yaml_records.py").read_text()


def _throwaway_venv(root: Path) -> Path:
    """A venv that sees this environment's packages (rlstruct, torch, pytest) but installs into its own
    site-packages, so the plugin never lands in the project's .venv."""
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()
    ours = sysconfig.get_paths()["purelib"]
    Path(purelib, "_rlstruct_test_parent.pth").write_text(f"import site; site.addsitedir({ours!r})\n")
    return python


def plugins_json(python: Path, env: dict[str, str]) -> list[dict]:
    """``rlstruct plugins --json`` as seen by the interpreter ``python``."""
    command = [str(python), "-m", "rlstruct.cli", "plugins", "--json"]
    run = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    return json.loads(run.stdout)


@pytest.mark.slow
def test_generated_plugin_installs_with_pip_and_its_tests_pass_as_generated(tmp_path):
    project = new_plugin("yaml-records", tmp_path / "rlstruct-yaml-records")
    python = _throwaway_venv(tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "RLSTRUCT_PLUGINS", "RLSTRUCT_BLOCK_PLUGINS")}
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    install = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-build-isolation",
         "--no-index", "--disable-pip-version-check", "--quiet", "-e", str(project)],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert install.returncode == 0, install.stderr

    listed = plugins_json(python, env)
    mine = [p for p in listed if p["name"] == "yaml-records"]
    assert mine == [{"name": "yaml-records", "module": "rlstruct_yaml_records", "distribution": "rlstruct-yaml-records",
                     "version": "0.1.0", "tasks": ["yaml-records"], "rewards": [], "error": None}]

    tests = subprocess.run(
        [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=project, capture_output=True, text=True, env=env, timeout=600,
    )
    assert tests.returncode == 0, tests.stdout[-3000:] + tests.stderr[-2000:]
    assert "4 passed" in tests.stdout

    assert "yaml-records" not in [p["name"] for p in plugins_json(Path(sys.executable), env)]  # left as it was
