"""Constrained-decoding baseline: generate while a grammar engine enforces each record's JSON Schema.

This is the comparison row of "what does RL buy over constraining?": with the schema enforced token by
token, structure comes nearly free, while content and speed do not. The engine is xgrammar (optional
extra ``constrained``): its grammar compiler turns a JSON Schema into a token mask, and
:class:`SchemaMaskProcessor` applies that mask inside Hugging Face ``generate``.

Why xgrammar and not outlines (both measured on CPU with the tiny Qwen2-shaped model, see
docs/evaluation.md): xgrammar compiles a schema in milliseconds where outlines-core's index takes up to
a second for the built-in json-schema records, it masks a batch whose rows carry different schemas (one
matcher per row) where an outlines processor holds one schema per batch, and its overhead per token
stays small.

Why a processor of our own on xgrammar's matcher rather than ``xgrammar.contrib.hf.LogitsProcessor``:
a row whose schema does not compile (or that has none) must decode freely in the same batch and be
counted, not stop the evaluation; the contrib processor needs a grammar for every row and asserts on a
rejected token.

Records are untrusted: a schema is compiled only when it is a JSON object of bounded size, and every
compile failure is counted with its reason, never raised.
"""

from __future__ import annotations

import importlib.util
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import torch

from ..errors import RunError

__all__ = [
    "ConstrainedDecodingUnavailable",
    "ConstrainedStats",
    "MAX_SCHEMA_CHARS",
    "SchemaMaskProcessor",
    "constrained_generate",
    "schema_for",
]

MAX_SCHEMA_CHARS = 200_000
"""A schema whose compact JSON is longer than this is not compiled (counted as a compile failure)."""
MAX_WHITESPACE_RUN = 2
"""Longest run of whitespace the grammar allows between JSON tokens (compact or one space after , and :)."""

MAX_REASONS = 5
"""How many compile-failure reasons :class:`ConstrainedStats` keeps in full."""

INSTALL_HINT = 'pip install "rlstruct[constrained]"'


class ConstrainedDecodingUnavailable(RunError, ValueError):
    """The grammar engine (xgrammar) is not installed. One line naming the extra to install."""


def _xgrammar():
    if importlib.util.find_spec("xgrammar") is None:
        raise ConstrainedDecodingUnavailable(f"constrained decoding needs the xgrammar library: {INSTALL_HINT}")
    import xgrammar

    return xgrammar


# --------------------------------------------------------------------------------------------
# Which schema a record implies
# --------------------------------------------------------------------------------------------


def schema_for(task: Any, record: Mapping[str, Any]) -> dict[str, Any] | None:
    """The JSON Schema a completion for ``record`` must match: ``task.json_schema(record)``.

    ``None`` when the task implies none (the :class:`rlstruct.Task` default) or its method raises: the
    engine never knows plugin names or looks for plugin files, so a task without the method has no
    schema and its prompts decode freely (counted as ``no_schema``).
    """
    method = getattr(task, "json_schema", None)
    if not callable(method):
        return None
    try:
        return method(record)
    except Exception:  # noqa: BLE001 - a broken method means no schema for this record, never a crash
        return None


# --------------------------------------------------------------------------------------------
# Masking and generation
# --------------------------------------------------------------------------------------------


class SchemaMaskProcessor:
    """A Hugging Face logits processor that masks each row with its own xgrammar matcher.

    ``grammars[i]`` is the compiled grammar of batch row ``i``, or ``None`` for a row decoded freely.
    Use one instance per ``generate`` call (matchers carry the state of the rows).
    """

    def __init__(self, grammars: Sequence[Any], vocab_size: int) -> None:
        xgr = _xgrammar()
        self._xgr = xgr
        self.matchers = [xgr.GrammarMatcher(g) if g is not None else None for g in grammars]
        self.vocab_size = vocab_size
        self.bitmask = xgr.allocate_token_bitmask(len(grammars), vocab_size)
        self.rejected = [False] * len(grammars)
        self._first = True
        self._backend: str | None = None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if not self._first:  # the token chosen at the previous step is the last input id
            last = input_ids[:, -1].tolist()
            for i, matcher in enumerate(self.matchers):
                if matcher is not None and not matcher.is_terminated() and not matcher.accept_token(last[i]):
                    # Cannot happen with the mask applied; if it does, stop constraining the row, and say so.
                    self.rejected[i] = True
                    self.matchers[i] = None
        self._first = False
        rows = [i for i, m in enumerate(self.matchers) if m is not None and not m.is_terminated()]
        if not rows:
            return scores
        for i in rows:
            self.matchers[i].fill_next_token_bitmask(self.bitmask, i)
        if self._backend is None:
            if scores.device.type == "cpu":
                self._backend = "cpu"
            else:  # triton is xgrammar's GPU kernel; plain torch works everywhere else
                self._backend = "triton" if importlib.util.find_spec("triton") else "torch_native"
        self._xgr.apply_token_bitmask_inplace(
            scores, self.bitmask.to(scores.device), vocab_size=min(self.vocab_size, scores.shape[-1]),
            indices=rows, backend=self._backend,
        )
        return scores


@dataclass
class ConstrainedStats:
    """What a constrained generation did. Per-row lists follow the returned texts."""

    prompts: int = 0
    """Prompts given."""
    completions: int = 0
    """Completions generated (prompts × group size)."""
    compile_failures: int = 0
    """Prompts whose schema the engine could not compile; their completions were decoded freely."""
    no_schema: int = 0
    """Prompts without a schema (``None``); decoded freely."""
    failure_reasons: list[str] = field(default_factory=list)
    """The first :data:`MAX_REASONS` compile failures, ``prompt I: reason``."""
    generated_tokens: int = 0
    """Completion tokens, EOS included."""
    generate_seconds: float = 0.0
    """Wall time inside ``generate``."""
    compile_seconds: float = 0.0
    """Wall time spent compiling schemas (each distinct schema once)."""
    constrained: list[bool] = field(default_factory=list)
    """Per completion: decoded under its schema to the end."""
    truncated: list[bool] = field(default_factory=list)
    """Per completion: no EOS within ``max_new_tokens``."""
    tokens: list[int] = field(default_factory=list)
    """Per completion: its tokens, EOS included."""
    schema_status: list[str] = field(default_factory=list)
    """Per prompt: ``compiled``, ``no-schema`` or ``compile-failed``."""
    schema_errors: list[str | None] = field(default_factory=list)
    """Per prompt: why its schema did not compile (``None`` otherwise)."""

    @property
    def tokens_per_second(self) -> float:
        return self.generated_tokens / self.generate_seconds if self.generate_seconds > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        """The summary fields (no per-row lists)."""
        return {
            "engine": "xgrammar",
            "prompts": self.prompts,
            "completions": self.completions,
            "compile_failures": self.compile_failures,
            "no_schema": self.no_schema,
            "failure_reasons": list(self.failure_reasons),
            "constrained_completions": sum(self.constrained),
            "generated_tokens": self.generated_tokens,
            "generate_seconds": round(self.generate_seconds, 4),
            "compile_seconds": round(self.compile_seconds, 4),
            "tokens_per_second": round(self.tokens_per_second, 2),
        }


def _output_vocab_size(model) -> int:
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if head is not None and getattr(head, "weight", None) is not None:
        return int(head.weight.shape[0])
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    return int(config.vocab_size)


_ENGINE_PREFIX = re.compile(r"^(\[[^\]]*\]\s*)?(\S+\.(cc|cpp|h):\d+:\s*)?")


def _engine_message(exc: Exception) -> str:
    """xgrammar's error in one line, without its time stamp and C++ source location."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = _ENGINE_PREFIX.sub("", lines[0]) if lines else type(exc).__name__
    return text[:200]


def _compile_all(compiler, schemas: Sequence[Any], stats: ConstrainedStats) -> list[Any]:
    """One compiled grammar (or ``None``) per prompt; each distinct schema is compiled once."""
    cache: dict[str, tuple[Any, str | None]] = {}
    grammars: list[Any] = []
    start = time.perf_counter()
    for index, schema in enumerate(schemas):
        if schema is None:
            stats.no_schema += 1
            stats.schema_status.append("no-schema")
            stats.schema_errors.append(None)
            grammars.append(None)
            continue
        reason = None
        try:
            text = json.dumps(schema, sort_keys=True, ensure_ascii=False) if isinstance(schema, dict) else None
        except (TypeError, ValueError) as exc:
            text, reason = None, f"schema is not JSON ({exc})"
        if text is None:
            reason = reason or f"schema is a {type(schema).__name__}, not a JSON object"
        elif len(text) > MAX_SCHEMA_CHARS:
            reason = f"schema of {len(text)} characters exceeds {MAX_SCHEMA_CHARS}"
        elif text in cache:
            grammar, reason = cache[text]
        else:
            try:
                # Whitespace is the model's choice (compact "a":1 or "a": 1, as its training data had it),
                # but bounded per run of whitespace: a weak model otherwise pads with spaces until
                # max_new_tokens. Forcing one separator style pushed a model trained on compact JSON off its
                # distribution at the first key. Keys keep the schema's order.
                grammar = compiler.compile_json_schema(
                    json.dumps(schema, ensure_ascii=False), any_whitespace=True, max_whitespace_cnt=MAX_WHITESPACE_RUN)
            except Exception as exc:  # noqa: BLE001 - xgrammar raises RuntimeError; any failure is counted
                grammar, reason = None, _engine_message(exc)
            cache[text] = (grammar, reason)
        if reason is not None:
            stats.compile_failures += 1
            if len(stats.failure_reasons) < MAX_REASONS:
                stats.failure_reasons.append(f"prompt {index}: {reason}")
            grammar = None
        stats.schema_status.append("compiled" if reason is None else "compile-failed")
        stats.schema_errors.append(reason)
        grammars.append(grammar)
    stats.compile_seconds += time.perf_counter() - start
    return grammars


@torch.no_grad()
def constrained_generate(
    model,
    tokenizer,
    prompt_texts: Sequence[str],
    schemas: Sequence[Mapping[str, Any] | None],
    *,
    max_new_tokens: int,
    greedy: bool = True,
    temperature: float = 1.0,
    top_p: float = 1.0,
    group_size: int = 1,
    batch_size: int = 16,
) -> tuple[list[str], ConstrainedStats]:
    """Generate ``group_size`` completions per prompt with ``schemas[i]`` enforced on prompt ``i``.

    ``prompt_texts`` are rendered prompts (chat template applied, as :func:`.rollout.render_prompt`
    gives). A ``None`` schema, or one that fails to compile, leaves that prompt's completions
    unconstrained; both are counted in the returned :class:`ConstrainedStats`. Completions are cut at
    EOS and decoded without special tokens; rows are grouped by prompt. Seed torch beforehand for
    reproducible sampling. Raises :class:`ConstrainedDecodingUnavailable` when xgrammar is missing.
    """
    if len(prompt_texts) != len(schemas):
        raise ValueError(f"{len(prompt_texts)} prompts but {len(schemas)} schemas")
    xgr = _xgrammar()
    from transformers import LogitsProcessorList

    eos_id = tokenizer.eos_token_id
    vocab_size = _output_vocab_size(model)
    info = xgr.TokenizerInfo.from_huggingface(tokenizer, vocab_size=vocab_size, stop_token_ids=[eos_id])
    compiler = xgr.GrammarCompiler(info)
    stats = ConstrainedStats(prompts=len(prompt_texts))
    grammars = _compile_all(compiler, schemas, stats)

    device = next(model.parameters()).device
    sampling = dict(do_sample=True, temperature=temperature, top_p=top_p, top_k=0) if not greedy else dict(do_sample=False)
    was_training = model.training
    model.eval()
    texts: list[str] = []
    try:
        for start in range(0, len(prompt_texts), batch_size):
            chunk = list(prompt_texts[start : start + batch_size])
            enc = tokenizer(chunk, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=False)
            ids = enc["input_ids"].repeat_interleave(group_size, dim=0).to(device)
            mask = enc["attention_mask"].repeat_interleave(group_size, dim=0).to(device)
            row_grammars = [g for g in grammars[start : start + batch_size] for _ in range(group_size)]
            processor = SchemaMaskProcessor(row_grammars, vocab_size)
            began = time.perf_counter()
            out = model.generate(
                input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens, eos_token_id=eos_id,
                pad_token_id=tokenizer.pad_token_id, logits_processor=LogitsProcessorList([processor]), use_cache=True, **sampling,
            )
            stats.generate_seconds += time.perf_counter() - began
            for row, grammar, rejected in zip(out[:, ids.shape[1] :].cpu(), row_grammars, processor.rejected):
                hits = (row == eos_id).nonzero()
                end = int(hits[0]) if len(hits) else len(row)
                texts.append(tokenizer.decode(row[:end].tolist(), skip_special_tokens=True))
                stats.generated_tokens += min(end + 1, len(row))
                stats.tokens.append(min(end + 1, len(row)))
                stats.truncated.append(not len(hits))
                stats.constrained.append(grammar is not None and not rejected)
    finally:
        model.train(was_training)
    stats.completions = len(texts)
    return texts, stats
