"""Build a tiny Qwen2-shaped causal LM with a locally trained tokenizer, entirely offline.

The result is a normal ``from_pretrained`` directory (``config.json``, ``model.safetensors``,
``generation_config.json``, ``tokenizer.json``, ``tokenizer_config.json`` and the chat template), so
everything that accepts a Hugging Face model name also accepts it. It is meant for tests, the CPU
demo and smoke runs: the weights are random, the tokenizer is real.

Usage::

    python -m rlstruct.tiny OUT_DIR [--vocab-size N] [--layers N] [--hidden N] [--seed N]
"""

from __future__ import annotations

import argparse
import json
import random
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "CHAT_TEMPLATE",
    "EOS_TOKEN",
    "PAD_TOKEN",
    "SPECIAL_TOKENS",
    "START_TOKEN",
    "TinyModelConfig",
    "build_tiny_model",
    "default_corpus",
    "main",
]

PAD_TOKEN = "<|endoftext|>"
START_TOKEN = "<|im_start|>"
EOS_TOKEN = "<|im_end|>"
SPECIAL_TOKENS: tuple[str, ...] = (PAD_TOKEN, START_TOKEN, EOS_TOKEN)
_SPECIAL_RE = re.compile("|".join(re.escape(t) for t in SPECIAL_TOKENS))

# ChatML. With ``tools`` the system turn gets a "# Tools" section listing one JSON schema per line
# (merged into the caller's system message when the conversation starts with one). Assistant
# ``tool_calls`` are rendered as <tool_call>{"name": ..., "arguments": ...}</tool_call> blocks.
CHAT_TEMPLATE = (
    "{%- macro render_content(content) -%}"
    "{%- if content is string -%}{{- content -}}"
    "{%- elif content is iterable and content is not mapping -%}"
    "{%- for part in content -%}{%- if part.text is defined -%}{{- part.text -}}{%- endif -%}{%- endfor -%}"
    "{%- elif content is not none -%}{{- content -}}"
    "{%- endif -%}"
    "{%- endmacro -%}"
    "{%- set merge_system = tools and messages and messages[0].role == 'system' -%}"
    "{%- if tools -%}"
    "{{- '<|im_start|>system\\n' -}}"
    "{%- if merge_system -%}{{- render_content(messages[0].content) + '\\n\\n' -}}{%- endif -%}"
    "{{- '# Tools\\n\\nTo call a function, reply with a JSON object inside <tool_call></tool_call> tags: "
    '{\"name\": <function-name>, \"arguments\": <arguments-object>}.\\n<tools>\' -}}'
    "{%- for tool in tools -%}{{- '\\n' + (tool | tojson) -}}{%- endfor -%}"
    "{{- '\\n</tools><|im_end|>\\n' -}}"
    "{%- endif -%}"
    "{%- for message in messages -%}"
    "{%- if not (merge_system and loop.first) -%}"
    "{{- '<|im_start|>' + message.role + '\\n' -}}"
    "{{- render_content(message.content) -}}"
    "{%- if message.tool_calls -%}"
    "{%- for call in message.tool_calls -%}"
    "{%- set fn = call.function if call.function is defined else call -%}"
    "{%- if message.content or not loop.first -%}{{- '\\n' -}}{%- endif -%}"
    "{%- set args = fn.arguments if fn.arguments is string else (fn.arguments | tojson) -%}"
    "{{- '<tool_call>\\n{\"name\": ' + (fn.name | tojson) + ', \"arguments\": ' + args + '}\\n</tool_call>' -}}"
    "{%- endfor -%}"
    "{%- endif -%}"
    "{{- '<|im_end|>\\n' -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)


@dataclass
class TinyModelConfig:
    """Shape of the tiny model and of its tokenizer."""

    vocab_size: int = 1024
    """Largest tokenizer vocabulary, special tokens included (BPE stops early when the corpus runs out of
    merges seen at least twice); the embedding matrix has exactly one row per token."""
    hidden_size: int = 128
    """Width of the residual stream."""
    intermediate_size: int = 344
    """Width of the SwiGLU MLP."""
    num_hidden_layers: int = 2
    """Number of decoder blocks."""
    num_attention_heads: int = 4
    """Query heads per layer (``hidden_size`` must be divisible by it)."""
    num_key_value_heads: int = 2
    """Key/value heads per layer (grouped-query attention; must divide ``num_attention_heads``)."""
    max_position_embeddings: int = 2048
    """Longest sequence the model (and the tokenizer's ``model_max_length``) accepts. Rotary positions
    have no weights, so this costs nothing; 2048 holds the longest built-in prompt (function-calls and
    xml-records, about 1,200 tokens) plus a 560-token completion."""
    seed: int = 0
    """Seed for the weight initialisation (the tokenizer depends only on the corpus)."""
    tie_word_embeddings: bool = True
    """Share the input embedding matrix with the output head."""


def config_for_width(hidden_size: int, num_hidden_layers: int = 2, **overrides: int) -> TinyModelConfig:
    """A :class:`TinyModelConfig` of the given width and depth, with a SwiGLU MLP of 8/3 × the width
    rounded down to a multiple of 8. Raises ``ValueError`` when the width does not split into heads."""
    heads = overrides.get("num_attention_heads", TinyModelConfig.num_attention_heads)
    if hidden_size < heads or hidden_size % heads:
        raise ValueError(f"hidden size {hidden_size} must be a positive multiple of {heads} (attention heads)")
    return TinyModelConfig(
        hidden_size=hidden_size,
        intermediate_size=max(8, hidden_size * 8 // 3 // 8 * 8),
        num_hidden_layers=num_hidden_layers,
        **overrides,
    )


# --------------------------------------------------------------------------------------------
# Corpus
# --------------------------------------------------------------------------------------------

_WORDS = (
    "name age city country price quantity total items order customer email phone status date "
    "title author year rating score value count result answer reason id type label level color "
    "size weight height width length unit temperature speed distance time start end address "
    "street zip code active enabled tags notes description summary category product user account"
).split()
_NAMES = ("Alice", "Bob", "Chen", "Dara", "Emeka", "Fatima", "Gita", "Hugo", "Ines", "José", "Kenji", "Lena", "Mira", "Noor")
_CITIES = ("Paris", "Lagos", "Tokyo", "Lima", "Oslo", "Cairo", "Mumbai", "Quito", "Berlin", "Seoul", "München", "São Paulo")
_VERBS = ("Extract", "Return", "List", "Summarize", "Convert", "Describe", "Classify", "Compute", "Format", "Find")
_OBJECTS = (
    "the fields below", "the order details", "the user profile", "the answer", "each item", "the total price",
    "the main entities", "the dates mentioned", "the product list", "the result", "the record", "the invoice",
)
_FORMATS = ("as JSON", "as a JSON object", "as XML", "as a JSON array", "in one line", "using the schema", "as plain text")
_SENTENCES = (
    "The quick brown fox jumps over the lazy dog.",
    "Please answer with valid JSON only.",
    "Think step by step, then give the final answer.",
    "If a value is unknown, use null.",
    "Do not add any explanation outside the object.",
    "The meeting is on Monday at 10:30 in room 4B.",
    "She bought 3 apples and 2 oranges for $4.50.",
    "Call the function with the right arguments.",
    "Output must match the schema exactly.",
    "Numbers like 3.14, -42 and 1e-3 are allowed.",
)


def _json_value(rng: random.Random, depth: int) -> object:
    kind = rng.random()
    if depth < 2 and kind < 0.15:
        return {rng.choice(_WORDS): _json_value(rng, depth + 1) for _ in range(rng.randint(1, 3))}
    if depth < 2 and kind < 0.3:
        return [_json_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    if kind < 0.5:
        return rng.randint(-1000, 100000)
    if kind < 0.6:
        return round(rng.uniform(-500, 500), rng.randint(1, 3))
    if kind < 0.68:
        return rng.choice((True, False, None))
    return rng.choice((rng.choice(_NAMES), rng.choice(_CITIES), rng.choice(_WORDS), rng.choice(_SENTENCES)))


def _json_text(rng: random.Random) -> str:
    if rng.random() < 0.2:
        value: object = [_json_value(rng, 1) for _ in range(rng.randint(1, 5))]
    else:
        value = {rng.choice(_WORDS): _json_value(rng, 1) for _ in range(rng.randint(1, 6))}
    style = rng.random()
    if style < 0.5:
        return json.dumps(value, ensure_ascii=False)
    if style < 0.8:
        return json.dumps(value, ensure_ascii=False, indent=2)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _xml_text(rng: random.Random) -> str:
    root = rng.choice(_WORDS)
    parts = [f"<{root}>"]
    for _ in range(rng.randint(1, 4)):
        tag = rng.choice(_WORDS)
        value = rng.choice((str(rng.randint(0, 999)), rng.choice(_NAMES), rng.choice(_CITIES), rng.choice(_WORDS)))
        if rng.random() < 0.3:
            parts.append(f'  <{tag} id="{rng.randint(1, 99)}">{value}</{tag}>')
        else:
            parts.append(f"  <{tag}>{value}</{tag}>")
    parts.append(f"</{root}>")
    return "\n".join(parts) if rng.random() < 0.6 else "".join(p.strip() for p in parts)


def _instruction(rng: random.Random) -> str:
    text = f"{rng.choice(_VERBS)} {rng.choice(_OBJECTS)} {rng.choice(_FORMATS)}."
    if rng.random() < 0.6:
        text += " " + rng.choice(_SENTENCES)
    if rng.random() < 0.4:
        text += f" {rng.choice(_NAMES)} lives in {rng.choice(_CITIES)} and is {rng.randint(18, 90)} years old."
    return text


def _chatml(rng: random.Random) -> str:
    answer = _json_text(rng) if rng.random() < 0.7 else _xml_text(rng)
    turns = []
    if rng.random() < 0.6:
        turns.append(f"{START_TOKEN}system\nYou are a helpful assistant that replies with structured output.{EOS_TOKEN}")
    turns.append(f"{START_TOKEN}user\n{_instruction(rng)}{EOS_TOKEN}")
    turns.append(f"{START_TOKEN}assistant\n{answer}{EOS_TOKEN}")
    return "\n".join(turns) + "\n"


def default_corpus(n: int = 2000, seed: int = 0) -> list[str]:
    """Return ``n`` deterministic offline training texts for the tokenizer.

    The mix is roughly a quarter each of English instruction-like sentences, JSON objects/arrays
    (compact, spaced and indented, varied keys and numbers), XML snippets and ChatML-formatted
    exchanges, so that the tokenizer learns merges for structured output. It depends on no plugin;
    callers may append task-specific text.
    """
    rng = random.Random(f"{seed}:tiny-corpus")
    makers = (_instruction, _json_text, _xml_text, _chatml)
    return [makers[i % len(makers)](rng) for i in range(n)]


# --------------------------------------------------------------------------------------------
# Tokenizer and model
# --------------------------------------------------------------------------------------------


def _pieces_without_special_tokens(corpus: Iterable[str]) -> Iterator[str]:
    """Split special tokens out of the corpus so that BPE does not learn merges for their spelling."""
    for text in corpus:
        for piece in _SPECIAL_RE.split(text):
            if piece:
                yield piece


def _train_tokenizer(corpus: Iterable[str], vocab_size: int):  # -> tokenizers.Tokenizer
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    # The exact Qwen2 pipeline (NFC, Qwen2's split pattern with one digit per piece, byte-level
    # symbols). transformers rebuilds this pipeline around our vocab/merges whenever it loads a
    # qwen2 checkpoint, so training with anything else would make the loaded tokenizer disagree
    # with the merges. Byte-level symbols cover every byte: any NFC string round-trips exactly.
    tokenizer = Tokenizer(models.BPE())
    tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_pieces_without_special_tokens(corpus), trainer=trainer)
    return tokenizer


def _wrap_tokenizer(tokenizer, config: TinyModelConfig):  # -> transformers.PreTrainedTokenizerFast
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        additional_special_tokens=[START_TOKEN],
        padding_side="left",
        model_max_length=config.max_position_embeddings,
        clean_up_tokenization_spaces=False,
        chat_template=CHAT_TEMPLATE,
    )


def build_tiny_model(
    out_dir: str | Path,
    corpus: Iterable[str],
    config: TinyModelConfig | None = None,
) -> Path:
    """Train a byte-level BPE tokenizer on ``corpus``, create a randomly initialised
    ``Qwen2ForCausalLM`` and save both into ``out_dir`` (created if missing).

    Same corpus and config give an identical vocabulary and identical weights. The global torch
    RNG state is left untouched. Returns ``out_dir`` as a ``Path``.
    """
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    config = config or TinyModelConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    tokenizer = _wrap_tokenizer(_train_tokenizer(corpus, config.vocab_size), config)
    pad_id = tokenizer.convert_tokens_to_ids(PAD_TOKEN)
    eos_id = tokenizer.convert_tokens_to_ids(EOS_TOKEN)

    model_config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size,
        num_hidden_layers=config.num_hidden_layers,
        num_attention_heads=config.num_attention_heads,
        num_key_value_heads=config.num_key_value_heads,
        max_position_embeddings=config.max_position_embeddings,
        max_window_layers=config.num_hidden_layers,
        tie_word_embeddings=config.tie_word_embeddings,
        bos_token_id=pad_id,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = Qwen2ForCausalLM(model_config)
    model.generation_config = GenerationConfig(bos_token_id=pad_id, eos_token_id=eos_id, pad_token_id=pad_id)

    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: build the tiny model from :func:`default_corpus` into OUT_DIR."""
    defaults = TinyModelConfig()
    parser = argparse.ArgumentParser(prog="python -m rlstruct.tiny", description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", help="directory to write the model and tokenizer into")
    parser.add_argument("--vocab-size", type=int, default=defaults.vocab_size)
    parser.add_argument("--layers", type=int, default=defaults.num_hidden_layers)
    parser.add_argument("--hidden", type=int, default=defaults.hidden_size)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    args = parser.parse_args(argv)
    try:
        config = config_for_width(args.hidden, args.layers, vocab_size=args.vocab_size, seed=args.seed)
    except ValueError as exc:
        parser.error(f"--hidden: {exc}")
    out = build_tiny_model(args.out_dir, default_corpus(), config)
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
