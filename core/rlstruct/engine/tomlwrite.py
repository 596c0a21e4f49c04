"""Old home of the config TOML writer; it lives in :mod:`rlstruct.config_toml` now."""

from __future__ import annotations

from ..config_toml import _value, dumps

__all__ = ["_value", "dumps"]
