"""Score completions in a test, exactly as training and ``rlstruct score`` do."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from ..reward import Breakdown, RewardSpec, score_inline
from ..sandbox import RewardPool, SandboxLimits
from ..task import Record, Task
from .inprocess import resolve_task


def score_completions(
    task: Task | str,
    records: Record | Sequence[Record],
    completions: Sequence[str],
    *,
    weights: Mapping[str, float] | None = None,
    extras: Mapping[str, Mapping[str, Any]] | None = None,
    bounded: bool = True,
    timeout_s: float = 2.0,
    memory_mb: int = 1024,
) -> list[Breakdown]:
    """Score ``completions[i]`` against ``records[i]`` (or every one against a single record).

    ``weights`` and ``extras`` are a config's ``[reward.weights]`` and ``[reward.extras.NAME]``
    (extras are looked up among installed and in-process plugins). With ``bounded`` (the default)
    scoring runs in the time- and memory-bounded reward pool, as in training; ``bounded=False``
    runs in this thread, which is easier to debug. Records are used as given: pass them through
    ``task.normalize_record`` first when they come from outside the task.
    """
    task = resolve_task(task)
    if isinstance(records, Mapping):
        records = [dict(records)] * len(completions)
    if len(records) != len(completions):
        raise ValueError(f"{len(records)} records for {len(completions)} completions")
    rewards = {}
    if extras:
        from ..plugins import PluginManager

        rewards = PluginManager().rewards
    spec = RewardSpec.build(task, rewards, weights, extras)
    if not bounded:
        return [score_inline(task, spec, r, c) for r, c in zip(records, completions)]
    with RewardPool(task, spec, SandboxLimits(timeout_s=timeout_s, memory_mb=memory_mb, workers=1)) as pool:
        return pool.score(list(records), list(completions))
