"""A small typed plugin manager over pluggy.

Plugins are modules found through the ``rlstruct`` entry point group (built-ins too: the core never
imports a plugin by name). Entry points are loaded one at a time so that a broken plugin is
reported by name with its error and never hides the others; hooks are called plugin by plugin for
the same reason, and so that every task knows which distribution registered it.

Environment variables (comma-separated entry point names):

- ``RLSTRUCT_PLUGINS``: load only these plugins (``""`` loads none).
- ``RLSTRUCT_BLOCK_PLUGINS``: never load these plugins.

There is no module-level manager: each :class:`PluginManager` is independent, so several can live
in one process (tests, torchrun ranks) without sharing state.
"""

from __future__ import annotations

import importlib.metadata
import os
import traceback
from dataclasses import asdict, dataclass, field
from typing import Any

import pluggy

from . import hookspecs
from .errors import RunError, UsageError
from .task import RewardComponent, Task

ENTRY_POINT_GROUP = "rlstruct"
ALLOW_ENV = "RLSTRUCT_PLUGINS"
BLOCK_ENV = "RLSTRUCT_BLOCK_PLUGINS"


class UnknownTaskError(UsageError, LookupError):
    """No task of that name; the message lists the known ones."""


class PluginConflictError(RunError, LookupError):
    """Two plugins registered the same task or reward name; the message names both packages."""


@dataclass
class PluginInfo:
    """What ``rlstruct plugins`` shows for one plugin."""

    name: str
    """Entry point name (or the name given to :meth:`PluginManager.register`)."""
    module: str
    distribution: str | None = None
    version: str | None = None
    tasks: list[str] = field(default_factory=list)
    rewards: list[str] = field(default_factory=list)
    error: str | None = None
    """Why the plugin failed to load or register, or ``None``."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _env_names(var: str) -> set[str] | None:
    value = os.environ.get(var)
    if value is None:
        return None
    return {part.strip() for part in value.split(",") if part.strip()}


def _short_error(exc: BaseException) -> str:
    last = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    where = f" ({last[0].filename}:{last[0].lineno})" if last else ""
    return f"{type(exc).__name__}: {exc}{where}"


class PluginManager:
    """Loads plugins and exposes their tasks and reward components, with errors kept per plugin."""

    def __init__(self, load_entry_points: bool = True) -> None:
        self._pm = pluggy.PluginManager("rlstruct")
        self._pm.add_hookspecs(hookspecs)
        self._infos: dict[str, PluginInfo] = {}
        self._tasks: dict[str, tuple[Task, str]] = {}
        self._rewards: dict[str, tuple[RewardComponent, str]] = {}
        self._conflicts: dict[str, str] = {}
        # (kind, name, first plugin, second plugin) for every name registered twice; messages are
        # written once all hooks ran, so they can say everything each plugin provides.
        self._clashes: list[tuple[str, str, str, str]] = []
        self._provided: dict[str, dict[str, list[str]]] = {}
        self._dirty = True
        if load_entry_points:
            self.load_entry_points()

    # -- loading ----------------------------------------------------------------------------------
    def load_entry_points(self) -> None:
        """Load every entry point of the ``rlstruct`` group, honouring the allow/block variables."""
        allow, block = _env_names(ALLOW_ENV), _env_names(BLOCK_ENV) or set()
        seen: set[tuple[str, str]] = set()
        for ep in sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            if (ep.name, ep.value) in seen:
                continue  # the same distribution visible twice on sys.path
            seen.add((ep.name, ep.value))
            if ep.name in block or (allow is not None and ep.name not in allow):
                continue
            dist = getattr(ep, "dist", None)
            if ep.name in self._infos:  # another distribution already uses this entry point name
                first = self._infos[ep.name]
                other = f"{dist.name} {dist.version}" if dist else ep.value
                first.error = (
                    f"duplicate entry point name {ep.name!r}: used by both {_describe_plugin(first)} "
                    f"and {other} ({ep.value}); uninstall one"
                )
                continue
            info = PluginInfo(
                name=ep.name,
                module=ep.value,
                distribution=dist.name if dist else None,
                version=dist.version if dist else None,
            )
            self._infos[ep.name] = info
            try:
                module = ep.load()
            except BaseException as exc:  # noqa: BLE001 - report any failure, keep the others
                if isinstance(exc, KeyboardInterrupt):
                    raise
                info.error = f"failed to import {ep.value!r}: {_short_error(exc)}"
                continue
            self._register_module(module, info)

    def register(self, plugin: object, name: str | None = None) -> PluginInfo:
        """Register a plugin object in-process (a module, or an object with ``@hookimpl`` methods)."""
        name = name or getattr(plugin, "__name__", None) or type(plugin).__name__
        if name in self._infos:
            raise ValueError(f"a plugin named {name!r} is already registered")
        module = getattr(plugin, "__name__", type(plugin).__module__)
        info = PluginInfo(name=name, module=module)
        self._infos[name] = info
        self._register_module(plugin, info)
        return info

    def unregister(self, name: str) -> None:
        """Remove a plugin registered under ``name`` (tests register and unregister)."""
        self._infos.pop(name, None)
        if self._pm.has_plugin(name):
            self._pm.unregister(name=name)
        self._dirty = True

    def _register_module(self, plugin: object, info: PluginInfo) -> None:
        try:
            self._pm.register(plugin, name=info.name)
        except Exception as exc:  # pluggy validates hook names and signatures here
            info.error = f"invalid plugin: {_short_error(exc)}"
        else:  # pluggy accepts implementations of hooks it does not know (a misspelled name)
            unknown = sorted(c.name for c in self._pm.get_hookcallers(plugin) or [] if not c.has_spec())
            if unknown:
                self._pm.unregister(name=info.name)
                info.error = (
                    f"invalid plugin: unknown hook {', '.join(unknown)} (hooks are: {', '.join(hook_names())})"
                )
        self._dirty = True

    # -- collecting ---------------------------------------------------------------------------------
    def _collect(self) -> None:
        if not self._dirty:
            return
        self._tasks.clear()
        self._rewards.clear()
        self._conflicts.clear()
        self._clashes.clear()
        self._provided.clear()
        for info in self._infos.values():
            info.tasks, info.rewards = [], []
            if info.error and info.error.startswith("conflict"):
                info.error = None
        self._call_each("register_tasks", Task, self._tasks, "task")
        self._call_each("register_rewards", RewardComponent, self._rewards, "reward component")
        written: set[str] = set()
        for what, name, first, second in self._clashes:
            message = self._conflict_message(what, name, self._infos[first], self._infos[second])
            if name not in written:  # the first clash of a name is the one reported for it
                self._conflicts[name] = message
                written.add(name)
            if not self._infos[second].error:
                self._infos[second].error = message
        self._dirty = False

    def _conflict_message(self, what: str, name: str, first: PluginInfo, second: PluginInfo) -> str:
        """Name the clash and both ways out, each with everything it would take away."""
        # Suggest blocking the newcomer first: a third-party plugin rather than a built-in one,
        # else the one registered later.
        newcomer, other = (first, second) if _is_builtin(second) and not _is_builtin(first) else (second, first)
        return (
            f"conflict: {what} {name!r} is registered by both {_describe_plugin(first)} and "
            f"{_describe_plugin(second)}, so neither is usable; block one: "
            f"{BLOCK_ENV}={newcomer.name} removes {self._provides(newcomer)}, "
            f"or {BLOCK_ENV}={other.name} removes {self._provides(other)} (or uninstall one)"
        )

    def _provides(self, info: PluginInfo) -> str:
        provided = self._provided.get(info.name, {})
        parts = []
        for what in ("task", "reward component"):
            names = sorted(set(provided.get(what, [])))
            if names:
                parts.append(f"{what}{'s' if len(names) > 1 else ''} {', '.join(names)}")
        label = "the built-in plugin" if _is_builtin(info) else "plugin"
        return f"{label} {info.name!r} with its " + " and ".join(parts) if parts else f"plugin {info.name!r}"

    def _call_each(self, hook_name: str, kind: type, table: dict[str, Any], what: str) -> None:
        caller = getattr(self._pm.hook, hook_name)
        for impl in caller.get_hookimpls():  # registration order
            info = self._infos.get(impl.plugin_name)
            if info is None or (info.error and not info.error.startswith("conflict")):
                continue
            registered: list[Any] = []

            def register(obj: Any, _into: list[Any] = registered) -> None:
                if not isinstance(obj, kind) or not getattr(obj, "name", ""):
                    raise TypeError(f"register() takes a {kind.__name__} instance with a name, got {obj!r}")
                _into.append(obj)

            try:
                impl.function(register=register)
            except Exception as exc:  # one plugin's bug must not hide the others
                info.error = f"{hook_name} failed: {_short_error(exc)}"
                continue
            self._provided.setdefault(info.name, {}).setdefault(what, []).extend(o.name for o in registered)
            for obj in registered:
                if obj.name in table:
                    self._clashes.append((what, obj.name, table[obj.name][1], info.name))
                    self._conflicts[obj.name] = f"conflict: {what} {obj.name!r}"  # message written in _collect
                    continue
                table[obj.name] = (obj, info.name)
                (info.tasks if kind is Task else info.rewards).append(obj.name)

    # -- queries ------------------------------------------------------------------------------------
    def plugins(self) -> list[PluginInfo]:
        """Every plugin seen, loaded or not, sorted by name."""
        self._collect()
        return sorted(self._infos.values(), key=lambda i: i.name)

    @property
    def tasks(self) -> dict[str, Task]:
        """Usable tasks by name (conflicting names are left out)."""
        self._collect()
        return {n: t for n, (t, _) in sorted(self._tasks.items()) if n not in self._conflicts}

    @property
    def rewards(self) -> dict[str, RewardComponent]:
        """Usable extra reward components by name."""
        self._collect()
        return {n: r for n, (r, _) in sorted(self._rewards.items()) if n not in self._conflicts}

    def task_plugin(self, name: str) -> PluginInfo:
        """The plugin that registered task ``name``."""
        self._collect()
        return self._infos[self._tasks[name][1]]

    def conflicts(self) -> list[str]:
        """Messages for every name registered by two plugins."""
        self._collect()
        return list(self._conflicts.values())

    def errors(self) -> list[PluginInfo]:
        """Plugins that failed to load or register."""
        return [i for i in self.plugins() if i.error]

    def task(self, name: str) -> Task:
        """The task called ``name``; unknown names list the known ones, conflicts name both packages."""
        self._collect()
        if name in self._conflicts:
            raise PluginConflictError(self._conflicts[name])
        if name not in self._tasks:
            known = ", ".join(sorted(self.tasks)) or "none (no plugin registered a task)"
            broken = [i.name for i in self._infos.values() if i.error]
            hint = f"; plugins that failed to load: {', '.join(broken)} (see `rlstruct plugins`)" if broken else ""
            raise UnknownTaskError(f"unknown task {name!r}; known tasks: {known}{hint}")
        return self._tasks[name][0]


def _is_builtin(info: PluginInfo) -> bool:
    """Whether a plugin ships with rlstruct itself (the built-in tasks and rewards)."""
    return info.distribution == "rlstruct"


def _describe_plugin(info: PluginInfo) -> str:
    if info.distribution:
        return f"{info.distribution} {info.version or ''} (plugin {info.name!r})".replace("  ", " ")
    return f"plugin {info.name!r} ({info.module})"


def hook_names() -> list[str]:
    """Names of every hook in :mod:`rlstruct.hookspecs` (used by the documentation test)."""
    return sorted(n for n in dir(hookspecs) if n.startswith("register_") and callable(getattr(hookspecs, n)))

