"""``rlstruct eval`` (and the evaluation after ``train``) under torchrun: the batches are shared out between the
processes and their rows gathered back in order, so every process ends with the rows and summary one process
would have produced.

:func:`rlstruct.engine.evaluate.evaluate` seeds each batch by its first record (``batch_seed``), so a batch's
completions do not depend on which process ran it: the rows are the single-process rows, sampled or greedy.
Batch starts go out round-robin (rank r takes every world_size-th batch), which balances the work when
batches differ in length. With ``--out``, rank 0 reads the saved progress, every rank skips the batches already
done, and rank 0 writes the new batches in order once all are gathered (a run killed before that redoes them).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

from . import distributed
from .distributed import Dist
from .evaluate import batch_starts, summarise_rows

Row = dict[str, Any]


def evaluate_on_ranks(
    dist: Dist,
    evaluate: Callable[..., tuple[dict[str, Any], list[Row]]],
    records: Sequence[Any],
    *,
    batch_size: int,
    names: Sequence[str],
    group: int,
    done_rows: Sequence[Row] = (),
    done_seconds: Mapping[int, float] | None = None,
    on_batch: Callable[[list[Row], int, float], Any] | None = None,
    progress: Callable[[int], Any] | None = None,
    **kwargs: Any,
) -> tuple[dict[str, Any], list[Row]]:
    """``evaluate(records=..., batch_size=..., **kwargs)`` with its batches split between the ranks.

    ``names``: the reward spec's component names and ``group``: completions per record (what the summary is
    computed with). ``done_rows`` / ``done_seconds`` / ``on_batch`` are rank 0's (an ``--out`` directory);
    ``progress`` is shown on rank 0 for its own batches. Without torchrun this is ``evaluate`` itself.
    """
    common = dict(records=records, batch_size=batch_size, **kwargs)
    if not dist.enabled:
        return evaluate(done_rows=done_rows, done_seconds=done_seconds, on_batch=on_batch, progress=progress, **common)
    done_rows, done_seconds = distributed.broadcast(dist, (list(done_rows), dict(done_seconds or {})),
                                                    "sharing the evaluation's progress")
    done = {int(r["batch"]) for r in done_rows}
    todo = [start for start in batch_starts(len(records), batch_size) if start not in done]
    finished: list[tuple[int, list[Row], float]] = []
    local, _ = evaluate(
        batches=todo[dist.rank :: dist.world_size], progress=progress if dist.is_main else None,
        on_batch=lambda rows, start, seconds: finished.append((start, list(rows), seconds)), **common,
    )
    new = sorted(distributed.gather_lists(dist, finished, "gathering the evaluation's rows"), key=lambda b: b[0])
    if on_batch is not None and dist.is_main:
        for start, rows, seconds in new:
            on_batch(rows, start, seconds)
    seconds = {**done_seconds, **{start: s for start, _, s in new}}
    rows = list(done_rows) + [row for _, batch_rows, _ in new for row in batch_rows]
    rows.sort(key=lambda r: (r["index"], r["sample"]))
    summary = summarise_rows(rows, names, group, sum(seconds.values()))
    summary["protocol"] = local["protocol"]
    return summary, rows
