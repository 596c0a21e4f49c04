"""Data-parallel training on torch.distributed: one process per GPU (or per CPU worker), started by torchrun.

``torchrun --nproc_per_node=N -m rlstruct train CONFIG.toml`` starts N copies of the command; torchrun sets
``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE`` and the rendezvous address, and :func:`init` joins
the process group they describe (NCCL on CUDA, gloo on CPU). Without torchrun nothing here does anything: every
helper takes the single-process :data:`SINGLE` and returns its input.

How a GRPO step is split (grpo.py calls these helpers):

* every rank computes the step's whole batch of P prompts (it is a pure function of ``(seed, step)``) and keeps
  a contiguous block of P / world_size of them (:func:`shard_batch`): a group of G completions never straddles
  ranks, so advantages stay within a rank;
* the loss normalisers (sequence and token counts) are summed over ranks (:func:`all_sum`) before the update, and
  each rank's loss is its rows' share of the global loss; gradients are then *summed* over ranks, so the update
  equals the single-process update on the same rollouts (up to float rounding);
* the rows every rank produced (completions, reward breakdowns) are gathered on every rank
  (:func:`gather_rows`), so curricula see the whole step and stay identical on every rank, and the metrics line
  is computed from all P × G completions exactly as in one process; only rank 0 writes it.

Gradient exchange: with the weights replicated (the default), the gradients of a step are all-reduced once per
optimiser update, after the micro-batches accumulate (:func:`sync_gradients`): the communication of
``DistributedDataParallel`` with ``no_sync()``, without its module wrapper, because the update runs the decoder
trunk and the head separately (logprobs.py) and the shared-prompt pass runs a lean decoder, which bypass a
wrapper's ``forward``. With ``run.fsdp = true`` the weights, gradients and optimiser state are sharded with
PyTorch's ``fully_shard`` (:func:`shard_models`); generation and the no-gradient log-prob passes run on the
gathered weights (:func:`full_weights`), and the update runs through the root module's forward so FSDP can
gather and reduce-scatter layer by layer (every rank then runs the same number of micro-batches,
:func:`lockstep`).

A collective that fails (another rank died, or did not answer within ``run.dist_timeout_s``) raises
:class:`RankLost`, one line naming this rank; torchrun's own failure summary names the rank that died.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import torch
from torch import Tensor, nn

from ..errors import RunError

if TYPE_CHECKING:
    from ..reward import Breakdown
    from .rollout import MicroBatch, Rollout
    from .task_batches import StepBatch

DEFAULT_TIMEOUT_S = 600.0
"""How long a collective waits for the slowest rank before the run fails (``run.dist_timeout_s``)."""


@dataclass(frozen=True)
class Dist:
    """This process's place in the run: its rank among ``world_size`` processes, and on its node."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1
    backend: str = ""  # "nccl" or "gloo"; "" for a single process
    timeout_s: float = DEFAULT_TIMEOUT_S

    @property
    def enabled(self) -> bool:
        """Whether there are other processes to talk to."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that writes files and prints progress."""
        return self.rank == 0

    @property
    def device(self) -> torch.device:
        """Where this process's collectives put their tensors (NCCL needs CUDA tensors, gloo CPU ones)."""
        if self.backend == "nccl":
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("cpu")


SINGLE = Dist()
"""A run without torchrun: one process, no collectives."""

_timeout_s = DEFAULT_TIMEOUT_S  # the bound the process group was created with (reported by current())


class RankLost(RunError):
    """A collective failed: another process of the run exited or stopped answering."""


def launched() -> bool:
    """Whether this process was started by torchrun (or another launcher setting ``WORLD_SIZE``) with peers."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1) > 1


def backend_for(device_name: str) -> str:
    """NCCL when the run trains on CUDA, gloo on CPU."""
    if device_name == "cuda" or (device_name == "auto" and torch.cuda.is_available()):
        return "nccl"
    return "gloo"


def init(device_name: str = "auto", timeout_s: float = DEFAULT_TIMEOUT_S) -> Dist:
    """Join the process group torchrun describes in the environment, once; :data:`SINGLE` without torchrun.

    On CUDA each process takes GPU ``LOCAL_RANK`` (so ``run.device = "cuda"`` means this process's GPU).
    ``timeout_s`` bounds every collective: a rank that hangs makes the others fail after that long.
    The group is left when the process exits (or at :func:`teardown`).
    """
    global _timeout_s
    import torch.distributed as tdist

    if tdist.is_available() and tdist.is_initialized():
        return current()
    if not launched():
        return SINGLE
    backend = backend_for(device_name)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
    try:
        tdist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s))
    except Exception as exc:  # noqa: BLE001 - rendezvous failures come in many types
        raise RankLost(
            f"rank {os.environ.get('RANK', '?')}: could not join the process group at "
            f"{os.environ.get('MASTER_ADDR', '?')}:{os.environ.get('MASTER_PORT', '?')} ({_first_line(exc)})"
        ) from None
    _timeout_s = timeout_s
    atexit.register(teardown)
    return current()


def current() -> Dist:
    """The process group this process belongs to, or :data:`SINGLE` when there is none."""
    import torch.distributed as tdist

    if not (tdist.is_available() and tdist.is_initialized()):
        return SINGLE
    world = tdist.get_world_size()
    return Dist(
        rank=tdist.get_rank(),
        world_size=world,
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
        local_world_size=int(os.environ.get("LOCAL_WORLD_SIZE", str(world))),
        backend=str(tdist.get_backend()),
        timeout_s=_timeout_s,
    )


def teardown() -> None:
    """Leave the process group (a no-op without one)."""
    import torch.distributed as tdist

    if tdist.is_available() and tdist.is_initialized():
        tdist.destroy_process_group()


@contextlib.contextmanager
def session(device_name: str = "auto", timeout_s: float = DEFAULT_TIMEOUT_S) -> Iterator[Dist]:
    """:func:`init` on entry, :func:`teardown` on exit when this call created the group."""
    import torch.distributed as tdist

    created = launched() and not (tdist.is_available() and tdist.is_initialized())
    dist = init(device_name, timeout_s)
    try:
        yield dist
    finally:
        if created:
            teardown()


# -- collectives --------------------------------------------------------------------------------------------
def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


@contextlib.contextmanager
def _collective(dist: Dist, what: str) -> Iterator[None]:
    """Turn a failed collective into one line naming this rank (the traceback of a gloo or NCCL error says
    nothing a user can act on)."""
    try:
        yield
    except RankLost:
        raise
    except (RuntimeError, ValueError, OSError) as exc:  # DistError and gloo's transport errors are RuntimeErrors
        raise RankLost(
            f"rank {dist.rank} of {dist.world_size}: {what} failed: another process of the run exited or did not "
            f"answer within run.dist_timeout_s = {dist.timeout_s:g} s ({_first_line(exc)}); torchrun's failure "
            "summary names the rank that stopped; the last complete checkpoint is intact"
        ) from exc


def all_sum(dist: Dist, values: Sequence[float], what: str = "summing over ranks") -> list[float]:
    """Each value summed over every rank (float64, so integer counts stay exact up to 2**53)."""
    if not dist.enabled:
        return [float(v) for v in values]
    import torch.distributed as tdist

    t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=dist.device)
    with _collective(dist, what):
        tdist.all_reduce(t, op=tdist.ReduceOp.SUM)
    return t.tolist()


def all_max(dist: Dist, values: Sequence[float], what: str = "a maximum over ranks") -> list[float]:
    """Each value's maximum over every rank."""
    if not dist.enabled:
        return [float(v) for v in values]
    import torch.distributed as tdist

    t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=dist.device)
    with _collective(dist, what):
        tdist.all_reduce(t, op=tdist.ReduceOp.MAX)
    return t.tolist()


def all_true(dist: Dist, flag: bool, what: str = "agreeing across ranks") -> bool:
    """Whether ``flag`` holds on every rank."""
    return all_max(dist, [0.0 if flag else 1.0], what)[0] == 0.0


def any_true(dist: Dist, flag: bool, what: str = "agreeing across ranks") -> bool:
    """Whether ``flag`` holds on some rank."""
    return all_max(dist, [1.0 if flag else 0.0], what)[0] == 1.0


def gather_lists(dist: Dist, items: list[Any], what: str = "gathering rows") -> list[Any]:
    """Every rank's ``items`` (picklable), concatenated in rank order, on every rank."""
    if not dist.enabled:
        return list(items)
    import torch.distributed as tdist

    parts: list[Any] = [None] * dist.world_size
    with _collective(dist, what):
        tdist.all_gather_object(parts, list(items))
    return [item for part in parts for item in part]


def broadcast(dist: Dist, obj: Any, what: str = "sharing rank 0's state") -> Any:
    """Rank 0's ``obj`` (picklable), on every rank."""
    if not dist.enabled:
        return obj
    import torch.distributed as tdist

    box = [obj if dist.is_main else None]
    with _collective(dist, what):
        tdist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(dist: Dist, what: str = "waiting for every rank") -> None:
    """Wait until every rank gets here. On gloo a rank that does not arrive is named in the error."""
    if not dist.enabled:
        return
    import torch.distributed as tdist

    with _collective(dist, what):
        if dist.backend == "gloo":
            tdist.monitored_barrier(timeout=datetime.timedelta(seconds=dist.timeout_s), wait_all_ranks=True)
        else:
            tdist.barrier(device_ids=[torch.cuda.current_device()])


# -- splitting a step ---------------------------------------------------------------------------------------
def check_divisible(prompts_per_step: int, dist: Dist) -> None:
    """A step's prompts must split evenly, by whole groups, between the ranks."""
    if prompts_per_step % dist.world_size:
        from ..config import ConfigError

        raise ConfigError(
            f"grpo.prompts_per_step = {prompts_per_step} does not split between {dist.world_size} processes "
            f"(torchrun --nproc_per_node × --nnodes); make it a multiple of {dist.world_size}"
        )


def group_slice(n_groups: int, dist: Dist) -> slice:
    """This rank's contiguous block of a step's ``n_groups`` prompts (``n_groups`` divisible by world size)."""
    per_rank = n_groups // dist.world_size
    return slice(dist.rank * per_rank, (dist.rank + 1) * per_rank)


def shard_batch(batch: "StepBatch", dist: Dist, group_size: int) -> "StepBatch":
    """This rank's prompts of a step, with their rows (G per prompt); the whole batch for one process."""
    if not dist.enabled:
        return batch
    groups = group_slice(len(batch.prompts), dist)
    rows = slice(groups.start * group_size, groups.stop * group_size)
    return replace(
        batch, tasks=batch.tasks[groups], prompts=batch.prompts[groups], records=batch.records[rows],
        routes=batch.routes[rows],
    )


def shard_rollout(rollout: "Rollout", dist: Dist) -> "Rollout":
    """This rank's whole groups of a rollout of the full step (to feed every rank fixed completions)."""
    if not dist.enabled:
        return rollout
    group = max(1, rollout.group_size)
    groups = group_slice(rollout.input_ids.shape[0] // group, dist)
    rows = slice(groups.start * group, groups.stop * group)
    return replace(
        rollout, input_ids=rollout.input_ids[rows], attention_mask=rollout.attention_mask[rows],
        completion_mask=rollout.completion_mask[rows], truncated=rollout.truncated[rows], texts=rollout.texts[rows],
        sampled_logprobs=None if rollout.sampled_logprobs is None else rollout.sampled_logprobs[rows],
    )


def rank_seed(seed: int, dist: Dist) -> int:
    """The sampling seed of this rank at a step whose single-process seed is ``seed``: rank 0 keeps it (one
    process samples exactly as before), other ranks get their own stream."""
    if dist.rank == 0:
        return seed
    return (seed + dist.rank * 104_729 * 1_000_003) % 2**31


def workers_per_rank(workers: int, dist: Dist) -> int:
    """Reward workers of this rank's pool: ``reward.workers`` split between the ranks of a node, at least one
    (0, inline scoring, stays 0), so N ranks on one machine do not start N times the configured processes."""
    if workers <= 0:
        return workers
    return max(1, workers // max(1, dist.local_world_size))


# -- the step's rows, gathered ------------------------------------------------------------------------------
@dataclass
class StepRows:
    """Every rank's rows of a step, in the single-process order (rank 0's groups first)."""

    texts: list[str]
    breakdowns: list["Breakdown"]
    truncated: Tensor  # [N] bool
    lengths: Tensor  # [N] float: completion tokens of each row, EOS included
    rewards: Tensor  # [N]
    zero_spread: Tensor  # [P] bool


def gather_rows(
    dist: Dist, rollout: "Rollout", breakdowns: Sequence["Breakdown"], rewards: Tensor, zero_spread: Tensor
) -> StepRows:
    """The whole step's rows on every rank (one process: this rank's own, unchanged)."""
    lengths = rollout.completion_mask.sum(dim=1).float()
    if not dist.enabled:
        return StepRows(list(rollout.texts), list(breakdowns), rollout.truncated, lengths, rewards, zero_spread)
    mine = list(zip(rollout.texts, breakdowns, rollout.truncated.tolist(), lengths.tolist(), rewards.tolist()))
    rows = gather_lists(dist, mine, "gathering the step's completions")
    spread = gather_lists(dist, zero_spread.tolist(), "gathering the step's groups")
    return StepRows(
        texts=[r[0] for r in rows],
        breakdowns=[r[1] for r in rows],
        truncated=torch.tensor([r[2] for r in rows], dtype=torch.bool),
        lengths=torch.tensor([r[3] for r in rows], dtype=torch.float32),
        rewards=torch.tensor([r[4] for r in rows], dtype=rewards.dtype),
        zero_spread=torch.tensor(spread, dtype=torch.bool),
    )


SUMMED = ("loss", "kl", "clip_fraction", "entropy")
"""Update statistics each rank holds its rows' share of (each already divided by the global token count)."""

SLOWEST = ("gen_s", "score_s", "update_s", "prefill_s", "decode_s", "old_logp_s", "ref_logp_s", "fwd_bwd_s",
           "optim_s", "peak_mem_mb")
"""Metrics a step is as slow (or as big) as its slowest rank in."""


def sum_stats(dist: Dist, sums: dict[str, float]) -> dict[str, float]:
    """The update statistics of :data:`SUMMED` over every rank's rows (others, e.g. grad_norm, unchanged)."""
    if not dist.enabled:
        return sums
    keys = [k for k in SUMMED if k in sums]
    return {**sums, **dict(zip(keys, all_sum(dist, [sums[k] for k in keys], "summing the update statistics")))}


def finish_line(dist: Dist, line: dict[str, Any], completion_tokens: int, completions: int) -> dict[str, Any]:
    """A step's metrics line as the whole run saw it: ``completions`` (all ranks' rows, P × G), ``world_size``,
    the slowest rank's timings and memory, and ``tokens_per_s`` as all ranks' completion tokens over the
    slowest rank's step time."""
    line["completions"] = completions
    line["world_size"] = dist.world_size
    if not dist.enabled:
        return line
    keys = [k for k in SLOWEST if isinstance(line.get(k), (int, float))]
    elapsed = line["gen_s"] + line["score_s"] + line["update_s"]
    values = all_max(dist, [float(line[k]) for k in keys] + [elapsed], "comparing the ranks' timings")
    line.update(zip(keys, values[:-1]))
    line["tokens_per_s"] = completion_tokens / max(1e-9, values[-1])
    return line


class NullWriter:
    """The metrics writer of ranks other than 0: they compute every line but write none."""

    def write(self, line: dict[str, Any]) -> None:
        pass

    def samples(self, step: int, items: list[dict[str, Any]]) -> None:
        pass


# -- gradients ----------------------------------------------------------------------------------------------
_BUCKET_BYTES = 32 * 2**20


def sync_gradients(dist: Dist, params: Sequence[Tensor]) -> None:
    """Sum every parameter's gradient over the ranks, in place (replicated weights; FSDP reduces its own).

    The losses carry global normalisers, so the sum, not the mean, is the full batch's gradient. A parameter
    without a gradient on some rank gets zeros there when another rank has one; one without a gradient on
    every rank keeps none, as in one process (AdamW then leaves it alone).
    """
    if not dist.enabled or not params or any(_is_dtensor(p) for p in params):
        return
    import torch.distributed as tdist
    from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

    has = all_max(dist, [0.0 if p.grad is None else 1.0 for p in params], "agreeing which parameters have gradients")
    grads = []
    for p, flag in zip(params, has):
        if flag and p.grad is None:
            p.grad = torch.zeros_like(p)
        if flag:
            grads.append(p.grad)
    # buckets of gradients of one dtype and device: a few large all-reduces instead of one per tensor
    buckets: list[list[Tensor]] = []
    size = 0
    for grad in grads:
        if buckets and (grad.dtype, grad.device) == (buckets[-1][0].dtype, buckets[-1][0].device) and size < _BUCKET_BYTES:
            buckets[-1].append(grad)
        else:
            buckets.append([grad])
            size = 0
        size += grad.numel() * grad.element_size()
    for bucket in buckets:
        flat = _flatten_dense_tensors(bucket).to(dist.device)
        with _collective(dist, "summing gradients"):
            tdist.all_reduce(flat, op=tdist.ReduceOp.SUM)
        for grad, synced in zip(bucket, _unflatten_dense_tensors(flat.to(bucket[0].device), bucket)):
            grad.copy_(synced)


def norm_value(norm: Tensor) -> float:
    """A gradient norm as a float (FSDP's is a replicated DTensor)."""
    if _is_dtensor(norm):
        norm = norm.full_tensor()
    return float(norm)


def _is_dtensor(t: Any) -> bool:
    from torch.distributed.tensor import DTensor

    return isinstance(t, DTensor)


# -- FSDP -----------------------------------------------------------------------------------------------------
def is_fsdp(model: Any) -> bool:
    """Whether ``model`` was sharded by :func:`shard_models`."""
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


def _fsdp_modules(model: nn.Module) -> list[nn.Module]:
    from torch.distributed.fsdp import FSDPModule

    return [m for m in model.modules() if isinstance(m, FSDPModule)]


def _layer_modules(model: nn.Module) -> list[nn.Module]:
    """The transformer blocks to shard one by one: the classes transformers lists in ``_no_split_modules``."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    names = set(getattr(base, "_no_split_modules", None) or ())
    return [m for m in base.modules() if type(m).__name__ in names]


def shard_models(dist: Dist, model: nn.Module, ref_model: nn.Module | None, fsdp: bool):
    """``(model, ref_model)`` sharded with ``fully_shard`` when ``fsdp`` and several processes run, else as given.

    Each transformer block is one FSDP unit, the root holds the rest (embeddings, final norm, a tied head).
    On CUDA the sharded weights are float32 and the forward and backward run in the model's dtype
    (``MixedPrecisionPolicy``), so the optimiser needs no master copy. Gradients are summed, not averaged,
    over ranks (the losses already carry the global normalisers). Build the optimiser after this call.
    """
    if not (fsdp and dist.enabled):
        return model, ref_model
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    def shard(module: nn.Module) -> nn.Module:
        dtype = next(module.parameters()).dtype
        policy = MixedPrecisionPolicy()
        if dtype != torch.float32:
            policy = MixedPrecisionPolicy(param_dtype=dtype, reduce_dtype=torch.float32)
            module.float()
            module._rlstruct_compute_dtype = dtype  # the float32 shards hide it from a look at the parameters
        layers = _layer_modules(module)
        if not layers:
            raise RunError(
                f"run.fsdp = true: {type(module).__name__} lists no transformer block classes "
                "(_no_split_modules) to shard; train it without FSDP"
            )
        for layer in layers:
            fully_shard(layer, mp_policy=policy)
        fully_shard(module, mp_policy=policy)
        for unit in _fsdp_modules(module):
            unit.set_gradient_divide_factor(1.0)  # a sum: every rank's loss is its share of the global loss
            unit.set_force_sum_reduction_for_comms(True)  # a plain SUM (gloo has no pre-multiplied sum)
        # The root must be initialised first: the fast generation path and the trunk/head split call
        # sub-modules directly, and FSDP would otherwise take the first block that runs for the root.
        state = module._get_fsdp_state()  # type: ignore[operator]
        state._lazy_init()
        return module

    return shard(model), (shard(ref_model) if ref_model is not None else None)


def computes_in_low_precision(model: nn.Module) -> bool:
    """Whether an FSDP model computes in bfloat16 / float16 over float32 shards (its parameters say float32)."""
    return getattr(model, "_rlstruct_compute_dtype", torch.float32) != torch.float32


class _RootForward(nn.Module):
    """The policy seen through its root ``forward`` only: FSDP gathers and reduces in the hooks of each
    sharded module's ``forward``, which the trunk/head split and the lean decoder would bypass."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.inner = model
        self.config = getattr(model, "config", None)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.inner(*args, **kwargs)


def logprob_module(model: nn.Module) -> nn.Module:
    """What the log-prob passes run: the model itself, or under FSDP a view that goes through its root."""
    return _RootForward(model) if is_fsdp(model) else model


@contextlib.contextmanager
def full_weights(*models: nn.Module | None) -> Iterator[None]:
    """Under FSDP: every rank holds the whole (gathered) weights while inside, for generation and the
    no-gradient passes, so each rank may run as many forwards as it needs. Otherwise nothing."""
    roots = [m for m in models if m is not None and is_fsdp(m)]
    units = [u for m in roots for u in _fsdp_modules(m)]
    if not units:
        yield
        return
    for unit in units:
        unit.set_reshard_after_forward(False, recurse=False)  # keep them gathered across forwards
        unit.unshard()
    try:
        yield
    finally:
        for unit in units:
            unit.reshard()
            if not any(unit is root for root in roots):  # FSDP never reshards a root after its forward
                unit.set_reshard_after_forward(True, recurse=False)


def lockstep(dist: Dist, batches: Sequence["MicroBatch"], model: nn.Module) -> Iterator[tuple[int, "MicroBatch", bool]]:
    """``(index, micro-batch, counts)`` for the update's gradient passes.

    Replicated weights: each micro-batch once (``counts`` True). FSDP: every rank must run as many
    forward/backward passes as the others (each gathers and reduce-scatters with them), so a rank with fewer
    micro-batches repeats its last one with ``counts`` False (its loss is multiplied by 0); gradients are
    reduced only after the last pass.
    """
    if not is_fsdp(model):
        for k, mb in enumerate(batches):
            yield k, mb, True
        return
    total = int(all_max(dist, [len(batches)], "agreeing on the number of micro-batches")[0])
    for k in range(total):
        model.set_requires_gradient_sync(k == total - 1)  # type: ignore[operator]
        real = k < len(batches)
        yield (k if real else len(batches) - 1), batches[min(k, len(batches) - 1)], real
    model.set_requires_gradient_sync(True)  # type: ignore[operator]


def gathered_state(model: nn.Module, optimizer: torch.optim.Optimizer | None = None):
    """``(model state, optimiser state)`` as full (unsharded) tensors on rank 0's CPU, keyed by parameter name;
    ``(None, None)`` for a model that is not sharded (save it as it is). Every rank must call it."""
    if not is_fsdp(model):
        return None, None
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict, get_optimizer_state_dict

    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    model_state = get_model_state_dict(model, options=options)
    # a tied parameter (an input embedding shared with the head) comes back once per name, as separate copies;
    # keep its first name, as save_pretrained does for the model's own tied weights
    first: dict[int, str] = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        if first.setdefault(id(param), name) != name:
            model_state.pop(name, None)
    optim_state = get_optimizer_state_dict(model, optimizer, options=options) if optimizer is not None else None
    return model_state, optim_state


def save_checkpoint(dist: Dist, root: Path, step: int, model, tokenizer, optimizer, scheduler,
                    state: dict[str, Any], keep_last: int) -> Path:
    """:func:`checkpoint.save_checkpoint` by rank 0 (FSDP: after every rank helped gather the weights); every
    rank returns once the checkpoint is complete on disk."""
    from . import checkpoint as ckpt

    model_state, optim_state = gathered_state(model, optimizer)
    path = root / f"step-{step:06d}"
    if dist.is_main:
        path = ckpt.save_checkpoint(root, step, model, tokenizer, optimizer, scheduler, state, keep_last,
                                    model_state=model_state, optimizer_state=optim_state)
    barrier(dist, f"writing checkpoint {path.name}")
    return path


def save_model_dir(dist: Dist, path: Path, model, tokenizer) -> None:
    """:func:`checkpoint.save_model_dir` (``final/``) by rank 0, loadable with plain ``from_pretrained``."""
    from . import checkpoint as ckpt

    model_state, _ = gathered_state(model)
    if dist.is_main:
        ckpt.save_model_dir(path, model, tokenizer, state_dict=model_state)
    barrier(dist, f"writing {path}")


def load_model_weights(model: nn.Module, found: Path, lora: bool) -> None:
    """:func:`checkpoint.load_model_weights`, also into a model sharded with FSDP."""
    from . import checkpoint as ckpt

    if not is_fsdp(model):
        return ckpt.load_model_weights(model, found, lora)
    from safetensors.torch import load_file
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

    if lora:  # the adapter file names tensors without the adapter's name; the model's names carry it
        saved = load_file(found / "adapter_model.safetensors")
        adapter = getattr(model, "active_adapter", "default")
        by_saved_name = {name.replace(f".{adapter}.", "."): name for name, _ in model.named_parameters()}
        missing = [k for k in saved if k not in by_saved_name]
        if missing:
            raise KeyError(f"adapter tensor {missing[0]} has no place in the model")
        adapter_state = {by_saved_name[k]: v for k, v in saved.items()}  # every rank has it: a small file
        set_model_state_dict(model, adapter_state, options=StateDictOptions(full_state_dict=True, strict=False))
        return
    from transformers import AutoModelForCausalLM

    # rank 0 reads the weights and sends each tensor's shards out: one full copy in memory per run, not per rank
    full = {}
    if current().is_main:
        full = AutoModelForCausalLM.from_pretrained(found, dtype=torch.float32).state_dict()
    set_model_state_dict(model, full, options=StateDictOptions(full_state_dict=True, broadcast_from_rank0=True))


def load_optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer, saved: dict[str, Any]) -> None:
    """Restore optimiser state written with or without FSDP into an optimiser with or without it.

    A plain optimiser's state is keyed by parameter position, FSDP's by parameter name; the trainable
    parameters in ``named_parameters()`` order give both, so a run can resume across the two.
    """
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    by_name = _keyed_by_name(saved)
    if is_fsdp(model):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

        if not by_name:
            saved = _position_to_name(saved, names)
        set_optimizer_state_dict(model, optimizer, saved, options=StateDictOptions(full_state_dict=True))
        return
    optimizer.load_state_dict(_name_to_position(saved, names) if by_name else saved)


def _keyed_by_name(saved: dict[str, Any]) -> bool:
    return any(isinstance(p, str) for group in saved.get("param_groups", []) for p in group.get("params", []))


def _position_to_name(saved: dict[str, Any], names: list[str]) -> dict[str, Any]:
    groups = [{**g, "params": [names[i] for i in g["params"]]} for g in saved["param_groups"]]
    return {"state": {names[i]: v for i, v in saved["state"].items()}, "param_groups": groups}


def _name_to_position(saved: dict[str, Any], names: list[str]) -> dict[str, Any]:
    index = {n: i for i, n in enumerate(names)}
    groups = [{**g, "params": [index[n] for n in g["params"]]} for g in saved["param_groups"]]
    return {"state": {index[n]: v for n, v in saved["state"].items()}, "param_groups": groups}
