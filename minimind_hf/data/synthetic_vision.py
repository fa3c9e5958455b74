"""Deterministic synthetic image sets whose answers can be checked (MiniMind-V quickstart).

The vision counterpart of :mod:`minimind_hf.data.synthetic`: Pillow draws simple shapes
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

import functools
import hashlib
import io
import json
import os
import random
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from .synthetic import write_jsonl

SHAPES = ("circle", "square", "triangle")
# Far apart in RGB so a nearest-colour read-back (and a tiny vision tower) cannot confuse them.
COLOURS = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (240, 210, 40),
    "white": (245, 245, 245),
    "black": (20, 20, 20),
}
POSITIONS = ("left", "right", "top", "bottom", "center")
# Neutral tones, each at RGB distance >= 100 from every shape colour (tested).
BACKGROUNDS = {"grey": (128, 128, 128), "slate": (70, 80, 95), "sand": (190, 180, 150)}
MIN_CONTRAST = 100
MIN_GRAY_CONTRAST = 50  # luminance gap needed before a scene may be stored as grayscale

SIZES = ((32, 32), (48, 48), (64, 64), (64, 80), (80, 64))  # (width, height)
MULTI_SHAPE_SIZES = SIZES[1:]  # 32 px is too small for three shapes
# Storage format -> probability. "L" falls back to "RGB" where colour matters or contrast is low.
STORAGES = {"RGB": 0.70, "RGBA": 0.08, "P": 0.08, "L": 0.06, "JPEG": 0.08}
NOISE_PROBABILITY = 0.3
NOISE_ALPHA = 0.1  # blend weight of the grey noise: at most +-13 levels

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

POSITION_PHRASES = {"left": "on the left", "right": "on the right", "top": "at the top",
                    "bottom": "at the bottom", "center": "in the center"}
CAPTION_ORDER = ("top", "left", "center", "right", "bottom")  # reading order for captions

CAPTION_PROMPTS = ("Describe the image.", "What is in this picture?", "Give a short description of the image.",
                   "What do you see?", "Caption this image.")
QUESTIONS = {
    "colour": ("What colour is the shape?", "What color is the shape?", "Which colour is the {shape}?",
               "What is the colour of the object in the image?", "Name the colour of the shape."),
    "shape": ("What shape is this?", "What shape do you see?", "Which shape is in the image?",
              "What is the {colour} object?", "Name the shape."),
    "position": ("Where is the shape?", "Where is the {colour} {shape}?",
                 "In which part of the image is the shape?", "Where is the object located?"),
    "count": ("How many shapes are there?", "How many shapes do you see?", "Count the shapes in the image.",
              "How many objects are in the picture?"),
}
MULTI_IMAGE_QUESTIONS = {
    "colour": ("Which image shows a {value} shape, the first or the second?",
               "In which image is the shape {value}, the first or the second?"),
    "shape": ("Which image shows a {value}, the first or the second?",
              "Which image has the {value}, the first or the second?"),
}

# ----------------------------------------------------------------------------- items and split


@dataclass(frozen=True, order=True)
class Item:
    """One shape's attributes: the unit the train / held-out split is made over."""

    shape: str
    colour: str
    position: str

    @property
    def text(self) -> str:
        return f"{self.colour} {self.shape} {self.position}"


ALL_ITEMS = tuple(Item(s, c, p) for s in SHAPES for c in COLOURS for p in POSITIONS)


def split_items(seed: int = 0, held_out_fraction: float = 0.2) -> tuple[list[Item], list[Item]]:
    """(train, held_out) items: disjoint, seeded, each sorted.

    Items are held out in a seeded order, skipping any that would leave less than
    ``MIN_TRAINING_SHARE`` of its groups in training - a group being every item with the
    same value of one attribute, or of two ("yellow", "yellow triangle", "triangle on the
    left"). Otherwise a purely random split can hold out nearly all yellow triangles, and
    "yellow means not a triangle" becomes a shortcut that held-out questions punish.
    """
    shuffled = list(ALL_ITEMS)
    random.Random(f"vision-split:{seed}").shuffle(shuffled)
    n_held = max(1, round(len(shuffled) * held_out_fraction))
    sizes = Counter(group for item in ALL_ITEMS for group in _groups(item))
    remaining = sizes.copy()
    held_out = []
    for item in shuffled:
        if len(held_out) == n_held:
            break
        if all(remaining[g] - 1 >= MIN_TRAINING_SHARE * sizes[g] for g in _groups(item)):
            held_out.append(item)
            remaining.subtract(_groups(item))
    return sorted(set(ALL_ITEMS) - set(held_out)), sorted(held_out)


MIN_TRAINING_SHARE = 0.6


def _groups(item: Item) -> list[tuple]:
    """The attribute groups an item belongs to: ((attribute, value), ...) for one or two attributes."""
    pairs = (("shape", item.shape), ("colour", item.colour), ("position", item.position))
    return [(a,) for a in pairs] + [(a, b) for i, a in enumerate(pairs) for b in pairs[i + 1:]]


# ----------------------------------------------------------------------------- scenes


@dataclass(frozen=True)
class Shape:
    shape: str
    colour: str
    position: str
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 inclusive, in pixels


@dataclass(frozen=True)
class Scene:
    """Everything needed to draw (and re-draw) one image file."""

    file: str
    size: tuple[int, int]  # width, height
    storage: str  # "RGB", "RGBA", "P", "L" (PNG modes) or "JPEG"
    background: str
    noise_seed: int  # 0: plain background
    shapes: tuple[Shape, ...]

    def to_dict(self) -> dict:
        # By hand: dataclasses.asdict deep-copies and dominated record building.
        shapes = [{"shape": s.shape, "colour": s.colour, "position": s.position, "box": list(s.box)}
                  for s in self.shapes]
        return {"file": self.file, "size": list(self.size), "storage": self.storage, "background": self.background,
                "noise_seed": self.noise_seed, "shapes": shapes}

    @classmethod
    def from_dict(cls, data: dict) -> "Scene":
        shapes = tuple(Shape(s["shape"], s["colour"], s["position"], tuple(s["box"])) for s in data["shapes"])
        return cls(data["file"], tuple(data["size"]), data["storage"], data["background"], data["noise_seed"], shapes)


def _luminance(rgb) -> float:
    r, g, b = rgb
    return 0.299 * r + 0.587 * g + 0.114 * b  # what Image.convert("L") uses


def _distance(a, b) -> float:
    return sum((x - y) ** 2 for x, y in zip(a, b)) ** 0.5


def _layout(items: list[Item], size: tuple[int, int], rng: random.Random) -> tuple[Shape, ...]:
    """Boxes for the items (distinct positions). One shape is big (36-46% of the short side);
    several are smaller (24-28%) and pushed further out, so they never overlap."""
    width, height = size
    short = min(width, height)
    single = len(items) == 1
    near, jitter = (0.27, 0.03) if single else (0.18, 0.0)
    anchors = {"left": (near, 0.5), "right": (1 - near, 0.5), "top": (0.5, near), "bottom": (0.5, 1 - near),
               "center": (0.5, 0.5)}
    shapes = []
    for item in items:
        side = round(short * (rng.uniform(0.36, 0.46) if single else rng.uniform(0.24, 0.28)))
        fx, fy = anchors[item.position]
        cx = (fx + rng.uniform(-jitter, jitter)) * width
        cy = (fy + rng.uniform(-jitter, jitter)) * height
        x0 = min(max(round(cx - side / 2), 0), width - side)
        y0 = min(max(round(cy - side / 2), 0), height - side)
        shapes.append(Shape(item.shape, item.colour, item.position, (x0, y0, x0 + side - 1, y0 + side - 1)))
    return tuple(shapes)


@functools.cache
def contrasting_backgrounds(colours: tuple[str, ...], grayscale: bool = False) -> list[str]:
    """Backgrounds that stand out from every colour (in luminance too, for grayscale files)."""
    def ok(background, colour):
        bg, fg = BACKGROUNDS[background], COLOURS[colour]
        if grayscale:
            return abs(_luminance(bg) - _luminance(fg)) >= MIN_GRAY_CONTRAST
        return _distance(bg, fg) >= MIN_CONTRAST

    return [name for name in BACKGROUNDS if all(ok(name, colour) for colour in colours)]


def _weighted_choice(weights: dict, rng: random.Random):
    # One rng.random() call; random.choices is needlessly slow for one draw.
    r = rng.random() * sum(weights.values())
    for value, weight in weights.items():
        r -= weight
        if r < 0:
            return value
    return value


def make_scene(file: str, items: list[Item], rng: random.Random, allow_grayscale: bool = False) -> Scene:
    """A random rendering of the items: size, storage format, background, noise, jitter."""
    size = rng.choice(SIZES if len(items) == 1 else MULTI_SHAPE_SIZES)
    storage = _weighted_choice(STORAGES, rng)
    colours = tuple(sorted({item.colour for item in items}))
    if storage == "L" and not (allow_grayscale and contrasting_backgrounds(colours, grayscale=True)):
        storage = "RGB"
    background = rng.choice(contrasting_backgrounds(colours, grayscale=storage == "L"))
    # Palette images are flat graphics: noise would only blur their few exact colours.
    noisy = storage != "P" and rng.random() < NOISE_PROBABILITY
    noise_seed = rng.randrange(1, 2**31) if noisy else 0
    suffix = ".jpg" if storage == "JPEG" else ".png"
    return Scene(file + suffix, size, storage, background, noise_seed, _layout(items, size, rng))


def draw_scene(scene: Scene):
    """The scene as an RGB PIL image (before conversion to its storage format)."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", scene.size, BACKGROUNDS[scene.background])
    if scene.noise_seed:
        # Soft grey blotches: noise at a quarter of the resolution, upscaled. randbytes is
        # seeded and platform-stable (unlike Image.effect_noise); coarse noise keeps PNGs small.
        coarse = (-(-scene.size[0] // 4), -(-scene.size[1] // 4))
        noise = random.Random(scene.noise_seed).randbytes(coarse[0] * coarse[1])
        noise = Image.frombytes("L", coarse, noise).convert("RGB").resize(scene.size, Image.Resampling.BILINEAR)
        image = Image.blend(image, noise, NOISE_ALPHA)
    draw = ImageDraw.Draw(image)
    for shape in scene.shapes:
        fill = COLOURS[shape.colour]
        x0, y0, x1, y1 = shape.box
        if shape.shape == "circle":
            draw.ellipse(shape.box, fill=fill)
        elif shape.shape == "square":
            draw.rectangle(shape.box, fill=fill)
        else:  # triangle, apex up
            draw.polygon([(x0, y1), (x1, y1), ((x0 + x1) / 2, y0)], fill=fill)
    return image


def encode_scene(scene: Scene) -> bytes:
    """The file bytes: fixed encoder settings and no metadata, so the same scene gives the same bytes."""
    from PIL import Image

    image = draw_scene(scene)
    buffer = io.BytesIO()
    if scene.storage == "JPEG":
        image.save(buffer, "JPEG", quality=90, subsampling=0)  # 4:4:4 keeps small colour shapes intact
    elif scene.storage == "P":
        image.convert("P", palette=Image.Palette.ADAPTIVE, colors=16).save(buffer, "PNG", compress_level=6)
    else:
        image.convert(scene.storage).save(buffer, "PNG", compress_level=6)
    return buffer.getvalue()


# ----------------------------------------------------------------------------- records


def caption_text(items: list[Item]) -> str:
    """"A red circle on the left and a blue square at the top." (shapes in reading order)."""
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


def _anchor_stream(items: list[Item], n: int, rng: random.Random) -> list[Item]:
    """n anchors covering every item as evenly as possible (reshuffled each pass).

    Anchor i does not depend on n: longer streams only append."""
    out = []
    while len(out) < n:
        shuffled = items[:]
        rng.shuffle(shuffled)
        out += shuffled[: n - len(out)]
    return out


def make_records(split: str = "train", kinds=SFT_KINDS, per_kind: int = 1000, seed: int = 0,
                 held_out_fraction: float = 0.2) -> list[dict]:
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
        anchors = _anchor_stream(train if split == "train" else held_out, per_kind, stream_rng)
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
        out.append({"id": str(index), "image": image, "conversations": conversations,
                    "kind": record["kind"], "problem": record["problem"], "answer": record["answer"]})
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


def _write_if_changed(path: Path, data: bytes) -> bool:
    """Atomic write, skipped when the file already holds these bytes (mtimes stay put)."""
    if path.exists() and path.read_bytes() == data:
        return False
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # per process: ranks may write at once
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return True


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
            _write_if_changed(path, data)
            manifest[scene_dict["file"]] = [digest, len(data)]
    _write_if_changed(manifest_path, json.dumps(manifest, sort_keys=True, indent=0).encode("utf-8"))
    return images_dir


def write_json_list(path: str | Path, records: list[dict]) -> Path:
    """A JSON list, one record per line (readable diffs); identical files are left untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = ",\n".join(json.dumps(r, ensure_ascii=False) for r in records)
    _write_if_changed(path, f"[\n{body}\n]\n".encode("utf-8"))
    return path


EMBEDDED_NAMES = ("images", "vlm_pretrain_train", "vlm_pretrain_eval", "vlm_sft_train", "vlm_sft_eval",
                  "vlm_sft_basic_train", "vlm_sft_basic_eval", "vlm_sft_train_minicpm")
# The quickstart VLM SFT set: what a tiny model with a random tower learns in a few CPU
# minutes (measured: colour questions on held-out shapes, 300 steps -> 100%).
BASIC_SFT_KINDS = ("colour",)


def write_embedded_vision_datasets(out_dir: str | Path, seed: int = 0, per_kind: int = 1000,
                                   eval_per_kind: int = 100, sft_kinds=SFT_KINDS,
                                   held_out_fraction: float = 0.2) -> dict[str, Path]:
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
    paths["vlm_sft_train_minicpm"] = write_json_list(out_dir / "vlm_sft_train_minicpm.json",
                                                     to_minicpm(contents["vlm_sft_train"]))
    return paths


# ----------------------------------------------------------------------------- evaluation


def is_correct(reply: str, answer: str, options=()) -> bool:
    """The answer appears in the reply as a whole word (case-insensitive).

    ``options``: the closed set the answer comes from (see ``ANSWER_OPTIONS``); a reply that
    also names another option ("red or blue", "the first or the second") does not count,
    so echoing the question's choices is not rewarded.
    """
    def mentions(word: str) -> bool:
        return re.search(rf"(?<!\w){re.escape(word)}(?!\w)", reply, re.IGNORECASE) is not None

    return mentions(answer) and not any(mentions(o) for o in options if o.lower() != answer.lower())


def load_images(record: dict, images_root: str | Path) -> list:
    """The record's images as RGB PIL images, in marker order."""
    from PIL import Image

    images = []
    for path in image_paths(record):
        with Image.open(Path(images_root) / path) as image:
            images.append(image.convert("RGB"))
    return images


def generate_vision_replies(model, processor, conversations: list[list[dict]], images: list[list],
                            max_new_tokens: int = 8, batch_size: int = 16) -> list[str]:
    """Greedy replies to chat prompts with images, batched with left padding."""
    import torch

    tokenizer = processor.tokenizer
    was_training = model.training
    model.eval()
    replies = []
    try:
        for start in range(0, len(conversations), batch_size):
            prompts = [processor.apply_chat_template(c, add_generation_prompt=True, tokenize=False)
                       for c in conversations[start: start + batch_size]]
            flat = [image for per_record in images[start: start + batch_size] for image in per_record]
            batch = processor(text=prompts, images=flat or None, padding=True, padding_side="left",
                              return_tensors="pt").to(model.device)
            with torch.no_grad():
                output = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False,
                                        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
            replies += tokenizer.batch_decode(output[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)
    finally:
        model.train(was_training)
    return replies


def vision_accuracy(model, processor, records: list[dict], images_root: str | Path,
                    max_new_tokens: int | None = None, batch_size: int = 16) -> dict[str, float]:
    """Accuracy per ``kind`` (plus ``"all"``) of greedy replies to records' last question.

    The prompt is the conversation without its final assistant turn (MiniMind-V or
    MiniCPM-V records; markers are expanded by the processor); the reply is scored with
    :func:`is_correct` against ``record["answer"]`` and the kind's ``ANSWER_OPTIONS``.
    ``max_new_tokens=None`` allows the longest reference reply plus two tokens.
    """
    if not records:
        return {}
    conversations = [r["conversations"][:-1] for r in records]
    if max_new_tokens is None:
        references = [r["conversations"][-1]["content"] for r in records]
        lengths = processor.tokenizer(references, add_special_tokens=False)["input_ids"]
        max_new_tokens = 2 + max(len(ids) for ids in lengths)
    images = [load_images(r, images_root) for r in records]
    replies = generate_vision_replies(model, processor, conversations, images, max_new_tokens, batch_size)
    return score_replies(records, replies)


def score_replies(records: list[dict], replies: list[str]) -> dict[str, float]:
    """Accuracy per kind (plus ``"all"``) of replies against the records' answers."""
    total, correct = Counter(), Counter()
    for record, reply in zip(records, replies, strict=True):
        ok = is_correct(reply, record["answer"], ANSWER_OPTIONS.get(record["kind"], ()))
        for key in (record["kind"], "all"):
            total[key] += 1
            correct[key] += ok
    return {key: correct[key] / total[key] for key in total}
