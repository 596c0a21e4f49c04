"""``rlstruct plugin new NAME [--dir DIR]``: scaffold an installable task plugin.

The new distribution ``rlstruct-NAME`` holds a pyproject with the ``rlstruct`` entry point, a task
written with the API defaults (``system_prompt``/``user_prompt``, ``random_record``) whose four
reward components are working placeholders marked TODO, tests that run the contract kit, a README
and a task config for the tiny local model. ``pip install -e`` works and its tests pass as
generated. The files come from ``scaffold_templates/`` with ``{{key}}`` placeholders.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from .errors import RunError

TEMPLATE_DIR = Path(__file__).with_name("scaffold_templates")
TEMPLATES: dict[str, str] = {
    "pyproject.toml.tmpl": "pyproject.toml",
    "README.md.tmpl": "README.md",
    "gitignore.tmpl": ".gitignore",
    "plugin_init.py.tmpl": "{module}/__init__.py",
    "task.py.tmpl": "{module}/task.py",
    "test_task.py.tmpl": "tests/test_{module}.py",
    "task_config.toml.tmpl": "tasks/{name}-tiny.toml",
}
"""Template file -> path in the new project (``{module}`` and ``{name}`` filled in)."""
NAME_RE = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*\Z")
MAX_NAME_CHARS = 40


class ScaffoldError(RunError, ValueError):
    """The plugin cannot be created (the directory is in use, the name is taken)."""


def plugin_name(text: str) -> str:
    """Check a plugin name (an argparse ``type``): lower case, digits, single dashes, a letter first."""
    if not NAME_RE.match(text) or len(text) > MAX_NAME_CHARS:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a plugin name: use lower-case letters, digits and single dashes, starting "
            f"with a letter, at most {MAX_NAME_CHARS} characters (e.g. yaml-records)"
        )
    if text == "rlstruct" or text.startswith("rlstruct-"):
        raise argparse.ArgumentTypeError(f"{text!r}: leave out the 'rlstruct-' prefix (the distribution is rlstruct-NAME)")
    return text


@dataclass(frozen=True)
class PluginNames:
    """Every name the new plugin uses, derived from one plugin name."""

    name: str
    """Task name and entry point name, e.g. ``yaml-records``."""
    distribution: str
    """``rlstruct-yaml-records``."""
    module: str
    """``rlstruct_yaml_records``."""
    class_name: str
    """``YamlRecordsTask``."""

    @classmethod
    def from_name(cls, name: str) -> "PluginNames":
        name = plugin_name(name)
        return cls(
            name=name,
            distribution=f"rlstruct-{name}",
            module="rlstruct_" + name.replace("-", "_"),
            class_name="".join(part.capitalize() for part in name.split("-")) + "Task",
        )


def render(template: str, names: PluginNames) -> str:
    """Fill every ``{{key}}`` of ``template``; an unknown key is a bug in the template."""
    values = asdict(names)

    def fill(match: re.Match[str]) -> str:
        if match.group(1) not in values:
            raise KeyError(f"template placeholder {{{{{match.group(1)}}}}} has no value")
        return values[match.group(1)]

    return re.sub(r"\{\{(\w+)\}\}", fill, template)


def _refuse_taken(names: PluginNames) -> None:
    from .plugins import PluginManager

    pm = PluginManager()
    for info in pm.plugins():
        if info.name == names.name or names.name in info.tasks:
            owner = f"{info.distribution} {info.version}" if info.distribution else info.module
            raise ScaffoldError(
                f"the name {names.name!r} is already used by the installed plugin {info.name!r} ({owner}); choose another"
            )


def new_plugin(name: str, directory: str | Path | None = None, check_installed: bool = True) -> Path:
    """Create the plugin project for ``name`` in ``directory`` (default ``./rlstruct-NAME``).

    The directory must not exist or be empty; with ``check_installed``, a name an installed plugin
    already uses (as its plugin or task name) is refused. Returns the project directory.
    """
    try:
        names = PluginNames.from_name(name)
    except argparse.ArgumentTypeError as exc:
        raise ScaffoldError(str(exc)) from None
    target = Path(directory) if directory is not None else Path.cwd() / names.distribution
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ScaffoldError(f"{target}: already exists and is not an empty directory; choose another --dir")
    if check_installed:
        _refuse_taken(names)
    for template, destination in TEMPLATES.items():
        path = target / destination.format(module=names.module, name=names.name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render((TEMPLATE_DIR / template).read_text(encoding="utf-8"), names), encoding="utf-8")
    return target


# -- the command line: `rlstruct plugin new` ------------------------------------------------------
def add_plugin_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``plugin`` sub-command and its ``new`` action (cli.py only registers the command)."""
    actions = parser.add_subparsers(dest="plugin_action", metavar="ACTION", required=True)
    new = actions.add_parser(
        "new",
        help="create an installable plugin project with a working placeholder task, tests and a tiny-model config",
        description="Create rlstruct-NAME: pyproject with the rlstruct entry point, a task with TODO placeholders "
        "for records, prompts and the four reward components, tests that run the contract kit, a README "
        "and tasks/NAME-tiny.toml. Then: cd rlstruct-NAME && pip install -e '.[test]' && pytest",
    )
    new.add_argument("name", metavar="NAME", type=plugin_name, help="plugin and task name, e.g. yaml-records")
    new.add_argument("--dir", metavar="DIR", help="directory to create (default: ./rlstruct-NAME); must be new or empty")


def plugin_command(args: argparse.Namespace) -> int:
    """Run ``rlstruct plugin new``; an unusable directory or a taken name is a :class:`ScaffoldError`
    (one line and exit status 1 from ``rlstruct.cli.main``)."""
    target = new_plugin(args.name, args.dir)
    names = PluginNames.from_name(args.name)
    print(f"created {target} (plugin {names.name!r}, task class {names.class_name} in {names.module}/task.py)")
    print("next:")
    print(f"  cd {target}")
    print("  pip install -e '.[test]'")
    print("  pytest                 # the contract kit and the task's own tests")
    print(f"  rlstruct data --task {names.name} --limit 3")
    return 0
