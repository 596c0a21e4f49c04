"""The GRPO training loop, top to bottom.

Each step:
  1. pick P prompts (deterministic in (seed, step), so a resumed run sees the same ones)
  2. sample G completions per prompt                     -> Rollout, N = P*G rows
  3. score them with the task's hierarchical reward       -> rewards [N], per-component breakdowns
  4. group-relative advantages                             -> advantages [N]
  5. log-probs of the sampling policy (only when num_iterations > 1) and of the reference (beta > 0)
  6. num_iterations optimiser updates over the batch, in micro-batches with gradient accumulation
  7. metrics line, samples, checkpoint

The trainer never imports a plugin: it gets a Task and a RewardSpec from the plugin manager.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..config import Config
from ..data import DataError, load_records
from ..reward import Breakdown, RewardSpec
from ..sandbox import RewardPool, SandboxLimits
from ..task import Task
from . import checkpoint as ckpt
from .logprobs import completion_logprobs
from .loss import group_advantages, policy_loss
from .metrics import MetricsWriter, peak_memory_mb, reset_peak_memory, summarise_breakdowns
from .model import frozen_reference, load_policy, pick_device, quiet_transformers, reference_mode
from .rollout import Rollout, check_prompt_lengths, generate, render_prompt


class RunDirectoryInUse(FileExistsError):
    """A fresh run was pointed at a run directory that already has checkpoints."""


class TrainingStopped(RuntimeError):
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


def ensure_fresh_or_resumed(output_dir: Path, resume_from: Path | None) -> None:
    """Refuse to start a fresh run over an earlier run's checkpoints (they would be mixed up)."""
    if resume_from is None and ckpt.list_checkpoints(output_dir / "checkpoints"):
        raise RunDirectoryInUse(
            f"{output_dir} already holds checkpoints of an earlier run; continue it with "
            f"--resume {output_dir}, or choose another --output-dir (nothing was overwritten)"
        )


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def step_seed(seed: int, step: int) -> int:
    """A per-step seed: sampling at step s never depends on how the run got to s (exact resume)."""
    return (seed * 1_000_003 + step * 7919) % 2**31


def prompt_indices(n_records: int, per_step: int, step: int, seed: int) -> list[int]:
    """The records used at ``step``: walk seeded permutations of the data, one epoch after another."""
    out: list[int] = []
    position = step * per_step
    while len(out) < per_step:
        epoch, offset = divmod(position, n_records)
        order = list(range(n_records))
        random.Random(f"{seed}:epoch:{epoch}").shuffle(order)
        take = order[offset : offset + per_step - len(out)]
        out.extend(take)
        position += len(take)
    return out


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


def _micro_batches(rollout: Rollout, size: int):
    """Yield (rows, input_ids, attention_mask, completion_mask) trimmed to the micro-batch's extent."""
    n = rollout.input_ids.shape[0]
    lp = rollout.prompt_length
    for start in range(0, n, size):
        rows = slice(start, min(n, start + size))
        ids, att, cmask = rollout.input_ids[rows], rollout.attention_mask[rows], rollout.completion_mask[rows]
        # Trim columns no row of this micro-batch uses: leading prompt padding, trailing completion padding.
        first_real = int(att[:, :lp].any(dim=0).int().argmax()) if lp else 0
        t = int(cmask.sum(dim=1).max().clamp(min=1))
        yield rows, ids[:, first_real : lp + t], att[:, first_real : lp + t], cmask[:, :t]


def train(
    cfg: Config,
    task: Task,
    spec: RewardSpec,
    output_dir: Path,
    resume_from: Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Run GRPO as configured; returns the final metrics line. Writes everything under ``output_dir``."""
    g = cfg.grpo
    ensure_fresh_or_resumed(output_dir, resume_from)
    output_dir.mkdir(parents=True, exist_ok=True)
    seed_everything(cfg.run.seed)
    if cfg.run.quiet or not progress:
        quiet_transformers()

    # Data first, then reward workers (forked while the process is small), then the model.
    records = load_records(task, cfg.task.source, cfg.task.train_split, cfg.task.train_limit, cfg.task.data_seed)
    if not records:
        raise DataError(f"task {task.name!r}: no training records from source {cfg.task.source!r}")
    limits = SandboxLimits(cfg.reward.timeout_s, cfg.reward.memory_mb, cfg.reward.workers)
    pool = RewardPool(task, spec, limits).__enter__()
    try:
        device = pick_device(cfg.run.device)
        model, tokenizer = load_policy(cfg.model, device, train=True)
        ref_model = frozen_reference(model, cfg.model.lora, g.beta)
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(
            params, lr=g.learning_rate, betas=tuple(g.adam_betas), weight_decay=g.weight_decay
        )
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(g))
        state = TrainState()
        if resume_from is not None:
            state = _resume(resume_from, model, optimizer, scheduler, cfg.model.lora)
        prompts = [render_prompt(tokenizer, task.build_prompt(r)) for r in records]
        check_prompt_lengths(tokenizer, prompts, g.max_prompt_tokens)
        writer = MetricsWriter(output_dir, truncate_after=state.step)
        run = Run(cfg, model, ref_model, tokenizer, optimizer, scheduler, pool, records, prompts, writer, device)
        last: dict[str, Any] = {}
        bar = _progress_bar(g.steps, state.step, progress and not cfg.run.quiet)
        model.train()
        while state.step < g.steps:
            last = _train_step(run, state)
            state.step += 1
            if bar is not None:
                bar.update(1)
                bar.set_postfix(reward=f"{last['reward_mean']:.3f}", tok_s=f"{last['tokens_per_s']:.0f}")
            elif state.step % cfg.run.log_every == 0 or state.step == g.steps:
                print(
                    f"step {state.step}/{g.steps} reward {last['reward_mean']:.3f} "
                    f"structure {last['reward/structure']:.3f} loss {last['loss']:.4f} tok/s {last['tokens_per_s']:.0f}",
                    flush=True,
                )
            if state.nan_streak >= g.max_nan_steps:
                raise TrainingStopped(
                    f"{state.nan_streak} consecutive steps had a non-finite loss (grpo.max_nan_steps = "
                    f"{g.max_nan_steps}); stopped at step {state.step}. The last good checkpoint is intact."
                )
            if state.step % cfg.run.save_every == 0 or state.step == g.steps:
                ckpt.save_checkpoint(
                    output_dir / "checkpoints", state.step, model, tokenizer, optimizer, scheduler,
                    state.__dict__, cfg.run.keep_last,
                )
        if bar is not None:
            bar.close()
        final = output_dir / "final"
        model.save_pretrained(final)
        tokenizer.save_pretrained(final)
        return last
    finally:
        pool.close()


def _train_step(run: Run, state: TrainState) -> dict[str, Any]:
    """One GRPO step (rollout, rewards, advantages, updates); returns its metrics line."""
    cfg, model, tokenizer, device = run.cfg, run.model, run.tokenizer, run.device
    records, prompts = run.records, run.prompts
    g = cfg.grpo
    t0 = time.perf_counter()
    reset_peak_memory(device)
    torch.manual_seed(step_seed(cfg.run.seed, state.step))

    # 1. prompts for this step
    idx = prompt_indices(len(records), g.prompts_per_step, state.step, cfg.run.seed)
    batch_records = [records[i] for i in idx for _ in range(g.group_size)]  # [N], group-contiguous

    # 2. rollouts
    rollout = generate(
        model, tokenizer, [prompts[i] for i in idx],
        group_size=g.group_size, max_new_tokens=g.max_new_tokens, max_prompt_tokens=g.max_prompt_tokens,
        temperature=g.temperature, top_p=g.top_p,
    )
    t_gen = time.perf_counter()

    # 3. rewards (bounded, never raises on model output)
    breakdowns: list[Breakdown] = run.pool.score(batch_records, rollout.texts)
    rewards = torch.tensor([b.reward for b in breakdowns], dtype=torch.float32, device=device)  # [N]
    t_score = time.perf_counter()

    # 4. advantages, one per completion
    advantages, zero_spread = group_advantages(rewards, g.group_size, g.scale_rewards)  # [N], [P]
    loss_mask = rollout.completion_mask.clone()  # [N, T]
    if g.mask_truncated:
        loss_mask[rollout.truncated] = 0
    n_sequences = rollout.input_ids.shape[0]
    n_tokens = int(loss_mask.sum())

    # 5. log-probs of the sampling policy and of the reference, without gradients
    chunk, temp = g.logprob_chunk_size, g.temperature
    old_logps, ref_logps = [], []
    if g.num_iterations > 1 or g.beta > 0:
        with torch.no_grad():
            for rows, ids, att, cmask in _micro_batches(rollout, g.micro_batch_size):
                t = cmask.shape[1]
                if g.num_iterations > 1:
                    old_logps.append(completion_logprobs(model, ids, att, t, temperature=temp, chunk_size=chunk))
                if g.beta > 0:
                    with reference_mode(model, run.ref_model) as ref:
                        ref_logps.append(completion_logprobs(ref, ids, att, t, temperature=temp, chunk_size=chunk))

    # 6. policy updates: one optimiser step per iteration, gradients accumulated over micro-batches
    sums = {"loss": 0.0, "kl": 0.0, "clip_fraction": 0.0, "entropy": 0.0, "grad_norm": 0.0}
    finite = True
    for iteration in range(g.num_iterations):
        run.optimizer.zero_grad(set_to_none=True)
        for k, (rows, ids, att, cmask) in enumerate(_micro_batches(rollout, g.micro_batch_size)):
            t = cmask.shape[1]
            mask = loss_mask[rows, :t]
            logp, entropy = completion_logprobs(
                model, ids, att, t, temperature=temp, chunk_size=chunk, return_entropy=True
            )  # [B, t] each
            old = old_logps[k] if old_logps else logp.detach()  # ratio 1 when each batch is used once
            ref = ref_logps[k] if ref_logps else None
            loss, stats = policy_loss(
                logp, old, ref, advantages[rows], mask,
                epsilon_low=g.epsilon_low, epsilon_high=g.epsilon_high, beta=g.beta, loss_type=g.loss_type,
                n_sequences=n_sequences, n_tokens=max(1, n_tokens), max_completion_length=g.max_new_tokens,
            )
            if not torch.isfinite(loss):
                finite = False
                break
            loss.backward()
            weight = float(mask.sum()) / max(1, n_tokens)
            if iteration == 0:
                sums["loss"] += float(loss.detach())
                sums["kl"] += float(stats["kl"]) * weight
                sums["clip_fraction"] += float(stats["clip_fraction"]) * weight / g.num_iterations
                sums["entropy"] += float((entropy.detach() * mask).sum()) / max(1, n_tokens)
            else:
                sums["clip_fraction"] += float(stats["clip_fraction"]) * weight / g.num_iterations
        if finite:
            norm = torch.nn.utils.clip_grad_norm_(
                [p for p in model.parameters() if p.requires_grad], g.max_grad_norm if g.max_grad_norm > 0 else float("inf")
            )
            finite = bool(torch.isfinite(norm))
            sums["grad_norm"] = float(norm)
        if not finite:  # skip the update, keep the weights as they were
            run.optimizer.zero_grad(set_to_none=True)
            break
        run.optimizer.step()
        run.scheduler.step()
    if finite:
        state.nan_streak = 0
    else:
        state.nan_streak += 1
        state.nan_steps_total += 1
    t_update = time.perf_counter()

    # 7. metrics and samples
    summary = summarise_breakdowns(breakdowns)
    state.reward_errors_total += summary["reward_errors"]
    state.reward_timeouts_total += summary["reward_timeouts"]
    lengths = rollout.completion_mask.sum(dim=1).float()
    n_completion_tokens = int(lengths.sum())
    line = {
        "step": state.step + 1,
        "reward_mean": float(rewards.mean()),
        "reward_std": float(rewards.std()) if rewards.numel() > 1 else 0.0,
        **summary,
        "loss": sums["loss"] if finite else float("nan"),
        "kl": sums["kl"],
        "clip_fraction": sums["clip_fraction"],
        "entropy": sums["entropy"],
        "grad_norm": sums["grad_norm"],
        "lr": run.scheduler.get_last_lr()[0],
        "completion_len_mean": float(lengths.mean()),
        "completion_len_max": int(lengths.max()),
        "truncated_frac": float(rollout.truncated.float().mean()),
        "zero_spread_frac": float(zero_spread.float().mean()),
        "nan_skipped": not finite,
        "gen_s": t_gen - t0,
        "score_s": t_score - t_gen,
        "update_s": t_update - t_score,
        "tokens_per_s": n_completion_tokens / max(1e-9, t_update - t0),
        "peak_mem_mb": peak_memory_mb(device),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
    }
    run.writer.write(line)
    run.writer.samples(
        state.step + 1,
        [
            {"prompt": prompts[idx[i // g.group_size]], "completion": rollout.texts[i], **breakdowns[i].to_json()}
            for i in range(0, n_sequences, max(1, n_sequences // max(1, cfg.run.samples_per_step)))
        ][: cfg.run.samples_per_step],
    )
    return line


def _resume(path: Path, model, optimizer, scheduler, lora: bool) -> TrainState:
    """Restore weights, optimiser, scheduler, RNG and loop state from a checkpoint."""
    found = ckpt.resolve_resume(path)
    ckpt.load_model_weights(model, found, lora)
    saved, trainer = ckpt.load_trainer_state(found)
    optimizer.load_state_dict(trainer["optimizer"])
    scheduler.load_state_dict(trainer["scheduler"])
    ckpt.set_rng_state(trainer["rng"])
    known = {k: saved[k] for k in TrainState.__dataclass_fields__ if k in saved}
    return TrainState(**known)


def _progress_bar(total: int, initial: int, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc="grpo", unit="step", dynamic_ncols=True)


def write_resolved_config(cfg: Config, output_dir: Path) -> None:
    """Write the config as resolved (defaults filled in, overrides applied) as config.toml."""
    from .tomlwrite import dumps

    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "config.toml").write_text(dumps(cfg))

