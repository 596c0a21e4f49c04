"""The tiny offline Qwen2 model: loads with plain Auto* classes, tokenizes faithfully, chats, generates,
is reproducible and takes a LoRA adapter."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerFast, Qwen2ForCausalLM

from rlstruct.tiny import TinyModelConfig, build_tiny_model, default_corpus, main

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather for a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]
MESSAGES = [
    {"role": "system", "content": "Reply with JSON only."},
    {"role": "user", "content": "Give me {\"a\": 1}"},
]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny"), default_corpus())


@pytest.fixture(scope="module")
def tokenizer(model_dir: Path):
    return AutoTokenizer.from_pretrained(model_dir)


@pytest.fixture(scope="module")
def model(model_dir: Path):
    return AutoModelForCausalLM.from_pretrained(model_dir).eval()


def _state(directory: Path) -> dict[str, torch.Tensor]:
    return AutoModelForCausalLM.from_pretrained(directory).state_dict()


# ----------------------------------------------------------------------------- loading


def test_saved_directory_is_a_normal_checkpoint(model_dir: Path) -> None:
    names = {p.name for p in model_dir.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "generation_config.json"} <= names
    assert not any(n.endswith(".bin") for n in names)


def test_loads_with_auto_classes(model, tokenizer) -> None:
    assert type(model) is Qwen2ForCausalLM
    cfg = model.config
    defaults = TinyModelConfig()
    assert cfg.model_type == "qwen2"
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads, cfg.num_key_value_heads) == (
        defaults.hidden_size,
        defaults.num_hidden_layers,
        defaults.num_attention_heads,
        defaults.num_key_value_heads,
    )
    assert cfg.vocab_size == len(tokenizer) <= defaults.vocab_size
    assert model.get_input_embeddings().weight.data_ptr() == model.get_output_embeddings().weight.data_ptr()


def test_special_tokens_and_padding(tokenizer) -> None:
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    pad = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    start = tokenizer.convert_tokens_to_ids("<|im_start|>")
    assert len({im_end, pad, start}) == 3
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.eos_token_id == im_end
    assert tokenizer.pad_token == "<|endoftext|>" and tokenizer.pad_token_id == pad
    assert tokenizer.padding_side == "left"
    # special tokens are atomic, even glued to text
    assert tokenizer.encode("<|im_start|>user\nhi<|im_end|>")[0] == start
    assert tokenizer.encode("x<|im_end|>")[-1] == im_end
    batch = tokenizer(["a", "a much longer text here"], padding=True)
    assert batch["input_ids"][0][0] == pad and batch["attention_mask"][0][0] == 0


# ----------------------------------------------------------------------------- round-trip


@pytest.mark.parametrize(
    "text",
    [
        json.dumps({"naïve": "Zoë, 東京 🎉", "n": -12.5e3, "list": [1, 2, {"x": None}]}, ensure_ascii=False),
        '{"ctl": "\x00\x01\x07\x1b\x7f", "c1": "\x80\x9f", "zw": "\u200b\ufeff", "pua": "\ue000\U0010ffff"}',
        '  {"tabs":\t"\t", "crlf": "a\r\nb"}\n\n   ',
        '```json\n{"a": [1.5e300, -0, 1E-7, 12345678901234567890]}\n```',
        '<root attr="1">&lt;x&gt; &amp; \'q\' "dq"</root>',
        "∑ x² ≠ ∞ — «quotes» ‘single’ ¿qué? ÿ",
        b"\xff\xfe raw bytes \xc3\x28".decode("utf-8", errors="replace"),
        b"\xff\xfe raw bytes \xc3\x28".decode("latin-1"),
        "",
        " ",
    ],
)
def test_text_round_trips_exactly(tokenizer, text: str) -> None:
    ids = tokenizer.encode(text)
    assert tokenizer.decode(ids) == text
    assert not set(ids) & set(tokenizer.all_special_ids), "plain text must not produce special tokens"


def test_non_nfc_text_comes_back_nfc(tokenizer) -> None:
    # Qwen2 tokenizers NFC-normalise their input; the tiny one behaves the same.
    text = '{"name": "Zoe\u0301"}'
    assert tokenizer.decode(tokenizer.encode(text)) == unicodedata.normalize("NFC", text)


def test_saved_tokenizer_json_agrees_with_auto_tokenizer(model_dir: Path, tokenizer) -> None:
    # transformers rebuilds Qwen2's normaliser/pre-tokenizer around the saved merges; the verbatim
    # tokenizer.json (what other runtimes read) must tokenize exactly the same way.
    verbatim = PreTrainedTokenizerFast.from_pretrained(model_dir)
    texts = default_corpus(300, seed=11) + ["x = 1234567 + 0.5e-3\r\n\tü", "It's   we'll  DON'T\n\n\n"]
    for text in texts:
        assert verbatim.encode(text) == tokenizer.encode(text), text


def test_tokenizer_learned_structured_merges(tokenizer) -> None:
    text = json.dumps({"name": "Alice", "age": 42, "city": "Paris", "items": [1, 2, 3]})
    ids = tokenizer.encode(text)
    # a byte-per-token tokenizer would need len(text) tokens
    assert len(ids) < 0.7 * len(text.encode())
    assert "name" in tokenizer.convert_ids_to_tokens(ids)


# ----------------------------------------------------------------------------- chat template


def test_chat_template_chatml(tokenizer) -> None:
    rendered = tokenizer.apply_chat_template(MESSAGES, add_generation_prompt=True, tokenize=False)
    assert rendered == (
        "<|im_start|>system\nReply with JSON only.<|im_end|>\n"
        '<|im_start|>user\nGive me {"a": 1}<|im_end|>\n'
        "<|im_start|>assistant\n"
    )
    without = tokenizer.apply_chat_template(MESSAGES, add_generation_prompt=False, tokenize=False)
    assert not without.endswith("<|im_start|>assistant\n")
    assistant = MESSAGES + [{"role": "assistant", "content": '{"a": 1}'}]
    assert tokenizer.apply_chat_template(assistant, tokenize=False).endswith(
        '<|im_start|>assistant\n{"a": 1}<|im_end|>\n'
    )


def test_chat_template_renders_tools_into_system_turn(tokenizer) -> None:
    rendered = tokenizer.apply_chat_template(MESSAGES, tools=TOOLS, add_generation_prompt=True, tokenize=False)
    assert rendered.startswith("<|im_start|>system\nReply with JSON only.")
    system_turn = rendered.split("<|im_end|>")[0]
    assert "# Tools" in system_turn and "<tools>" in system_turn and "</tools>" in system_turn
    tool_lines = system_turn.split("<tools>\n")[1].split("\n</tools>")[0].splitlines()
    assert [json.loads(line) for line in tool_lines] == TOOLS
    assert rendered.count("<|im_start|>system") == 1
    assert rendered.endswith("<|im_start|>assistant\n")

    # no system message of the caller's: the tools get a system turn of their own
    only_user = tokenizer.apply_chat_template(MESSAGES[1:], tools=TOOLS, add_generation_prompt=True, tokenize=False)
    assert only_user.startswith("<|im_start|>system\n# Tools")
    assert "get_weather" in only_user

    plain = tokenizer.apply_chat_template(MESSAGES, add_generation_prompt=True, tokenize=False)
    assert "# Tools" not in plain and "get_weather" not in plain


def test_chat_template_renders_assistant_tool_calls(tokenizer) -> None:
    messages = MESSAGES[1:] + [
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}],
        },
        {"role": "tool", "content": '{"temp": 3}'},
    ]
    rendered = tokenizer.apply_chat_template(messages, tools=TOOLS, tokenize=False)
    call = rendered.split("<tool_call>\n")[1].split("\n</tool_call>")[0]
    assert json.loads(call) == {"name": "get_weather", "arguments": {"city": "Oslo"}}
    assert '<|im_start|>tool\n{"temp": 3}<|im_end|>\n' in rendered


# ----------------------------------------------------------------------------- generation


def test_generate_on_chat_prompt(model, tokenizer) -> None:
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert model.generation_config.eos_token_id == im_end
    assert model.generation_config.pad_token_id == tokenizer.pad_token_id
    prompts = [
        tokenizer.apply_chat_template(MESSAGES, add_generation_prompt=True, tokenize=False),
        tokenizer.apply_chat_template(MESSAGES[1:], tools=TOOLS, add_generation_prompt=True, tokenize=False),
    ]
    batch = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    with torch.no_grad():
        out = model.generate(**batch, max_new_tokens=8, do_sample=False)
    width = batch["input_ids"].shape[1]
    assert out.shape[0] == 2 and width < out.shape[1] <= width + 8
    assert torch.equal(out[:, :width], batch["input_ids"])
    assert int(out[:, width:].max()) < len(tokenizer)
    assert all(isinstance(t, str) for t in tokenizer.batch_decode(out[:, width:], skip_special_tokens=True))


# ----------------------------------------------------------------------------- determinism


def test_same_seed_same_model_other_seed_other_weights(model_dir: Path, tmp_path: Path) -> None:
    rng_before = torch.get_rng_state()
    again = build_tiny_model(tmp_path / "again", default_corpus())
    other = build_tiny_model(tmp_path / "other", default_corpus(), TinyModelConfig(seed=1))
    assert torch.equal(torch.get_rng_state(), rng_before), "building must not disturb the global RNG"

    first, second, third = _state(model_dir), _state(again), _state(other)
    assert first.keys() == second.keys() == third.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert any(not torch.equal(first[k], third[k]) for k in first)

    vocab = AutoTokenizer.from_pretrained(model_dir).get_vocab()
    assert AutoTokenizer.from_pretrained(again).get_vocab() == vocab
    # the tokenizer depends only on the corpus
    assert AutoTokenizer.from_pretrained(other).get_vocab() == vocab
    assert (model_dir / "tokenizer.json").read_bytes() == (again / "tokenizer.json").read_bytes()


def test_default_corpus_is_deterministic_and_mixed() -> None:
    corpus = default_corpus(400, seed=3)
    assert corpus == default_corpus(400, seed=3)
    assert corpus != default_corpus(400, seed=4)
    assert len(corpus) == 400 and all(isinstance(t, str) and t for t in corpus)

    def parses_as_json(text: str) -> bool:
        try:
            json.loads(text)
        except ValueError:
            return False
        return True

    assert sum(parses_as_json(t) for t in corpus) >= 50
    assert sum(t.startswith("<") and not t.startswith("<|") for t in corpus) >= 50
    assert sum("<|im_start|>assistant\n" in t and t.rstrip().endswith("<|im_end|>") for t in corpus) >= 50
    assert sum(t[0].isalpha() and t.rstrip().endswith(".") for t in corpus) >= 50


def test_custom_corpus_extends_vocabulary(tmp_path: Path) -> None:
    corpus = default_corpus(300) + ['{"zyxwvutsrq_field": 1}'] * 50
    out = build_tiny_model(tmp_path / "custom", corpus, TinyModelConfig(vocab_size=600, num_hidden_layers=1))
    tok = AutoTokenizer.from_pretrained(out)
    assert len(tok) <= 600
    assert len(tok.encode("zyxwvutsrq_field")) <= 2


# ----------------------------------------------------------------------------- CLI


def test_cli_builds_with_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli"
    assert main([str(out), "--vocab-size", "512", "--layers", "1", "--hidden", "64", "--seed", "5"]) == 0
    assert str(out) in capsys.readouterr().out
    cfg = json.loads((out / "config.json").read_text())
    assert (cfg["num_hidden_layers"], cfg["hidden_size"]) == (1, 64)
    assert cfg["vocab_size"] <= 512
    assert type(AutoModelForCausalLM.from_pretrained(out)) is Qwen2ForCausalLM


def test_cli_rejects_bad_hidden_size(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        main([str(tmp_path / "bad"), "--hidden", "66"])


# ----------------------------------------------------------------------------- LoRA


def test_lora_adapter_attaches_saves_and_loads(model_dir: Path, tokenizer, tmp_path: Path) -> None:
    from peft import LoraConfig, PeftModel, get_peft_model

    base = AutoModelForCausalLM.from_pretrained(model_dir)
    lora = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    trainable = [n for n, p in lora.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert any("q_proj" in n for n in trainable) and any("v_proj" in n for n in trainable)

    ids = tokenizer(tokenizer.apply_chat_template(MESSAGES, add_generation_prompt=True, tokenize=False), return_tensors="pt")
    loss = lora(**ids, labels=ids["input_ids"]).loss
    loss.backward()
    assert all(p.grad is not None for n, p in lora.named_parameters() if "lora_A" in n or "lora_B" in n)

    # make the adapter non-trivial (lora_B starts at zero), then save and reload it
    with torch.no_grad():
        for n, p in lora.named_parameters():
            if "lora_B" in n:
                p.normal_(std=0.5, generator=torch.Generator().manual_seed(0))
    lora.eval()
    with torch.no_grad():
        expected = lora(**ids).logits
    lora.save_pretrained(tmp_path / "adapter")
    assert (tmp_path / "adapter" / "adapter_model.safetensors").exists()

    reloaded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(model_dir), tmp_path / "adapter").eval()
    plain = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    with torch.no_grad():
        got = reloaded(**ids).logits
        base_logits = plain(**ids).logits
    assert torch.allclose(got, expected, atol=1e-5)
    assert not torch.allclose(got, base_logits, atol=1e-3)
