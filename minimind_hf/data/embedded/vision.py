"""Deterministic synthetic image sets whose answers can be checked (MiniMind-V quickstart).

The vision counterpart of :mod:`minimind_hf.data.embedded.arithmetic`: Pillow draws simple shapes
(circle, square, triangle) in clearly distinct colours on a contrasting background, and
each image comes with a caption or a question whose answer is known.

Items. An *item* is one shape's attributes, ``Item("circle", "red", "left")``: 3 shapes x
6 colours x 5 positions = 90 items. Train / held-out splits are made over items, never over
texts or pixels: every record has an *anchor* item (the shape it asks about, or the one
that makes its scene what it is); a training record only contains training items, and a
held-out record's anchor is a held-out item (any other shape beside it is a training
item). So "a red circle on the left" is unseen in training in every kind, phrasing, size
and file format, while red things, circles and left positions are all well covered.

Kinds: ``caption`` (VLM pretraining: "A red circle on the left and a blue square at the
top."; 1-3 shapes) and the SFT questions ``colour``, ``shape``, ``position`` (one shape),
``count`` (1-3 shapes) and ``multi_image`` (two images: "Which image shows a red shape,
the first or the second?" -> "first").

Records (one JSON object per line) are MiniMind-V records plus metadata::

    {"conversations": [{"role": "user", "content": "<image>\\nWhat colour is the shape?"},
                       {"role": "assistant", "content": "red"}],
     "image": "train_colour_00012.png",
     "kind": "colour", "problem": "red circle left", "answer": "red",
     "scenes": [{"file": "train_colour_00012.png", "size": [48, 48], "storage": "RGB", ...}]}

``image`` is a comma-separated list of file names relative to the images folder, one per
``<image>`` marker, in order. ``scenes`` holds everything needed to redraw each image
(:func:`draw_scene`), so answers can be verified from the pixels. Most images are RGB
PNGs; some are RGBA / palette / grayscale PNGs or JPEGs (loaders must convert to RGB);
grayscale is only used where the question does not depend on colour. Everything is
seeded with private ``random.Random`` instances (record ``i`` of a kind depends only on
seed, split, kind and ``i``): same seed, same bytes.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from pathlib import Path

from .files import write_if_changed, write_json_list, write_jsonl
from .sampling import even_stream
from .scenes import COLOURS, POSITIONS, SHAPES, Item, Scene, encode_scene, make_scene, split_items

PRETRAIN_KINDS = ("caption",)
SFT_KINDS = ("colour", "shape", "position", "count", "multi_image")
KINDS = PRETRAIN_KINDS + SFT_KINDS
GRAYSCALE_KINDS = ("shape", "position", "count")  # questions that do not need colour
# The closed set each short answer comes from (a reply naming two of them is not an answer).
ANSWER_OPTIONS = {
    "colour": tuple(COLOURS),
    "shape": SHAPES,
    "position": POSITIONS,
    "count": ("1", "2", "3"),
    "multi_image": ("first", "second"),
}

# ----------------------------------------------------------------------------- phrasings

POSITION_PHRASES = {
    "left": "on the left",
    "right": "on the right",
    "top": "at the top",
    "bottom": "at the bottom",
    "center": "in the center",
}
CAPTION_ORDER = ("top", "left", "center", "right", "bottom")  # reading order for captions

CAPTION_PROMPTS = (
    "Describe the image.",
    "What is in this picture?",
    "Give a short description of the image.",
    "What do you see?",
    "Caption this image.",
)
QUESTIONS = {
    "colour": (
        "What colour is the shape?",
        "What color is the shape?",
        "Which colour is the {shape}?",
        "What is the colour of the object in the image?",
        "Name the colour of the shape.",
    ),
    "shape": (
        "What shape is this?",
        "What shape do you see?",
        "Which shape is in the image?",
        "What is the {colour} object?",
        "Name the shape.",
    ),
    "position": (
        "Where is the shape?",
        "Where is the {colour} {shape}?",
        "In which part of the image is the shape?",
        "Where is the object located?",
    ),
    "count": (
        "How many shapes are there?",
        "How many shapes do you see?",
        "Count the shapes in the image.",
        "How many objects are in the picture?",
    ),
}
MULTI_IMAGE_QUESTIONS = {
    "colour": (
        "Which image shows a {value} shape, the first or the second?",
        "In which image is the shape {value}, the first or the second?",
    ),
    "shape": (
        "Which image shows a {value}, the first or the second?",
        "Which image has the {value}, the first or the second?",
    ),
}

# ----------------------------------------------------------------------------- records


def caption_text(items: list[Item]) -> str:
    """ "A red circle on the left and a blue square at the top." (shapes in reading order)."""
    ordered = sorted(items, key=lambda item: CAPTION_ORDER.index(item.position))
    parts = [f"a {item.colour} {item.shape} {POSITION_PHRASES[item.position]}" for item in ordered]
    text = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return text[0].upper() + text[1:] + "."


def _with_images(question: str, n_images: int, rng: random.Random) -> str:
    """The user turn: one <image> marker per image, usually before the question."""
    if n_images == 2:
        if rng.random() < 0.5:
            return f"<image>\n<image>\n{question}"
        return f"First image: <image>\nSecond image: <image>\n{question}"
    return f"<image>\n{question}" if rng.random() < 0.8 else f"{question}\n<image>"


def _other_items(anchor: Item, n: int, pool: list[Item], rng: random.Random) -> list[Item]:
    """n training items at positions distinct from the anchor's and from each other."""
    free = [p for p in POSITIONS if p != anchor.position]
    positions = rng.sample(free, n)
    return [rng.choice([item for item in pool if item.position == p]) for p in positions]


def _record(kind: str, anchor: Item, train_pool: list[Item], name: str, rng: random.Random) -> dict:
    """One record about the anchor item (plus training items beside it where the kind needs them)."""
    if kind == "multi_image":
        return _multi_image_record(anchor, train_pool, name, rng)
    if kind in ("colour", "shape", "position"):
        n_shapes = 1
    else:  # captions are mostly single shapes; counts are uniform over 1-3
        n_shapes = rng.choice((1, 1, 2, 3) if kind == "caption" else (1, 2, 3))
    items = [anchor] + _other_items(anchor, n_shapes - 1, train_pool, rng)
    scene = make_scene(name, items, rng, allow_grayscale=kind in GRAYSCALE_KINDS)
    if kind == "caption":
        reply = caption_text(items)
        question, answer = rng.choice(CAPTION_PROMPTS), reply[:-1]
    elif kind == "count":
        question, answer = rng.choice(QUESTIONS["count"]), str(len(items))
        reply = answer
    else:
        question = rng.choice(QUESTIONS[kind]).format(shape=anchor.shape, colour=anchor.colour)
        answer = reply = getattr(anchor, kind)
    problem = "; ".join(item.text for item in sorted(items))
    return _assemble(question, reply, [scene], kind, problem, answer, rng)


def _multi_image_record(anchor: Item, train_pool: list[Item], name: str, rng: random.Random) -> dict:
    """Two single-shape images; the question names a value that only the anchor's image has."""
    attribute = rng.choice(tuple(MULTI_IMAGE_QUESTIONS))
    value = getattr(anchor, attribute)
    distractor = rng.choice([item for item in train_pool if getattr(item, attribute) != value])
    anchor_first = rng.random() < 0.5
    pair = (anchor, distractor) if anchor_first else (distractor, anchor)
    scenes = [make_scene(f"{name}_{tag}", [item], rng) for tag, item in zip("ab", pair)]
    question = rng.choice(MULTI_IMAGE_QUESTIONS[attribute]).format(value=value)
    answer = "first" if anchor_first else "second"
    problem = f"first: {pair[0].text} | second: {pair[1].text} | {attribute}: {value}"
    return _assemble(question, answer, scenes, "multi_image", problem, answer, rng)


def _assemble(question, reply, scenes, kind, problem, answer, rng) -> dict:
    user = _with_images(question, len(scenes), rng)
    return {
        "conversations": [{"role": "user", "content": user}, {"role": "assistant", "content": reply}],
        "image": ",".join(scene.file for scene in scenes),
        "kind": kind,
        "problem": problem,
        "answer": answer,
        "scenes": [scene.to_dict() for scene in scenes],
    }


def make_records(
    split: str = "train", kinds=SFT_KINDS, per_kind: int = 1000, seed: int = 0, held_out_fraction: float = 0.2
) -> list[dict]:
    """``per_kind`` records of each kind, kind after kind.

    ``split="train"``: anchors are training items; ``split="held_out"``: anchors are
    held-out items. Either way anchors cycle evenly through the split's items, each time
    in a fresh rendering and phrasing. Image files are named ``{split}_{kind}_{i:05d}``
    (+ ``_a`` / ``_b`` for the two images of a multi-image record); record ``i`` is the same
    whatever ``per_kind`` is.
    """
    if split not in ("train", "held_out"):
        raise ValueError(f"split must be 'train' or 'held_out', got {split!r}")
    train, held_out = split_items(seed, held_out_fraction)
    records = []
    for kind in kinds:
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r}; choose from {', '.join(KINDS)}")
        stream_rng = random.Random(f"vision:{split}:{seed}:{kind}:anchors")
        anchors = even_stream(train if split == "train" else held_out, per_kind, stream_rng)
        for i, anchor in enumerate(anchors):
            rng = random.Random(f"vision:{split}:{seed}:{kind}:{i}")  # one stream per record
            records.append(_record(kind, anchor, train, f"{split}_{kind}_{i:05d}", rng))
    return records


def record_items(record: dict) -> list[Item]:
    """Every item drawn in a record's images (read back from its stored scenes)."""
    return [Item(s["shape"], s["colour"], s["position"]) for scene in record["scenes"] for s in scene["shapes"]]


# ----------------------------------------------------------------------------- MiniCPM-V format


def to_minicpm(records: list[dict]) -> list[dict]:
    """MiniCPM-V fine-tuning records: ``{"id", "image", "conversations"}`` (+ our metadata).

    One image: ``"image": path`` and the ``<image>`` marker kept. Several: ``"image":
    {"<image_00>": path, "<image_01>": path}`` and the markers renamed in order.
    Paths stay relative to the images folder, as in the MiniMind-V records.
    """
    out = []
    for index, record in enumerate(records):
        files = record["image"].split(",")
        conversations = [dict(turn) for turn in record["conversations"]]
        if len(files) == 1:
            image = files[0]
        else:
            tags = iter(f"<image_{k:02d}>" for k in range(len(files)))
            for turn in conversations:
                turn["content"] = re.sub(r"<image>", lambda _: next(tags), turn["content"])
            image = {f"<image_{k:02d}>": path for k, path in enumerate(files)}
        out.append(
            {
                "id": str(index),
                "image": image,
                "conversations": conversations,
                "kind": record["kind"],
                "problem": record["problem"],
                "answer": record["answer"],
            }
        )
    return out


def image_paths(record: dict) -> list[str]:
    """A record's image paths in the order its markers appear (MiniMind-V or MiniCPM-V)."""
    value = record.get("image", record.get("images"))
    if not value:
        return []
    if isinstance(value, str):
        return [path.strip() for path in value.split(",")]
    if isinstance(value, dict):  # MiniCPM-V: order by where each <image_NN> first appears
        text = "\n".join(turn.get("content", turn.get("value", "")) for turn in record["conversations"])
        return [value[tag] for tag in sorted(value, key=lambda tag: (text.find(tag) < 0, text.find(tag)))]
    return list(value)


# ----------------------------------------------------------------------------- files


MANIFEST = "manifest.json"


def write_images(images_dir: str | Path, records: list[dict]) -> Path:
    """Draw every scene of the records into ``images_dir``.

    ``manifest.json`` there maps each file to a digest of its scene and its byte size: a
    file whose entry still matches is not redrawn, so re-running is fast; anything else is
    drawn and written only if its bytes differ.
    """
    import PIL

    images_dir = Path(images_dir)
    images_dir.mkdir(parents=True, exist_ok=True)
    manifest_path = images_dir / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        manifest = {}
    for record in records:
        for scene_dict in record["scenes"]:
            key = json.dumps([scene_dict, PIL.__version__], sort_keys=True).encode("utf-8")
            digest = hashlib.sha1(key).hexdigest()
            path = images_dir / scene_dict["file"]
            entry = manifest.get(scene_dict["file"])
            if entry and entry[0] == digest and path.exists() and path.stat().st_size == entry[1]:
                continue
            data = encode_scene(Scene.from_dict(scene_dict))
            write_if_changed(path, data)
            manifest[scene_dict["file"]] = [digest, len(data)]
    write_if_changed(manifest_path, json.dumps(manifest, sort_keys=True, indent=0).encode("utf-8"))
    return images_dir


EMBEDDED_NAMES = (
    "images",
    "vlm_pretrain_train",
    "vlm_pretrain_eval",
    "vlm_sft_train",
    "vlm_sft_eval",
    "vlm_sft_basic_train",
    "vlm_sft_basic_eval",
    "vlm_sft_train_minicpm",
)
# The quickstart VLM SFT set: what a tiny model with a random tower learns in a few CPU
# minutes (measured: colour questions on held-out shapes, 300 steps -> 100%).
BASIC_SFT_KINDS = ("colour",)


def write_embedded_vision_datasets(
    out_dir: str | Path,
    seed: int = 0,
    per_kind: int = 1000,
    eval_per_kind: int = 100,
    sft_kinds=SFT_KINDS,
    held_out_fraction: float = 0.2,
) -> dict[str, Path]:
    """Write the VLM quickstart data sets; returns ``{name: path}``.

    ``images`` (the folder every ``image`` field is relative to), ``vlm_pretrain_train`` /
    ``vlm_pretrain_eval`` (captions), ``vlm_sft_train`` / ``vlm_sft_eval`` (questions) as
    MiniMind-V jsonl, and ``vlm_sft_train_minicpm`` (the same SFT training records as a
    MiniCPM-V JSON list). Eval files hold held-out items only. Deterministic and
    idempotent: the same arguments give the same bytes and leave existing files untouched.
    """
    out_dir = Path(out_dir)
    common = dict(seed=seed, held_out_fraction=held_out_fraction)
    contents = {
        "vlm_pretrain_train": make_records("train", PRETRAIN_KINDS, per_kind, **common),
        "vlm_pretrain_eval": make_records("held_out", PRETRAIN_KINDS, eval_per_kind, **common),
        "vlm_sft_train": make_records("train", sft_kinds, per_kind, **common),
        "vlm_sft_eval": make_records("held_out", sft_kinds, eval_per_kind, **common),
        "vlm_sft_basic_train": make_records("train", BASIC_SFT_KINDS, per_kind, **common),
        "vlm_sft_basic_eval": make_records("held_out", BASIC_SFT_KINDS, eval_per_kind, **common),
    }
    paths = {"images": write_images(out_dir / "images", [r for records in contents.values() for r in records])}
    paths.update({name: write_jsonl(out_dir / f"{name}.jsonl", records) for name, records in contents.items()})
    paths["vlm_sft_train_minicpm"] = write_json_list(
        out_dir / "vlm_sft_train_minicpm.json", to_minicpm(contents["vlm_sft_train"])
    )
    return paths
