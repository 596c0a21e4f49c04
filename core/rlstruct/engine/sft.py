"""Supervised fine-tuning on the task's reference completions (the paper's SFT baseline, and the
warm start that gives a tiny model something to improve on with GRPO)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Sequence

import torch

from ..config import Config
from ..data import load_records
from ..task import Task
from . import distributed
from .grpo import seed_everything
from .host_memory import set_host_memory
from .model import load_policy, pick_device, quiet_transformers
from .rollout import render_prompt


def build_examples(task: Task, tokenizer, records) -> list[tuple[list[int], int]]:
    """(token ids of prompt + reference + EOS, number of prompt tokens) for every record with a reference."""
    examples = []
    for record in records:
        target = task.reference_completion(record)
        if target is None:
            continue
        prompt = render_prompt(tokenizer, task.build_prompt(record))
        p_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        c_ids = tokenizer(target, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        examples.append((p_ids + c_ids, len(p_ids)))
    if not examples:
        raise ValueError(f"task {task.name!r} gives no reference completions: nothing to fine-tune on")
    return examples


def _collate(batch, pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    width = max(len(ids) for ids, _ in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    att = torch.zeros((len(batch), width), dtype=torch.long)
    labels = torch.full((len(batch), width), -100, dtype=torch.long)  # -100: ignored by the loss
    for row, (seq, n_prompt) in enumerate(batch):  # right padding: simple and exact for training
        ids[row, : len(seq)] = torch.tensor(seq)
        att[row, : len(seq)] = 1
        labels[row, n_prompt : len(seq)] = torch.tensor(seq[n_prompt:])
    return ids.to(device), att.to(device), labels.to(device)


def sft(cfg: Config, task: Task | Sequence[Any], output_dir: Path, progress: bool = True) -> dict[str, Any]:
    """Fine-tune on reference completions; save the (merged) model to ``output_dir``.

    ``task``: one task (records from ``[task]``), or the bound tasks of a mixture
    (:func:`rlstruct.mixture.bind_tasks`): each batch example then comes from a task drawn by weight.
    Under torchrun each process trains on its block of every batch (``sft.batch_size`` divisible by the
    number of processes), gradients are summed so a step equals the single-process step, and rank 0 saves.
    """
    dist = distributed.init(cfg.run.device, cfg.run.dist_timeout_s)
    if cfg.sft.batch_size % dist.world_size:
        from ..config import ConfigError

        raise ConfigError(f"sft.batch_size = {cfg.sft.batch_size} does not split between {dist.world_size} processes; "
                          f"make it a multiple of {dist.world_size}")
    seed_everything(cfg.run.seed)
    if cfg.run.quiet or not progress:
        quiet_transformers()
    if isinstance(task, Task):
        records = load_records(task, cfg.task.source, cfg.task.train_split, cfg.task.train_limit, cfg.task.data_seed,
                               difficulty=cfg.task.difficulty)
    else:  # a mixture: each task's records, with its own settings and difficulty
        mixture = [(t, load_records(t.task, t.settings.source, t.settings.train_split, t.settings.train_limit,
                                    t.settings.data_seed, difficulty=t.settings.difficulty)) for t in task]
    device = pick_device(cfg.run.device)
    model, tokenizer = load_policy(cfg.model, device, train=True)
    set_host_memory(cfg.run.host_memory, model)
    if isinstance(task, Task):
        examples = build_examples(task, tokenizer, records)
        draw = lambda rng: examples[rng.randrange(len(examples))]  # noqa: E731 - the single-task draw, unchanged
    else:
        per_task = [build_examples(t.task, tokenizer, recs) for t, recs in mixture]
        weights = [t.weight for t, _ in mixture]
        examples = [e for group in per_task for e in group]

        def draw(rng: random.Random) -> tuple[list[int], int]:
            group = per_task[rng.choices(range(len(per_task)), weights)[0]]
            return group[rng.randrange(len(group))]

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.sft.learning_rate)
    warm = max(1, cfg.sft.warmup_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: min(1.0, (i + 1) / warm))
    rng = random.Random(cfg.run.seed)
    model.train()
    losses = []
    bar = None
    if progress and not cfg.run.quiet and dist.is_main:
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.sft.steps, desc="sft", unit="step", dynamic_ncols=True)
    for _ in range(cfg.sft.steps):
        batch = [draw(rng) for _ in range(cfg.sft.batch_size)]  # the same draws on every rank
        share = distributed.group_slice(len(batch), dist)  # this rank's block (all of it in one process)
        ids, att, labels = _collate(batch[share], tokenizer.pad_token_id, device)
        loss = model(input_ids=ids, attention_mask=att, labels=labels).loss  # mean over this rank's tokens
        if dist.enabled:  # this rank's share of the whole batch's mean; the gradients are summed below
            counted = int((labels[:, 1:] != -100).sum())
            loss = loss * (counted / max(1.0, distributed.all_sum(dist, [counted], "counting the batch's tokens")[0]))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        distributed.sync_gradients(dist, params)
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        scheduler.step()
        losses.append(distributed.all_sum(dist, [float(loss.detach())], "summing the loss")[0])
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
    if bar is not None:
        bar.close()
    if dist.is_main:
        output_dir.mkdir(parents=True, exist_ok=True)
        # A LoRA adapter is merged so the result is a plain model directory (a GRPO starting point).
        (model.merge_and_unload() if cfg.model.lora else model).save_pretrained(output_dir)
        tokenizer.save_pretrained(output_dir)
    distributed.barrier(dist, f"saving {output_dir}")
    return {"steps": cfg.sft.steps, "loss_first": losses[0], "loss_last": losses[-1], "examples": len(examples)}
