"""Training under torch.distributed (gloo on CPU): the update on several processes equals the single-process
update, `torchrun -m rlstruct train` end to end (one node, two "nodes", resume with another process count),
and a killed rank fails the run loudly."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from rlstruct.config import ConfigError
from rlstruct.engine import distributed
from rlstruct.engine.checkpoint import list_checkpoints
from rlstruct.engine.distributed import Dist
from rlstruct.engine.task_batches import StepBatch

from .conftest import small_config

ROOT = Path(__file__).parents[2]
LOSS_TYPES = ("grpo", "bnpo", "dapo", "dr_grpo")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env() -> dict[str, str]:
    # one thread per process: the ranks share the machine's cores
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


# -- splitting a step --------------------------------------------------------------------------------------
def test_prompts_per_step_that_does_not_split_is_a_one_line_error_naming_the_key():
    distributed.check_divisible(6, Dist(world_size=3))
    with pytest.raises(ConfigError) as err:
        distributed.check_divisible(6, Dist(world_size=4))
    message = str(err.value)
    assert "grpo.prompts_per_step = 6" in message and "multiple of 4" in message and "\n" not in message


def test_each_rank_takes_a_block_of_whole_groups_and_together_they_cover_the_step():
    g = 3
    batch = StepBatch(tasks=["t"] * 4, prompts=[f"p{i}" for i in range(4)],
                      records=[{"i": i} for i in range(4) for _ in range(g)], routes=["t"] * 12)
    shards = [distributed.shard_batch(batch, Dist(rank=r, world_size=2), g) for r in range(2)]
    assert [s.prompts for s in shards] == [["p0", "p1"], ["p2", "p3"]]
    for shard in shards:  # every row of a group stays with its prompt
        assert [r["i"] for r in shard.records] == [int(p[1:]) for p in shard.prompts for _ in range(g)]
    assert sum((s.records for s in shards), []) == batch.records
    assert distributed.shard_batch(batch, distributed.SINGLE, g) is batch


def test_reward_workers_are_shared_by_the_ranks_of_a_node():
    assert distributed.workers_per_rank(8, Dist(world_size=4, local_world_size=4)) == 2
    assert distributed.workers_per_rank(2, Dist(world_size=8, local_world_size=4)) == 1  # at least one
    assert distributed.workers_per_rank(0, Dist(world_size=2, local_world_size=2)) == 0  # inline stays inline
    assert distributed.workers_per_rank(3, distributed.SINGLE) == 3


def test_rank_zero_samples_with_the_single_process_seed_and_other_ranks_differ():
    assert distributed.rank_seed(1234, Dist(rank=0, world_size=2)) == 1234
    assert distributed.rank_seed(1234, Dist(rank=1, world_size=2)) != 1234


def test_fast_generation_works_for_a_single_prompt(tiny_model_dir):
    # Two ranks and two prompts per step give each rank one prompt: the fast path used to fail on that.
    from transformers import AutoModelForCausalLM

    from rlstruct.engine.model import load_tokenizer
    from rlstruct.engine.rollout import make_generator

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tokenizer = load_tokenizer(str(tiny_model_dir))
    fast, plain = make_generator("fast", model, tokenizer), make_generator("plain", model, tokenizer)
    assert fast.name == "fast"
    kw = dict(group_size=3, max_new_tokens=6, max_prompt_tokens=64, do_sample=False)
    assert fast.generate(["Write some numbers."], **kw).texts == plain.generate(["Write some numbers."], **kw).texts


# -- the update on fixed rollouts ---------------------------------------------------------------------------
def _fixed_rollout(model_dir: Path, path: Path) -> None:
    """Completions and rewards every process is given: 4 prompts x 4 completions of the tiny model."""
    from transformers import AutoModelForCausalLM

    from rlstruct.engine.model import load_tokenizer
    from rlstruct.engine.rollout import generate
    from rlstruct.engine.rollout import render_prompt as render
    from rlstruct.task import Prompt

    model = AutoModelForCausalLM.from_pretrained(model_dir)
    tokenizer = load_tokenizer(str(model_dir))
    prompts = [render(tokenizer, Prompt(messages=[{"role": "user", "content": f"Numbers {'x' * i}, please."}]))
               for i in range(4)]
    torch.manual_seed(0)
    rollout = generate(model, tokenizer, prompts, group_size=4, max_new_tokens=12, max_prompt_tokens=64)
    rewards = torch.rand(rollout.input_ids.shape[0], generator=torch.Generator().manual_seed(1))
    torch.save({"rollout": rollout, "rewards": rewards}, path)


def _update_once(model_dir: str, fixed: str, loss_type: str, fsdp: bool, micro_batch_tokens: int) -> dict:
    """One update_policy() call on this rank's share of the fixed rollout; the weights after it (full ones)."""
    from rlstruct.engine.grpo import Run, lr_lambda, update_policy
    from rlstruct.engine.model import frozen_reference, load_policy
    from rlstruct.engine.optim import make_adamw

    dist = distributed.current()
    cfg = small_config(Path(model_dir), Path("unused"), loss_type=loss_type, num_iterations=2, beta=0.05,
                       micro_batch_size=3, micro_batch_tokens=micro_batch_tokens, learning_rate=1e-3,
                       epsilon_low=0.1, epsilon_high=0.1)
    torch.manual_seed(0)
    model, tokenizer = load_policy(cfg.model, torch.device("cpu"), train=True)
    ref = frozen_reference(model, False, cfg.grpo.beta)
    model, ref = distributed.shard_models(dist, model, ref, fsdp)
    optimizer = make_adamw([p for p in model.parameters() if p.requires_grad], lr=cfg.grpo.learning_rate)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg.grpo))
    run = Run(cfg, model, ref, tokenizer, optimizer, scheduler, None, [], [], distributed.NullWriter(),
              torch.device("cpu"), None, dist)
    data = torch.load(fixed, weights_only=False)
    rollout = distributed.shard_rollout(data["rollout"], dist)
    rows = distributed.group_slice(data["rewards"].numel() // 4, dist)
    rewards = data["rewards"][rows.start * 4 : rows.stop * 4]
    update = update_policy(run, rollout, rewards)
    full, _ = distributed.gathered_state(model)
    weights = full if full is not None else model.state_dict()
    return {"weights": {k: v.detach().clone() for k, v in weights.items()}, "finite": update.finite,
            "n_sequences": update.n_sequences, "n_tokens": update.n_tokens, "loss": update.sums["loss"],
            "grad_norm": update.sums["grad_norm"]}


def _update_worker(rank: int, world: int, port: int, model_dir: str, fixed: str, out: str, fsdp: bool,
                   micro_batch_tokens: int) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    with distributed.session("cpu", 60):
        results = {t: _update_once(model_dir, fixed, t, fsdp, micro_batch_tokens) for t in LOSS_TYPES}
        if rank == 0:
            torch.save(results, out)


def _micro_batch_counts(fixed: Path, tokens: int) -> list[int]:
    from rlstruct.engine.rollout import micro_batches

    rollout = torch.load(fixed, weights_only=False)["rollout"]
    return [len(list(micro_batches(distributed.shard_rollout(rollout, Dist(rank=r, world_size=2)), 3, tokens)))
            for r in range(2)]


def _check_same_update(tiny_model_dir: Path, tmp_path: Path, fsdp: bool, micro_batch_tokens: int = 0) -> None:
    import torch.multiprocessing as mp

    fixed = tmp_path / "fixed.pt"
    _fixed_rollout(tiny_model_dir, fixed)
    single = {t: _update_once(str(tiny_model_dir), str(fixed), t, False, micro_batch_tokens) for t in LOSS_TYPES}
    out = tmp_path / "two.pt"
    mp.spawn(_update_worker, args=(2, _free_port(), str(tiny_model_dir), str(fixed), str(out), fsdp,
                                   micro_batch_tokens), nprocs=2, join=True)
    two = torch.load(out, weights_only=False)
    from safetensors.torch import load_file

    start = load_file(tiny_model_dir / "model.safetensors")
    for loss_type in LOSS_TYPES:
        a, b = single[loss_type], two[loss_type]
        assert a["finite"] and b["finite"]
        assert (a["n_sequences"], a["n_tokens"]) == (b["n_sequences"], b["n_tokens"])  # global normalisers
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-5, abs=1e-7)
        # AdamW hides a gradient scaled as a whole (a mean over ranks instead of the sum); its norm does not
        assert b["grad_norm"] == pytest.approx(a["grad_norm"], rel=1e-4)
        moved = 0.0
        for key, value in start.items():
            assert torch.allclose(a["weights"][key], b["weights"][key], rtol=1e-5, atol=2e-6), (loss_type, key)
            moved = max(moved, float((a["weights"][key] - value).abs().max()))
        assert moved > 1e-4, loss_type  # the update did change the weights, so equality says something


@pytest.mark.slow
def test_one_update_on_two_processes_equals_one_process_for_every_loss_type(tiny_model_dir, tmp_path):
    _check_same_update(tiny_model_dir, tmp_path, fsdp=False)


@pytest.mark.slow
def test_fsdp_update_on_two_processes_equals_one_process(tiny_model_dir, tmp_path):
    # a token budget that gives the two ranks different numbers of micro-batches: FSDP keeps them in step
    fixed = tmp_path / "probe.pt"
    _fixed_rollout(tiny_model_dir, fixed)
    budget = next((t for t in range(20, 400, 5) if len(set(_micro_batch_counts(fixed, t))) > 1), 0)
    assert budget, "no token budget splits the two ranks' rows into different numbers of micro-batches"
    _check_same_update(tiny_model_dir, tmp_path, fsdp=True, micro_batch_tokens=budget)


# -- torchrun end to end ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def gsm_model(tmp_path_factory) -> Path:
    from rlstruct import cli

    out = tmp_path_factory.mktemp("dist") / "model"
    assert cli.main(["tiny-model", str(out), "--task", "gsm8k-json", "--vocab-size", "400", "--hidden", "64"]) == 0
    return out


def _train_args(model: Path, out: Path, steps: int, *extra: str) -> list[str]:
    sets = [f'model.name_or_path="{model}"', f"grpo.steps={steps}", "grpo.prompts_per_step=2", "grpo.group_size=2",
            "grpo.max_new_tokens=8", "run.quiet=true", "run.save_every=2", "run.eval_at_end=false",
            "reward.workers=2", "task.train_limit=16", "run.dist_timeout_s=60",
            # the length extra grades the tiny model's completions (6 to 24 characters): rewards differ in a group
            "reward.extras.length.max_chars=6", "reward.extras.length.zero_at=4", *extra]
    args = ["train", str(ROOT / "tasks" / "gsm8k-json-tiny.toml"), "--output-dir", str(out)]
    for item in sets:
        args += ["--set", item]
    return args


def _torchrun(*args: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", *args]


def _lines(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_torchrun_trains_on_two_processes_and_one_process_resumes_it(gsm_model, tmp_path):
    from transformers import AutoModelForCausalLM

    out = tmp_path / "run"
    cmd = _torchrun("--standalone", "--nproc_per_node", "2", "-m", "rlstruct", *_train_args(gsm_model, out, 3))
    done = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = _lines(out)
    assert [line["step"] for line in lines] == [1, 2, 3]  # one line per step: rank 0 alone writes
    assert all(line["world_size"] == 2 and line["completions"] == 4 for line in lines)  # P x G from both ranks
    assert [p.name for p in list_checkpoints(out / "checkpoints")] == ["step-000002", "step-000003"]
    assert done.stdout.count("trained 3 steps") == 1  # rank 0 reports, once
    assert all(line["grad_norm"] > 0 for line in lines)  # rewards differed: the policy was updated
    model = AutoModelForCausalLM.from_pretrained(out / "final")  # plain from_pretrained
    assert model.config.vocab_size > 0

    # the same run continued by one process (4 prompts per step divide by 1 and by 2)
    resumed = subprocess.run([sys.executable, "-m", "rlstruct", *_train_args(gsm_model, out, 5), "--resume", str(out)],
                             env=_env(), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    lines = _lines(out)
    assert [line["step"] for line in lines] == [1, 2, 3, 4, 5]
    assert [line["world_size"] for line in lines] == [2, 2, 2, 1, 1]
    assert lines[3]["completions"] == 4
    assert [p.name for p in list_checkpoints(out / "checkpoints")][-1] == "step-000005"


def _weights(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    name = "adapter_model.safetensors" if (path / "adapter_model.safetensors").exists() else "model.safetensors"
    return load_file(path / name)


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.mark.slow
def test_a_run_resumed_under_torchrun_continues_exactly(gsm_model, tmp_path):
    two = ("--standalone", "--nproc_per_node", "2", "-m", "rlstruct")
    _run(_torchrun(*two, *_train_args(gsm_model, tmp_path / "straight", 4)))
    _run(_torchrun(*two, *_train_args(gsm_model, tmp_path / "halves", 2)))
    _run(_torchrun(*two, *_train_args(gsm_model, tmp_path / "halves", 4), "--resume", str(tmp_path / "halves")))
    a, b = _weights(tmp_path / "straight" / "final"), _weights(tmp_path / "halves" / "final")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert [l["reward_mean"] for l in _lines(tmp_path / "straight")] == [l["reward_mean"] for l in _lines(tmp_path / "halves")]


@pytest.mark.slow
@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_fsdp_trains_like_replicated_weights_saves_plain_models_and_resumes(gsm_model, tmp_path, lora):
    two = ("--standalone", "--nproc_per_node", "2", "-m", "rlstruct")
    extra = ("model.lora=true", "grpo.beta=0.05", "grpo.num_iterations=2", "grpo.learning_rate=5e-3") if lora else ()
    _run(_torchrun(*two, *_train_args(gsm_model, tmp_path / "ddp", 3, *extra)))
    _run(_torchrun(*two, *_train_args(gsm_model, tmp_path / "fsdp", 3, *extra, "run.fsdp=true")))
    a, b = _weights(tmp_path / "ddp" / "final"), _weights(tmp_path / "fsdp" / "final")
    assert a.keys() == b.keys()  # the same files as without FSDP (a tied head saved once)
    start = _weights(tmp_path / "ddp" / "checkpoints" / "step-000002")
    for key in a:
        assert torch.allclose(a[key], b[key], rtol=1e-4, atol=1e-5), key
    assert any(not torch.equal(a[k], start[k]) for k in a)
    # the optimiser state FSDP gathers (keyed by name) is the replicated run's (keyed by position)
    ddp_opt = torch.load(tmp_path / "ddp" / "checkpoints" / "step-000002" / "trainer_state.pt", weights_only=False)
    fsdp_opt = torch.load(tmp_path / "fsdp" / "checkpoints" / "step-000002" / "trainer_state.pt", weights_only=False)
    names = list(fsdp_opt["optimizer"]["param_groups"][0]["params"])
    as_positions = distributed._name_to_position(fsdp_opt["optimizer"], names)
    for index, state in ddp_opt["optimizer"]["state"].items():
        assert torch.allclose(state["exp_avg"], as_positions["state"][index]["exp_avg"], rtol=1e-3, atol=1e-7)
    # resumed from its step-2 checkpoint into another directory, the FSDP run ends exactly where it did
    _run(_torchrun(*two, *_train_args(gsm_model, tmp_path / "again", 3, *extra, "run.fsdp=true"),
                   "--resume", str(tmp_path / "fsdp" / "checkpoints" / "step-000002")))
    c = _weights(tmp_path / "again" / "final")
    assert all(torch.equal(b[k], c[k]) for k in b)
    if lora:
        from peft import PeftModel
        from transformers import AutoModelForCausalLM

        PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(gsm_model), tmp_path / "fsdp" / "final")
    else:
        from transformers import AutoModelForCausalLM

        AutoModelForCausalLM.from_pretrained(tmp_path / "fsdp" / "final")


@pytest.mark.slow
def test_two_nodes_on_one_machine_train_together(gsm_model, tmp_path):
    out = tmp_path / "run"
    endpoint = f"127.0.0.1:{_free_port()}"
    procs = []
    for node in range(2):
        cmd = _torchrun("--nnodes", "2", "--nproc_per_node", "1", "--node_rank", str(node), "--rdzv_backend", "c10d",
                        "--rdzv_endpoint", endpoint, "--rdzv_id", "rlstruct-test", "-m", "rlstruct",
                        *_train_args(gsm_model, out, 2))
        procs.append(subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    results = [p.communicate(timeout=300) for p in procs]
    for p, (_, err) in zip(procs, results):
        assert p.returncode == 0, err[-3000:]
    lines = _lines(out)
    assert [line["step"] for line in lines] == [1, 2] and all(line["world_size"] == 2 for line in lines)
    assert (out / "final" / "config.json").is_file()


def _rank_pids(parent: int) -> dict[int, int]:
    """``{rank: pid}`` of the workers a torchrun process started (read from their environment)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            env = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        rank = next((int(v[5:]) for v in env if v.startswith(b"RANK=")), None)
        if ppid == parent and rank is not None:
            found[rank] = int(entry.name)
    return found


@pytest.mark.slow
def test_a_killed_rank_fails_the_run_within_a_minute_and_the_last_checkpoint_loads(gsm_model, tmp_path):
    from rlstruct.engine import checkpoint as ckpt

    out = tmp_path / "run"
    cmd = _torchrun("--standalone", "--nproc_per_node", "2", "-m", "rlstruct",
                    *_train_args(gsm_model, out, 500, "run.save_every=1"))
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while not ckpt.list_checkpoints(out / "checkpoints"):
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "the run never wrote a checkpoint"
            time.sleep(0.2)
        pids = _rank_pids(proc.pid)
        assert set(pids) == {0, 1}, pids
        os.kill(pids[1], signal.SIGKILL)
        killed = time.monotonic()
        _, err = proc.communicate(timeout=90)
        took = time.monotonic() - killed
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0
    assert took < 60, f"the run took {took:.0f} s to fail"
    # torchrun's summary names the killed rank as the root cause
    assert re.search(r"Root Cause.*?rank\s*:\s*1 .*?exitcode\s*:\s*-9", err, re.S), err[-3000:]
    last = ckpt.resolve_resume(out)  # the last complete checkpoint is intact and loads
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(last)
    assert json.loads((last / "state.json").read_text())["step"] >= 1


@pytest.mark.slow
def test_a_hung_rank_fails_the_run_after_the_timeout_with_a_line_naming_the_rank(gsm_model, tmp_path):
    from rlstruct.engine import checkpoint as ckpt

    out, log = tmp_path / "run", tmp_path / "stderr.txt"
    cmd = _torchrun("--standalone", "--nproc_per_node", "2", "-m", "rlstruct",
                    *_train_args(gsm_model, out, 500, "run.dist_timeout_s=10"))
    stopped = None
    with open(log, "w") as err:
        proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=err, text=True)
    try:
        deadline = time.monotonic() + 240
        while not ckpt.list_checkpoints(out / "checkpoints"):
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "the run never wrote a checkpoint"
            time.sleep(0.2)
        stopped = _rank_pids(proc.pid)[1]
        os.kill(stopped, signal.SIGSTOP)  # alive but silent: only the collective's time-out can notice
        hung = time.monotonic()
        while "rlstruct: error: rank 0 of 2" not in log.read_text():
            assert time.monotonic() - hung < 60, "rank 0 still waits a minute after rank 1 stopped answering"
            time.sleep(0.2)
        os.kill(stopped, signal.SIGCONT)  # so torchrun's SIGTERM reaches it and the run ends now
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        if stopped is not None:
            try:
                os.kill(stopped, signal.SIGKILL)
            except ProcessLookupError:
                pass
    assert proc.returncode != 0
    line = next(line for line in log.read_text().splitlines() if line.startswith("rlstruct: error: rank 0 of 2"))
    assert "run.dist_timeout_s = 10 s" in line


def _sft_args(model: Path, out: Path) -> list[str]:
    return ["sft", str(ROOT / "tasks" / "gsm8k-json-tiny.toml"), "--output-dir", str(out),
            "--set", f'model.name_or_path="{model}"', "--set", "sft.steps=3", "--set", "sft.batch_size=4",
            "--set", "run.quiet=true", "--set", "task.train_limit=16"]


@pytest.mark.slow
def test_sft_on_two_processes_gives_the_single_process_model(gsm_model, tmp_path):
    from safetensors.torch import load_file

    one = subprocess.run([sys.executable, "-m", "rlstruct", *_sft_args(gsm_model, tmp_path / "one")],
                         env=_env(), capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr[-3000:]
    two = subprocess.run(_torchrun("--standalone", "--nproc_per_node", "2", "-m", "rlstruct",
                                   *_sft_args(gsm_model, tmp_path / "two")),
                         env=_env(), capture_output=True, text=True, timeout=300)
    assert two.returncode == 0, two.stderr[-3000:]
    assert two.stdout.count("sft: 3 steps") == 1
    a, b = load_file(tmp_path / "one" / "model.safetensors"), load_file(tmp_path / "two" / "model.safetensors")
    start = load_file(gsm_model / "model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key], b[key], rtol=1e-4, atol=1e-5), key
    assert any(not torch.equal(a[k], start[k]) for k in a)


@pytest.mark.slow
def test_eval_on_two_processes_gives_the_single_process_rows_in_order(gsm_model, tmp_path):
    def args(rows: Path) -> list[str]:
        return ["eval", "--model", str(gsm_model), "--task", "gsm8k-json", "--limit", "5", "--max-new-tokens", "8",
                "--sample", "--set", "eval.samples_per_prompt=2", "--set", "eval.batch_size=2", "--json",
                "-o", str(rows)]

    one = subprocess.run([sys.executable, "-m", "rlstruct", *args(tmp_path / "one.jsonl")],
                         env=_env(), capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr[-3000:]
    two = subprocess.run(_torchrun("--standalone", "--nproc_per_node", "2", "-m", "rlstruct",
                                   *args(tmp_path / "two.jsonl")),
                         env=_env(), capture_output=True, text=True, timeout=300)
    assert two.returncode == 0, two.stderr[-3000:]
    rows_one = [json.loads(l) for l in (tmp_path / "one.jsonl").read_text().splitlines()]
    rows_two = [json.loads(l) for l in (tmp_path / "two.jsonl").read_text().splitlines()]
    assert [(r["index"], r["sample"]) for r in rows_two] == [(i, s) for i in range(5) for s in range(2)]
    assert rows_two == rows_one  # sampled, yet the same completions: each batch has its own seed
    summaries = [json.loads(out.stdout.strip().splitlines()[-1]) for out in (one, two)]
    assert len(two.stdout.strip().splitlines()) == 1  # rank 0 prints the result, once
    for key in ("n", "reward", "structure", "pass_at_k"):
        assert summaries[1][key] == summaries[0][key], key
