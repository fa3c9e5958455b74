"""MiniMind-V: model, processor, image data pipeline."""

import json

import pytest
import torch
from helpers import VLM_TEXT, randomize
from PIL import Image
from transformers import AutoModelForCausalLM, AutoModelForImageTextToText, AutoProcessor, CLIPConfig, CLIPModel

import minimind_hf  # noqa: F401
from minimind_hf import MiniMindVConfig, MiniMindVForCausalLM, MiniMindVProcessor, preset_config
from minimind_hf.data import DataValidationError, ValidationReport, load_records
from minimind_hf.data.vision import VisionCollator, VisionOptions, build_vision_dataset, load_rgb
from minimind_hf.models.modeling_minimind_v import reduce_patches
from minimind_hf.tokenizer import load_tokenizer
from minimind_hf.vlm import build_vlm, default_image_processor

TEXT = dict(VLM_TEXT)


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer()


@pytest.fixture(scope="module")
def vlm(tokenizer):
    torch.manual_seed(0)
    llm = randomize(minimind_hf.MiniMindForCausalLM(preset_config("tiny", **TEXT)))
    model, processor = build_vlm(llm, tokenizer)
    randomize(model.projector)
    return model.eval(), processor


def images(*colours, size=(40, 40), mode="RGB"):
    return [Image.new(mode, size, c) for c in colours]


# ----------------------------------------------------------------------------- processor


def test_processor_expands_every_marker_form(vlm):
    _, processor = vlm
    n = processor.image_seq_length
    texts = ["<image>\nWhat colour?", "no image", "<image_00> vs <image_01>"]
    out = processor(text=texts, images=images("red", "green", "blue"), padding=True, return_tensors="pt")
    counts = (out["input_ids"] == processor.image_token_id).sum(1).tolist()
    assert counts == [n, 0, 2 * n]
    assert out["pixel_values"].shape == (3, 3, 32, 32)
    decoded = processor.tokenizer.decode(out["input_ids"][0][out["attention_mask"][0].bool()])
    assert decoded == "<|vision_start|>" + "<|image_pad|>" * n + "<|vision_end|>\nWhat colour?"


def test_processor_rejects_marker_image_mismatch(vlm):
    _, processor = vlm
    with pytest.raises(ValueError, match="2 image placeholder.*1 image"):
        processor(text="<image> and <image>", images=images("red"))


def test_chat_template_image_parts_round_trip(vlm):
    _, processor = vlm
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Describe."}]}]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert prompt.startswith("<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>Describe.")
    out = processor(text=prompt, images=images("red"), return_tensors="pt")
    assert int((out["input_ids"] == processor.image_token_id).sum()) == processor.image_seq_length


# ----------------------------------------------------------------------------- model


def test_features_land_exactly_at_placeholders(vlm):
    model, processor = vlm
    out = processor(
        text=["a <image> b <image> c", "<image> only"],
        images=images("red", "blue", "green"),
        padding=True,
        return_tensors="pt",
    )
    ids, pixels = out["input_ids"], out["pixel_values"]
    embeds = model.get_input_embeddings()(ids)
    merged = model.merge_image_features(ids, embeds, pixels)
    features = model.get_image_features(pixels)  # (3, n, hidden)
    expected = embeds.clone()
    image_index = 0
    for row in range(ids.shape[0]):  # the slow, explicit way: image by image, position by position
        positions = (ids[row] == processor.image_token_id).nonzero().flatten().tolist()
        for chunk in range(0, len(positions), processor.image_seq_length):
            for k, pos in enumerate(positions[chunk : chunk + processor.image_seq_length]):
                expected[row, pos] = features[image_index, k]
            image_index += 1
    assert image_index == 3 and torch.equal(merged, expected)
    untouched = ids != processor.image_token_id
    assert torch.equal(merged[untouched], embeds[untouched])


def test_mismatched_features_are_a_clear_error(vlm):
    model, processor = vlm
    out = processor(text="<image>", images=images("red"), return_tensors="pt")
    with pytest.raises(ValueError, match="image placeholder tokens"):
        model(input_ids=out["input_ids"], pixel_values=torch.cat([out["pixel_values"]] * 2))


def test_generate_with_image_cache_equals_no_cache_and_batches(vlm):
    model, processor = vlm
    prompts = ["<image>\nWhat is this?", "Compare <image> with <image>", "Just text, no image."]
    out = processor(
        text=prompts, images=images("red", "green", "blue"), padding=True, padding_side="left", return_tensors="pt"
    )
    kwargs = dict(max_new_tokens=6, do_sample=False, pad_token_id=0)
    cached = model.generate(**out, **kwargs)
    uncached = model.generate(**out, use_cache=False, **kwargs)
    assert torch.equal(cached, uncached)
    # Batched (mixed 1 / 2 / 0 images, left padded) equals each sample alone.
    width = out["input_ids"].shape[1]
    image_sets = [images("red"), images("green", "blue"), None]
    for row, (prompt, imgs) in enumerate(zip(prompts, image_sets)):
        single = processor(text=prompt, images=imgs, return_tensors="pt")
        alone = model.generate(**single, **kwargs)
        assert torch.equal(cached[row, width:], alone[0, single["input_ids"].shape[1] :]), row
    # The image matters: another colour changes the next-token distribution.
    other = processor(text=prompts[0], images=images("white"), return_tensors="pt")
    first = processor(text=prompts[0], images=images("red"), return_tensors="pt")
    with torch.no_grad():
        assert (model(**first).logits[0, -1] - model(**other).logits[0, -1]).abs().max() > 1e-4


def test_save_reload_with_auto_classes(vlm, tmp_path):
    model, processor = vlm
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert isinstance(reloaded, MiniMindVForCausalLM)
    assert type(AutoModelForImageTextToText.from_pretrained(tmp_path)) is MiniMindVForCausalLM
    reprocessor = AutoProcessor.from_pretrained(tmp_path)
    assert isinstance(reprocessor, MiniMindVProcessor) and reprocessor.image_seq_length == processor.image_seq_length
    inputs = reprocessor(text="<image>\nhi", images=images("red"), return_tensors="pt")
    with torch.no_grad():
        assert torch.equal(model(**inputs).logits, reloaded(**inputs).logits)
    # Frozen by default: training signal reaches the projector, never the tower.
    reloaded.train()(**inputs, labels=inputs["input_ids"]).loss.backward()
    assert all(p.grad is None for p in reloaded.vision_tower.parameters())
    assert reloaded.projector.layers[-1].weight.grad.abs().sum() > 0


def test_pretrained_vision_tower_weights_are_loaded(tokenizer, tmp_path):
    """The code path for openai/clip-vit-base-patch16: a full CLIP checkpoint folder."""
    clip_config = CLIPConfig(
        text_config=dict(
            hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, vocab_size=99
        ),
        vision_config=dict(
            hidden_size=48,
            intermediate_size=96,
            num_hidden_layers=2,
            num_attention_heads=4,
            image_size=32,
            patch_size=8,
        ),
        projection_dim=16,
    )
    clip = CLIPModel(clip_config)
    clip.save_pretrained(tmp_path / "clip")
    default_image_processor(clip_config.vision_config).save_pretrained(tmp_path / "clip")
    llm = minimind_hf.MiniMindForCausalLM(preset_config("tiny", **TEXT))
    model, processor = build_vlm(
        llm, tokenizer, vision_tower_name_or_path=str(tmp_path / "clip"), projector_type="linear"
    )
    ours = model.vision_tower.state_dict()
    theirs = clip.vision_model.state_dict()
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], v) for k, v in theirs.items())
    assert model.config.image_seq_length == 16 and isinstance(model.projector.layers[0], torch.nn.Linear)
    assert torch.equal(model.language_model.lm_head.weight, llm.lm_head.weight)


def test_token_reduction():
    features = torch.arange(2 * 16 * 3, dtype=torch.float32).reshape(2, 16, 3)
    shuffled = reduce_patches(features, 4, "pixel_shuffle", 2)
    assert shuffled.shape == (2, 4, 12)
    grid = features.reshape(2, 4, 4, 3)
    # Token 1 of the shuffled grid is the top-right 2x2 block, row-major inside the block.
    block = torch.cat([grid[0, 0, 2], grid[0, 0, 3], grid[0, 1, 2], grid[0, 1, 3]])
    assert torch.equal(shuffled[0, 1], block)
    pooled = reduce_patches(features, 4, "avg_pool", 2)
    assert pooled.shape == (2, 4, 3) and torch.allclose(pooled[0, 1], block.reshape(4, 3).mean(0))
    config = MiniMindVConfig(text_config=TEXT, token_reduction="pixel_shuffle")
    assert config.image_seq_length == 4
    model = MiniMindVForCausalLM(config)
    assert model.get_image_features(torch.randn(3, 3, 32, 32)).shape == (3, 4, 64)


# ----------------------------------------------------------------------------- data


def write_records(tmp_path, records, name="data.jsonl"):
    path = tmp_path / name
    if name.endswith(".json"):
        path.write_text(json.dumps(records))
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def conversation(question, answer):
    return [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]


def test_vision_rows_masks_and_collation(vlm, tmp_path):
    model, processor = vlm
    root = tmp_path / "img"
    root.mkdir()
    images("red")[0].save(root / "a.png")
    images("green", mode="RGBA")[0].save(root / "b.png")
    Image.new("P", (20, 30)).save(root / "c.png")
    Image.new("L", (50, 10), 128).save(root / "d.jpg")
    records = [
        {"conversations": conversation("<image>\nWhat colour?", "red"), "image": "a.png"},
        {"conversations": conversation("First <image> then <image>, same?", "no"), "image": "b.png,c.png"},
        {"conversations": conversation("Plain question", "plain answer")},
        {"conversations": conversation("No marker here", "grey"), "image": "d.jpg"},  # image goes first
    ]
    data, report = load_records(write_records(tmp_path, records), "sft")
    options = VisionOptions(max_length=200, images_root=str(root), image_seq_length=processor.image_seq_length)
    rows = build_vision_dataset(data, processor.tokenizer, options, report)
    n = processor.image_seq_length
    pad = processor.image_token_id
    assert [json.loads(r) for r in rows["images"]] == [
        [str(root / "a.png")],
        [str(root / "b.png"), str(root / "c.png")],
        [],
        [str(root / "d.jpg")],
    ]
    for row, expected_images, answer in zip(rows, (1, 2, 0, 1), ("red", "no", "plain answer", "grey")):
        ids, labels = torch.tensor(row["input_ids"]), torch.tensor(row["labels"])
        assert int((ids == pad).sum()) == expected_images * n
        assert (labels[ids == pad] == -100).all()
        supervised = processor.tokenizer.decode(ids[labels != -100])
        assert supervised == answer + "<|im_end|>"
    text = processor.tokenizer.decode(rows[3]["input_ids"])
    assert text.startswith("<|im_start|>user\n<|vision_start|>") and "<|vision_end|>\nNo marker here" in text

    batch = VisionCollator(pad_token_id=0, image_processor=processor.image_processor)(list(rows))
    assert batch["pixel_values"].shape == (4, 3, 32, 32)
    assert batch["attention_mask"][2].sum() == len(rows[2]["input_ids"])  # padding is masked
    out = model(**batch)
    assert torch.isfinite(out.loss)


def test_minicpm_v_keys_map_images_in_text_order(vlm, tmp_path):
    _, processor = vlm
    for name, colour in (("x.png", "red"), ("y.png", "blue")):
        images(colour)[0].save(tmp_path / name)
    records = [
        {
            "id": "0",
            "image": {"<image_00>": str(tmp_path / "x.png"), "<image_01>": str(tmp_path / "y.png")},
            "conversations": conversation("<image_01> then <image_00>: which is red?", "the second"),
        }
    ]
    data, _ = load_records(write_records(tmp_path, records, "data.json"), "sft")
    rows = build_vision_dataset(
        data, processor.tokenizer, VisionOptions(max_length=200, image_seq_length=processor.image_seq_length)
    )
    assert json.loads(rows[0]["images"]) == [str(tmp_path / "y.png"), str(tmp_path / "x.png")]


def test_bad_images_raise_or_are_counted(vlm, tmp_path):
    _, processor = vlm
    images("red")[0].save(tmp_path / "ok.png")
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    records = [
        {"conversations": conversation("<image>\nQ", "A"), "image": "ok.png"},
        {"conversations": conversation("<image>\nQ", "A"), "image": "missing.png"},
        {"conversations": conversation("<image>\nQ", "A"), "image": "corrupt.png"},
        {"conversations": conversation("<image> <image>\nQ", "A"), "image": "ok.png"},
    ]
    data, load_report = load_records(write_records(tmp_path, records), "sft")
    options = dict(max_length=200, images_root=str(tmp_path), image_seq_length=processor.image_seq_length)
    with pytest.raises(DataValidationError, match=r"data\.jsonl:2: missing image: .*missing\.png"):
        build_vision_dataset(data, processor.tokenizer, VisionOptions(**options))
    with pytest.raises(DataValidationError, match=r"data\.jsonl:3: unreadable image .*corrupt\.png"):
        build_vision_dataset(data.select([0, 2]).flatten_indices(), processor.tokenizer, VisionOptions(**options))
    with pytest.raises(DataValidationError, match="data.jsonl:4: 2 image marker.*but 1 image"):
        build_vision_dataset(data.select([3]), processor.tokenizer, VisionOptions(**options))
    # Skipped like the loader's own skips: per file, by reason, with FILE:LINE examples.
    rows = build_vision_dataset(data, processor.tokenizer, VisionOptions(**options, skip_invalid=True), load_report)
    assert len(rows) == 1
    assert load_report.skipped_by_reason == {
        "missing image": 1,
        "unreadable image": 1,
        "image markers and images differ": 1,
    }
    [(name, entry)] = load_report.files.items()
    assert (entry.read, entry.kept) == (4, 1) and entry.examples["missing image"] == [f"{name}:2"]
    assert "missing image: 1 (e.g. " + f"{name}:2)" in load_report.summary()
    # A report that never saw the file (no FILE:LINE to attach to) still counts them.
    report = ValidationReport("sft")
    build_vision_dataset(data, processor.tokenizer, VisionOptions(**options, skip_invalid=True), report)
    assert report.dropped == {"missing image": 1, "unreadable image": 1, "image markers and images differ": 1}


def test_truncation_never_cuts_an_image(vlm, tmp_path):
    _, processor = vlm
    images("red")[0].save(tmp_path / "a.png")
    records = [{"conversations": conversation("long text " * 20 + "<image>", "A"), "image": "a.png"}]
    data, _ = load_records(write_records(tmp_path, records), "sft")
    report = ValidationReport("sft")
    options = VisionOptions(max_length=40, images_root=str(tmp_path), image_seq_length=processor.image_seq_length)
    assert len(build_vision_dataset(data, processor.tokenizer, options, report)) == 0
    assert report.dropped == {"image cut by truncation": 1}


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P", "L", "CMYK"])
def test_any_image_mode_loads_as_rgb(tmp_path, mode):
    path = tmp_path / f"img_{mode}.{'jpg' if mode == 'CMYK' else 'png'}"
    Image.new(mode, (7, 5)).save(path)
    image = load_rgb(str(path))
    assert image.mode == "RGB" and image.size == (7, 5)
