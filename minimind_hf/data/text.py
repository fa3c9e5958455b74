"""Canonical text records -> training tensors, with `datasets.map`.

* pretrain: ``bos + text + eos``; labels = input_ids; truncated, or packed (see ``packing``).
* sft: the chat template renders the conversation; labels are -100 everywhere except the
  supervised spans - assistant answers and their end-of-turn token. The spans come from the
  template's ``{% generation %}`` markers, or, for templates without them (MiniMind's own
  tokenizer), from the text between each ``<bos>assistant\\n`` header and the next eos.
* dpo: canonical preference records -> TRL's conversational format (DPOTrainer tokenises).

Every builder adds its counts (truncated, dropped by reason, supervised tokens) to the
ValidationReport that loading started, so a run ends with one report of what was used.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

import numpy as np

from .report import ValidationReport
from .schema import chat_messages

NO_SUPERVISED_TOKENS = "no supervised tokens left after truncation"
EMPTY_THINK = "<think>\n\n</think>\n\n"
_GENERATION_TAG = re.compile(r"\{%-?\s*generation\s*-?%\}")

DEFAULT_SYSTEM_PROMPTS = (
    "You are a helpful assistant.",
    "You are MiniMind, a small but capable AI assistant.",
    "You are a knowledgeable, friendly assistant. Answer accurately and concisely.",
    "你是一个乐于助人的AI助手。",
    "你是MiniMind，一个小巧但聪明的人工智能助手。",
)


@dataclass
class SFTOptions:
    max_length: int = 768
    # Supervise every assistant turn (default) or only the last one.
    last_turn_only: bool = False
    # MiniMind's augmentation: give this share of system-less conversations a random system prompt.
    system_prompt_ratio: float = 0.0
    system_prompts: tuple[str, ...] = DEFAULT_SYSTEM_PROMPTS
    # Assistant turns without reasoning are rendered after an empty think block (the same
    # prompt as inference with thinking off). MiniMind keeps it in a small share of samples
    # and drops it elsewhere; 1.0 keeps it everywhere.
    empty_think_keep_ratio: float = 1.0
    seed: int = 0


# ----------------------------------------------------------------------------- spans


def has_generation_markers(tokenizer) -> bool:
    return bool(tokenizer.chat_template and _GENERATION_TAG.search(tokenizer.chat_template))


def render_with_spans(tokenizer, messages: list[dict], tools: list | None = None) -> tuple[str, list[tuple[int, int]]]:
    """Render a conversation; return the text and the character spans to supervise."""
    if has_generation_markers(tokenizer):
        from transformers.utils.chat_template_utils import render_jinja_template

        rendered, spans = render_jinja_template(
            conversations=[messages],
            tools=tools,
            chat_template=tokenizer.chat_template,
            return_assistant_tokens_mask=True,
            **tokenizer.special_tokens_map,
        )
        return rendered[0], [tuple(s) for s in spans[0]]
    text = tokenizer.apply_chat_template(messages, tools=tools, tokenize=False)
    return text, header_spans(text, tokenizer.bos_token + "assistant\n", tokenizer.eos_token)


def header_spans(text: str, header: str, end: str) -> list[tuple[int, int]]:
    """Spans from the end of each assistant header through the following end-of-turn token."""
    spans, pos = [], 0
    while (start := text.find(header, pos)) >= 0:
        start += len(header)
        stop = text.find(end, start)
        stop = len(text) if stop < 0 else stop + len(end)
        spans.append((start, stop))
        pos = stop
    return spans


def drop_empty_think(text: str, spans: list[tuple[int, int]], header: str) -> tuple[str, list[tuple[int, int]]]:
    """Remove empty think blocks that directly follow an assistant header, shifting the spans."""
    target = header + EMPTY_THINK
    removed = []  # positions (in the original text) where EMPTY_THINK was cut
    pieces, pos = [], 0
    while (hit := text.find(target, pos)) >= 0:
        cut = hit + len(header)
        pieces.append(text[pos:cut])
        removed.append(cut)
        pos = cut + len(EMPTY_THINK)
    pieces.append(text[pos:])

    def shift(index: int) -> int:
        return index - len(EMPTY_THINK) * sum(1 for cut in removed if cut < index)

    return "".join(pieces), [(shift(a), shift(b)) for a, b in spans]


def token_mask(offsets: np.ndarray, spans: list[tuple[int, int]]) -> np.ndarray:
    """True for tokens lying entirely inside one of the character spans."""
    mask = np.zeros(len(offsets), dtype=bool)
    if len(offsets) == 0:
        return mask
    starts, ends = offsets[:, 0], offsets[:, 1]
    for a, b in spans:
        mask |= (starts >= a) & (ends <= b) & (ends > starts)
    return mask


# ----------------------------------------------------------------------------- sft


def _maybe_add_system(messages: list[dict], rng: random.Random, options: SFTOptions) -> list[dict]:
    if options.system_prompt_ratio <= 0 or (messages and messages[0]["role"] == "system"):
        return messages
    if rng.random() < options.system_prompt_ratio:
        return [{"role": "system", "content": rng.choice(options.system_prompts)}] + messages
    return messages


def encode_chats(chats: list[list[dict]], tools: list[str], indices: list[int], tokenizer, options: SFTOptions):
    """Render and tokenise conversations (apply_chat_template-style messages), untruncated.

    Returns one (input_ids, labels) pair of int64 arrays per conversation.
    """
    import json

    header = tokenizer.bos_token + "assistant\n"
    texts, all_spans = [], []
    for chat, tool_list, index in zip(chats, tools, indices):
        rng = random.Random(f"{options.seed}:{index}")  # deterministic per record, any num_proc
        chat = _maybe_add_system(chat, rng, options)
        text, spans = render_with_spans(tokenizer, chat, json.loads(tool_list) if tool_list else None)
        if options.empty_think_keep_ratio < 1.0 and rng.random() >= options.empty_think_keep_ratio:
            text, spans = drop_empty_think(text, spans, header)
        if options.last_turn_only:
            spans = spans[-1:]
        texts.append(text)
        all_spans.append(spans)

    encoded = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)
    rows = []
    for ids, offsets, spans in zip(encoded["input_ids"], encoded["offset_mapping"], all_spans):
        mask = token_mask(np.asarray(offsets, dtype=np.int64).reshape(-1, 2), spans)
        ids = np.asarray(ids, dtype=np.int64)
        rows.append((ids, np.where(mask, ids, -100)))
    return rows


def tokenize_sft_batch(batch: dict, indices: list[int], tokenizer, options: SFTOptions) -> dict:
    chats = [chat_messages(messages) for messages in batch["messages"]]
    out = {"input_ids": [], "labels": [], "num_supervised": [], "truncated": []}
    for ids, labels in encode_chats(chats, batch["tools"], indices, tokenizer, options):
        truncated = len(ids) > options.max_length
        ids, labels = ids[: options.max_length], labels[: options.max_length]
        out["input_ids"].append(ids.tolist())
        out["labels"].append(labels.tolist())
        out["num_supervised"].append(int((labels != -100).sum()))
        out["truncated"].append(truncated)
    return out


def build_sft_dataset(
    dataset, tokenizer, options: SFTOptions, report: ValidationReport | None = None, num_proc: int | None = None
):
    """Canonical SFT records -> ``input_ids`` / ``labels`` rows (unpadded)."""
    tokenized = map_records(
        dataset,
        tokenize_sft_batch,
        {"tokenizer": tokenizer, "options": options},
        num_proc,
        "Tokenizing SFT conversations",
    )
    return _finish(tokenized, report)


# ----------------------------------------------------------------------------- pretrain


def tokenize_pretrain_batch(batch: dict, tokenizer, max_length: int | None) -> dict:
    encoded = tokenizer(batch["text"], add_special_tokens=False)["input_ids"]
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    out = {"input_ids": [], "labels": [], "num_supervised": [], "truncated": []}
    for ids in encoded:
        truncated = max_length is not None and len(ids) + 2 > max_length
        if truncated:
            ids = ids[: max_length - 2]
        ids = [bos, *ids, eos]
        out["input_ids"].append(ids)
        out["labels"].append(ids)
        out["num_supervised"].append(len(ids) - 1)  # the first token is never predicted
        out["truncated"].append(truncated)
    return out


def build_pretrain_dataset(
    dataset,
    tokenizer,
    max_length: int,
    packing: bool = False,
    report: ValidationReport | None = None,
    num_proc: int | None = None,
):
    """``{"text"}`` records -> ``bos + text + eos`` rows.

    Without packing each document is truncated to ``max_length``. With packing documents
    are kept whole and packed into rows of ``max_length`` (long ones split across rows).
    """
    tokenized = dataset.map(
        tokenize_pretrain_batch,
        batched=True,
        fn_kwargs={"tokenizer": tokenizer, "max_length": None if packing else max_length},
        remove_columns=dataset.column_names,
        **_map_options(dataset, num_proc, "Tokenizing pretraining text"),
    )
    tokenized = _finish(tokenized, report)
    return pack(tokenized, max_length, split_long=True) if packing else tokenized


# ----------------------------------------------------------------------------- packing


def pack(dataset, max_length: int, split_long: bool = False):
    """Best-fit-decreasing packing (TRL's ``pack_dataset``) into rows of at most ``max_length``.

    Rows keep ``seq_lengths`` so the collator can restart ``position_ids`` per document.
    ``split_long`` splits documents longer than a row (pretraining); otherwise they were
    already truncated by the builder.
    """
    from trl import pack_dataset

    return pack_dataset(dataset, max_length, strategy="bfd_split" if split_long else "bfd")


def map_records(dataset, function, fn_kwargs: dict, num_proc: int | None, desc: str):
    """`function(batch, indices, **fn_kwargs)` over canonical records, batched; the records' columns
    are replaced by what it returns."""
    return dataset.map(
        function,
        batched=True,
        with_indices=True,
        fn_kwargs=fn_kwargs,
        remove_columns=dataset.column_names,
        **_map_options(dataset, num_proc, desc),
    )


def _map_options(dataset, num_proc, desc) -> dict:
    """A streamed (Iterable) dataset maps lazily: no worker processes, no progress bar."""
    return {} if _is_streamed(dataset) else {"num_proc": num_proc, "desc": desc}


def _is_streamed(dataset) -> bool:
    import datasets

    return isinstance(dataset, datasets.IterableDataset)


def _finish(tokenized, report: ValidationReport | None):
    """Count truncations / supervision, drop rows with nothing to learn, keep two columns.

    A streamed dataset is filtered as it flows; its counts are the loader's (read, kept,
    skipped) since nothing is materialised to count.
    """
    if _is_streamed(tokenized):
        return tokenized.filter(lambda n: n > 0, input_columns="num_supervised").remove_columns(
            ["num_supervised", "truncated"]
        )
    supervised = np.asarray(tokenized["num_supervised"])
    empty = int((supervised == 0).sum())
    if report is not None:
        report.truncated += int(np.asarray(tokenized["truncated"]).sum())
        report.supervised_tokens += int(supervised.sum())
        if empty:
            report.dropped[NO_SUPERVISED_TOKENS] += empty
    if empty:
        tokenized = tokenized.filter(lambda n: n > 0, input_columns="num_supervised")
    return tokenized.remove_columns(["num_supervised", "truncated"])


# ----------------------------------------------------------------------------- dpo


def to_trl_preference(example: dict) -> dict:
    """Canonical DPO record -> TRL conversational preference example.

    A pair with reasoning is rendered with thinking on (``chat_template_kwargs``, which TRL
    passes to the template): the prompt then ends ``<|im_start|>assistant\\n`` and both
    completions start with their full think block (empty or not). With thinking off the
    prompt would end in the empty think block, which is not a prefix of a reasoning reply,
    and TRL would cut both at ``<think>\\n`` mid-block.
    """
    out = {key: chat_messages(example[key]) for key in ("prompt", "chosen", "rejected")}
    thinking = any(m["reasoning_content"] for key in ("chosen", "rejected") for m in example[key])
    out["chat_template_kwargs"] = {"enable_thinking": thinking}
    return out


def build_dpo_dataset(dataset):
    return dataset.map(to_trl_preference, remove_columns=dataset.column_names, desc="Formatting preference pairs")


# ----------------------------------------------------------------------------- collation


@dataclass
class CausalLMCollator:
    """Pads ``input_ids`` / ``labels`` rows into a batch.

    Plain rows get right padding and an attention mask. Packed rows (with ``seq_lengths``)
    get ``position_ids`` that restart at every document and NO attention mask, which makes
    the model build a block-diagonal causal mask (flash attention uses the position_ids as
    varlen boundaries): documents never see each other. The first label of every document
    is masked so no document learns to predict the next one's first token.
    """

    pad_token_id: int
    pad_to_multiple_of: int | None = None
    label_pad: int = -100
    extra_keys: tuple = field(default_factory=tuple)

    def __call__(self, examples: list[dict]) -> dict:
        import torch

        width = max(len(e["input_ids"]) for e in examples)
        if self.pad_to_multiple_of:
            width = -(-width // self.pad_to_multiple_of) * self.pad_to_multiple_of
        batch = len(examples)
        input_ids = torch.full((batch, width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((batch, width), self.label_pad, dtype=torch.long)
        packed = "seq_lengths" in examples[0]
        extra = torch.zeros((batch, width), dtype=torch.long)  # attention mask or position ids
        for row, example in enumerate(examples):
            n = len(example["input_ids"])
            input_ids[row, :n] = torch.as_tensor(example["input_ids"])
            labels[row, :n] = torch.as_tensor(example["labels"])
            if packed:
                start = 0
                for length in example["seq_lengths"]:
                    extra[row, start : start + length] = torch.arange(length)
                    labels[row, start] = self.label_pad
                    start += length
                # Padding continues the last document's positions: one trailing segment instead
                # of one document per padding position; causal attention keeps it invisible.
                extra[row, start:] = torch.arange(length, length + width - start)
            else:
                extra[row, :n] = 1
        out = {"input_ids": input_ids, "labels": labels}
        out["position_ids" if packed else "attention_mask"] = extra
        for key in self.extra_keys:
            out[key] = [e[key] for e in examples]
        return out
