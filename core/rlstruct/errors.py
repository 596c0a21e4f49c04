"""The one error type users see: every user-facing exception derives from :class:`RlstructError`.

Two branches tell the command line which exit status to use (``rlstruct.cli.main`` catches
:class:`RlstructError` once and prints one line, ``rlstruct: error: ...``):

- :class:`UsageError`, exit status 2: what the user asked for is wrong and changing the command
  line or the config file fixes it (an unknown config key or task name, a bad value, reward
  weights that do not add up, an unknown tracker);
- :class:`RunError`, exit status 1: the request was fine but the run could not go on (bad data,
  a missing model, a run directory in use, a prompt too long for the model, training stopped).

The concrete classes stay where they are raised (``rlstruct.config.ConfigError``,
``rlstruct.data.DataError``, ...) and keep their other bases (``ValueError``, ``LookupError``,
``OSError``...), so existing ``except ValueError`` code still catches them. Library code that
wants to catch "anything rlstruct reports to users" catches :class:`RlstructError`.
This module imports nothing, so any module can use it.
"""

from __future__ import annotations


class RlstructError(Exception):
    """An error meant for the user: its message is one line naming the file, line, key or flag at fault."""

    exit_status: int = 1


class UsageError(RlstructError):
    """The command line or config asks for something invalid (exit status 2)."""

    exit_status = 2


class RunError(RlstructError):
    """A valid request that could not be carried out: data, model, files, training (exit status 1)."""

    exit_status = 1


__all__ = ["RlstructError", "RunError", "UsageError"]
