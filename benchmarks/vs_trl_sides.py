"""What runs inside each process of benchmarks/vs_trl.py: building the shared assets, one rlstruct run, one TRL
run, and the equivalence check of rlstruct's fast paths. Each entry point reads a job (JSON) and writes a result
(JSON); the parent process measures memory from outside and never imports a model itself.

    python benchmarks/vs_trl_sides.py prepare JOB.json RESULT.json
    python benchmarks/vs_trl_sides.py rlstruct JOB.json RESULT.json
    python benchmarks/vs_trl_sides.py trl JOB.json RESULT.json
    python benchmarks/vs_trl_sides.py check JOB.json RESULT.json
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

# the Qwen2.5-0.5B shape (494M parameters with tied embeddings); weights are random
QWEN_05B = dict(
    hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
    vocab_size=151936, tie_word_embeddings=True, rope_theta=1_000_000.0, rms_norm_eps=1e-6,
    max_position_embeddings=32768,
)  # fmt: skip
SEED = 0


def _threads(job: dict[str, Any]) -> None:
    import torch

    if job.get("threads"):
        torch.set_num_threads(int(job["threads"]))


# -- assets -----------------------------------------------------------------------------------------------------
def prepare(job: dict[str, Any]) -> dict[str, Any]:
    """Build the model directory and the record file the workload's runs share; return their paths."""
    from rlstruct.data import load_records
    from rlstruct.engine.grpo import prompt_indices
    from rlstruct.plugins import PluginManager
    from rlstruct.tiny import build_tiny_model, config_for_width, default_corpus

    w, work = job["workload"], Path(job["work_dir"])
    task = PluginManager().task(w["task"])
    corpus = default_corpus()
    for record in load_records(task, "synthetic", "train", 300, 0):  # what `rlstruct tiny-model --task` adds
        corpus.extend(m["content"] for m in task.build_prompt(record).messages)
        corpus.append(task.reference_completion(record) or "")
    model_dir = work / "model"
    tiny = config_for_width(128, 2, max_position_embeddings=4096)
    build_tiny_model(model_dir, corpus, tiny)
    if w["model"] == "qwen0.5b":
        _qwen_shaped(model_dir, w["dtype"], job.get("qwen_layers"))

    total = job["steps"] + 1  # + the warm-up step
    n_records = max(64, w["prompts"] * total)
    records = load_records(task, "synthetic", "train", n_records, 0)
    if w.get("many_tools"):
        records = _with_every_tool(records)
    data = work / "records.jsonl"
    with data.open("w", encoding="utf-8") as fh:
        for record in records:
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
    # the prompts of each step, in the order rlstruct's trainer visits them (TRL reads the data set in order)
    order = [i for step in range(total) for i in prompt_indices(len(records), w["prompts"], step, SEED)]
    return {"model_dir": str(model_dir), "records": str(data), "n_records": len(records), "order": order}


def _qwen_shaped(model_dir: Path, dtype: str, layers: int | None) -> None:
    """Replace the tiny weights by a Qwen2.5-0.5B-shaped model (random), keeping the small tokenizer: its ids all
    fall inside the 151,936-row vocabulary; ids past the tokenizer's decode to nothing, on both sides alike."""
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    tiny = json.loads((model_dir / "config.json").read_text())
    shape = dict(QWEN_05B, num_hidden_layers=layers or QWEN_05B["num_hidden_layers"])
    config = Qwen2Config(**shape, max_window_layers=shape["num_hidden_layers"], bos_token_id=tiny["bos_token_id"],
                         eos_token_id=tiny["eos_token_id"], pad_token_id=tiny["pad_token_id"])
    torch.manual_seed(SEED)
    model = Qwen2ForCausalLM(config).to(getattr(torch, dtype))
    model.generation_config = GenerationConfig(
        bos_token_id=tiny["bos_token_id"], eos_token_id=tiny["eos_token_id"], pad_token_id=tiny["pad_token_id"]
    )
    for stale in model_dir.glob("*.safetensors"):
        stale.unlink()
    model.save_pretrained(model_dir)


def _with_every_tool(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Offer every tool seen in the data in every record (long prompts, same answers): function calling with a
    large tool list, where one prefill per group pays most."""
    library: dict[str, dict[str, Any]] = {}
    for record in records:
        for tool in record["tools"]:
            library.setdefault(tool["name"], tool)
    out = []
    for index, record in enumerate(records):
        names = {t["name"] for t in record["tools"]}
        extra = [library[name] for name in sorted(library) if name not in names]
        tools = list(record["tools"]) + extra
        shift = index % len(tools)  # the answer's tool is not always first
        out.append({**record, "tools": tools[shift:] + tools[:shift]})
    return out


def _records(job: dict[str, Any]):
    from rlstruct.data import load_records
    from rlstruct.plugins import PluginManager

    task = PluginManager().task(job["workload"]["task"])
    assets = job["assets"]
    return task, load_records(task, assets["records"], "train", None, 0)


# -- rlstruct ---------------------------------------------------------------------------------------------------
def rlstruct_config(job: dict[str, Any], out: Path) -> str:
    """The TOML config of an rlstruct run of the workload (job["options"]: rlstruct engine options)."""
    w, assets = job["workload"], job["assets"]
    n = w["prompts"] * w["group"]
    total = job["steps"] + 1
    grpo = {
        "steps": total, "prompts_per_step": w["prompts"], "group_size": w["group"], "temperature": 1.0,
        "top_p": 1.0, "max_new_tokens": w["max_new_tokens"], "max_prompt_tokens": 8192,
        "num_iterations": w["iterations"], "beta": w["beta"], "loss_type": "dapo", "epsilon_low": 0.2,
        "epsilon_high": 0.2, "micro_batch_size": min(w["micro_batch"], n), "learning_rate": w["learning_rate"],
        "adam_betas": [0.9, 0.99], "weight_decay": 0.0, "max_grad_norm": 1.0,
    }  # fmt: skip
    model = {
        "name_or_path": assets["model_dir"], "dtype": w["dtype"], "lora": w["lora"], "lora_r": 8, "lora_alpha": 16,
        "lora_dropout": 0.0, "lora_targets": ["q_proj", "k_proj", "v_proj", "o_proj"],
    }  # fmt: skip
    for key, value in job.get("options", {}).items():
        section, name = key.split(".", 1)
        (grpo if section == "grpo" else model)[name] = value
    run = {
        "output_dir": str(out), "seed": SEED, "device": w["device"], "save_every": 10**6, "keep_last": 1,
        "quiet": True, "log_every": 10**6, "eval_at_end": False, "samples_per_step": 0,
    }  # fmt: skip
    sections = {
        "task": {"name": w["task"], "source": assets["records"], "train_limit": assets["n_records"]},
        "reward": {"workers": 2, "timeout_s": 2.0},
        "model": model, "grpo": grpo, "run": run,
    }  # fmt: skip
    lines = []
    for section, table in sections.items():
        lines.append(f"[{section}]")
        lines.extend(f"{key} = {json.dumps(value)}" for key, value in table.items())
        lines.append("")
    return "\n".join(lines)


def run_rlstruct(job: dict[str, Any]) -> dict[str, Any]:
    """One `rlstruct train` run (in this process), per-step figures read back from its metrics.jsonl."""
    from rlstruct.cli import main as cli

    _threads(job)
    out = Path(job["run_dir"])
    config = out.parent / f"{out.name}.toml"
    config.write_text(rlstruct_config(job, out))
    code = cli(["train", str(config), "--output-dir", str(out)])
    if code:
        raise SystemExit(f"rlstruct train exited with {code}")
    n = job["workload"]["prompts"] * job["workload"]["group"]
    steps = []
    for line in (out / "metrics.jsonl").read_text().splitlines():
        m = json.loads(line)
        phases = {k: m.get(k) for k in ("prefill_s", "decode_s", "score_s", "old_logp_s", "ref_logp_s",
                                         "fwd_bwd_s", "optim_s")}
        seconds = m["gen_s"] + m["score_s"] + m["update_s"]
        peak_cuda = m["peak_mem_mb"] if m["device"] != "cpu" else None
        steps.append({"s": seconds, "tokens": m["completion_len_mean"] * n, "phases": phases,
                      "generation": m.get("generation"), "peak_cuda_mb": peak_cuda})
    return {"steps": steps, "peak_cuda_mb": _max([s["peak_cuda_mb"] for s in steps])}


# -- TRL --------------------------------------------------------------------------------------------------------
def run_trl(job: dict[str, Any]) -> dict[str, Any]:
    """One TRL GRPOTrainer run (default generation backend: transformers generate) on the same prompts."""
    import datasets
    import torch
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    clock_type = type("TRLClock", (_TRLClock, TrainerCallback), {})

    from rlstruct.engine.model import load_tokenizer
    from rlstruct.engine.rollout import render_prompt
    from rlstruct.integrations.trl import encode_record, reward_functions

    _threads(job)
    w, assets = job["workload"], job["assets"]
    task, records = _records(job)
    rewards = reward_functions(w["task"], workers=2, timeout_s=2.0)  # forks its scorers before the model loads
    try:
        tokenizer = load_tokenizer(assets["model_dir"])  # left padding, pad token: as rlstruct's trainer
        rows = [records[i] for i in assets["order"]]
        # the exact text rlstruct's trainer feeds the model (tools in the template's tools slot)
        dataset = datasets.Dataset.from_dict({
            "prompt": [render_prompt(tokenizer, task.build_prompt(r)) for r in rows],
            "record": [encode_record(r) for r in rows],
        })
        n = w["prompts"] * w["group"]
        micro = min(w["micro_batch"], n)
        total = job["steps"] + 1
        args = GRPOConfig(
            output_dir=job["run_dir"], max_steps=total * w["iterations"], per_device_train_batch_size=micro,
            gradient_accumulation_steps=n // micro, num_generations=w["group"],
            max_completion_length=w["max_new_tokens"], temperature=1.0, top_p=1.0, top_k=0,
            num_iterations=w["iterations"], beta=w["beta"], epsilon=0.2, epsilon_high=0.2, loss_type="dapo",
            scale_rewards="group", learning_rate=w["learning_rate"], lr_scheduler_type="constant", warmup_steps=0,
            weight_decay=0.0, adam_beta1=0.9, adam_beta2=0.99, max_grad_norm=1.0,
            gradient_checkpointing=job["gradient_checkpointing"], bf16=w["dtype"] == "bfloat16",
            use_cpu=w["device"] == "cpu", model_init_kwargs={"dtype": w["dtype"]}, shuffle_dataset=False,
            reward_weights=rewards.weights, logging_steps=1, save_strategy="no", report_to=[], seed=SEED,
            disable_tqdm=True, log_completions=False, disable_dropout=True,
        )
        peft_config = None
        if w["lora"]:
            from peft import LoraConfig

            peft_config = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, task_type="CAUSAL_LM",
                                     target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])
        clock = clock_type(w["iterations"])
        trainer = GRPOTrainer(model=assets["model_dir"], reward_funcs=list(rewards), args=args, train_dataset=dataset,
                              processing_class=tokenizer, peft_config=peft_config, callbacks=[clock])
        if w["device"] == "cuda":
            torch.cuda.reset_peak_memory_stats()
        trainer.train()
        peak = torch.cuda.max_memory_allocated() / 2**20 if w["device"] == "cuda" else None
    finally:
        rewards.close()
    return {"steps": clock.steps(n), "peak_cuda_mb": peak}


class _TRLClock:
    """A TRL callback: wall time of each generation cycle (``num_iterations`` optimiser steps) and its completion
    tokens (TRL logs the mean completion length once per generation)."""

    def __init__(self, iterations: int) -> None:
        self.iterations = iterations
        self.start = 0.0
        self.ends: list[float] = []
        self.lengths: dict[int, float] = {}

    def on_train_begin(self, args, state, control, **kwargs):
        self.start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.ends.append(time.perf_counter())

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "completions/mean_length" in logs:
            self.lengths.setdefault(state.global_step, float(logs["completions/mean_length"]))

    def steps(self, rows: int) -> list[dict[str, Any]]:
        out, previous = [], self.start
        for cycle in range(len(self.ends) // self.iterations):
            end = self.ends[(cycle + 1) * self.iterations - 1]
            length = self.lengths.get(cycle * self.iterations + 1)
            out.append({"s": end - previous, "tokens": None if length is None else length * rows})
            previous = end
        return out


# -- the equivalence check --------------------------------------------------------------------------------------
def check(job: dict[str, Any]) -> dict[str, Any]:
    """rlstruct's fast paths against its plain ones, on the workload's model and prompts (float32):
    greedy completions identical; sampled tokens' log-probs as the fast sampler saw them equal to a full
    forward pass; the shared-prompt update's loss and gradients equal to the per-row update's."""
    import torch
    from transformers import AutoModelForCausalLM

    from rlstruct.engine.fast_rollout import fast_generate
    from rlstruct.engine.lean_decoder import LeanDecoder
    from rlstruct.engine.logprobs import completion_logprobs, microbatch_logprobs
    from rlstruct.engine.loss import group_advantages, policy_loss
    from rlstruct.engine.model import load_tokenizer
    from rlstruct.engine.rollout import generate, micro_batches, render_prompt

    _threads(job)
    w, assets = job["workload"], job["assets"]
    device = torch.device(w["device"])
    task, records = _records(job)
    tok = load_tokenizer(assets["model_dir"])
    model = AutoModelForCausalLM.from_pretrained(assets["model_dir"], dtype=torch.float32).to(device).eval()
    if w["lora"]:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "k_proj", "v_proj",
                                                                                    "o_proj"], init_lora_weights=False))
    decoder = LeanDecoder.of(model)
    prompts = [render_prompt(tok, task.build_prompt(r)) for r in records[:2]]
    kw = dict(group_size=2, max_new_tokens=min(16, w["max_new_tokens"]), max_prompt_tokens=8192)
    plain = generate(model, tok, prompts, do_sample=False, **kw)
    fast = fast_generate(model, decoder, tok, prompts, do_sample=False, **kw)
    greedy_equal = bool(torch.equal(plain.input_ids, fast.input_ids))
    torch.manual_seed(SEED)
    sampled = fast_generate(model, decoder, tok, prompts, return_logprobs=True, **kw)
    with torch.no_grad():
        full = completion_logprobs(model, sampled.input_ids, sampled.attention_mask, sampled.n_completion)
    mask = sampled.completion_mask.bool()
    logp_diff = float((sampled.sampled_logprobs - full)[mask].abs().max())

    model.train()
    rewards = torch.linspace(0, 1, sampled.input_ids.shape[0], device=device)
    adv, _ = group_advantages(rewards, sampled.group_size)
    n_tokens = int(sampled.completion_mask.sum())
    batches = list(micro_batches(sampled, 64, 0, True))
    with torch.no_grad():  # a fixed reference a little away from the policy, so the loss has a KL part
        refs = [microbatch_logprobs(model, mb, shared_prompt=False) * 1.05 for mb in batches]
    results = {}
    for shared in (False, True):
        model.zero_grad()
        total = 0.0
        for mb, ref in zip(batches, refs):
            logp = microbatch_logprobs(model, mb, shared_prompt=shared)
            loss, _ = policy_loss(logp, logp.detach(), ref, adv[mb.rows], mb.completion_mask, epsilon_low=0.2,
                                  epsilon_high=0.2, beta=0.04, loss_type="grpo", n_sequences=len(rewards),
                                  n_tokens=n_tokens, max_completion_length=kw["max_new_tokens"])
            loss.backward()
            total += float(loss.detach())
        grads = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
        results[shared] = (total, grads)
    (loss_p, g_p), (loss_s, g_s) = results[False], results[True]
    grad_rel = float((g_s - g_p).norm() / g_p.norm().clamp(min=1e-30))
    loss_equal = abs(loss_s - loss_p) <= 1e-4 * max(1.0, abs(loss_p))
    passed = greedy_equal and logp_diff < 1e-3 and loss_equal and grad_rel < 1e-3
    return {"passed": passed, "greedy_identical": greedy_equal, "sampled_logprob_max_diff": logp_diff,
            "update_loss_plain": loss_p, "update_loss_shared": loss_s, "update_grad_rel_diff": grad_rel}


def _max(values):
    values = [v for v in values if v is not None]
    return max(values) if values else None


ENTRY_POINTS = {"prepare": prepare, "rlstruct": run_rlstruct, "trl": run_trl, "check": check}


def main(argv: list[str]) -> int:
    kind, job_path, result_path = argv
    job = json.loads(Path(job_path).read_text())
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    result = ENTRY_POINTS[kind](job)
    Path(result_path).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
