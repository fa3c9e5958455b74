"""MiniMind-V exports: a trust_remote_code folder (model + processor) that loads where
minimind_hf is not installed and computes the same logits and generations; native formats
refused (or the language model alone, on request); a merged VLM LoRA adapter."""

import json
import textwrap
from pathlib import Path

import pytest
import torch
from helpers import VLM_TEXT, randomize
from PIL import Image
from safetensors import safe_open
from test_export import run_without_minimind_hf
from transformers import AutoModelForCausalLM, AutoProcessor, LlamaForCausalLM

import minimind_hf
from minimind_hf import MiniMindVForCausalLM, preset_config
from minimind_hf.export import ExportError, NativeExportError, export_model
from minimind_hf.tokenizer import load_tokenizer
from minimind_hf.vlm import build_vlm

TEXT = dict(VLM_TEXT)
PROMPTS = ["<image>\nWhat colour is this?", "Compare <image> with <image>."]
GREEDY = dict(max_new_tokens=8, do_sample=False, pad_token_id=0)
RUN_INFO = {"stage": "vlm_sft", "global_step": 7, "world_size": 1, "train_loss_first": 6.5, "train_loss_last": 3.25}


def write_images(folder: Path) -> list[Path]:
    """Three PNGs (two flat colours, one noise) that both interpreters open from disk."""
    noise = (torch.rand(40, 40, 3, generator=torch.Generator().manual_seed(0)) * 255).to(torch.uint8).numpy()
    pictures = {
        "red.png": Image.new("RGB", (40, 40), "red"),
        "blue.png": Image.new("RGB", (48, 40), "blue"),
        "noise.png": Image.fromarray(noise),
    }
    for name, picture in pictures.items():
        picture.save(folder / name)
    return [folder / name for name in pictures]


def vlm_training_output(folder: Path, seed: int = 0):
    """What a vlm_sft run leaves behind: model, processor (tokenizer, image processor, chat
    template), generation config, run_info.json."""
    tokenizer = load_tokenizer()
    torch.manual_seed(seed)
    llm = randomize(minimind_hf.MiniMindForCausalLM(preset_config("tiny", **TEXT)), seed)
    model, processor = build_vlm(llm, tokenizer)
    randomize(model.projector, seed + 1)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    (folder / "run_info.json").write_text(json.dumps(RUN_INFO))
    return model.eval(), processor


def processed(processor, image_paths):
    images = [Image.open(path) for path in image_paths]
    return processor(text=PROMPTS, images=images, padding=True, padding_side="left", return_tensors="pt")


def tensor_names(folder: Path) -> set[str]:
    with safe_open(str(folder / "model.safetensors"), "pt") as f:
        return set(f.keys())


# ----------------------------------------------------------------------------- remote code

ISOLATED_LOAD = textwrap.dedent(
    """
    import torch
    from PIL import Image
    from transformers import AutoModelForCausalLM, AutoModelForImageTextToText, AutoProcessor

    processor = AutoProcessor.from_pretrained(FOLDER, trust_remote_code=True)
    model = AutoModelForCausalLM.from_pretrained(FOLDER, trust_remote_code=True).eval()
    for obj in (processor, model):
        assert type(obj).__module__.startswith("transformers_modules."), type(obj).__module__
    image_text_model = AutoModelForImageTextToText.from_pretrained(FOLDER, trust_remote_code=True)
    assert type(image_text_model).__name__ == "MiniMindVForCausalLM"
    images = [Image.open(path) for path in IMAGES]
    inputs = processor(text=PROMPTS, images=images, padding=True, padding_side="left", return_tensors="pt")
    with torch.no_grad():
        logits = model(**inputs).logits
    generated = model.generate(**inputs, max_new_tokens=8, do_sample=False, pad_token_id=0)
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Describe."}]}]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    tied = model.language_model.lm_head.weight.data_ptr() == model.language_model.model.embed_tokens.weight.data_ptr()
    torch.save({"inputs": dict(inputs), "logits": logits, "generated": generated, "prompt": prompt, "tied": tied,
                "frozen": model.config.freeze_vision_tower}, OUTPUTS)
    """
)


def run_isolated(tmp_path: Path, folder: Path, image_paths) -> dict:
    """The VLM folder loaded and run where minimind_hf is not installed."""
    return run_without_minimind_hf(
        tmp_path, ISOLATED_LOAD, FOLDER=str(folder), IMAGES=[str(p) for p in image_paths], PROMPTS=PROMPTS
    )


def test_vlm_remote_code_export_loads_where_minimind_hf_is_not_installed(tmp_path):
    model, processor = vlm_training_output(tmp_path / "src")
    image_paths = write_images(tmp_path)
    out = export_model(tmp_path / "src", tmp_path / "export")

    config = json.loads((out / "config.json").read_text())
    assert config["auto_map"] == {
        "AutoConfig": "configuration_minimind_v.MiniMindVConfig",
        "AutoModelForCausalLM": "modeling_minimind_v.MiniMindVForCausalLM",
        "AutoModelForImageTextToText": "modeling_minimind_v.MiniMindVForCausalLM",
        "AutoProcessor": "processing_minimind_v.MiniMindVProcessor",
    }
    for name in ("processor_config.json", "tokenizer_config.json"):  # where AutoProcessor looks for remote code
        assert (
            json.loads((out / name).read_text())["auto_map"]["AutoProcessor"]
            == "processing_minimind_v.MiniMindVProcessor"
        )
    for name in (
        "compat.py",
        "configuration_minimind.py",
        "modeling_minimind.py",
        "configuration_minimind_v.py",
        "modeling_minimind_v.py",
        "processing_minimind_v.py",
        "tokenizer.json",
        "chat_template.jinja",
        "generation_config.json",
        "README.md",
    ):
        assert (out / name).is_file(), name
    names = tensor_names(out)
    assert "language_model.model.embed_tokens.weight" in names and "language_model.lm_head.weight" not in names
    assert any(name.startswith("vision_tower.") for name in names) and "projector.layers.3.weight" in names

    card = (out / "README.md").read_text()
    assert "pipeline_tag: image-text-to-text" in card and "custom_code" in card and "AutoProcessor" in card
    assert "MiniMindVForCausalLM (custom code)" in card and "clip_vision_model" in card
    assert "16 `<|image_pad|>` placeholders per image" in card and "LayerNorm-MLP" in card
    assert "stage `vlm_sft`: 7 steps" in card

    loaded = run_isolated(tmp_path, out, image_paths)
    inputs = processed(processor, image_paths)
    assert set(loaded["inputs"]) == set(inputs)
    assert all(torch.equal(loaded["inputs"][k], inputs[k]) for k in inputs)  # the same processing, byte for byte
    with torch.no_grad():
        expected = model(**inputs).logits
    assert (loaded["logits"] - expected).abs().max() < 1e-6
    assert torch.equal(loaded["generated"], model.generate(**inputs, **GREEDY))
    # The images matter: without them the same text continues differently.
    with torch.no_grad():
        blind = model.language_model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).logits
    assert (blind - expected).abs().max() > 1e-3
    assert loaded["prompt"] == processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Describe."}]}],
        add_generation_prompt=True,
        tokenize=False,
    )
    assert loaded["tied"] and loaded["frozen"]


# ----------------------------------------------------------------------------- native formats


def test_native_formats_refuse_a_vlm_but_export_its_language_model(tmp_path):
    model, _ = vlm_training_output(tmp_path / "src")
    with pytest.raises(NativeExportError, match="no stock transformers class.*--language-model-only"):
        export_model(tmp_path / "src", tmp_path / "out", fmt="llama")
    assert not (tmp_path / "out").exists()  # refused before writing anything

    out = export_model(tmp_path / "src", tmp_path / "llm", fmt="llama", language_model_only=True)
    assert not any(name.startswith(("vision_tower", "projector", "language_model")) for name in tensor_names(out))
    assert not (out / "processor_config.json").exists() and (out / "tokenizer.json").is_file()
    assert "processor_class" not in json.loads((out / "tokenizer_config.json").read_text())
    native = LlamaForCausalLM.from_pretrained(out).eval()
    ids = torch.randint(0, TEXT["vocab_size"], (2, 9), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert (native(ids).logits - model.language_model(ids).logits).abs().max() < 1e-5
    assert native.generation_config.eos_token_id == model.generation_config.eos_token_id
    assert "LlamaForCausalLM (stock transformers)" in (out / "README.md").read_text()

    # The language model alone as remote code is a text MiniMind: the flag then has nothing to strip.
    text_only = export_model(tmp_path / "src", tmp_path / "text", language_model_only=True)
    assert json.loads((text_only / "config.json").read_text())["model_type"] == "minimind"
    with pytest.raises(ExportError, match="applies to MiniMind-V"):
        export_model(text_only, tmp_path / "again", language_model_only=True)


# ----------------------------------------------------------------------------- LoRA


def test_vlm_lora_adapter_merges_into_an_export(tmp_path):
    from peft import LoraConfig, get_peft_model

    _, processor = vlm_training_output(tmp_path / "base")
    inputs = processed(processor, write_images(tmp_path))
    base_model = AutoModelForCausalLM.from_pretrained(tmp_path / "base").eval()  # as vlm_sft does: records its path
    with torch.no_grad():
        base_logits = base_model(**inputs).logits
    lora = LoraConfig(
        r=4,
        lora_alpha=8,
        target_modules=r"language_model\.model\.layers\.\d+\.self_attn\.(q_proj|v_proj)",
        modules_to_save=["projector"],
    )
    peft_model = get_peft_model(base_model, lora)
    with torch.no_grad():  # LoRA B starts at zero and the projector copy equals the base: make both count
        for name, param in peft_model.named_parameters():
            if "lora_B" in name or "modules_to_save" in name:
                param.add_(torch.randn(param.shape, generator=torch.Generator().manual_seed(len(name))) * 0.05)
    peft_model.save_pretrained(tmp_path / "adapter")
    processor.save_pretrained(tmp_path / "adapter")
    with torch.no_grad():
        expected = peft_model(**inputs).logits
    assert (expected - base_logits).abs().max() > 1e-2  # the adapter really changes the model

    out = export_model(tmp_path / "adapter", tmp_path / "merged", merge_lora=True)
    assert not any("lora" in name or "modules_to_save" in name for name in tensor_names(out))
    merged = AutoModelForCausalLM.from_pretrained(out).eval()
    assert isinstance(merged, MiniMindVForCausalLM)
    with torch.no_grad():
        assert (merged(**inputs).logits - expected).abs().max() < 1e-5
    reprocessor = AutoProcessor.from_pretrained(out)
    assert torch.equal(processed(reprocessor, write_images(tmp_path))["input_ids"], inputs["input_ids"])
