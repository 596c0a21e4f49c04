"""The plugin hooks. Every hook is documented in docs/plugins.md and tested (tests/test_hooks_documented.py);
docs/hooks.md, the reference, is generated from this module (``python -m rlstruct.hook_docs``).

A plugin is a module (found through the ``rlstruct`` entry point group) that implements one or
more of these with ``@rlstruct.hookimpl``. Each hook receives a ``register`` callable; calling it
once per object keeps plugins declarative and lets the core report duplicates by plugin name.
"""

from __future__ import annotations

from typing import Callable

import pluggy

from .task import RewardComponent, Task

hookspec = pluggy.HookspecMarker("rlstruct")
hookimpl = pluggy.HookimplMarker("rlstruct")


@hookspec
def register_tasks(register: Callable[[Task], None]) -> None:
    """Register tasks: call ``register(MyTask())`` once per task the plugin provides."""


@hookspec
def register_rewards(register: Callable[[RewardComponent], None]) -> None:
    """Register extra reward components: call ``register(RewardComponent(...))`` once per component.

    Any task config can then add the component by name with a weight and parameters.
    """
