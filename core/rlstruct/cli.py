"""The ``rlstruct`` command line. Every sub-command has ``--help``.

Exit status: 0 success; 2 usage error (a bad flag, config key or value, unknown task or reward);
1 a run that could not go on (data, model, run directory, training); 130 interrupted.
Every :class:`~rlstruct.errors.RlstructError` is caught once, in :func:`main`, and printed as one
line ``rlstruct: error: ...`` (``--debug`` shows the traceback instead).
Heavy imports (torch, transformers) happen only inside the commands that train or generate.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any, Callable, Sequence, TextIO

from . import __version__
from .engine.interrupt import TrainingInterrupted  # no torch: signal handling only
from .errors import RlstructError, RunError
from .plugins import PluginManager

EPILOG_ENV = (
    "Plugins come from the 'rlstruct' entry point group. RLSTRUCT_PLUGINS=a,b loads only those; "
    "RLSTRUCT_BLOCK_PLUGINS=a,b skips those."
)


class CLIError(RunError):
    """A command's input cannot be used (an unreadable or malformed file): 'rlstruct: error: ...', exit status 1."""


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line naming the flag (exit status 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# -- flag value checks: argparse reports them as "argument --flag: <message>" ----------------------
def int_at_least(low: int) -> Callable[[str], int]:
    """An argparse ``type`` accepting integers >= ``low``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer >= {low}, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value

    parse.__name__ = f"integer >= {low}"
    return parse


def positive_seconds(text: str) -> float:
    """An argparse ``type`` accepting a finite number of seconds > 0 (nan or inf would disable the bound)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds > 0, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds > 0, got {text!r}")
    return value


def difficulty_arg(text: str) -> float:
    """An argparse ``type`` accepting a difficulty, a number from 0 to 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number from 0 to 1, got {text!r}") from None
    if not 0.0 <= value <= 1.0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be a number from 0 to 1, got {text!r}")
    return value


def _emit_json(obj: Any, out: TextIO) -> None:
    out.write(json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def _warn_plugin_errors(pm: PluginManager) -> None:
    for info in pm.errors():
        print(f"rlstruct: warning: plugin {info.name!r}: {info.error}", file=sys.stderr)


# -- plugins / tasks / rewards -------------------------------------------------------------------
def cmd_plugins(args: argparse.Namespace) -> int:
    pm = PluginManager()
    infos = pm.plugins()
    if args.json:
        _emit_json([i.to_json() for i in infos], sys.stdout)
        return 0
    if not infos:
        print("no plugins installed")
    for i in infos:
        dist = f"{i.distribution} {i.version}" if i.distribution else "(in-process)"
        print(f"{i.name}  [{dist}]  module {i.module}")
        if i.tasks:
            print(f"    tasks:   {', '.join(i.tasks)}")
        if i.rewards:
            print(f"    rewards: {', '.join(i.rewards)}")
        if i.error:
            print(f"    ERROR:   {i.error}")
    return 0


def cmd_tasks(args: argparse.Namespace) -> int:
    pm = PluginManager()
    rows = []
    for name, task in pm.tasks.items():
        info = pm.task_plugin(name)
        rows.append({"name": name, "plugin": info.name, "description": task.description, "distribution": info.distribution})
    _warn_plugin_errors(pm)
    if args.json:
        _emit_json(rows, sys.stdout)
        return 0
    width = max((len(r["name"]) for r in rows), default=4)
    for r in rows:
        print(f"{r['name']:<{width}}  {r['description']}  [plugin {r['plugin']}]")
    return 0


def cmd_rewards(args: argparse.Namespace) -> int:
    pm = PluginManager()
    owner = {reward: info.name for info in pm.plugins() for reward in info.rewards}
    rows = []
    for name, comp in pm.rewards.items():
        plugin = owner.get(name)
        rows.append({"name": name, "plugin": plugin, "description": comp.description, "defaults": dict(comp.defaults)})
    _warn_plugin_errors(pm)
    if args.json:
        _emit_json(
            {"hierarchical": ["structure", "format", "content", "validity"], "extras": rows}, sys.stdout
        )
        return 0
    print("hierarchical (every task, gated in this order): structure, format, content, validity")
    print("extra components (add under [reward.extras.NAME] with a weight):")
    for r in rows:
        params = ", ".join(f"{k}={v!r}" for k, v in r["defaults"].items())
        print(f"  {r['name']}  {r['description']}  [plugin {r['plugin']}; params: {params or 'none'}]")
    return 0


# -- data / score ----------------------------------------------------------------------------------
def cmd_data(args: argparse.Namespace) -> int:
    from .data import load_records
    from .data_skip import SkippedRecords

    pm = PluginManager()
    task = pm.task(args.task)
    skipped = SkippedRecords() if getattr(args, "skip_bad_records", False) else None
    records = load_records(task, args.source, args.split, args.limit, args.seed, difficulty=args.difficulty,
                           skipped=skipped)
    for line in skipped.report() if skipped is not None else []:
        print(line if line.startswith(" ") else f"rlstruct: warning: {line}", file=sys.stderr)
    out = sys.stdout
    for record in records:
        out.write(json.dumps(record, ensure_ascii=False) + "\n")
    return 0


def _read_score_input(path: str, task) -> tuple[list[dict], list[str]]:
    from .data import check_records

    name = "<stdin>" if path == "-" else path
    try:
        raw = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    except OSError as exc:
        raise CLIError(f"{name}: {exc.strerror}") from None
    rows, completions = [], []
    for lineno, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{name}:{lineno}"
        try:
            item = json.loads(line.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise CLIError(f"{where}: not valid UTF-8 (byte {exc.start}); encode completions as JSON strings") from None
        except json.JSONDecodeError as exc:
            raise CLIError(f"{where}: invalid JSON: {exc.msg} (column {exc.colno})") from None
        except RecursionError:
            raise CLIError(f"{where}: nested too deeply to read") from None
        if not isinstance(item, dict):
            raise CLIError(f"{where}: expected an object with 'record' and 'completion'")
        for key in ("record", "completion"):
            if key not in item:
                raise CLIError(f"{where}: missing key {key!r}")
        if not isinstance(item["record"], dict):
            raise CLIError(f"{where}: 'record' must be an object")
        if not isinstance(item["completion"], str):
            raise CLIError(f"{where}: 'completion' must be a string")
        rows.append((f"{where}: record", item["record"]))
        completions.append(item["completion"])
    # checked in a bounded worker: a record too costly to check is reported, not left spinning
    return check_records(task, rows), completions


def cmd_score(args: argparse.Namespace) -> int:
    from .reward import RewardSpec
    from .sandbox import RewardPool, SandboxLimits

    pm = PluginManager()
    task = pm.task(args.task)
    weights, extras = {}, {}
    timeout, workers, memory = args.timeout, args.workers, 1024
    if workers is None:
        workers = 2
    if args.config:
        from .config import load_config

        cfg = load_config(args.config, require=())  # scoring needs no model and takes the task from --task
        if cfg.task.name and cfg.task.name != args.task:
            print(
                f"rlstruct: warning: --task {args.task} but {args.config} has task.name = {cfg.task.name!r}; "
                f"scoring as {args.task} with the config's reward settings",
                file=sys.stderr,
            )
        weights, extras = cfg.reward.weights, cfg.reward.extras
        memory = cfg.reward.memory_mb
        workers = args.workers if args.workers is not None else cfg.reward.workers
        timeout = timeout if timeout is not None else cfg.reward.timeout_s
    spec = RewardSpec.build(task, pm.rewards, weights, extras, where=f"{args.config}: reward" if args.config else "reward")
    records, completions = _read_score_input(args.file, task)
    limits = SandboxLimits(timeout_s=timeout if timeout is not None else 2.0, memory_mb=memory, workers=workers)
    out = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout
    try:
        with RewardPool(task, spec, limits) as pool:
            for start in range(0, len(records), 256):
                batch = pool.score(records[start : start + 256], completions[start : start + 256])
                for breakdown in batch:
                    out.write(json.dumps(breakdown.to_json()) + "\n")
                out.flush()
    finally:
        if out is not sys.stdout:
            out.close()
    return 0


# -- engine commands (lazy: they import torch) -------------------------------------------------
def cmd_train(args: argparse.Namespace) -> int:
    from .cli_engine import train_command

    return train_command(args)


def cmd_sft(args: argparse.Namespace) -> int:
    from .cli_engine import sft_command

    return sft_command(args)


def cmd_eval(args: argparse.Namespace) -> int:
    from .cli_engine import eval_command

    return eval_command(args)


def cmd_tiny_model(args: argparse.Namespace) -> int:
    from .cli_engine import tiny_model_command

    return tiny_model_command(args)


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo.command import demo_command

    return demo_command(args)


def cmd_plot(args: argparse.Namespace) -> int:
    from .plot import plot_command

    return plot_command(args)


def cmd_plugin(args: argparse.Namespace) -> int:
    from .scaffold import plugin_command

    return plugin_command(args)


# -- parser ----------------------------------------------------------------------------------------
AddCommand = Callable[..., argparse.ArgumentParser]
"""``add(name, fn, help, **kw)``: register a sub-command and return its parser."""


def build_parser() -> argparse.ArgumentParser:
    """The ``rlstruct`` argument parser with every sub-command registered."""
    parser = _Parser(
        prog="rlstruct",
        description="Teach language models reliable structured output with GRPO and task plugins.",
        epilog=EPILOG_ENV,
    )
    parser.add_argument("--version", action="version", version=f"rlstruct {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error instead of one line")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(name: str, fn: Callable[[argparse.Namespace], int], help: str, **kw: Any) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help, **kw)
        p.set_defaults(func=fn)
        return p

    _add_listing_commands(add)
    _add_data_command(add)
    _add_score_command(add)
    _add_training_commands(add)
    _add_eval_command(add)
    _add_tiny_model_command(add)
    _add_tool_commands(add)
    return parser


def _add_listing_commands(add: AddCommand) -> None:
    """``plugins``, ``tasks`` and ``rewards``: what is installed."""
    p = add("plugins", cmd_plugins, "List installed plugins, their tasks and reward components, and load errors.")
    p.add_argument("--json", action="store_true", help="print JSON")
    p = add("tasks", cmd_tasks, "List the registered tasks.")
    p.add_argument("--json", action="store_true", help='print a JSON list of {"name", "plugin", "description"}')
    p = add("rewards", cmd_rewards, "List the reward components (the four hierarchical ones and registered extras).")
    p.add_argument("--json", action="store_true", help="print JSON")


def _add_data_command(add: AddCommand) -> None:
    """``data``: print a task's records."""
    p = add("data", cmd_data, "Print a task's records as JSONL, exactly as the reward receives them.")
    p.add_argument("--task", required=True, help="task name (see `rlstruct tasks`)")
    p.add_argument("--source", default="synthetic", help="synthetic (default), hf, a .jsonl/.json/.parquet file, or a data set name[:config]")
    p.add_argument("--split", default="train", help="split name (default train)")
    p.add_argument("--limit", type=int_at_least(0), default=None, help="at most N records, N >= 0 (synthetic default: the task's size)")
    p.add_argument("--seed", type=int_at_least(0), default=0, help="seed of the synthetic generator, >= 0 (default 0)")
    p.add_argument("--difficulty", type=difficulty_arg, default=None, metavar="D",
                   help="difficulty of the synthetic generator, 0 (easiest) to 1 (hardest); default: the task's own (0.5 for built-ins)")
    p.add_argument("--skip-bad-records", action="store_true", help="skip malformed records (counted and reported "
                   "on stderr with file:line and reason) instead of stopping at the first")


def _add_score_command(add: AddCommand) -> None:
    """``score``: score completions from a JSONL file."""
    p = add(
        "score",
        cmd_score,
        "Score completions with a task's hierarchical reward.",
        epilog='Input lines: {"record": {...}, "completion": "..."}. Output lines, in order: '
        '{"reward": f, "components": {"structure": f, "format": f, "content": f, "validity": f, ...}, "error": null|str}.',
    )
    p.add_argument("--task", required=True, help="task name")
    p.add_argument("file", metavar="FILE.jsonl", help="input JSONL, or - for stdin")
    p.add_argument("-o", "--output", metavar="OUT.jsonl", help="write here instead of stdout")
    p.add_argument("--config", help="take reward weights, extra components and bounds from this task config")
    p.add_argument("--timeout", type=positive_seconds, default=None,
                   help="seconds one component may take, > 0 (default: the config's reward.timeout_s, else 2)")
    p.add_argument("--workers", type=int_at_least(0), default=None, help="scoring processes, >= 0 (default: the "
                   "config's reward.workers, else 2; 0: inline, unbounded, for debugging)")


def _add_training_commands(add: AddCommand) -> None:
    """``train`` (GRPO) and ``sft``, both driven by a task config."""
    from .config import describe

    train_help = "Train a policy with GRPO from a task config."
    p = add("train", cmd_train, train_help, epilog="Config keys:\n" + describe(), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", metavar="CONFIG.toml", help="task config (see tasks/)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set grpo.steps=10 (repeatable)")
    p.add_argument("--output-dir", help="run directory (overrides run.output_dir)")
    p.add_argument("--resume", metavar="DIR", help="resume from a run directory or one of its checkpoints; the run continues in that "
                   "run directory unless --output-dir names another (new) one")
    p.add_argument("--allow-config-change", action="store_true", help="with --resume: accept config changes that make the "
                   "resumed run differ from an uninterrupted one (group size, model, task, learning rate, ...); "
                   "raising grpo.steps and changing logging, checkpointing or evaluation settings need no flag")

    p = add("sft", cmd_sft, "Supervised fine-tuning on the task's reference completions.",
            epilog="Config keys:\n" + describe(), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", metavar="CONFIG.toml", help="task config")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    p.add_argument("--output-dir", help="where the fine-tuned model is saved (default: run.output_dir + '-sft')")


def _add_eval_command(add: AddCommand) -> None:
    """``eval``: evaluate a model on held-out records."""
    p = add("eval", cmd_eval, "Evaluate a model on a task's held-out records (greedy by default).")
    p.add_argument("--model", required=True, metavar="PATH_OR_NAME", help="model directory (full model or LoRA adapter) or Hub name")
    p.add_argument("--task", default=None, help="task name (default: the config's task; a [[task.mixture]] config: "
                   "each of its tasks, and their macro mean)")
    p.add_argument("--split", default=None, help="held-out split (default: the config's task.eval_split, else test)")
    p.add_argument("--limit", type=int_at_least(1), default=None, help="records evaluated, >= 1 (default: the config's task.eval_limit, else 64)")
    p.add_argument("--source", default=None, help="where records come from, as for `data` (default: the config's, else synthetic)")
    p.add_argument("--seed", type=int_at_least(0), default=None, help="data seed of the synthetic generator, >= 0 (default: the config's, else 0)")
    p.add_argument("--config", help="take the eval protocol and reward settings from this task config (default: the "
                   "run's own config.toml when --model is RUN/final or a run's checkpoint, else built-in defaults)")
    p.add_argument("--sample", action="store_true", help="sample at eval.temperature instead of greedy decoding")
    p.add_argument("--max-new-tokens", type=int_at_least(1), default=None, help="completion length cap, >= 1 (default: the config's eval.max_new_tokens)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="device")
    p.add_argument("--json", action="store_true", help='print one JSON object {"n", "reward", "structure", ...}')
    p.add_argument("-o", "--output", metavar="ROWS.jsonl", help="also write every completion with its reward breakdown")
    p.add_argument("--out", metavar="DIR", help="save the run in DIR: results.jsonl (every completion, written per batch) "
                   "and summary.json (figures, protocol, data hash, versions); the same command with the same DIR "
                   "resumes a killed run")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set eval.samples_per_prompt=8 (repeatable)")
    p.add_argument("--constrained", action="store_true", help="decode with the task's JSON Schema enforced "
                   '(the constrained-decoding baseline; needs pip install "rlstruct[constrained]")')
    p.add_argument("--max-prompt-tokens", type=int_at_least(0), default=None, metavar="N",
                   help="longest prompt in tokens; 0: the model's context length minus --max-new-tokens (default: the "
                   "config's grpo.max_prompt_tokens, else 0)")
    p.add_argument("--skip-bad-records", action="store_true", help="skip malformed records of a file or data set "
                   "(counted and reported with file:line and reason) instead of stopping at the first")


def _add_tiny_model_command(add: AddCommand) -> None:
    """``tiny-model``: build a tiny offline model."""
    p = add(
        "tiny-model",
        cmd_tiny_model,
        "Build a tiny Qwen2-shaped model with a locally trained tokenizer (offline, randomly initialised weights).",
        epilog="Example: a model for GSM8K-as-JSON, warm-started and trained by tasks/gsm8k-json-tiny.toml:\n"
        "  rlstruct tiny-model .tiny/gsm8k-json --task gsm8k-json\n"
        "A wider, deeper one whose tokenizer also knows two tasks' text:\n"
        "  rlstruct tiny-model .tiny/mixed --task json-recipes --task xml-records --hidden 256 --layers 4",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("out", metavar="OUT_DIR", help="directory to save the model and tokenizer in (created if missing); "
                   "use it as model.name_or_path")
    p.add_argument("--task", action="append", default=[], metavar="NAME",
                   help="add 300 of this task's synthetic prompts and reference completions to the tokenizer's "
                   "training text, so its output tokenizes compactly (repeatable; default: none, a generic corpus "
                   "of instructions, JSON, XML and chat only)")
    p.add_argument("--vocab-size", type=int_at_least(1), default=1024, metavar="N",
                   help="largest tokenizer vocabulary, special tokens included; BPE merges stop there, and the 256 "
                   "byte symbols and special tokens are always kept (default: %(default)s)")
    p.add_argument("--hidden", type=int_at_least(4), default=128, metavar="N",
                   help="hidden width; a multiple of 4, the number of attention heads; the MLP is about 8/3 as wide "
                   "(default: %(default)s)")
    p.add_argument("--layers", type=int_at_least(1), default=2, metavar="N", help="decoder layers (default: %(default)s)")
    p.add_argument("--seed", type=int_at_least(0), default=0, metavar="N",
                   help="seed of the weight initialisation; the tokenizer depends only on its text (default: %(default)s)")


def _add_tool_commands(add: AddCommand) -> None:
    """``demo``, ``plot`` and ``plugin``, whose arguments live next to their code."""
    from .demo.command import DESCRIPTION as DEMO_DESCRIPTION  # no torch imported
    from .demo.command import add_demo_arguments
    from .plot import add_plot_arguments

    add_demo_arguments(add("demo", cmd_demo, DEMO_DESCRIPTION))
    add_plot_arguments(add("plot", cmd_plot, "Plot a run's training dynamics (reward components, completion length, KL per step) as a PNG."))
    from .scaffold import add_plugin_arguments

    add_plugin_arguments(add("plugin", cmd_plugin, "Plugin authoring: `rlstruct plugin new NAME` creates a new task plugin project."))


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return its exit status (0 success, 1 run failure, 2 usage error, 130 interrupted).

    Every :class:`RlstructError` a command raises ends here as one line on stderr; ``--debug`` re-raises
    it so the traceback shows where it came from.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:  # `rlstruct data ... | head`
        sys.stderr.close()
        return 0
    except TrainingInterrupted as exc:  # a Ctrl-C that saved a checkpoint (train reports it itself)
        if args.debug:
            raise
        print(f"rlstruct: {exc}", file=sys.stderr)
        return 130
    except RlstructError as exc:
        if args.debug:
            raise
        print(f"rlstruct: error: {one_line(str(exc))}", file=sys.stderr)
        return exc.exit_status
    except KeyboardInterrupt:
        print("rlstruct: interrupted", file=sys.stderr)
        return 130


def one_line(message: str) -> str:
    """``message`` on one line: line breaks (from a message quoting a file or a library) become ``; ``."""
    return "; ".join(part.strip() for part in message.splitlines() if part.strip()) or "(no message)"


if __name__ == "__main__":
    sys.exit(main())
