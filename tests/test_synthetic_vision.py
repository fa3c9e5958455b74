"""Synthetic embedded image sets (minimind_hf.data.embedded.vision)."""

import json
import re
from collections import Counter
from pathlib import Path

import pytest
import torch
from helpers import VLM_TEXT
from PIL import Image

from minimind_hf.data import normalise_record
from minimind_hf.data.embedded import scenes as S
from minimind_hf.data.embedded import vision as V
from minimind_hf.evaluation import vision as EV
from minimind_hf.evaluation.answers import names_option

SMALL = dict(seed=0, per_kind=40, eval_per_kind=15)
NAMES = set(V.EMBEDDED_NAMES)


@pytest.fixture(scope="module")
def embedded(tmp_path_factory):
    """Small embedded sets, written once for the module."""
    return V.write_embedded_vision_datasets(tmp_path_factory.mktemp("vision"), **SMALL)


@pytest.fixture(scope="module")
def records(embedded):
    """Every jsonl record written, by file name."""
    return {name: read_jsonl(path) for name, path in embedded.items() if path.suffix == ".jsonl"}


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def folder_bytes(folder: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def all_records(records):
    return [r for rs in records.values() for r in rs]


# ----------------------------------------------------------------------------- determinism


def test_same_seed_same_bytes_and_idempotent(tmp_path, embedded):
    again = V.write_embedded_vision_datasets(tmp_path / "again", **SMALL)
    assert (
        set(again)
        == NAMES
        == {
            "images",
            "vlm_pretrain_train",
            "vlm_pretrain_eval",
            "vlm_sft_train",
            "vlm_sft_eval",
            "vlm_sft_basic_train",
            "vlm_sft_basic_eval",
            "vlm_sft_train_minicpm",
        }
    )
    # The quickstart set is the colour subset, held out like the rest.
    basic = [json.loads(line) for line in again["vlm_sft_basic_eval"].read_text().splitlines()]
    assert basic and {r["kind"] for r in basic} == set(V.BASIC_SFT_KINDS)
    for name, path in embedded.items():
        if name == "images":
            assert folder_bytes(again[name]) == folder_bytes(path)
        else:
            assert again[name].read_bytes() == path.read_bytes(), name
    # Rewriting in place leaves every file untouched (load_records caches on mtimes).
    files = [p for p in again.values() if p.is_file()] + sorted(again["images"].iterdir())
    mtimes = [p.stat().st_mtime_ns for p in files]
    V.write_embedded_vision_datasets(tmp_path / "again", **SMALL)
    assert [p.stat().st_mtime_ns for p in files] == mtimes
    # A deleted or truncated image is redrawn identically.
    images = again["images"]
    (images / "train_colour_00000.png").unlink()
    (images / "held_out_count_00001.png").write_bytes(b"broken")
    V.write_embedded_vision_datasets(tmp_path / "again", **SMALL)
    assert folder_bytes(images) == folder_bytes(embedded["images"])


def test_different_seed_different_data(tmp_path, embedded):
    other = V.write_embedded_vision_datasets(tmp_path, **{**SMALL, "seed": 1})
    for name in NAMES - {"images"}:
        assert other[name].read_bytes() != embedded[name].read_bytes(), name
    assert V.split_items(seed=0) != V.split_items(seed=1)


def test_no_global_random_state_is_used():
    import random

    random.seed(123)
    state = random.getstate()
    first = V.make_records("train", V.KINDS, per_kind=5, seed=3)
    assert random.getstate() == state
    random.seed(999)
    assert V.make_records("train", V.KINDS, per_kind=5, seed=3) == first


def test_record_i_does_not_depend_on_per_kind():
    # So image file names always mean the same picture, whatever size was written before.
    for kind in V.KINDS:
        assert V.make_records("train", [kind], per_kind=5) == V.make_records("train", [kind], per_kind=12)[:5]


def test_scene_dict_round_trip(records):
    for record in all_records(records):
        for scene in record["scenes"]:
            assert V.Scene.from_dict(scene).to_dict() == scene


# ----------------------------------------------------------------------------- splits


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_item_split_is_disjoint_and_balanced(seed):
    train, held_out = V.split_items(seed=seed)
    assert set(train) | set(held_out) == set(S.ALL_ITEMS) and not set(train) & set(held_out)
    assert len(held_out) == round(0.2 * len(S.ALL_ITEMS))
    # Every value and every pair of values keeps most of its items in training: no shortcut
    # like "yellow things are never triangles" can be learned from the training items.
    attributes = ("shape", "colour", "position")
    for chosen in [(a,) for a in attributes] + [(a, b) for i, a in enumerate(attributes) for b in attributes[i + 1 :]]:

        def key(item):
            return tuple(getattr(item, a) for a in chosen)

        everything, kept = Counter(map(key, S.ALL_ITEMS)), Counter(map(key, train))
        assert all(kept[g] >= 0.6 * n for g, n in everything.items()), chosen


@pytest.mark.parametrize("kind", V.KINDS)
def test_held_out_items_never_in_training(kind):
    train, held_out = V.split_items(seed=0)
    train_records = V.make_records("train", [kind], per_kind=3 * len(train))
    held_records = V.make_records("held_out", [kind], per_kind=2 * len(held_out))
    # Training records only draw training items; every held-out record draws a held-out one.
    assert all(set(V.record_items(r)) <= set(train) for r in train_records)
    assert all(set(V.record_items(r)) & set(held_out) for r in held_records)
    # Anchors cycle through the split evenly, so every held-out item is evaluated.
    assert set().union(*(V.record_items(r) for r in held_records)) >= set(held_out)
    assert not {r["problem"] for r in train_records} & {r["problem"] for r in held_records}


def test_written_eval_files_are_held_out(records):
    train, held_out = V.split_items(seed=0)
    for name, rs in records.items():
        for record in rs:
            items = set(V.record_items(record))
            assert (items & set(held_out)) if name.endswith("_eval") else items <= set(train), (name, record["problem"])


# ----------------------------------------------------------------------------- answers


def nearest_colour(pixel, scene, _memo={}) -> str:
    """The named colour (or "background") closest to an RGB pixel."""
    key = (pixel, scene.background)
    if key not in _memo:  # images repeat few pixel values: memoising makes read-backs fast
        palette = {**V.COLOURS, "background": S.BACKGROUNDS[scene.background]}
        _memo[key] = min(palette, key=lambda name: sum((a - b) ** 2 for a, b in zip(pixel, palette[name])))
    return _memo[key]


def interior_point(shape) -> tuple[int, int]:
    x0, y0, x1, y1 = shape.box
    y = y0 + 0.7 * (y1 - y0) if shape.shape == "triangle" else (y0 + y1) / 2  # a triangle is wide low down
    return round((x0 + x1) / 2), round(y)


def foreground(image, scene) -> set[int]:
    """Indices of pixels that differ clearly from the background (grey levels for "L" files)."""
    background = S.BACKGROUNDS[scene.background]
    if scene.storage == "L":
        background = (round(S._luminance(background)),) * 3
    size = image.width * image.height
    far = {p for _, p in image.getcolors(size) if sum((a - b) ** 2 for a, b in zip(p, background)) > 60**2}
    return {i for i, p in enumerate(image.getdata()) if p in far}


def count_components(image, scene) -> int:
    """Connected foreground regions (4-neighbour, >= 3 px)."""
    width, height = image.size
    pixels, count = foreground(image, scene), 0
    while pixels:
        stack, size = [pixels.pop()], 0
        while stack:
            i = stack.pop()
            size += 1
            x, y = i % width, i // width
            for j, ok in ((i - 1, x > 0), (i + 1, x < width - 1), (i - width, y > 0), (i + width, y < height - 1)):
                if ok and j in pixels:
                    pixels.remove(j)
                    stack.append(j)
        count += size >= 3
    return count


def nearest_position(centre, size) -> str:
    anchors = {
        "left": (0.27, 0.5),
        "right": (0.73, 0.5),
        "top": (0.5, 0.27),
        "bottom": (0.5, 0.73),
        "center": (0.5, 0.5),
    }
    fx, fy = centre[0] / size[0], centre[1] / size[1]
    return min(anchors, key=lambda p: (anchors[p][0] - fx) ** 2 + (anchors[p][1] - fy) ** 2)


def check_scene_pixels(scene, images_root):
    """Read the file back: size, mode, every shape's colour, the number of shapes."""
    with Image.open(images_root / scene.file) as image:
        assert image.size == scene.size
        assert (image.format, image.mode) == (("JPEG", "RGB") if scene.storage == "JPEG" else ("PNG", scene.storage))
        rgb = image.convert("RGB")
    for shape in scene.shapes:
        pixel = rgb.getpixel(interior_point(shape))
        if scene.storage == "L":  # grey levels only: compare luminance
            assert abs(pixel[0] - S._luminance(V.COLOURS[shape.colour])) < 4
        else:
            assert nearest_colour(pixel, scene) == shape.colour, (scene.file, shape)
    assert count_components(rgb, scene) == len(scene.shapes), scene.file
    return rgb


def dominant_colour(rgb, scene) -> str:
    """The most frequent named non-background colour of an RGB image."""
    classes = Counter(nearest_colour(p, scene) for p in rgb.getdata())
    return max((c for c in classes if c != "background"), key=classes.__getitem__)


def shape_position(rgb, scene) -> str:
    """Where the foreground of a one-shape image is: the position nearest its box centre."""
    pixels = foreground(rgb, scene)
    xs, ys = [i % rgb.width for i in pixels], [i // rgb.width for i in pixels]
    centre = ((min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2)  # box centre: a triangle's centroid sits low
    return nearest_position(centre, rgb.size)


def test_answers_match_the_pixels(embedded, records):
    root = embedded["images"]
    for record in all_records(records):
        scenes = [V.Scene.from_dict(s) for s in record["scenes"]]
        images = [check_scene_pixels(scene, root) for scene in scenes]
        kind, answer, reply = record["kind"], record["answer"], record["conversations"][-1]["content"]
        items = V.record_items(record)
        if kind in ("colour", "shape", "position"):
            assert len(items) == 1 and answer == reply == getattr(items[0], kind)
        # Recomputed from the pixels alone, not from the stored parameters:
        if kind == "colour":
            assert dominant_colour(images[0], scenes[0]) == answer, record["problem"]
        elif kind == "position":
            assert shape_position(images[0], scenes[0]) == answer, record["problem"]
        elif kind == "count":
            assert answer == reply == str(len(scenes[0].shapes))
        elif kind == "caption":
            assert reply == V.caption_text(items) and answer == reply.rstrip(".")
            assert all(f"{i.colour} {i.shape} {V.POSITION_PHRASES[i.position]}" in reply for i in items)
        elif kind == "multi_image":
            attribute, value = record["problem"].rsplit(" | ", 1)[-1].split(": ")
            assert value in record["conversations"][0]["content"]
            has_value = [getattr(item, attribute) == value for item in items]
            assert has_value.count(True) == 1 and answer == reply == ("first" if has_value[0] else "second")
            if attribute == "colour":
                assert [dominant_colour(im, sc) == value for im, sc in zip(images, scenes)] == has_value


def test_shapes_fit_and_never_overlap():
    for record in V.make_records("train", V.KINDS, per_kind=150):
        for scene in map(V.Scene.from_dict, record["scenes"]):
            width, height = scene.size
            boxes = [s.box for s in scene.shapes]
            assert len({s.position for s in scene.shapes}) == len(boxes)
            for x0, y0, x1, y1 in boxes:
                assert 0 <= x0 < x1 < width and 0 <= y0 < y1 < height
                assert 0.22 <= (x1 - x0 + 1) / min(width, height) <= 0.5  # recognisable after a 32 px resize
            for i, a in enumerate(boxes):
                for b in boxes[i + 1 :]:
                    assert a[2] < b[0] or b[2] < a[0] or a[3] < b[1] or b[3] < a[1]


def test_backgrounds_contrast_with_every_colour():
    for colour in V.COLOURS:
        assert S.contrasting_backgrounds((colour,)) == list(S.BACKGROUNDS)
        assert S.contrasting_backgrounds((colour,), grayscale=True)  # a one-shape image can always be grey


def test_image_variety(records):
    scenes = [(r["kind"], s) for r in V.make_records("train", V.KINDS, per_kind=200) for s in r["scenes"]]
    assert {s["storage"] for _, s in scenes} == set(S.STORAGES)
    assert {tuple(s["size"]) for _, s in scenes} == set(S.SIZES)
    assert {s["background"] for _, s in scenes} == set(S.BACKGROUNDS)
    assert any(s["noise_seed"] for _, s in scenes) and not all(s["noise_seed"] for _, s in scenes)
    # Grayscale only where colour is neither asked nor described.
    assert {kind for kind, s in scenes if s["storage"] == "L"} <= set(V.GRAYSCALE_KINDS)
    counts = Counter(len(s["shapes"]) for kind, s in scenes if kind == "count")
    assert set(counts) == {1, 2, 3}
    # The written files themselves hold several formats too.
    assert len({s["storage"] for r in all_records(records) for s in r["scenes"]}) >= 4


# ----------------------------------------------------------------------------- formats


def test_one_marker_per_image(embedded, records):
    for record in all_records(records):
        user = record["conversations"][0]
        assert user["role"] == "user" and record["conversations"][-1]["role"] == "assistant"
        files = record["image"].split(",")
        assert len(files) == len(record["scenes"]) == (2 if record["kind"] == "multi_image" else 1)
        assert user["content"].count("<image>") == len(files)
        assert sum(turn["content"].count("<image>") for turn in record["conversations"]) == len(files)
        assert files == [s["file"] for s in record["scenes"]]
        assert all((embedded["images"] / f).is_file() for f in files)


def test_minicpm_file_mirrors_the_jsonl(embedded, records):
    minicpm = json.loads(embedded["vlm_sft_train_minicpm"].read_text(encoding="utf-8"))
    jsonl = records["vlm_sft_train"]
    assert len(minicpm) == len(jsonl) and len({r["id"] for r in minicpm}) == len(minicpm)
    for ours, theirs in zip(jsonl, minicpm):
        assert set(theirs) == {"id", "image", "conversations", "kind", "problem", "answer"}
        assert V.image_paths(theirs) == V.image_paths(ours) == ours["image"].split(",")
        text = theirs["conversations"][0]["content"]
        if isinstance(theirs["image"], dict):  # multi-image: <image_00>, <image_01> in order
            assert list(theirs["image"]) == re.findall(r"<image_\d\d>", text) == ["<image_00>", "<image_01>"]
        else:
            assert isinstance(theirs["image"], str) and text.count("<image>") == 1
        renamed = [{**t, "content": re.sub(r"<image_\d\d>", "<image>", t["content"])} for t in theirs["conversations"]]
        assert renamed == ours["conversations"]
        assert (theirs["kind"], theirs["problem"], theirs["answer"]) == (ours["kind"], ours["problem"], ours["answer"])
        # The project's loader reads both as the same conversation with the same images.
        a, b = normalise_record(ours, "sft"), normalise_record(theirs, "sft")
        assert json.loads(a["images"]) == V.image_paths(ours)
        loaded = json.loads(b["images"])
        assert list(loaded.values() if isinstance(loaded, dict) else loaded) == V.image_paths(ours)
        assert [m["role"] for m in a["messages"]] == [m["role"] for m in b["messages"]] == ["user", "assistant"]


def test_image_paths_orders_minicpm_keys_by_marker():
    record = {
        "image": {"<image_01>": "b.png", "<image_00>": "a.png"},
        "conversations": [{"role": "user", "content": "<image_00> then <image_01>"}],
    }
    assert V.image_paths(record) == ["a.png", "b.png"]
    assert V.image_paths({"image": "a.png, b.png"}) == ["a.png", "b.png"]
    assert V.image_paths({"conversations": []}) == []


def test_load_images_converts_every_mode_to_rgb(embedded, records):
    by_storage = {}
    for record in all_records(records):
        by_storage.setdefault(record["scenes"][0]["storage"], record)
    assert len(by_storage) >= 4
    for record in by_storage.values():
        images = EV.load_images(record, embedded["images"])
        assert [im.mode for im in images] == ["RGB"] * len(record["scenes"])
        assert [list(im.size) for im in images] == [s["size"] for s in record["scenes"]]


# ----------------------------------------------------------------------------- scoring


@pytest.mark.parametrize(
    "reply, answer, options, expected",
    [
        ("red", "red", V.ANSWER_OPTIONS["colour"], True),
        ("Red.", "red", V.ANSWER_OPTIONS["colour"], True),
        ("It is red", "red", V.ANSWER_OPTIONS["colour"], True),
        ("reddish", "red", V.ANSWER_OPTIONS["colour"], False),
        ("blue", "red", V.ANSWER_OPTIONS["colour"], False),
        ("red or blue", "red", V.ANSWER_OPTIONS["colour"], False),  # naming two options is no answer
        ("red or blue", "red", (), True),
        ("second", "second", V.ANSWER_OPTIONS["multi_image"], True),
        ("the first or the second", "second", V.ANSWER_OPTIONS["multi_image"], False),
        ("2", "2", V.ANSWER_OPTIONS["count"], True),
        ("12", "2", V.ANSWER_OPTIONS["count"], False),
        ("There are 2 shapes.", "2", V.ANSWER_OPTIONS["count"], True),
        ("", "circle", V.ANSWER_OPTIONS["shape"], False),
        ("in the center", "center", V.ANSWER_OPTIONS["position"], True),
        ("A red circle on the left.", "A red circle on the left", (), True),
        ("a red circle on the left and more", "A red circle on the left", (), True),
        ("A red circle on the leftmost.", "A red circle on the left", (), False),
    ],
)
def test_is_correct(reply, answer, options, expected):
    assert names_option(reply, answer, options) is expected


def test_score_replies_per_kind():
    records = V.make_records("held_out", V.SFT_KINDS, per_kind=4)
    replies = [r["answer"] if i % 2 == 0 else "no idea" for i, r in enumerate(records)]
    scores = EV.score_replies(records, replies)
    assert scores == {**{kind: 0.5 for kind in V.SFT_KINDS}, "all": 0.5}
    assert EV.score_replies(records, [r["conversations"][-1]["content"] for r in records])["all"] == 1.0


# ----------------------------------------------------------------------------- vision_accuracy


@pytest.fixture(scope="module")
def processor():
    from transformers import CLIPImageProcessor

    from minimind_hf.models.processing_minimind_v import MiniMindVProcessor
    from minimind_hf.tokenizer import load_tokenizer

    image_processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    return MiniMindVProcessor(image_processor=image_processor, tokenizer=load_tokenizer(), image_seq_length=16)


class AnsweringModel(torch.nn.Module):
    """A stand-in for generate(): checks the batch and replies with each record's answer."""

    def __init__(self, tokenizer, answers):
        super().__init__()
        self.tokenizer, self.answers, self.calls = tokenizer, list(answers), []

    @property
    def device(self):
        return torch.device("cpu")

    def generate(self, input_ids, attention_mask, pixel_values, max_new_tokens, do_sample, **kwargs):
        assert do_sample is False
        self.calls.append((input_ids, attention_mask, pixel_values))
        assert attention_mask[:, -1].all()  # left padding: every prompt ends at the last column
        image_token = self.tokenizer.convert_tokens_to_ids("<|image_pad|>")
        assert int((input_ids == image_token).sum()) == pixel_values.shape[0] * 16
        replies = [self.answers.pop(0) for _ in range(input_ids.shape[0])]
        new = self.tokenizer(replies, add_special_tokens=False, padding=True, return_tensors="pt")["input_ids"]
        return torch.cat([input_ids, new[:, :max_new_tokens]], dim=1)


@pytest.mark.parametrize("file", ["vlm_sft_eval", "vlm_sft_train_minicpm"])
def test_vision_accuracy_plumbing(embedded, processor, file):
    path = embedded[file]
    rs = read_jsonl(path) if path.suffix == ".jsonl" else json.loads(path.read_text(encoding="utf-8"))
    rs = [r for kind in V.SFT_KINDS for r in rs if r["kind"] == kind][::7]  # every kind, single and multi-image
    assert {r["kind"] for r in rs} == set(V.SFT_KINDS)
    model = AnsweringModel(processor.tokenizer, [r["answer"] if r["kind"] != "count" else "7" for r in rs])
    scores = EV.vision_accuracy(model, processor, rs, embedded["images"], batch_size=4)
    assert scores["count"] == 0.0 and all(scores[k] == 1.0 for k in V.SFT_KINDS if k != "count")
    assert len(model.calls) == -(-len(rs) // 4)
    n_images = sum(len(V.image_paths(r)) for r in rs)
    assert sum(call[2].shape[0] for call in model.calls) == n_images


def test_vision_accuracy_with_a_tiny_model(embedded, records, processor):
    from minimind_hf.models.configuration_minimind_v import MiniMindVConfig
    from minimind_hf.models.modeling_minimind_v import MiniMindVForCausalLM

    torch.manual_seed(0)
    text_config = dict(VLM_TEXT)
    model = MiniMindVForCausalLM(MiniMindVConfig(text_config=text_config))
    rs = records["vlm_sft_eval"][::10]
    scores = EV.vision_accuracy(model, processor, rs, embedded["images"], max_new_tokens=3, batch_size=8)
    assert set(scores) == {r["kind"] for r in rs} | {"all"}
    assert all(0.0 <= v <= 1.0 for v in scores.values())
    assert model.training  # restored
