"""Multimodal SFT data: canonical records with images -> token rows + image paths.

Images stay on disk: rows keep resolved paths (a JSON list, in reading order) and the
collator opens them per batch, so nothing image-sized ever enters the Arrow cache.

Markers: MiniMind-V writes `<image>` in the text and lists files as "a.jpg,b.jpg";
MiniCPM-V keys images `{"<image_00>": path, ...}` and writes the keys in the text; LLaVA
writes `<image>`. A record with images but no marker gets them at the start of the first
user turn (as MiniCPM-V does). Each marker becomes one image block whose placeholder is
expanded to `image_seq_length` tokens after tokenisation (never supervised).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field

import numpy as np

from ..tokenizer import VISION_END_TOKEN, VISION_START_TOKEN
from .report import DataValidationError, ValidationReport
from .schema import chat_messages
from .text import SFTOptions, encode_chats, map_records

MARKER = re.compile(r"<image(?:_\d+)?>")
IMAGE_MISMATCH = "image markers and images differ"
MISSING_IMAGE = "missing image"
BAD_IMAGE = "unreadable image"
IMAGE_TRUNCATED = "image cut by truncation"
NO_SUPERVISED = "no supervised tokens left after truncation"


@dataclass
class VisionOptions(SFTOptions):
    images_root: str | None = None
    image_seq_length: int = 16
    skip_invalid: bool = False
    verify_images: bool = True


def image_block(tokenizer) -> str:
    return VISION_START_TOKEN + tokenizer.image_token + VISION_END_TOKEN


def place_images(messages: list[dict], images: str) -> tuple[list[str], list[dict]]:
    """Return (image paths in reading order, messages with a marker per image).

    Raises ValueError when markers and images do not match.
    """
    spec = json.loads(images) if images else []
    keyed = isinstance(spec, dict)  # MiniCPM-V {"<image_00>": path}
    paths = list(spec.values()) if keyed else list(spec)
    if paths and not any(MARKER.search(m["content"]) for m in messages):
        first_user = next((i for i, m in enumerate(messages) if m["role"] == "user"), None)
        if first_user is None:
            raise ValueError("images given but the conversation has no user turn to hold them")
        tags = list(spec) if keyed else ["<image>"] * len(paths)
        messages = [dict(m) for m in messages]
        messages[first_user]["content"] = "".join(tag + "\n" for tag in tags) + messages[first_user]["content"]
    found = [marker for m in messages for marker in MARKER.findall(m["content"])]
    if not keyed:
        if len(found) != len(paths):
            raise ValueError(f"{len(found)} image marker(s) in the text but {len(paths)} image(s)")
        return paths, messages
    unknown = sorted(set(found) - set(spec))
    unused = [key for key in spec if key not in found]
    if unknown or unused:
        problems = ([f"{', '.join(unknown)} in the text but not in the image map"] if unknown else []) + (
            [f"{', '.join(unused)} never placed in the text"] if unused else []
        )
        raise ValueError("; ".join(problems))
    return [spec[marker] for marker in found], messages


def _resolve(path: str, root: str | None) -> str:
    return path if os.path.isabs(path) or root is None else os.path.join(root, path)


def check_image(path: str) -> str | None:
    """None if the file is a readable image, else the reason."""
    if not os.path.isfile(path):
        return MISSING_IMAGE
    try:
        from PIL import Image

        with Image.open(path) as image:
            image.verify()
    except Exception as error:  # PIL raises many types for corrupt files
        return f"{BAD_IMAGE} ({type(error).__name__}: {error})"[:200]
    return None


def tokenize_vision_batch(batch: dict, indices: list[int], tokenizer, options: VisionOptions, block: str) -> dict:
    out = {"input_ids": [], "labels": [], "images": [], "status": [], "location": []}
    chats, tools, kept_indices, image_lists, kept_locations = [], [], [], [], []
    locations = batch["location"] if "location" in batch else [f"record {i}" for i in indices]
    for messages, images, tool_list, where, index in zip(
        batch["messages"], batch["images"], batch["tools"], locations, indices
    ):
        try:
            chat = chat_messages(messages)
            ordered, chat = place_images(chat, images)
            paths = [_resolve(p, options.images_root) for p in ordered]
            for path in paths if options.verify_images else []:
                if (problem := check_image(path)) is not None:
                    raise DataValidationError(where, problem.split(" (")[0], f"{problem}: {path}")
        except DataValidationError as error:
            if not options.skip_invalid:
                raise
            _append_skip(out, error.reason, where)
            continue
        except ValueError as error:
            if not options.skip_invalid:
                raise DataValidationError(where, IMAGE_MISMATCH, str(error)) from None
            _append_skip(out, IMAGE_MISMATCH, where)
            continue
        for message in chat:
            message["content"] = MARKER.sub(block, message["content"])
        chats.append(chat)
        tools.append(tool_list)
        kept_indices.append(index)
        image_lists.append(paths)
        kept_locations.append(where)

    pad_id = tokenizer.convert_tokens_to_ids(tokenizer.image_token)
    encoded = encode_chats(chats, tools, kept_indices, tokenizer, options)
    for (ids, labels), paths, where in zip(encoded, image_lists, kept_locations):
        ids, labels = expand_placeholders(ids, labels, pad_id, options.image_seq_length)
        status = "ok"
        if len(ids) > options.max_length:
            status = "truncated"
            if (ids[options.max_length :] == pad_id).any():
                status = IMAGE_TRUNCATED  # a partial image would not match its features
            ids, labels = ids[: options.max_length], labels[: options.max_length]
        if status != IMAGE_TRUNCATED and not (labels != -100).any():
            status = NO_SUPERVISED
        out["input_ids"].append(ids.tolist())
        out["labels"].append(labels.tolist())
        out["images"].append(json.dumps(paths))
        out["status"].append(status)
        out["location"].append(where)
    return out


def _append_skip(out: dict, reason: str, where: str) -> None:
    out["input_ids"].append([])
    out["labels"].append([])
    out["images"].append("[]")
    out["status"].append("skip:" + reason)
    out["location"].append(where)


def expand_placeholders(ids: np.ndarray, labels: np.ndarray, pad_id: int, n: int):
    """Repeat every image placeholder n times (labels -100)."""
    repeats = np.where(ids == pad_id, n, 1)
    ids = np.repeat(ids, repeats)
    labels = np.repeat(labels, repeats)
    labels[ids == pad_id] = -100
    return ids, labels


def build_vision_dataset(
    dataset, tokenizer, options: VisionOptions, report: ValidationReport | None = None, num_proc: int | None = None
):
    """Canonical SFT records (with an `images` column) -> input_ids / labels / images rows."""
    rows = map_records(
        dataset,
        tokenize_vision_batch,
        {"tokenizer": tokenizer, "options": options, "block": image_block(tokenizer)},
        num_proc,
        "Tokenizing image conversations",
    )
    statuses = rows["status"]
    if report is not None:
        for status, where in zip(statuses, rows["location"]):
            if status.startswith("skip:"):  # an invalid record: a skip of its file, FILE:LINE as for text
                if not report.skip_later(where, status[5:]):
                    report.dropped[status[5:]] += 1
            elif status in (IMAGE_TRUNCATED, NO_SUPERVISED):
                report.dropped[status] += 1
        report.truncated += sum(s in ("truncated", IMAGE_TRUNCATED) for s in statuses)
    keep = [i for i, s in enumerate(statuses) if s in ("ok", "truncated")]
    rows = rows.select(keep) if len(keep) != len(rows) else rows
    if report is not None:
        report.supervised_tokens += int(sum((np.asarray(row) != -100).sum() for row in rows["labels"]))
    return rows.remove_columns(["status", "location"])


@dataclass
class VisionCollator:
    """Pads token rows (attention mask over padding) and loads this batch's images as RGB."""

    pad_token_id: int
    image_processor: object
    label_pad: int = -100
    _text: object = field(init=False, default=None)

    def __post_init__(self):
        from .text import CausalLMCollator

        self._text = CausalLMCollator(pad_token_id=self.pad_token_id, label_pad=self.label_pad)

    def __call__(self, examples: list[dict]) -> dict:
        batch = self._text([{"input_ids": e["input_ids"], "labels": e["labels"]} for e in examples])
        paths = [p for e in examples for p in json.loads(e["images"])]
        if paths:
            batch["pixel_values"] = self.image_processor([load_rgb(p) for p in paths], return_tensors="pt")[
                "pixel_values"
            ]
        return batch


def load_rgb(path: str):
    """Any mode (RGBA, LA, P, L, CMYK ...) -> RGB; transparent areas on white."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.load()
            if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
                image = image.convert("RGBA")
                background = Image.new("RGBA", image.size, (255, 255, 255, 255))
                return Image.alpha_composite(background, image).convert("RGB")
            return image.convert("RGB")
    except (OSError, ValueError) as error:
        raise ValueError(f"cannot load image {path}: {error}") from None
