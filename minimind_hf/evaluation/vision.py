"""Image question answering: greedy replies of a MiniMind-V model to questions about images."""

from __future__ import annotations

from pathlib import Path

from ..data.embedded.vision import ANSWER_OPTIONS, image_paths
from .answers import names_option
from .generation import accuracy_by_kind, greedy_replies, reply_budget


def load_images(record: dict, images_root: str | Path) -> list:
    """The record's images as RGB PIL images, in marker order (MiniMind-V or MiniCPM-V records)."""
    from PIL import Image

    images = []
    for path in image_paths(record):
        with Image.open(Path(images_root) / path) as image:
            images.append(image.convert("RGB"))
    return images


def vision_replies(
    model,
    processor,
    records: list[dict],
    images_root: str | Path,
    max_new_tokens: int | None = None,
    batch_size: int = 16,
) -> list[str]:
    """Greedy replies to records' last question (the conversation without its final assistant
    turn; image markers are expanded by the processor). ``max_new_tokens=None`` allows the
    longest reference reply plus two tokens."""
    max_new_tokens = max_new_tokens or reply_budget(processor.tokenizer, records)
    images = [load_images(r, images_root) for r in records]
    return greedy_replies(
        model, processor, [r["conversations"][:-1] for r in records], max_new_tokens, batch_size, images=images
    )


def vision_accuracy(
    model,
    processor,
    records: list[dict],
    images_root: str | Path,
    max_new_tokens: int | None = None,
    batch_size: int = 16,
) -> dict[str, float]:
    """Accuracy per ``kind`` (plus ``"all"``) of greedy replies, scored by :func:`score_replies`."""
    if not records:
        return {}
    return score_replies(records, vision_replies(model, processor, records, images_root, max_new_tokens, batch_size))


def score_replies(records: list[dict], replies: list[str]) -> dict[str, float]:
    """Accuracy per kind (plus ``"all"``): the reply names the record's answer and no other option of its kind."""
    correct = [
        names_option(reply, r["answer"], ANSWER_OPTIONS.get(r["kind"], ()))
        for r, reply in zip(records, replies, strict=True)
    ]
    return accuracy_by_kind([r["kind"] for r in records], correct)
