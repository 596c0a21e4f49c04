"""A minimal TOML writer for resolved configs (nested tables of scalars, lists and tables).

It sits next to :mod:`rlstruct.config`, which reads what it writes: ``tomllib.loads(dumps(cfg))``
gives back the same values (``config.toml`` of a run directory, the demo's resolved configs)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # a JSON string is a valid TOML basic string
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):  # None has no TOML form: an unset key is left out, and reads back as None
        return "{" + ", ".join(f"{json.dumps(str(k))} = {_value(x)}" for k, x in v.items() if x is not None) + "}"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def dumps(cfg: Any) -> str:
    """Serialise a config dataclass (or nested dict) so that tomllib reads it back identically."""
    data = dataclasses.asdict(cfg) if dataclasses.is_dataclass(cfg) else cfg
    lines: list[str] = []
    for section, table in data.items():
        lines.append(f"[{section}]")
        for key, value in table.items():
            if value is not None:  # e.g. task.difficulty unset: the default when read back
                lines.append(f"{key} = {_value(value)}")
        lines.append("")
    return "\n".join(lines)
