"""Use a plugin in-process without installing it, and find tasks by name or instance.

:func:`registered_plugin` is a context manager: inside the ``with`` block the plugin is registered
in the manager it yields *and* in every :class:`~rlstruct.plugins.PluginManager` that loads entry
points (so ``rlstruct.cli.main([...])``, the engine commands and :func:`resolve_task` see it too),
replacing an installed plugin of the same name. On exit it is gone again.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Any, Iterator, Mapping, Sequence

from ..plugins import PluginManager
from ..task import Record, Task

_lock = threading.Lock()
_active: list[tuple[str, object]] = []
_original_load = PluginManager.load_entry_points


def _load_with_in_process_plugins(self: PluginManager) -> None:
    """``PluginManager.load_entry_points`` while a :func:`registered_plugin` block is active."""
    _original_load(self)
    for name, plugin in list(_active):
        self.unregister(name)  # the working copy under test replaces an installed version
        self.register(plugin, name=name)


def _plugin_name(plugin: object, name: str | None) -> str:
    return name or getattr(plugin, "__name__", None) or type(plugin).__name__


@contextmanager
def registered_plugin(plugin: object, name: str | None = None, *, installed: bool = False) -> Iterator[PluginManager]:
    """Register ``plugin`` (a module, or an object with ``@hookimpl`` methods) for the ``with`` block.

    Yields a manager holding only this plugin, or, with ``installed=True``, every installed plugin
    as well (to combine the task with installed reward components). Raises ``ValueError`` if the
    plugin fails to load, with the plugin manager's message (an unknown hook, a failing hook...).
    """
    name = _plugin_name(plugin, name)
    with _lock:
        if any(active == name for active, _ in _active):
            raise ValueError(f"a plugin named {name!r} is already registered in-process")
        _active.append((name, plugin))
        PluginManager.load_entry_points = _load_with_in_process_plugins  # type: ignore[method-assign]
    try:
        manager = PluginManager(load_entry_points=installed)
        if not installed:
            manager.register(plugin, name=name)
        info = next(i for i in manager.plugins() if i.name == name)
        if info.error:
            raise ValueError(f"plugin {name!r} failed to load: {info.error}")
        yield manager
    finally:
        with _lock:
            _active[:] = [(n, p) for n, p in _active if n != name]
            if not _active:
                PluginManager.load_entry_points = _original_load  # type: ignore[method-assign]


def resolve_task(task: Task | type[Task] | str) -> Task:
    """A task instance from an instance, a ``Task`` subclass, or a registered task name.

    Names are looked up among installed plugins and those of active :func:`registered_plugin`
    blocks; an unknown name raises :class:`~rlstruct.plugins.UnknownTaskError` listing the known ones.
    """
    if isinstance(task, Task):
        return task
    if isinstance(task, type) and issubclass(task, Task):
        return task()
    if isinstance(task, str):
        return PluginManager().task(task)
    raise TypeError(f"expected a Task, a Task subclass or a task name, got {type(task).__name__}")


def labelled(records: Sequence[Mapping[str, Any]] | Sequence[tuple[str, Record]]) -> list[tuple[str, Record]]:
    """Records with a label for messages: ``("records[3]", record)`` (labelled pairs pass through)."""
    return [
        item if isinstance(item, tuple) else (f"records[{index}]", dict(item))  # type: ignore[misc]
        for index, item in enumerate(records)
    ]
