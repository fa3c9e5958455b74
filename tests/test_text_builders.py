"""Text builders (minimind_hf.data.text): exact SFT label masks, pretraining rows, packing,
the collator (incl. no attention across packed documents) and the DPO format for TRL."""

import itertools
import json
from types import SimpleNamespace

import datasets
import pytest
import torch

from minimind_hf import MiniMindForCausalLM, preset_config
from minimind_hf.data import ValidationReport, features, load_records, normalise_record
from minimind_hf.data.text import (
    DEFAULT_SYSTEM_PROMPTS,
    EMPTY_THINK,
    NO_SUPERVISED_TOKENS,
    CausalLMCollator,
    SFTOptions,
    build_dpo_dataset,
    build_pretrain_dataset,
    build_sft_dataset,
    has_generation_markers,
    pack,
)
from minimind_hf.tokenizer import load_tokenizer

datasets.disable_progress_bars()

# The brief's plain ChatML (MiniMind's own style): no {% generation %} markers.
PLAIN_CHATML = (
    "{% for m in messages %}<|im_start|>{{m.role}}\n{{m.content}}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
# MiniMind-3 style without markers: reasoning and tool calls inside the assistant turn, and an
# empty think block before answers without reasoning (supervised there: the header rule covers it).
MINIMIND_LIKE = (
    "{% for m in messages %}"
    "{% if m.role == 'assistant' %}<|im_start|>assistant\n"
    "{% if m.reasoning_content %}<think>\n{{ m.reasoning_content }}\n</think>\n\n"
    "{% else %}<think>\n\n</think>\n\n{% endif %}"
    "{{ m.content }}"
    "{% for c in m.tool_calls or [] %}<tool_call>\n{{ c | tojson }}\n</tool_call>{% endfor %}"
    "<|im_end|>\n"
    "{% else %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

TOOL = {"type": "function", "function": {"name": "add", "description": "Add two numbers"}}
TOOLS_SYSTEM = (
    "<|im_start|>system\nYou are helpful.\n\n# Tools\n\n"
    "You can call the functions whose JSON signatures are listed inside <tools></tools>:\n<tools>\n"
    '{"type": "function", "function": {"name": "add", "description": "Add two numbers"}}\n</tools>\n\n'
    "To call a function, write one JSON object per call inside <tool_call></tool_call> tags:\n"
    '<tool_call>\n{"name": <function-name>, "arguments": <arguments-json-object>}\n</tool_call><|im_end|>\n'
)

PLAIN_TURNS = {
    "conversations": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Bye"},
        {"role": "assistant", "content": "Goodbye."},
    ]
}
# A tool call with its response, a plain answer and a reasoning answer, in MiniMind's data format
# (tool schemas on the system message, reasoning inline in the content).
AGENT_TURNS = {
    "conversations": [
        {"role": "system", "content": "You are helpful.", "tools": [TOOL]},
        {"role": "user", "content": "What is 1+2?"},
        {"role": "assistant", "content": "", "tool_calls": [{"name": "add", "arguments": {"a": 1, "b": 2}}]},
        {"role": "tool", "content": "3"},
        {"role": "assistant", "content": "It is 3."},
        {"role": "user", "content": "Think: 2*3?"},
        {"role": "assistant", "content": "<think>\n2 times 3 is 6.\n</think>\n\nThe answer is 6."},
    ]
}
CALL_TEXT = '<tool_call>\n{"name": "add", "arguments": {"a": 1, "b": 2}}\n</tool_call>'


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer()


@pytest.fixture(scope="module")
def plain_tokenizer():
    tok = load_tokenizer()
    tok.chat_template = PLAIN_CHATML
    return tok


@pytest.fixture(scope="module")
def minimind_like_tokenizer():
    tok = load_tokenizer()
    tok.chat_template = MINIMIND_LIKE
    return tok


def sft_dataset(*raw_records):
    return datasets.Dataset.from_list([normalise_record(r, "sft") for r in raw_records], features=features("sft"))


def chat(*pairs, system=None):
    """A raw record from (user, assistant) pairs."""
    turns = [{"role": "system", "content": system}] if system else []
    for user, assistant in pairs:
        turns += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    return {"conversations": turns}


def segments(tokenizer, row):
    """[(supervised?, decoded text), ...] per contiguous run: the whole mask, readable."""
    ids, labels = row["input_ids"], row["labels"]
    assert len(ids) == len(labels)
    assert all(label in (-100, token) for token, label in zip(ids, labels)), "labels must be input_ids or -100"
    return [
        (supervised, tokenizer.decode([token for token, _ in run]))
        for supervised, run in itertools.groupby(zip(ids, labels), key=lambda pair: pair[1] != -100)
    ]


def supervised(tokenizer, row):
    return [text for is_supervised, text in segments(tokenizer, row) if is_supervised]


def build(tokenizer, *raw_records, **options):
    report = ValidationReport("sft")
    return build_sft_dataset(sft_dataset(*raw_records), tokenizer, SFTOptions(**options), report), report


# ----------------------------------------------------------------------------- exact masks, our template


def test_our_template_has_generation_markers(tokenizer, plain_tokenizer):
    assert has_generation_markers(tokenizer)
    assert not has_generation_markers(plain_tokenizer)


def test_exact_mask_system_and_plain_turns(tokenizer):
    (row,), report = build(tokenizer, PLAIN_TURNS)
    empty_think_header = "<|im_start|>assistant\n" + EMPTY_THINK
    assert segments(tokenizer, row) == [
        (False, "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n" + empty_think_header),
        (True, "Hello!<|im_end|>"),
        (False, "\n<|im_start|>user\nBye<|im_end|>\n" + empty_think_header),
        (True, "Goodbye.<|im_end|>"),
        (False, "\n"),
    ]
    assert report.supervised_tokens == sum(label != -100 for label in row["labels"]) > 0
    assert report.truncated == 0 and not report.dropped


def test_exact_mask_tool_call_tool_response_and_thinking(tokenizer):
    (row,), report = build(tokenizer, AGENT_TURNS)
    empty_think_header = "<|im_start|>assistant\n" + EMPTY_THINK
    assert segments(tokenizer, row) == [
        (False, TOOLS_SYSTEM + "<|im_start|>user\nWhat is 1+2?<|im_end|>\n" + empty_think_header),
        (True, CALL_TEXT + "<|im_end|>"),
        (False, "\n<|im_start|>user\n<tool_response>\n3\n</tool_response><|im_end|>\n" + empty_think_header),
        (True, "It is 3.<|im_end|>"),
        (False, "\n<|im_start|>user\nThink: 2*3?<|im_end|>\n<|im_start|>assistant\n"),
        (True, "<think>\n2 times 3 is 6.\n</think>\n\nThe answer is 6.<|im_end|>"),
        (False, "\n"),
    ]
    assert report.supervised_tokens == sum(label != -100 for label in row["labels"])


def test_last_turn_only(tokenizer):
    (row,), _ = build(tokenizer, AGENT_TURNS, last_turn_only=True)
    assert supervised(tokenizer, row) == ["<think>\n2 times 3 is 6.\n</think>\n\nThe answer is 6.<|im_end|>"]
    (full,), _ = build(tokenizer, AGENT_TURNS)
    assert row["input_ids"] == full["input_ids"]  # same text, fewer supervised tokens


def test_empty_think_dropped_keeps_masks_exact(tokenizer):
    (row,), _ = build(tokenizer, AGENT_TURNS, empty_think_keep_ratio=0.0)
    assert segments(tokenizer, row) == [
        (False, TOOLS_SYSTEM + "<|im_start|>user\nWhat is 1+2?<|im_end|>\n<|im_start|>assistant\n"),
        (True, CALL_TEXT + "<|im_end|>"),
        (False, "\n<|im_start|>user\n<tool_response>\n3\n</tool_response><|im_end|>\n<|im_start|>assistant\n"),
        (True, "It is 3.<|im_end|>"),
        (False, "\n<|im_start|>user\nThink: 2*3?<|im_end|>\n<|im_start|>assistant\n"),
        (True, "<think>\n2 times 3 is 6.\n</think>\n\nThe answer is 6.<|im_end|>"),  # real reasoning stays
        (False, "\n"),
    ]


def test_empty_think_keep_ratio_is_a_seeded_share(tokenizer):
    records = [chat((f"question {i}", f"answer {i}")) for i in range(40)]

    def kept(seed):
        rows, _ = build(tokenizer, *records, empty_think_keep_ratio=0.5, seed=seed)
        return [EMPTY_THINK in tokenizer.decode(row["input_ids"]) for row in rows]

    first = kept(0)
    assert 5 < sum(first) < 35
    assert kept(0) == first
    assert kept(1) != first


# ----------------------------------------------------------------------------- exact masks, no markers


def test_exact_mask_template_without_generation_markers(plain_tokenizer):
    (row,), report = build(plain_tokenizer, PLAIN_TURNS)
    assert segments(plain_tokenizer, row) == [
        (False, "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"),
        (True, "Hello!<|im_end|>"),
        (False, "\n<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n"),
        (True, "Goodbye.<|im_end|>"),
        (False, "\n"),
    ]
    assert report.supervised_tokens == sum(label != -100 for label in row["labels"])
    (last,), _ = build(plain_tokenizer, PLAIN_TURNS, last_turn_only=True)
    assert supervised(plain_tokenizer, last) == ["Goodbye.<|im_end|>"]


def test_exact_mask_minimind_like_template_tools_thinking(minimind_like_tokenizer):
    tok = minimind_like_tokenizer
    assert not has_generation_markers(tok)
    (row,), _ = build(tok, AGENT_TURNS)
    # Without markers everything from the assistant header to <|im_end|> is supervised,
    # the template's empty think block included (MiniMind's own behaviour).
    assert segments(tok, row) == [
        (
            False,
            "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nWhat is 1+2?<|im_end|>\n"
            "<|im_start|>assistant\n",
        ),
        (True, EMPTY_THINK + CALL_TEXT + "<|im_end|>"),
        (False, "\n<|im_start|>tool\n3<|im_end|>\n<|im_start|>assistant\n"),
        (True, EMPTY_THINK + "It is 3.<|im_end|>"),
        (False, "\n<|im_start|>user\nThink: 2*3?<|im_end|>\n<|im_start|>assistant\n"),
        (True, "<think>\n2 times 3 is 6.\n</think>\n\nThe answer is 6.<|im_end|>"),
        (False, "\n"),
    ]
    (dropped,), _ = build(tok, AGENT_TURNS, empty_think_keep_ratio=0.0)
    assert supervised(tok, dropped) == [
        CALL_TEXT + "<|im_end|>",
        "It is 3.<|im_end|>",
        "<think>\n2 times 3 is 6.\n</think>\n\nThe answer is 6.<|im_end|>",
    ]
    assert EMPTY_THINK not in tok.decode(dropped["input_ids"])


# ----------------------------------------------------------------------------- system prompt augmentation


def test_system_prompt_ratio(tokenizer):
    records = [chat((f"question {i}", f"answer {i}")) for i in range(40)]
    with_system = chat(("q", "a"), system="Own system prompt.")

    def systems(ratio, seed=0, records=records):
        rows, _ = build(tokenizer, *records, system_prompt_ratio=ratio, seed=seed)
        out = []
        for row in rows:
            first_run = segments(tokenizer, row)[0]
            assert first_run[0] is False  # whatever system prompt there is, it is never supervised
            text = tokenizer.decode(row["input_ids"])
            out.append(
                text.split("<|im_end|>")[0][len("<|im_start|>system\n") :]
                if text.startswith("<|im_start|>system\n")
                else None
            )
        return out

    assert systems(0.0) == [None] * 40
    always = systems(1.0)
    assert all(prompt in DEFAULT_SYSTEM_PROMPTS for prompt in always)
    assert len(set(always)) > 1  # drawn, not one fixed prompt
    half = systems(0.5)
    assert 5 < sum(prompt is not None for prompt in half) < 35
    assert systems(0.5) == half  # deterministic for a seed
    assert systems(0.5, seed=1) != half
    # A conversation that has a system prompt keeps it and gets no second one.
    (own,) = systems(1.0, records=[with_system])
    assert own == "Own system prompt."
    rows, _ = build(tokenizer, with_system, system_prompt_ratio=1.0)
    assert tokenizer.decode(rows[0]["input_ids"]).count("<|im_start|>system") == 1


# ----------------------------------------------------------------------------- truncation


def test_truncation_drops_unsupervised_and_counts(tokenizer, tmp_path):
    long_prompt = " ".join(f"word{i}" for i in range(200))
    long_answer = " ".join(f"reply{i}" for i in range(200))
    records = [
        chat((long_prompt, "cut away")),  # every supervised token lies beyond max_length
        chat(("short", long_answer)),  # truncated inside the answer: kept
        chat(("hi", "hello")),  # fits
    ]
    path = tmp_path / "sft.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    dataset, report = load_records(str(path), "sft", cache_dir=str(tmp_path / "cache"))
    max_length = 64
    out = build_sft_dataset(dataset, tokenizer, SFTOptions(max_length=max_length), report)

    assert len(out) == 2
    assert report.dropped == {NO_SUPERVISED_TOKENS: 1}
    assert report.truncated == 2  # the dropped record was truncated too
    assert report.supervised_tokens == sum(label != -100 for row in out for label in row["labels"])
    long_row, short_row = out
    assert len(long_row["input_ids"]) == max_length
    assert long_row["labels"][-1] == long_row["input_ids"][-1]  # cut inside the supervised answer
    assert supervised(tokenizer, long_row)[0].startswith("reply0 reply1")
    assert supervised(tokenizer, short_row) == ["hello<|im_end|>"]
    assert "dropped" in report.summary() and NO_SUPERVISED_TOKENS in report.summary()


# ----------------------------------------------------------------------------- pretrain


def test_pretrain_rows(tokenizer):
    texts = ["The quick brown fox.", " ".join(["jumps over the lazy dog"] * 20)]
    report = ValidationReport("pretrain")
    out = build_pretrain_dataset(datasets.Dataset.from_dict({"text": texts}), tokenizer, max_length=16, report=report)
    short, long = out
    body = tokenizer(texts[0], add_special_tokens=False)["input_ids"]
    assert short["input_ids"] == [tokenizer.bos_token_id, *body, tokenizer.eos_token_id]
    assert tokenizer.decode(short["input_ids"]) == "<|im_start|>The quick brown fox.<|im_end|>"
    long_body = tokenizer(texts[1], add_special_tokens=False)["input_ids"]
    assert long["input_ids"] == [tokenizer.bos_token_id, *long_body[:14], tokenizer.eos_token_id]
    for row in out:
        assert row["labels"] == row["input_ids"]
    assert report.truncated == 1
    assert report.supervised_tokens == len(short["input_ids"]) - 1 + 16 - 1


# ----------------------------------------------------------------------------- padding, packing, collator


def documents(row):
    """Split a packed row back into its documents using seq_lengths."""
    start = 0
    for length in row["seq_lengths"]:
        yield row["input_ids"][start : start + length], row["labels"][start : start + length]
        start += length


@pytest.fixture(scope="module")
def sft_rows(tokenizer):
    records = [
        chat(
            *[
                (f"q{i}-{t} " + "more " * ((i * 7 + t) % 11), f"a{i}-{t} " + "yes " * ((i * 5 + t) % 13))
                for t in range(1 + i % 3)
            ]
        )
        for i in range(12)
    ]
    rows, _ = build(tokenizer, *records, max_length=256)
    return rows


def test_packed_documents_equal_padded_rows(sft_rows):
    packed = pack(sft_rows, max_length=256)
    assert len(packed) < len(sft_rows)
    by_ids = {tuple(row["input_ids"]): row["labels"] for row in sft_rows}
    assert len(by_ids) == len(sft_rows)
    seen = []
    for row in packed:
        assert len(row["input_ids"]) <= 256 and sum(row["seq_lengths"]) == len(row["input_ids"])
        for ids, labels in documents(row):
            assert by_ids[tuple(ids)] == labels
            seen.append(tuple(ids))
    assert sorted(seen) == sorted(by_ids)  # every document exactly once


def test_collator_padded_rows(sft_rows, tokenizer):
    rows = [sft_rows[0], sft_rows[5]]
    batch = CausalLMCollator(tokenizer.pad_token_id, pad_to_multiple_of=8)(rows)
    width = batch["input_ids"].shape[1]
    assert width % 8 == 0 and width >= max(len(r["input_ids"]) for r in rows)
    assert "position_ids" not in batch
    for i, row in enumerate(rows):
        n = len(row["input_ids"])
        assert batch["input_ids"][i, :n].tolist() == row["input_ids"]
        assert batch["labels"][i, :n].tolist() == row["labels"]
        assert (batch["input_ids"][i, n:] == tokenizer.pad_token_id).all()
        assert (batch["labels"][i, n:] == -100).all()
        assert batch["attention_mask"][i].tolist() == [1] * n + [0] * (width - n)


def test_collator_packed_rows(sft_rows, tokenizer):
    packed = pack(sft_rows, max_length=256)
    rows = [packed[0], packed[len(packed) - 1]]
    batch = CausalLMCollator(tokenizer.pad_token_id)(rows)
    assert "attention_mask" not in batch
    for i, row in enumerate(rows):
        start = 0
        for ids, labels in documents(row):
            n = len(ids)
            assert batch["position_ids"][i, start : start + n].tolist() == list(range(n))
            assert batch["labels"][i, start].item() == -100  # first label of every document
            assert batch["labels"][i, start + 1 : start + n].tolist() == labels[1:]
            start += n
        assert (batch["labels"][i, start:] == -100).all()


def test_collator_masks_first_label_of_packed_pretrain_documents(tokenizer):
    texts = [f"document number {i} " + "text " * (3 * i) for i in range(6)]
    packed = build_pretrain_dataset(datasets.Dataset.from_dict({"text": texts}), tokenizer, 32, packing=True)
    batch = CausalLMCollator(tokenizer.pad_token_id)([packed[i] for i in range(len(packed))])
    for i in range(len(packed)):
        start = 0
        for ids, labels in documents(packed[i]):
            assert labels == ids  # pretraining labels, before collation
            assert batch["labels"][i, start].item() == -100
            assert batch["labels"][i, start + 1 : start + len(ids)].tolist() == ids[1:]
            start += len(ids)


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
@torch.no_grad()
def test_packed_batch_logits_equal_documents_alone(sft_rows, tokenizer, attn):
    torch.manual_seed(0)
    model = MiniMindForCausalLM(preset_config("tiny"))
    model.set_attn_implementation(attn)
    model.eval()
    packed = pack(sft_rows, max_length=256)
    rows = [packed[i] for i in range(min(3, len(packed)))]
    assert any(len(row["seq_lengths"]) > 1 for row in rows)
    batch = CausalLMCollator(tokenizer.pad_token_id)(rows)
    logits = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"]).logits
    # The control: the same rows with one causal mask over the whole row do differ.
    leaky = model(input_ids=batch["input_ids"]).logits
    differs = False
    for i, row in enumerate(rows):
        start = 0
        for ids, _ in documents(row):
            alone = model(input_ids=torch.tensor([ids])).logits[0]
            torch.testing.assert_close(logits[i, start : start + len(ids)], alone, atol=1e-4, rtol=1e-4)
            if start > 0:
                differs |= not torch.allclose(leaky[i, start : start + len(ids)], alone, atol=1e-3)
            start += len(ids)
    assert differs


# ----------------------------------------------------------------------------- dpo


def test_dpo_dataset_is_trl_conversational_preference(tokenizer, tmp_path):
    from trl.data_utils import is_conversational, maybe_apply_chat_template
    from trl.trainer.dpo_trainer import DPOTrainer

    records = [
        {
            "chosen": [{"role": "user", "content": "Capital of France?"}, {"role": "assistant", "content": "Paris."}],
            "rejected": [{"role": "user", "content": "Capital of France?"}, {"role": "assistant", "content": "Rome."}],
        },
        {"prompt": "2+2?", "chosen": "4", "rejected": "5"},
        {"prompt": "3+3?", "chosen": "<think>\nadd\n</think>\n\n6", "rejected": "7"},
    ]
    path = tmp_path / "dpo.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    dataset, _ = load_records(str(path), "dpo", cache_dir=str(tmp_path / "cache"))
    dpo = build_dpo_dataset(dataset)

    assert set(dpo.column_names) == {"prompt", "chosen", "rejected", "chat_template_kwargs"}
    assert dpo["chat_template_kwargs"] == [{"enable_thinking": False}] * 2 + [{"enable_thinking": True}]
    first = dpo[0]
    assert is_conversational(first)
    assert [(m["role"], m["content"]) for m in first["prompt"]] == [("user", "Capital of France?")]
    assert [(m["role"], m["content"]) for m in first["chosen"]] == [("assistant", "Paris.")]
    assert [(m["role"], m["content"]) for m in first["rejected"]] == [("assistant", "Rome.")]
    assert [(m["role"], m["content"]) for m in dpo[1]["prompt"]] == [("user", "2+2?")]

    text = maybe_apply_chat_template(first, tokenizer)
    assert text == {
        "prompt": "<|im_start|>user\nCapital of France?<|im_end|>\n<|im_start|>assistant\n" + EMPTY_THINK,
        "chosen": "Paris.<|im_end|>\n",
        "rejected": "Rome.<|im_end|>\n",
    }

    # DPOTrainer's own tokenisation (its dataset preparation, without building a trainer).
    args = SimpleNamespace(dataset_num_proc=None, max_length=128, truncation_mode="keep_start")
    tokenized = DPOTrainer._prepare_dataset(SimpleNamespace(_tokenizer=tokenizer), dpo, tokenizer, args, "train")
    row = tokenized[0]
    assert tokenizer.decode(row["prompt_ids"]) == text["prompt"]
    assert tokenizer.decode(row["chosen_ids"]) == text["chosen"]
    assert tokenizer.decode(row["rejected_ids"]) == text["rejected"]
    assert tokenizer.decode(tokenized[1]["chosen_ids"]) == "4<|im_end|>\n"
    assert tokenizer.decode(tokenized[1]["prompt_ids"]).endswith("<|im_start|>assistant\n" + EMPTY_THINK)

    # A pair with reasoning is rendered with thinking on: the prompt (the inference prompt with
    # thinking on) is a prefix of both completions, each with its whole think block.
    thinking = tokenized[2]
    assert tokenizer.decode(thinking["prompt_ids"]) == "<|im_start|>user\n3+3?<|im_end|>\n<|im_start|>assistant\n"
    assert tokenizer.decode(thinking["chosen_ids"]) == "<think>\nadd\n</think>\n\n6<|im_end|>\n"
    assert tokenizer.decode(thinking["rejected_ids"]) == EMPTY_THINK + "7<|im_end|>\n"
    assert maybe_apply_chat_template(dpo[2], tokenizer)["prompt"].endswith("<|im_start|>assistant\n")


def test_sft_build_is_identical_with_two_processes(tokenizer):
    # The per-record rng is keyed by the global index, so num_proc does not change the augmentation.
    records = [chat((f"question {i}", f"answer {i}")) for i in range(24)]
    options = SFTOptions(system_prompt_ratio=0.5, empty_think_keep_ratio=0.5, seed=3)
    one = build_sft_dataset(sft_dataset(*records), tokenizer, options)
    two = build_sft_dataset(sft_dataset(*records), tokenizer, options, num_proc=2)
    assert one["input_ids"] == two["input_ids"] and one["labels"] == two["labels"]
