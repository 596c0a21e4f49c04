"""The public API for plugin authors: everything a task plugin needs, in one import.

Re-exported by the top-level package, so ``from rlstruct import Task, Parsed, hookimpl`` is the
way to use it. The names below are a contract; the internal modules they come from may move.

- **writing a task**: :class:`Task` (with the ``system_prompt`` / ``user_prompt`` and
  ``random_record`` defaults), :class:`Parsed`, :class:`Prompt`, :data:`Record`,
  :class:`RecordError`, :data:`COMPONENTS`, :func:`applicable_components`;
- **registering it**: :data:`hookimpl`; extra reward components are :class:`RewardComponent`;
- **synthetic data**: :func:`generate_split`, :func:`split_of`, :func:`canonical_split`;
- **parsing untrusted model output**: JSON with :func:`parse_json_completion` (fence stripping
  plus :func:`safe_json_loads`), XML with :func:`parse_untrusted_xml` (no DTD, no entities, no
  network) and :func:`strip_xml_fence`; both raise a ``ValueError`` subclass
  (:class:`UnsafeInput`, :class:`UnsafeXml`) on anything refused;
- **scoring helpers**: :func:`f1`, :func:`normalize_text`, :func:`clamp01`;
- **errors**: :class:`RlstructError`, the base of every error rlstruct reports to users
  (``rlstruct.errors`` has its two branches, usage and run errors).

Importing this module never imports torch.
"""

from __future__ import annotations

from .errors import RlstructError
from .hookspecs import hookimpl
from .json_safety import (
    MAX_COMPLETION_CHARS,
    MAX_INT_DIGITS,
    MAX_JSON_DEPTH,
    UnsafeInput,
    nesting_depth,
    parse_json_completion,
    safe_json_loads,
    strip_json_fence,
)
from .scoring_helpers import clamp01, f1, normalize_text
from .splits import canonical_split, generate_split, split_of
from .task import (
    COMPONENTS,
    Parsed,
    Prompt,
    Record,
    RecordError,
    RewardComponent,
    Task,
    applicable_components,
)
from .xml_safety import MAX_XML_BYTES, MAX_XML_DEPTH, UnsafeXml, strip_xml_fence
from .xml_safety import parse_untrusted as parse_untrusted_xml

__all__ = [
    # writing and registering a task
    "COMPONENTS",
    "Parsed",
    "Prompt",
    "Record",
    "RecordError",
    "RewardComponent",
    "Task",
    "applicable_components",
    "hookimpl",
    # synthetic data
    "canonical_split",
    "generate_split",
    "split_of",
    # bounded JSON parsing
    "MAX_COMPLETION_CHARS",
    "MAX_INT_DIGITS",
    "MAX_JSON_DEPTH",
    "UnsafeInput",
    "nesting_depth",
    "parse_json_completion",
    "safe_json_loads",
    "strip_json_fence",
    # hardened XML parsing
    "MAX_XML_BYTES",
    "MAX_XML_DEPTH",
    "UnsafeXml",
    "parse_untrusted_xml",
    "strip_xml_fence",
    # scoring helpers
    "clamp01",
    "f1",
    "normalize_text",
    # errors
    "RlstructError",
]
