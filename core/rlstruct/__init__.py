"""rlstruct: GRPO that teaches language models reliable structured output, with task plugins.

Public API for plugin authors::

    from rlstruct import hookimpl, Task, Parsed, Prompt, RecordError, RewardComponent
"""

from .hookspecs import hookimpl
from .task import COMPONENTS, Parsed, Prompt, Record, RecordError, RewardComponent, Task

__all__ = [
    "COMPONENTS",
    "Parsed",
    "Prompt",
    "Record",
    "RecordError",
    "RewardComponent",
    "Task",
    "hookimpl",
]
__version__ = "0.1.0"
