"""rlstruct: GRPO that teaches language models reliable structured output, with task plugins.

Public API for plugin authors (see :mod:`rlstruct.plugin_api` and docs/plugins.md)::

    from rlstruct import hookimpl, Task, Parsed, Prompt, Record, RecordError, RewardComponent
    from rlstruct import generate_split, parse_json_completion, parse_untrusted_xml, f1, normalize_text
    from rlstruct import RlstructError  # the base of every error rlstruct reports to users

``import rlstruct`` stays light: it never imports torch or transformers.
"""

from .plugin_api import *  # noqa: F403 - the public surface is plugin_api.__all__
from .plugin_api import __all__ as _plugin_api_names

__all__ = list(_plugin_api_names)
__version__ = "0.1.0"
