"""The one greedy generation loop every generation task (arithmetic, vision, tool use) scores."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import torch

from .scoring import model_device


def greedy_replies(
    model,
    processor,
    prompts: Sequence[list[dict]],
    max_new_tokens: int,
    batch_size: int = 32,
    chat_template_kwargs: dict | None = None,
    images: Sequence[list] | None = None,
) -> list[str]:
    """Greedy replies to chat prompts, batched with left padding (the template's bos included once).

    ``processor`` is a tokenizer, or a MiniMind-V processor when ``images`` (one list of PIL
    images per prompt, in marker order) are given.
    """
    tokenizer = getattr(processor, "tokenizer", processor)
    was_training = model.training
    model.eval()
    replies = []
    try:
        for start in range(0, len(prompts), batch_size):
            texts = [
                processor.apply_chat_template(
                    list(p), add_generation_prompt=True, tokenize=False, **(chat_template_kwargs or {})
                )
                for p in prompts[start : start + batch_size]
            ]
            if images is None:
                batch = tokenizer(
                    texts, add_special_tokens=False, padding=True, padding_side="left", return_tensors="pt"
                )
            else:
                flat = [image for per_prompt in images[start : start + batch_size] for image in per_prompt]
                batch = processor(
                    text=texts, images=flat or None, padding=True, padding_side="left", return_tensors="pt"
                )
            batch = batch.to(model_device(model))
            with torch.no_grad():
                output = model.generate(
                    **batch,
                    max_new_tokens=max_new_tokens,
                    do_sample=False,
                    pad_token_id=tokenizer.pad_token_id,
                    eos_token_id=tokenizer.eos_token_id,
                )
            replies += tokenizer.batch_decode(output[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)
    finally:
        model.train(was_training)
    return replies


def reply_budget(tokenizer, records: list[dict]) -> int:
    """New tokens for replies to records' last question: the longest reference reply plus two
    (its end-of-turn token and one spare)."""
    references = [r["conversations"][-1]["content"] for r in records]
    return 2 + max(len(ids) for ids in tokenizer(references, add_special_tokens=False)["input_ids"])


def accuracy_by_kind(kinds: Sequence[str], correct: Sequence[bool]) -> dict[str, float]:
    """Share of correct replies per kind, plus ``"all"``."""
    total, right = Counter(), Counter()
    for kind, ok in zip(kinds, correct, strict=True):
        for key in (kind, "all"):
            total[key] += 1
            right[key] += ok
    return {key: right[key] / total[key] for key in total}
