"""docs/hooks.md, the hook reference, generated from :mod:`rlstruct.hookspecs` and the classes the hooks register.

Regenerate with ``python -m rlstruct.hook_docs > docs/hooks.md``; tests/test_hook_docs.py fails when the
page and the code disagree (a new hook, a changed signature, a reworded docstring). The page lists each
hook's signature and docstring, then every attribute and method of the object its ``register`` callable
takes (:class:`~rlstruct.task.Task` or :class:`~rlstruct.task.RewardComponent`), so the reference cannot
drift from the interface the engine calls.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import typing
from typing import Any, Callable

from . import hookspecs
from .config import field_docs
from .plugins import hook_names
from .task import COMPONENTS, RewardComponent, Task, applicable_components

HEADER = """# Hook reference

A plugin is a module in the `rlstruct` entry point group that implements one or more of these hooks
with `@rlstruct.hookimpl` (see [plugins.md](plugins.md) for the entry point, loading and error reporting,
and [plugin-tutorial.md](plugin-tutorial.md) for a worked example). Each hook receives a `register`
callable; call it once per object the plugin provides.

This page is generated from `rlstruct.hookspecs` and the registered classes:
`python -m rlstruct.hook_docs > docs/hooks.md`.
"""


def markdown(text: str) -> str:
    """A docstring in Markdown: ``:meth:`x``` and ````x```` become ```x```."""
    text = re.sub(r":[a-z]+:`~?([^`]+)`", r"`\1`", text)
    return text.replace("``", "`")


def _annotation(value: Any) -> str:
    """An annotation as written in the source (``from __future__ import annotations`` keeps them as text)."""
    if value is inspect.Parameter.empty:
        return ""
    text = value if isinstance(value, str) else inspect.formatannotation(value)
    return text.replace("typing.", "")


def signature(func: Callable[..., Any], *, drop_self: bool = False) -> str:
    """``name(arg: type, ...) -> type`` for ``func``, annotations as written in its source."""
    params = list(inspect.signature(func).parameters.values())
    if drop_self and params and params[0].name == "self":
        params = params[1:]
    parts = []
    for p in params:
        text = p.name + (f": {_annotation(p.annotation)}" if p.annotation is not inspect.Parameter.empty else "")
        if p.default is not inspect.Parameter.empty:
            text += f" = {p.default!r}"
        parts.append(text)
    returns = _annotation(inspect.signature(func).return_annotation)
    return f"{func.__name__}({', '.join(parts)})" + (f" -> {returns}" if returns else "")


def _registered_class(hook: Callable[..., Any]) -> type:
    """The class a hook's ``register`` callable takes: ``Callable[[Task], None]`` -> ``Task``."""
    hints = typing.get_type_hints(hook, vars(hookspecs))
    (cls,) = typing.get_args(hints["register"])[0]
    return cls


def _task_section() -> list[str]:
    out = ["### Class attributes", "", "| attribute | type | default | meaning |", "| --- | --- | --- | --- |"]
    docs = field_docs(Task)
    hints = typing.get_type_hints(Task)
    for name, doc in docs.items():
        kind = _annotation(hints[name]).replace("ClassVar[", "", 1).removesuffix("]") if name in hints else ""
        default = getattr(Task, name)
        default_text = repr(dict(default)) if isinstance(default, typing.Mapping) else repr(default)
        kind = kind.replace("|", "\\|")  # `str | None`: an unescaped pipe would split the table cell
        out.append(f"| `{name}` | `{kind}` | `{default_text}` | {markdown(doc).replace('|', '/')} |")
    out += ["", "### Methods", ""]
    always = applicable_components(Task())  # what even a bare task has: structure
    for name, member in vars(Task).items():
        if name.startswith("_") or not inspect.isfunction(member):
            continue
        out += [f"#### `{signature(member, drop_self=True)}`", "", f"*{_method_need(name, always)}.*", "",
                markdown(inspect.getdoc(member) or ""), ""]
    return out


_NEEDS = {
    "build_prompt": "Required unless `user_prompt` is defined",
    "user_prompt": "Define it (with `system_prompt`) or override `build_prompt`",
    "synthetic": "Optional: the default draws from `random_record`; without either, records come from files and data sets only",
    "random_record": "Optional: define it to get the default `synthetic`",
}


def _method_need(name: str, always: tuple[str, ...]) -> str:
    """Whether a task must define the method ``name``, as one sentence."""
    if name in always:
        return "Required"
    if name in COMPONENTS:
        return "Optional: a task that leaves it out does not have this component (weight 0, `null` in breakdowns)"
    return _NEEDS.get(name, "Optional: the base class has a working default")


def _reward_component_section() -> list[str]:
    out = [markdown(inspect.getdoc(RewardComponent) or ""), "", "| field | type | default |", "| --- | --- | --- |"]
    hints = typing.get_type_hints(RewardComponent)
    for f in dataclasses.fields(RewardComponent):
        if f.default is not dataclasses.MISSING:
            default = repr(f.default)
        elif f.default_factory is not dataclasses.MISSING:
            default = repr(f.default_factory())
        else:
            default = "required"
        kind = _annotation(hints[f.name]).replace("|", "\\|")
        out.append(f"| `{f.name}` | `{kind}` | {default if default == 'required' else f'`{default}`'} |")
    return out + [""]


_SECTIONS: dict[type, Callable[[], list[str]]] = {Task: _task_section, RewardComponent: _reward_component_section}


def describe_hooks_markdown() -> str:
    """docs/hooks.md: every hook, its signature and docstring, and the interface of what it registers."""
    out = [HEADER]
    for name in hook_names():
        hook = getattr(hookspecs, name)
        cls = _registered_class(hook)
        out += [f"## {name}", "", "```python", f"@hookimpl\ndef {signature(hook)}: ...", "```", "",
                markdown(inspect.getdoc(hook) or ""), "", f"`register` takes a `{cls.__name__}` (`from rlstruct import {cls.__name__}`).", ""]
    for cls, section in _SECTIONS.items():
        out += [f"## {cls.__name__}", ""]
        if cls is Task:
            out += [markdown(inspect.getdoc(cls) or ""), ""]
        out += section()
    return "\n".join(out).rstrip() + "\n"


if __name__ == "__main__":
    print(describe_hooks_markdown(), end="")
