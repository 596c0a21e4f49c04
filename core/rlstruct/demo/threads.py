"""Torch thread counts for the demo, set deliberately rather than left to torch's default.

torch defaults to one intra-op thread per physical core. Every parallel region (a matmul, a
softmax) then waits at a barrier for its slowest thread, so when another process holds one of
two cores each region waits for a time slice on the busy core: GRPO generation on the tiny model
was measured going from ~2.3 s to ~70 s per step that way. A single intra-op thread never waits
on a barrier and loses little on a tiny model, whose decoding is bound by per-layer overhead
rather than arithmetic; ``--threads`` changes it (``0`` keeps torch's default).
"""

from __future__ import annotations

DEFAULT_THREADS = 0
"""Intra-op threads the demo uses unless ``--threads`` says otherwise: torch's default (one per core) for the
update, whose large matrix products gain from every core; the task configs decode on one thread
(``grpo.decode_threads = 1``), where the tiny model is overhead-bound and would otherwise wait on a busy core.
Measured on the quiet 2-core machine: one thread everywhere gave 4.3-4.8 s per GRPO step (update 2.5-3.0 s)."""


def set_torch_threads(intra_op: int) -> int:
    """Use ``intra_op`` intra-op threads (0: torch's default) and one inter-op thread; returns the count in force.

    The thread count is also part of reproducibility: a float reduction split over a different
    number of threads adds in a different order, so results are bit-identical only between runs
    with the same count.
    """
    import torch

    if intra_op > 0:
        torch.set_num_threads(intra_op)
    try:  # allowed only before the first inter-op parallel work in the process
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    return torch.get_num_threads()
