"""The GRPO training loop, top to bottom.

Each step:
  1. pick P prompts (deterministic in (seed, step), so a resumed run sees the same ones)
  2. sample G completions per prompt                     -> Rollout, N = P*G rows
  3. score each with its own task's hierarchical reward  -> rewards [N], per-component breakdowns
  4. group-relative advantages                             -> advantages [N]
  5. log-probs of the sampling policy (only when num_iterations > 1) and of the reference (beta > 0)
  6. num_iterations optimiser updates over the batch, in micro-batches with gradient accumulation
  7. metrics line, samples, checkpoint

Under torchrun each process runs this loop on its own block of the step's groups; distributed.py holds what the
processes share (loss normalisers, gradients, the step's rows for the metrics) and docs/distributed.md explains it.

The trainer never imports a plugin: it gets a Task and a RewardSpec from the plugin manager, or for a
mixture of tasks the tasks bound by rlstruct.mixture.bind_tasks (engine/task_batches.py draws each
step's prompts from them, moves curricula and reports per-task figures).
"""

from __future__ import annotations

import dataclasses
import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np
import torch

from ..config import Config, to_dict
from ..errors import RunError
from ..mixture import records_at
from ..reward import Breakdown, RewardSpec
from ..sandbox import RewardPool, SandboxLimits
from ..task import Task
from ..tracking import open_trackers
from . import checkpoint as ckpt
from . import distributed
from .host_memory import set_host_memory
from .interrupt import StopAfterStep, TrainingInterrupted
from .logprobs import microbatch_logprobs, sampling_logprobs_are_exact
from .loss import group_advantages, policy_loss
from .metrics import MetricsWriter, peak_memory_mb, reset_peak_memory, reward_problems, summarise_breakdowns
from .model import frozen_reference, load_policy, pick_device, quiet_transformers, reference_mode
from .optim import make_adamw, optimised_parameters
from .prompt_budget import PromptTooLong, check_prompt_budget, resolve_prompt_budget
from .rollout import MicroBatch, Rollout, make_generator, micro_batches, render_prompt
from .rundir import ResumeError, check_run_dirs, find_checkpoint, run_dir_of, same_dir
from .task_batches import TrainingTasks
from .timing import PhaseClock as _PhaseClock

if TYPE_CHECKING:
    from ..mixture import MixtureTask


class TrainingStopped(RunError, RuntimeError):
    """The run stopped on purpose (too many non-finite losses in a row); the message says why."""


@dataclass
class TrainState:
    """What a checkpoint needs beyond weights and optimiser: the loop position and counters."""

    step: int = 0
    nan_streak: int = 0
    nan_steps_total: int = 0
    reward_errors_total: int = 0
    reward_timeouts_total: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Run:
    """Everything a step needs that does not change from step to step."""

    cfg: Config
    model: Any
    ref_model: Any  # frozen copy for full fine-tuning with beta > 0, else None (LoRA: adapter disabled)
    tokenizer: Any
    optimizer: torch.optim.Optimizer
    scheduler: Any
    pool: RewardPool
    records: list[dict[str, Any]]
    prompts: list[str]  # records rendered through the chat template
    writer: MetricsWriter
    device: torch.device
    tasks: TrainingTasks | None = None  # the run's task(s): each step's prompts, per-task figures, curricula
    dist: distributed.Dist = distributed.SINGLE  # under torchrun: this process's rank (distributed.py)


# Run-directory rules live in rundir.py; the old names stay importable from here.
ensure_fresh_or_resumed = check_run_dirs


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def step_seed(seed: int, step: int) -> int:
    """A per-step seed: sampling at step s never depends on how the run got to s (exact resume)."""
    return (seed * 1_000_003 + step * 7919) % 2**31


def prompt_indices(n_records: int, per_step: int, step: int, seed: int) -> list[int]:
    """The records used at ``step``: walk seeded permutations of the data, one epoch after another
    (the same stream a mixture's tasks walk, :func:`rlstruct.mixture.records_at`)."""
    return records_at(n_records, step * per_step, per_step, str(seed))


def lr_lambda(cfg) -> Callable[[int], float]:
    """Warm-up then constant / linear / cosine decay, as a multiplier of the peak learning rate."""
    total = max(1, cfg.steps * cfg.num_iterations)

    def fn(i: int) -> float:
        if cfg.warmup_steps and i < cfg.warmup_steps:
            return (i + 1) / cfg.warmup_steps
        progress = (i - cfg.warmup_steps) / max(1, total - cfg.warmup_steps)
        if cfg.lr_schedule == "linear":
            return max(0.0, 1.0 - progress)
        if cfg.lr_schedule == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
        return 1.0

    return fn


def _micro_batches(rollout: Rollout, size: int, max_tokens: int = 0, shared_prompt: bool = False) -> list[MicroBatch]:
    """The update's micro-batches: at most ``size`` rows and (when > 0) ``max_tokens`` tokens each, trimmed to
    the columns their rows use (see rollout.micro_batches)."""
    return list(micro_batches(rollout, size, max_tokens, shared_prompt))


def train(
    cfg: Config,
    task: Task | Sequence[MixtureTask],
    spec: RewardSpec | None,
    output_dir: Path,
    resume_from: Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Run GRPO as configured; returns the final metrics line. Writes everything under ``output_dir``.

    ``task`` and ``spec``: one task and its reward spec, or the tasks of a mixture
    (:func:`rlstruct.mixture.bind_tasks`, each with its own spec) and ``None``.
    ``resume_from``: a run directory or checkpoint to continue; ``output_dir`` must be that run's
    directory or hold no run (see rundir.py). A first Ctrl-C (SIGINT) stops after the current step,
    checkpoints it and raises :class:`TrainingInterrupted`; a second one raises KeyboardInterrupt at
    once. Steps with reward errors or time-outs get one warning line each on stderr.
    """
    g = cfg.grpo
    check_run_dirs(output_dir, resume_from)
    checkpoint = find_checkpoint(resume_from) if resume_from is not None else None  # before anything is written
    # Under torchrun: join the other processes; every rank checked the directories before rank 0 writes.
    dist = distributed.init(cfg.run.device, cfg.run.dist_timeout_s)
    distributed.check_divisible(g.prompts_per_step, dist)
    distributed.barrier(dist, "starting the run")
    output_dir.mkdir(parents=True, exist_ok=True)
    seed_everything(cfg.run.seed)
    if cfg.run.quiet or not progress:
        quiet_transformers()

    # Data first, then reward workers (forked while the process is small), then the model.
    # Each task's records (skipped bad rows reported): task_batches.py; one pool scores every task's rows.
    tasks = TrainingTasks.for_run(cfg, task, spec)
    tasks.load(warn=lambda line: _warn(line, None) if dist.is_main else None)
    # one pool per rank: reward.workers shared by the ranks of a node
    limits = SandboxLimits(cfg.reward.timeout_s, cfg.reward.memory_mb, distributed.workers_per_rank(cfg.reward.workers, dist))
    with RewardPool(routes=tasks.routes, limits=limits) as pool:
        device = pick_device(cfg.run.device)
        model, ref_model, tokenizer, optimizer, scheduler = _load_models(cfg, device, dist)
        state, history = TrainState(), None
        if checkpoint is not None:
            state, history = _resume_run(checkpoint, resume_from, output_dir, cfg, tasks, model, optimizer, scheduler)
        cfg = _fit_prompt_budget(cfg, model, tokenizer, tasks)  # every prompt checked before the first step
        records, prompts = tasks.first
        tracker = None
        try:
            # run.report_to: every metrics line and sample table also goes to the trackers (closed in finally)
            if dist.is_main:  # only rank 0 writes metrics, samples and trackers
                tracker = open_trackers(cfg.run.report_to, output_dir, to_dict(cfg), run_name=output_dir.name)
            writer = (MetricsWriter(output_dir, truncate_after=state.step, history_from=history, tracker=tracker)
                      if dist.is_main else distributed.NullWriter())
            run = Run(cfg, model, ref_model, tokenizer, optimizer, scheduler, pool, records, prompts, writer, device,
                      tasks, dist)
            return _run_steps(run, state, output_dir, progress and not cfg.run.quiet and dist.is_main)
        finally:
            if tracker is not None:
                tracker.close()


def _load_models(cfg: Config, device: torch.device, dist: distributed.Dist) -> tuple[Any, Any, Any, Any, Any]:
    """The policy (with its tokenizer), the frozen reference (or None), the optimiser and the LR scheduler."""
    g = cfg.grpo
    model, tokenizer = load_policy(cfg.model, device, train=True)
    set_host_memory(cfg.run.host_memory, model)  # auto: a real-size model returns freed memory, a small one reuses it
    ref_model = frozen_reference(model, cfg.model.lora, g.beta)
    model, ref_model = distributed.shard_models(dist, model, ref_model, cfg.run.fsdp)  # run.fsdp under torchrun
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_adamw(  # float32 master weights when the weights are bf16 (optim.py)
        params, lr=g.learning_rate, betas=tuple(g.adam_betas), weight_decay=g.weight_decay
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(g))
    return model, ref_model, tokenizer, optimizer, scheduler


def _resume_run(
    checkpoint: Path, resume_from: Path | None, output_dir: Path, cfg: Config, tasks: TrainingTasks,
    model: Any, optimizer: torch.optim.Optimizer, scheduler: Any,
) -> tuple[TrainState, Path | None]:
    """Restore a checkpoint; return its loop state and, when resumed into a new directory, the old run's directory
    (its metrics lines start the new one)."""
    g = cfg.grpo
    state = _resume(checkpoint, model, optimizer, scheduler, cfg.model.lora, g)
    if state.step > g.steps:
        raise ResumeError(
            f"grpo.steps = {g.steps} is below the step of {checkpoint} ({state.step}); "
            "raise grpo.steps to train on from there"
        )
    history = None
    source = run_dir_of(resume_from)
    if source is not None and not same_dir(source, output_dir):
        history = source  # resumed into a new directory: it starts with the old run's lines
    tasks.load_state_dict(state.extra.get("curriculum", {}))  # curricula continue where they were
    return state, history


def _fit_prompt_budget(cfg: Config, model: Any, tokenizer: Any, tasks: TrainingTasks) -> Config:
    """Resolve grpo.max_prompt_tokens for the model and make the tasks render (and check) prompts against it.

    Returns the config with the resolved limit (0 = auto becomes the limit derived from the model)."""
    g = cfg.grpo
    budget = resolve_prompt_budget(g.max_prompt_tokens, model, tokenizer, g.max_new_tokens,
                                   new_tokens_key="grpo.max_new_tokens", how_to_raise="--set grpo.max_prompt_tokens=N")
    if budget.limit != g.max_prompt_tokens:  # 0 = auto: the steps use the limit derived from the model
        cfg = dataclasses.replace(cfg, grpo=dataclasses.replace(g, max_prompt_tokens=budget.limit))

    def render(of: Task, batch_records: list[dict[str, Any]]) -> list[str]:
        rendered = [render_prompt(tokenizer, of.build_prompt(r)) for r in batch_records]
        try:
            check_prompt_budget(tokenizer, rendered, budget)
        except PromptTooLong as exc:
            if len(tasks.tasks) > 1:  # say which task's record
                raise PromptTooLong(f"task {of.name!r}: {exc}") from None
            raise
        return rendered

    tasks.set_renderer(render)  # every prompt checked before the first step
    return cfg


def _run_steps(run: Run, state: TrainState, output_dir: Path, show_bar: bool) -> dict[str, Any]:
    """Train from ``state.step`` to grpo.steps, checkpointing as configured; save the final model; return the
    last metrics line."""
    g = run.cfg.grpo
    last: dict[str, Any] = {}
    bar = _progress_bar(g.steps, state.step, show_bar)
    try:
        run.model.train()
        with StopAfterStep() as stop:
            while state.step < g.steps:
                last = _train_step(run, state)
                state.step += 1
                curriculum = run.tasks.state_dict()
                if curriculum:  # checkpointed with the step, so a resumed schedule continues exactly
                    state.extra["curriculum"] = curriculum
                _report_step(run, state, last, bar)
                saved = (_save_checkpoint(run, state, output_dir)
                         if state.step % run.cfg.run.save_every == 0 or state.step == g.steps else None)
                if distributed.any_true(run.dist, stop.requested):  # Ctrl-C (on any rank): this step is complete
                    raise TrainingInterrupted(state.step, g.steps, saved or _save_checkpoint(run, state, output_dir))
    finally:
        if bar is not None:
            bar.close()
    distributed.save_model_dir(run.dist, output_dir / "final", run.model, run.tokenizer)
    return last


def _report_step(run: Run, state: TrainState, last: dict[str, Any], bar: Any) -> None:
    """Progress bar or log line, reward warnings; stop the run after too many non-finite losses in a row."""
    g, dist = run.cfg.grpo, run.dist
    if bar is not None:
        bar.update(1)
        bar.set_postfix(_postfix(last))
    elif dist.is_main and (state.step % run.cfg.run.log_every == 0 or state.step == g.steps):
        print(
            f"step {state.step}/{g.steps} reward {last['reward_mean']:.3f} "
            f"structure {last['reward/structure']:.3f} loss {last['loss']:.4f} tok/s {last['tokens_per_s']:.0f}",
            flush=True,
        )
    problems = reward_problems(last)
    if problems and dist.is_main:  # visible as it happens, not only in metrics.jsonl
        _warn(f"rlstruct: warning: {problems}", bar)
    if state.nan_streak >= g.max_nan_steps:
        raise TrainingStopped(
            f"{state.nan_streak} consecutive steps had a non-finite loss (grpo.max_nan_steps = "
            f"{g.max_nan_steps}); stopped at step {state.step}. The last good checkpoint is intact."
        )


def _save_checkpoint(run: Run, state: TrainState, output_dir: Path) -> Path:
    return distributed.save_checkpoint(  # rank 0 writes (FSDP: after every rank gathered the weights)
        run.dist, output_dir / "checkpoints", state.step, run.model, run.tokenizer, run.optimizer, run.scheduler,
        state.__dict__, run.cfg.run.keep_last,
    )


def _train_step(run: Run, state: TrainState) -> dict[str, Any]:
    """One GRPO step (rollout, rewards, advantages, updates); returns its metrics line."""
    g = run.cfg.grpo
    clock = _PhaseClock(run.device)
    reset_peak_memory(run.device)
    # sampling seed of (seed, step), and of the rank under torchrun (rank 0 samples as one process would)
    torch.manual_seed(distributed.rank_seed(step_seed(run.cfg.run.seed, state.step), run.dist))

    # 1. prompts for this step: P records, each of one task (prompt_indices() for a single task); under torchrun
    # every rank computes the whole step and keeps its own block of whole groups
    step_batch = run.tasks.batch(state.step)
    batch = distributed.shard_batch(step_batch, run.dist, g.group_size)

    # 2. rollouts (grpo.generation picks the path; the fast one falls back to plain for other architectures)
    generator = make_generator(g.generation, run.model, run.tokenizer, threads=g.decode_threads)
    rollout = _rollout(run, generator, batch.prompts)  # N = P*G rows, group-contiguous; token tensors [N, T]
    t_gen = clock.mark("gen")

    # 3. rewards (bounded, never raises on model output), each row by its own task's reward
    breakdowns: list[Breakdown] = run.pool.score(batch.records, rollout.texts, batch.routes)
    rewards = torch.tensor([b.reward for b in breakdowns], dtype=torch.float32, device=run.device)  # [N]
    t_score = clock.mark("score")

    # 4-6. advantages, log-probs of the sampling and reference policies, policy updates
    update = update_policy(run, rollout, rewards, generator=generator, clock=clock)
    _count_non_finite(state, update.finite)
    t_update = clock.mark("optim")

    # 7. metrics and samples, from every rank's rows: the line counts all P x G completions and each curriculum
    # sees the whole step on every rank
    rows = distributed.gather_rows(run.dist, rollout, breakdowns, rewards, update.zero_spread)
    times = _StepTimes(clock, t_gen, t_score, t_update, generator.name, rollout.timings)
    return _write_step_metrics(run, state, step_batch, rows, update, times)


def _rollout(run: Run, generator: Any, prompts: list[str]) -> Rollout:
    """Sample grpo.group_size completions of every prompt (step 2)."""
    g, model = run.cfg.grpo, run.model
    # With several updates per batch the old policy's log-probs are needed; the fast sampler can record them
    # (float32, no dropout: equal to a forward pass to rounding), which saves that pass.
    recorded_old = (g.num_iterations > 1 and sampling_logprobs_are_exact(model)
                    and not distributed.computes_in_low_precision(model))
    with distributed.full_weights(model):  # FSDP: each rank samples from the gathered weights
        return generator.generate(
            prompts,
            group_size=g.group_size, max_new_tokens=g.max_new_tokens, max_prompt_tokens=g.max_prompt_tokens,
            temperature=g.temperature, top_p=g.top_p, return_logprobs=recorded_old,
        )


def _count_non_finite(state: TrainState, finite: bool) -> None:
    """grpo.max_nan_steps counts consecutive skipped steps; the total goes into checkpoints."""
    if finite:
        state.nan_streak = 0
    else:
        state.nan_streak += 1
        state.nan_steps_total += 1


@dataclass
class _StepTimes:
    """When a step's phases ended (perf_counter seconds) and how its rollout was made."""

    clock: _PhaseClock
    t_gen: float
    t_score: float
    t_update: float
    generation: str  # the rollout path's name (grpo.generation, after any fall-back)
    rollout_timings: dict[str, float]  # prefill_s / decode_s when the path can tell them apart


def _write_step_metrics(
    run: Run, state: TrainState, batch: Any, rows: Any, update: PolicyUpdate, times: _StepTimes
) -> dict[str, Any]:
    """Step 7: the metrics line (docs/metrics.md) and the sample rows, from the whole step's rows; returns the line.

    error_type per completion: rlstruct.error_types; errors/<type> counts. Per-task means and difficulties (a
    mixture: reward/<task>...) also show each curriculum its task's mean reward."""
    breakdowns, n_sequences = rows.breakdowns, len(rows.texts)
    error_types = run.tasks.classify(batch, rows.texts, breakdowns, rows.truncated.tolist(), run.pool)
    summary = summarise_breakdowns(breakdowns, error_types)
    per_task = run.tasks.step_metrics(state.step, batch, breakdowns)
    state.reward_errors_total += summary["reward_errors"]
    state.reward_timeouts_total += summary["reward_timeouts"]
    n_completion_tokens = int(rows.lengths.sum())
    line = {
        "step": state.step + 1,
        **_reward_figures(rows),
        **summary,
        **per_task,
        **_update_figures(run, update),
        **_completion_figures(rows),
        "nan_skipped": not update.finite,
        **_timing_figures(run.device, times, n_completion_tokens),
    }
    line = distributed.finish_line(run.dist, line, n_completion_tokens, n_sequences)  # world_size; slowest rank's times
    run.writer.write(line)
    _write_samples(run, state.step + 1, batch, rows, error_types)
    return line


def _reward_figures(rows: Any) -> dict[str, Any]:
    return {
        "reward_mean": float(rows.rewards.mean()),
        "reward_std": float(rows.rewards.std()) if rows.rewards.numel() > 1 else 0.0,
    }


def _update_figures(run: Run, update: PolicyUpdate) -> dict[str, Any]:
    return {
        "loss": update.sums["loss"] if update.finite else float("nan"),
        "kl": update.sums["kl"],
        "clip_fraction": update.sums["clip_fraction"],
        "entropy": update.sums["entropy"],
        "grad_norm": update.sums["grad_norm"],
        "lr": run.scheduler.get_last_lr()[0],
    }


def _completion_figures(rows: Any) -> dict[str, Any]:
    return {
        "completion_len_mean": float(rows.lengths.mean()),
        "completion_len_max": int(rows.lengths.max()),
        "truncated_frac": float(rows.truncated.float().mean()),
        "zero_spread_frac": float(rows.zero_spread.float().mean()),
    }


def _timing_figures(device: torch.device, times: _StepTimes, n_completion_tokens: int) -> dict[str, Any]:
    """Where the step's time went (generation split when the path can tell prefill from decode)."""
    clock, t_gen, t_score, t_update = times.clock, times.t_gen, times.t_score, times.t_update
    return {
        "gen_s": t_gen - clock.start,
        "score_s": t_score - t_gen,
        "update_s": t_update - t_score,
        "tokens_per_s": n_completion_tokens / max(1e-9, t_update - clock.start),
        "peak_mem_mb": peak_memory_mb(device),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "generation": times.generation,
        "prefill_s": times.rollout_timings.get("prefill_s"),
        "decode_s": times.rollout_timings.get("decode_s"),
        "old_logp_s": clock.spent["old_logp"],
        "ref_logp_s": clock.spent["ref_logp"],
        "fwd_bwd_s": clock.spent["fwd_bwd"],
        "optim_s": clock.spent["optim"],
    }


def _write_samples(run: Run, step: int, batch: Any, rows: Any, error_types: list[str]) -> None:
    """run.samples_per_step completions, spread evenly over the step's rows, into samples.jsonl."""
    g, per_step, n_sequences = run.cfg.grpo, run.cfg.run.samples_per_step, len(rows.texts)
    run.writer.samples(
        step,
        [
            {"task": batch.routes[i], "prompt": batch.prompts[i // g.group_size], "completion": rows.texts[i],
             **rows.breakdowns[i].to_json(),
             "error_type": error_types[i]}
            for i in range(0, n_sequences, max(1, n_sequences // max(1, per_step)))
        ][:per_step],
    )


@dataclass
class PolicyUpdate:
    """What :func:`update_policy` did, with its statistics over the whole step (every rank's rows)."""

    sums: dict[str, float]  # loss, kl, clip_fraction, entropy (first iteration; clip_fraction averaged), grad_norm
    finite: bool  # False: a loss or gradient was not finite on some rank; the weights were left as they were
    zero_spread: torch.Tensor  # [P] this rank's groups whose rewards were all equal
    n_sequences: int  # the loss normalisers, counted over every rank
    n_tokens: int


@dataclass
class _UpdateBatch:
    """The step's rows as the policy update uses them; fixed over its ``num_iterations`` passes."""

    batches: list[MicroBatch]
    loss_mask: torch.Tensor  # [N, T] completion tokens that count in the loss
    advantages: torch.Tensor  # [N]
    old_logps: list[torch.Tensor]  # per micro-batch [B, t]; empty: each batch is used once (ratio 1)
    ref_logps: list[torch.Tensor]  # per micro-batch [B, t]; empty when beta == 0
    n_sequences: int  # the loss normalisers, counted over every rank
    n_tokens: int
    logp_kw: dict[str, Any]  # how microbatch_logprobs is called (shared prompt, temperature, chunk size)
    policy: Any  # what the log-prob passes run (distributed.logprob_module)


def update_policy(run: Run, rollout: Rollout, rewards: torch.Tensor, *, generator=None, clock=None) -> PolicyUpdate:
    """Steps 4 to 6 of a GRPO step on a given rollout: group advantages, the loss normalisers, the log-probs of
    the sampling and reference policies, and ``grpo.num_iterations`` optimiser updates.

    Under torchrun each rank passes its own whole groups: the normalisers (sequences, tokens) are summed over
    the ranks, each rank's loss is its rows' share of the global loss and the gradients are summed, so the
    weights after the call equal those one process reaches on every rank's rows. ``generator`` is told after
    every optimiser step; ``clock`` gets the phases' times.
    """
    g = run.cfg.grpo
    clock = clock if clock is not None else _PhaseClock(run.device)

    # 4. advantages, one per completion (groups never straddle ranks)
    advantages, zero_spread = group_advantages(rewards, g.group_size, g.scale_rewards)  # [N], [P]
    loss_mask = rollout.completion_mask.clone()  # [N, T]
    if g.mask_truncated:
        loss_mask[rollout.truncated] = 0
    counts = distributed.all_sum(run.dist, [rollout.input_ids.shape[0], int(loss_mask.sum())],
                                 "counting the step's tokens")

    # 5. log-probs of the sampling policy and of the reference, without gradients
    policy = distributed.logprob_module(run.model)  # FSDP: through the root forward, where its hooks run
    shared = g.shared_prompt and rollout.group_size > 1
    batches = _micro_batches(rollout, g.micro_batch_size, g.micro_batch_tokens, shared)
    logp_kw = dict(shared_prompt=shared, temperature=g.temperature, chunk_size=g.logprob_chunk_size)
    old_logps, ref_logps = _fixed_logprobs(run, policy, rollout, batches, logp_kw, clock)
    update = _UpdateBatch(batches, loss_mask, advantages, old_logps, ref_logps, int(counts[0]), int(counts[1]),
                          logp_kw, policy)

    # 6. policy updates: one optimiser step per iteration, gradients accumulated over micro-batches
    sums = {"loss": 0.0, "kl": 0.0, "clip_fraction": 0.0, "entropy": 0.0, "grad_norm": 0.0}
    finite = True
    for iteration in range(g.num_iterations):
        run.optimizer.zero_grad(set_to_none=True)
        finite = _accumulate_gradients(run, update, iteration, sums)
        clock.mark("fwd_bwd")
        finite = distributed.all_true(run.dist, finite, "agreeing whether the loss was finite")  # skip on every rank
        if finite:
            finite = _clip_gradients(run, sums)
        if not finite:  # skip the update, keep the weights as they were
            run.optimizer.zero_grad(set_to_none=True)
            break
        run.optimizer.step()
        run.scheduler.step()
        if generator is not None:
            generator.weights_updated()
        clock.mark("optim")
    sums = distributed.sum_stats(run.dist, sums)
    return PolicyUpdate(sums, finite, zero_spread, update.n_sequences, update.n_tokens)


def _fixed_logprobs(
    run: Run, policy: Any, rollout: Rollout, batches: list[MicroBatch], logp_kw: dict[str, Any], clock: _PhaseClock
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Step 5: per micro-batch [B, t] log-probs of the sampling policy (only when num_iterations > 1; recorded by
    the sampler when it could) and of the reference (only when beta > 0); empty lists otherwise."""
    g, model = run.cfg.grpo, run.model
    old_logps, ref_logps = [], []
    with torch.no_grad(), distributed.full_weights(model, run.ref_model):
        if g.num_iterations > 1 and rollout.sampled_logprobs is not None:
            old_logps = [rollout.sampled_logprobs[mb.rows, : mb.n_completion] for mb in batches]
        elif g.num_iterations > 1:
            old_logps = [microbatch_logprobs(policy, mb, **logp_kw) for mb in batches]
        clock.mark("old_logp")
        if g.beta > 0:
            with reference_mode(model, run.ref_model) as ref:
                ref_policy = distributed.logprob_module(ref)
                ref_logps = [microbatch_logprobs(ref_policy, mb, **logp_kw) for mb in batches]
        clock.mark("ref_logp")
    return old_logps, ref_logps


def _accumulate_gradients(run: Run, update: _UpdateBatch, iteration: int, sums: dict[str, float]) -> bool:
    """One pass over the micro-batches: backward of each one's share of the loss, statistics added to ``sums``.
    Returns False when a loss was not finite (the pass stops there, except under FSDP)."""
    g, model = run.cfg.grpo, run.model
    collect = getattr(run.optimizer, "collect_gradients", None)  # float32 master weights (optim.py)
    finite = True
    # lockstep: each micro-batch once; under FSDP every rank runs as many passes as the busiest one
    for k, mb, counted in distributed.lockstep(run.dist, update.batches, model):
        mask = update.loss_mask[mb.rows, : mb.n_completion]
        logp, entropy = microbatch_logprobs(update.policy, mb, return_entropy=True, **update.logp_kw)  # [B, t] each
        old = update.old_logps[k] if update.old_logps else logp.detach()  # ratio 1 when each batch is used once
        ref = update.ref_logps[k] if update.ref_logps else None
        loss, stats = policy_loss(
            logp, old, ref, update.advantages[mb.rows], mask,
            epsilon_low=g.epsilon_low, epsilon_high=g.epsilon_high, beta=g.beta, loss_type=g.loss_type,
            n_sequences=update.n_sequences, n_tokens=max(1, update.n_tokens), max_completion_length=g.max_new_tokens,
        )
        if not counted:  # an FSDP pass that only keeps this rank in step with the others
            loss = loss * 0.0
        elif not torch.isfinite(loss):
            finite = False
            if not distributed.is_fsdp(model):  # FSDP: the other ranks still expect this rank's passes
                break
        loss.backward()
        if collect is not None:
            collect()
        if counted:
            _add_update_stats(sums, loss, stats, entropy, mask, update.n_tokens, iteration, g.num_iterations)
    return finite


def _add_update_stats(
    sums: dict[str, float], loss: torch.Tensor, stats: dict[str, torch.Tensor], entropy: torch.Tensor,
    mask: torch.Tensor, n_tokens: int, iteration: int, num_iterations: int,
) -> None:
    """Token-weighted step statistics: loss, kl and entropy of the first iteration, clip_fraction averaged."""
    weight = float(mask.sum()) / max(1, n_tokens)
    if iteration == 0:
        sums["loss"] += float(loss.detach())
        sums["kl"] += float(stats["kl"]) * weight
        sums["clip_fraction"] += float(stats["clip_fraction"]) * weight / num_iterations
        sums["entropy"] += float((entropy.detach() * mask).sum()) / max(1, n_tokens)
    else:
        sums["clip_fraction"] += float(stats["clip_fraction"]) * weight / num_iterations


def _clip_gradients(run: Run, sums: dict[str, float]) -> bool:
    """Sum the gradients over the ranks and clip them to grpo.max_grad_norm; False when their norm is not finite."""
    g = run.cfg.grpo
    distributed.sync_gradients(run.dist, optimised_parameters(run.optimizer))  # summed over ranks
    norm = torch.nn.utils.clip_grad_norm_(
        optimised_parameters(run.optimizer), g.max_grad_norm if g.max_grad_norm > 0 else float("inf")
    )
    sums["grad_norm"] = distributed.norm_value(norm)
    return math.isfinite(sums["grad_norm"])


def _resume(path: Path, model, optimizer, scheduler, lora: bool, g=None) -> TrainState:
    """Restore weights, optimiser, scheduler, RNG and loop state from a checkpoint.

    ``g`` (the run's GRPOConfig): the optimiser hyper-parameters come from the config, not from the
    checkpoint, so a change accepted with --allow-config-change takes effect (unchanged values give the
    very same numbers, so an exact resume stays exact).
    """
    found = ckpt.resolve_resume(path)
    try:
        distributed.load_model_weights(model, found, lora)  # also into an FSDP-sharded model
        saved, trainer = ckpt.load_trainer_state(found)
        distributed.load_optimizer_state(model, optimizer, trainer["optimizer"])  # written with or without FSDP
        scheduler.load_state_dict(trainer["scheduler"])
    except (KeyError, ValueError, RuntimeError, OSError) as exc:
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise ResumeError(
            f"{found}: does not fit the configured model and optimiser (model.name_or_path, model.lora or "
            f"lora settings changed?): {first}"
        ) from None
    ckpt.set_rng_state(trainer["rng"])
    if g is not None:
        for group in optimizer.param_groups:
            group.update(initial_lr=g.learning_rate, betas=tuple(g.adam_betas), weight_decay=g.weight_decay)
        scheduler.base_lrs = [g.learning_rate for _ in optimizer.param_groups]
        for group, fn in zip(optimizer.param_groups, scheduler.lr_lambdas):
            group["lr"] = g.learning_rate * fn(scheduler.last_epoch)
    known = {k: saved[k] for k in TrainState.__dataclass_fields__ if k in saved}
    return TrainState(**known)


def _progress_bar(total: int, initial: int, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc="grpo", unit="step", dynamic_ncols=True)


def _postfix(line: dict[str, Any]) -> dict[str, str]:
    """The progress bar's postfix: reward and speed, plus reward errors and time-outs when a step had any."""
    out = {"reward": f"{line['reward_mean']:.3f}", "tok_s": f"{line['tokens_per_s']:.0f}"}
    if line.get("reward_errors"):
        out["reward_errors"] = str(line["reward_errors"])
    if line.get("reward_timeouts"):
        out["timeouts"] = str(line["reward_timeouts"])
    return out


def _warn(message: str, bar) -> None:
    """A line on stderr that does not tear the progress bar."""
    import sys

    if bar is not None:
        bar.write(message, file=sys.stderr)
    else:
        print(message, file=sys.stderr, flush=True)


def write_resolved_config(cfg: Config, output_dir: Path) -> None:
    """Write the config as resolved (defaults filled in, overrides applied) as config.toml."""
    from ..config_toml import dumps

    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "config.toml").write_text(dumps(cfg))

