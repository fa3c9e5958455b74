"""Tokenizer, chat template, assistant masks and the embedded pydoc corpus."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from minimind_hf.data.embedded.corpus import (
    MAX_DOCUMENT_CHARS,
    chunk_text,
    fingerprint,
    pretrain_split,
    pydoc_documents,
)
from minimind_hf.tokenizer import (
    CHAT_TEMPLATE,
    IMAGE_TOKEN,
    SPECIAL_TOKENS,
    TEXT_MARKUP_TOKENS,
    default_tokenizer_path,
    load_tokenizer,
    train_tokenizer,
)

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "train_tokenizer.py"
EMPTY_THINK = "<think>\n\n</think>\n\n"


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer()


def render(tok, messages, **kwargs):
    return tok.apply_chat_template(messages, tokenize=False, **kwargs)


def supervised_spans(tok, messages, **kwargs):
    """Decode each run of assistant_masks == 1 into a string."""
    out = tok.apply_chat_template(messages, return_dict=True, return_assistant_tokens_mask=True, **kwargs)
    ids, mask = out["input_ids"], out["assistant_masks"]
    assert len(ids) == len(mask)
    spans, run = [], []
    for token_id, m in zip(ids, mask):
        if m:
            run.append(token_id)
        elif run:
            spans.append(run)
            run = []
    if run:
        spans.append(run)
    return ids, mask, [tok.decode(s) for s in spans]


# --- special tokens -----------------------------------------------------------------------


def test_special_token_ids_are_fixed(tok):
    assert len(SPECIAL_TOKENS) == 16 and len(set(SPECIAL_TOKENS)) == 16
    assert SPECIAL_TOKENS[:3] == ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    assert tok.convert_tokens_to_ids(SPECIAL_TOKENS) == list(range(16))
    assert (tok.pad_token_id, tok.unk_token_id, tok.bos_token_id, tok.eos_token_id) == (0, 0, 1, 2)
    assert (tok.pad_token, tok.bos_token, tok.eos_token) == ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
    assert tok.image_token == IMAGE_TOKEN and tok.image_token_id == 3
    assert tok.model_max_length == 32768
    # each special token is one token, even glued to text, and plain text gets no bos/eos added
    for i, token in enumerate(SPECIAL_TOKENS):
        assert tok.encode(f"a{token}b")[1] == i
    assert tok.encode("hello")[0] not in range(16)


def test_markup_tokens_survive_skip_special_tokens(tok):
    ids = tok.encode("<|im_start|><|reserved_0|><think>r</think><tool_call>c</tool_call><|image_pad|><|im_end|>")
    assert tok.decode(ids, skip_special_tokens=True) == "<think>r</think><tool_call>c</tool_call>"
    assert all(not tok.added_tokens_decoder[tok.convert_tokens_to_ids(t)].special for t in TEXT_MARKUP_TOKENS)


ROUND_TRIP = {
    "english": "The quick brown fox jumps over the lazy dog. It's 3.14!",
    "chinese": "你好，世界！今天天气很好，我们去公园散步吧。",
    "emoji": "I ❤️ tokenizers 🙂👍🏽 — ok? 🇫🇷",
    "code": 'def f(x):\n\tif x:\n        return {"a": [1, 2]}  # tab & spaces\n\n\n    pass\r\n',
    "mixed": "  leading spaces, 中文 and English 123456 ½ ∑ \x00 \\n trailing  \n",
}


@pytest.mark.parametrize("name", sorted(ROUND_TRIP))
def test_round_trip(tok, name):
    text = ROUND_TRIP[name]
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    assert tok.unk_token_id not in ids  # byte-level: nothing is unknown


def test_pre_tokenizer_isolates_newlines_and_digits(tok):
    tokens = tok.convert_ids_to_tokens(tok.encode("a\n\n    b 2024"))
    assert tokens.count("Ċ") == 2  # "\n" never merges with its neighbours
    assert tokens[-4:] == ["2", "0", "2", "4"]


# --- training: determinism, shipped artifact ---------------------------------------------


def test_training_is_deterministic(tmp_path):
    docs = pydoc_documents()[:40]
    train_tokenizer(docs, tmp_path / "a", vocab_size=800)
    train_tokenizer(iter(docs), tmp_path / "b", vocab_size=800)  # any iterable
    a, b = (tmp_path / d / "tokenizer.json" for d in "ab")
    assert a.read_bytes() == b.read_bytes()
    assert len(json.loads(a.read_text())["model"]["vocab"]) == 800
    with pytest.raises(ValueError, match="vocab_size"):
        train_tokenizer(docs, vocab_size=100)


def test_shipped_tokenizer_equals_regeneration(tmp_path):
    shipped = default_tokenizer_path()
    info = json.loads((shipped / "training_info.json").read_text())
    if fingerprint(pretrain_split()[0]) != info["sha256"]:
        pytest.skip(f"this Python's pydoc_data differs from the one the shipped tokenizer used ({info['python']})")
    subprocess.run([sys.executable, str(SCRIPT), "--output-dir", str(tmp_path)], check=True, capture_output=True)
    fresh, ours = (json.loads((d / "tokenizer.json").read_text()) for d in (tmp_path, shipped))
    assert fresh["model"]["vocab"] == ours["model"]["vocab"]
    assert fresh["model"]["merges"] == ours["model"]["merges"]
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        assert (tmp_path / name).read_bytes() == (shipped / name).read_bytes(), name


def test_shipped_template_is_current(tok):
    assert tok.chat_template == CHAT_TEMPLATE  # edit CHAT_TEMPLATE -> rerun scripts/train_tokenizer.py
    assert len(tok) == 6391  # vocab 6400 is an upper bound: the pydoc corpus runs out of frequency-2 pairs


def test_cli_reads_jsonl_and_txt_and_names_bad_lines(tmp_path):
    from minimind_hf.cli.tokenizer import main

    (tmp_path / "a.jsonl").write_text("\n".join(json.dumps({"text": d}) for d in pydoc_documents()[:20]) + "\n")
    (tmp_path / "b.txt").write_text("\n\n".join(pydoc_documents()[20:30]))
    out = tmp_path / "tok"
    inputs = [str(tmp_path / "a.jsonl"), str(tmp_path / "b.txt")]
    main(["--output-dir", str(out), "--vocab-size", "500", "--input", *inputs])
    assert len(load_tokenizer(out)) == 500
    assert json.loads((out / "training_info.json").read_text())["documents"] >= 21
    (tmp_path / "bad.jsonl").write_text('{"text": "ok"}\n{"txt": "oops"}\n')
    with pytest.raises(SystemExit, match=r"bad\.jsonl:2: .*'text'"):
        main(["--output-dir", str(out), "--input", str(tmp_path / "bad.jsonl")])


# --- chat template: exact strings ----------------------------------------------------------


def test_template_system_user_assistant(tok):
    messages = [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Hi!"},
        {"role": "assistant", "content": "Hello there!"},
    ]
    assert render(tok, messages) == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\nHi!<|im_end|>\n"
        f"<|im_start|>assistant\n{EMPTY_THINK}Hello there!<|im_end|>\n"
    )


def test_template_multi_turn_without_system_prompt(tok):
    messages = [
        {"role": "user", "content": "1+1?"},
        {"role": "assistant", "content": "2"},
        {"role": "user", "content": "你好"},
        {"role": "assistant", "content": "\n\n你好！"},  # leading newlines of a reply are dropped
    ]
    assert render(tok, messages) == (
        "<|im_start|>user\n1+1?<|im_end|>\n"
        f"<|im_start|>assistant\n{EMPTY_THINK}2<|im_end|>\n"
        "<|im_start|>user\n你好<|im_end|>\n"
        f"<|im_start|>assistant\n{EMPTY_THINK}你好！<|im_end|>\n"
    )


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
TOOL_CHAT = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Weather and time in Paris?"},
    {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}},
            {"name": "get_time", "arguments": '{"tz":"CET"}'},  # MiniMind style: JSON string, kept verbatim
        ],
    },
    {"role": "tool", "content": '{"temp": 21}'},
    {"role": "tool", "content": "12:00"},
    {"role": "assistant", "content": "21°C, noon."},
]
TOOL_CALLS_TEXT = (
    '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n'
    '<tool_call>\n{"name": "get_time", "arguments": {"tz":"CET"}}\n</tool_call>'
)


def test_template_tools_calls_and_grouped_responses(tok):
    assert render(tok, TOOL_CHAT, tools=[WEATHER_TOOL]) == (
        "<|im_start|>system\nBe brief.\n\n# Tools\n\n"
        "You can call the functions whose JSON signatures are listed inside <tools></tools>:\n<tools>\n"
        + json.dumps(WEATHER_TOOL, ensure_ascii=False)
        + "\n</tools>\n\nTo call a function, write one JSON object per call inside <tool_call></tool_call> tags:\n"
        '<tool_call>\n{"name": <function-name>, "arguments": <arguments-json-object>}\n</tool_call><|im_end|>\n'
        "<|im_start|>user\nWeather and time in Paris?<|im_end|>\n"
        f"<|im_start|>assistant\n{EMPTY_THINK}{TOOL_CALLS_TEXT}<|im_end|>\n"
        '<|im_start|>user\n<tool_response>\n{"temp": 21}\n</tool_response>\n'
        "<tool_response>\n12:00\n</tool_response><|im_end|>\n"
        f"<|im_start|>assistant\n{EMPTY_THINK}21°C, noon.<|im_end|>\n"
    )
    # without a system message the tools still get a system turn; content before a call gets a newline
    call = TOOL_CHAT[2]["tool_calls"][:1]
    with_text = [
        {"role": "user", "content": "x"},
        {"role": "assistant", "content": "Let me check.", "tool_calls": call},
    ]
    text = render(tok, with_text, tools=[WEATHER_TOOL])
    assert text.startswith("<|im_start|>system\n# Tools\n\n")
    assert text.endswith(f"{EMPTY_THINK}Let me check.\n" + TOOL_CALLS_TEXT.split("\n<tool_call>")[0] + "<|im_end|>\n")


def test_template_reasoning(tok):
    user = {"role": "user", "content": "Is 7 prime?"}
    expected = (
        "<|im_start|>user\nIs 7 prime?<|im_end|>\n"
        "<|im_start|>assistant\n<think>\n7 has no divisors.\n</think>\n\nYes.<|im_end|>\n"
    )
    field = {"role": "assistant", "content": "Yes.", "reasoning_content": "7 has no divisors."}
    inline = {"role": "assistant", "content": "<think>\n7 has no divisors.\n</think>\n\nYes."}
    empty = {"role": "assistant", "content": "Yes.", "reasoning_content": ""}
    assert render(tok, [user, field]) == expected
    assert render(tok, [user, inline]) == expected
    assert render(tok, [user, empty]).endswith(f"{EMPTY_THINK}Yes.<|im_end|>\n")


def test_template_generation_prompt_and_thinking_switch(tok):
    chat = [{"role": "user", "content": "Hi"}]
    base = "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    assert render(tok, chat, add_generation_prompt=True) == base + EMPTY_THINK  # thinking off by default
    assert render(tok, chat, add_generation_prompt=True, open_thinking=False) == base + EMPTY_THINK
    assert render(tok, chat, add_generation_prompt=True, open_thinking=True) == base
    assert render(tok, chat, add_generation_prompt=True, enable_thinking=True) == base
    assert render(tok, chat, add_generation_prompt=True, enable_thinking=False) == base + EMPTY_THINK
    assert render(tok, chat, add_generation_prompt=True, open_thinking=True, enable_thinking=False) == base
    assert render(tok, chat) == "<|im_start|>user\nHi<|im_end|>\n"


def test_template_image_blocks_and_unknown_role(tok):
    chat = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is this?"}]}]
    image = "<|vision_start|><|image_pad|><|vision_end|>"
    assert render(tok, chat) == f"<|im_start|>user\n{image}What is this?<|im_end|>\n"
    with pytest.raises(Exception, match="Unknown message role: robot"):
        render(tok, [{"role": "robot", "content": "beep"}])


# --- assistant masks -----------------------------------------------------------------------


def test_assistant_masks_are_token_exact(tok):
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi!"},
        {"role": "assistant", "content": "Hello there!"},
        *TOOL_CHAT[1:5],
        {"role": "assistant", "content": "21°C, noon.", "reasoning_content": "Combine both results."},
        {"role": "user", "content": "  Thanks 😀"},
        {"role": "assistant", "content": "\tYou're welcome 😀\n"},
    ]
    ids, mask, spans = supervised_spans(tok, messages, tools=[WEATHER_TOOL])
    expected = [
        "Hello there!<|im_end|>",
        TOOL_CALLS_TEXT + "<|im_end|>",
        "<think>\nCombine both results.\n</think>\n\n21°C, noon.<|im_end|>",
        "\tYou're welcome 😀\n<|im_end|>",
    ]
    assert spans == expected
    # token-exact: the masked ids are exactly the span's own encoding, nothing straddles the boundary
    assert sum(mask) == sum(len(tok.encode(s)) for s in expected)
    # the prompt side is all zeros: every header, the empty think blocks, system/user/tool turns
    unmasked = tok.decode([t for t, m in zip(ids, mask) if not m])
    assert unmasked.count("<|im_start|>assistant\n") == 4  # headers
    assert unmasked.count("<|im_end|>") == 5  # system, 3 user turns, 1 grouped tool turn; none of the assistant's
    for prompt_text in ("Be brief.", "Hi!", "<tool_response>", "Thanks 😀", EMPTY_THINK):
        assert prompt_text in unmasked
    assert mask[ids.index(tok.convert_tokens_to_ids("<|im_start|>"))] == 0
    assert all(m == 0 for t, m in zip(ids, mask) if t == tok.bos_token_id)


@pytest.mark.parametrize("thinking", [False, True])
def test_generation_prompt_is_the_exact_prefix_of_training_text(tok, thinking):
    # what the model sees at inference == the tokens before the supervised span in training
    reply = {"role": "assistant", "content": "Sure: 12 + 30 = 42."}
    if thinking:
        reply["reasoning_content"] = "Add the tens."
    history = [
        {"role": "user", "content": "Add 12 and 30"},
        {"role": "assistant", "content": "Ok"},
        {"role": "user", "content": "Now?"},
    ]
    prompt_ids = tok.apply_chat_template(history, add_generation_prompt=True, open_thinking=thinking)["input_ids"]
    ids, mask, _ = supervised_spans(tok, history + [reply])
    assert ids[: len(prompt_ids)] == prompt_ids
    assert mask[len(prompt_ids) - 1] == 0 and all(mask[len(prompt_ids) :][:-1])  # all but the final "\n"
    assert mask[-1] == 0 and tok.decode(ids[-2:]) == "<|im_end|>\n"


# --- embedded corpus -----------------------------------------------------------------------


def test_pydoc_documents():
    docs = pydoc_documents()
    assert docs == pydoc_documents()  # deterministic
    assert len(docs) > 200 and sum(map(len, docs)) > 400_000
    assert all(d == d.strip() and d for d in docs)
    assert max(map(len, docs)) <= MAX_DOCUMENT_CHARS
    assert min(map(len, docs)) < 500  # a realistic spread of lengths, not fixed-size blocks
    assert chunk_text("a\n\nb\n \nc", max_chars=4) == ["a\n\nb", "c"]
    assert chunk_text("x" * 3 + "\n" + "y" * 3, max_chars=4) == ["xxx", "yyy"]  # long paragraph: cut at lines


def test_pretrain_split():
    train, held_out = pretrain_split()
    assert (train, held_out) == pretrain_split()
    assert not set(train) & set(held_out)
    assert sorted(train + held_out) == sorted(pydoc_documents())
    assert len(held_out) == round(0.05 * len(train + held_out))
    assert pretrain_split(seed=1)[1] != held_out
    assert pretrain_split(held_out_fraction=0.0)[1] == []
