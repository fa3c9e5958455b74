"""Original MiniMind-V checkpoints -> our MiniMind-V: exact logits for each projector layout,
prompted exactly as the original was trained.

The reference forward is written from the original descriptions: the language model of
`test_convert` (each generation's own RoPE and names), image features taken from the
vision tower the way the original code took them, projected by the original projector and
spliced into each run of placeholder tokens (`count_vision_proj`). The reference prompt is
the original's: `<image>` replaced by the bare placeholder run (196 `@` for MiniMind2-V, 64
`<|image_pad|>` for minimind-3v; here the tiny tower's 16) in the message text, rendered by
the original tokenizer's chat template. The `.pth` holds the language model + `vision_proj.*`
under the original key names; the tower is a tiny CLIP / SigLIP folder, as the originals
loaded `clip-vit-base-patch16` / `siglip2-base-p32-256-ve` separately; the tokenizers are in
the original formats (MiniMind2's names no image token).
"""

import base64
import io
import json
from pathlib import Path

import pytest
import test_convert
import torch
import torch.nn.functional as F
from helpers import randomize
from PIL import Image
from test_convert import (
    attention_block,
    gen1_checkpoint,
    llama_checkpoint,
    original_tokenizer,
    rms_norm,
    rope_complex_adjacent,
    rope_rotate_half,
    swiglu,
)
from transformers import (
    AutoImageProcessor,
    AutoModelForCausalLM,
    AutoProcessor,
    AutoTokenizer,
    CLIPConfig,
    CLIPModel,
    CLIPVisionConfig,
    SiglipVisionConfig,
    SiglipVisionModel,
)

import minimind_hf  # noqa: F401  (registers the Auto classes)
from minimind_hf import MiniMindVConfig
from minimind_hf.cli import convert as convert_cli
from minimind_hf.export.checkpoint import CheckpointError
from minimind_hf.export.convert import convert_checkpoint
from minimind_hf.export.convert_vlm import IMAGE_PARTS_PRELUDE, convert_vlm_checkpoint
from minimind_hf.tokenizer import CHAT_TEMPLATE
from minimind_hf.vlm import default_image_processor

DIM = test_convert.TINY["dim"]
VISION = dict(
    hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4, image_size=32, patch_size=8
)
PATCHES = (VISION["image_size"] // VISION["patch_size"]) ** 2  # 16 here; 196 for clip-vit-base-patch16
PROMPTS = [("<image>\nWhat is this?", ["red"]), ("Compare <image> and <image>.", ["noise", "blue"])]
README_MESSAGES = [
    {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What colour is the shape?"}]}
]


# ----------------------------------------------------------------------------- vision towers and images


def clip_tower(folder: Path) -> Path:
    """A full CLIPModel folder, as openai/clip-vit-base-patch16 is (text half included)."""
    config = CLIPConfig(
        text_config=dict(
            hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, vocab_size=99
        ),
        vision_config=VISION,
        projection_dim=16,
    )
    randomize(CLIPModel(config), seed=11).save_pretrained(folder)
    default_image_processor(config.vision_config).save_pretrained(folder)
    return folder


def siglip_tower(folder: Path) -> Path:
    """A SigLIP vision-encoder folder, as siglip2-base-p32-256-ve is (there 256 px / 32 px patches = 64 tokens)."""
    config = SiglipVisionConfig(**VISION)
    randomize(SiglipVisionModel(config), seed=12).save_pretrained(folder)
    default_image_processor(config).save_pretrained(folder)
    return folder


def image(name: str) -> Image.Image:
    if name == "noise":
        pixels = (torch.rand(40, 40, 3, generator=torch.Generator().manual_seed(1)) * 255).to(torch.uint8).numpy()
        return Image.fromarray(pixels)
    return Image.new("RGB", (40, 36), name)


# ----------------------------------------------------------------------------- the original model, re-written


def original_features(tower: Path, recipe: str, pixel_values: torch.Tensor) -> torch.Tensor:
    """Patch features exactly as each original read them from its frozen tower."""
    with torch.no_grad():
        if recipe == "clip_last_hidden_state_without_cls":  # MiniMind2-V: get_image_embeddings
            return CLIPModel.from_pretrained(tower).vision_model(pixel_values=pixel_values).last_hidden_state[:, 1:, :]
        model = SiglipVisionModel.from_pretrained(tower)
        if recipe == "siglip_last_hidden_state":  # minimind-3v: outputs.last_hidden_state (post-LayerNorm)
            return model(pixel_values=pixel_values).last_hidden_state
        assert recipe == "siglip_encoder_hook"  # MiniMind-V 2024: a forward hook on vision_model.encoder
        captured = []
        hook = model.encoder.register_forward_hook(
            lambda module, args, output: captured.append(output.last_hidden_state)
        )
        model(pixel_values=pixel_values)
        hook.remove()
        return captured[0]


def original_projector(features: torch.Tensor, state: dict) -> torch.Tensor:
    if "vision_proj.vision_proj.0.weight" in state:  # VisionProj: one Linear (bias optional)
        return F.linear(
            features, state["vision_proj.vision_proj.0.weight"], state.get("vision_proj.vision_proj.0.bias")
        )
    x = F.layer_norm(features, features.shape[-1:], state["vision_proj.mlp.0.weight"], state["vision_proj.mlp.0.bias"])
    x = F.gelu(F.linear(x, state["vision_proj.mlp.1.weight"], state["vision_proj.mlp.1.bias"]))
    return F.linear(x, state["vision_proj.mlp.3.weight"], state["vision_proj.mlp.3.bias"])


def language_model_weights(state: dict) -> tuple[list[dict], torch.Tensor, torch.Tensor, torch.Tensor]:
    """Dense layers by role, from either naming (2024 `layers.N.attention.wq` or Llama-style)."""
    if "tok_embeddings.weight" in state:
        n = len({k.split(".")[1] for k in state if k.startswith("layers.")})
        layers = [
            dict(
                norm1=state[f"layers.{i}.attention_norm.weight"],
                norm2=state[f"layers.{i}.ffn_norm.weight"],
                attn={r: state[f"layers.{i}.attention.w{r}.weight"] for r in "qkvo"},
                ffn=tuple(state[f"layers.{i}.feed_forward.{w}.weight"] for w in ("w1", "w3", "w2")),
            )
            for i in range(n)
        ]
        return layers, state["tok_embeddings.weight"], state["norm.weight"], state["output.weight"]
    n = len({k.split(".")[2] for k in state if k.startswith("model.layers.")})
    layers = []
    for i in range(n):
        p = f"model.layers.{i}"
        layer = dict(
            norm1=state[f"{p}.input_layernorm.weight"],
            norm2=state[f"{p}.post_attention_layernorm.weight"],
            attn={r: state[f"{p}.self_attn.{r}_proj.weight"] for r in "qkvo"},
            ffn=tuple(state[f"{p}.mlp.{w}_proj.weight"] for w in ("gate", "up", "down")),
        )
        if f"{p}.self_attn.q_norm.weight" in state:
            layer.update(q_norm=state[f"{p}.self_attn.q_norm.weight"], k_norm=state[f"{p}.self_attn.k_norm.weight"])
        layers.append(layer)
    return layers, state["model.embed_tokens.weight"], state["model.norm.weight"], state["lm_head.weight"]


def original_logits(state, input_ids, image_embeddings, placeholder_id, *, heads, kv_heads, rope, eps):
    """Token embeddings, each run of `image_seq` placeholders replaced by the next image's
    projected features (the original `count_vision_proj`), then the language model."""
    layers, embed, final_norm, output = language_model_weights(state)
    h = embed[input_ids].clone()
    run = image_embeddings.shape[1]
    for b in range(input_ids.shape[0]):
        i, image_index = 0, 0
        while i <= input_ids.shape[1] - run:
            if bool((input_ids[b, i : i + run] == placeholder_id).all()):
                h[b, i : i + run] = image_embeddings[image_index]
                image_index, i = image_index + 1, i + run
            else:
                i += 1
        assert image_index == image_embeddings.shape[0]
    for layer in layers:
        h = attention_block(h, layer, heads, kv_heads, rope, eps)
        h = h + swiglu(rms_norm(h, layer["norm2"], eps), *layer["ffn"])
    return rms_norm(h, final_norm, eps) @ output.T


# ----------------------------------------------------------------------------- original checkpoints


def projector_weights(layout: str, vision_hidden: int, bias: bool = True, seed: int = 3) -> dict:
    gen = torch.Generator().manual_seed(seed)

    def w(*shape, norm=False):
        noise = torch.randn(shape, generator=gen)
        return 1.0 + 0.1 * noise if norm else 0.1 * noise

    if layout == "linear":
        state = {"vision_proj.vision_proj.0.weight": w(DIM, vision_hidden)}
        if bias:
            state["vision_proj.vision_proj.0.bias"] = w(DIM)
        return state
    return {
        "vision_proj.mlp.0.weight": w(vision_hidden, norm=True),
        "vision_proj.mlp.0.bias": w(vision_hidden),
        "vision_proj.mlp.1.weight": w(DIM, vision_hidden),
        "vision_proj.mlp.1.bias": w(DIM),
        "vision_proj.mlp.3.weight": w(DIM, DIM),
        "vision_proj.mlp.3.bias": w(DIM),
    }


def original_checkpoint(case: str):
    """(state dict with original names, reference settings, tower kind, feature recipe, overrides,
    tokenizer kind, the original's placeholder)."""
    if case == "minimind2-v":  # 2025 code: MiniMindForCausalLM names + VisionProj on CLIP ViT-B/16 without CLS
        state, _ = llama_checkpoint(qk_norm=False)
        settings = dict(heads=4, kv_heads=2, rope=lambda x: rope_rotate_half(x, 1e6), eps=1e-5)
        tower, recipe, projector, overrides = (
            "clip",
            "clip_last_hidden_state_without_cls",
            ("linear", True),
            {"num_attention_heads": 4},
        )
    elif (
        case == "minimind2-v-2024-names-unbiased"
    ):  # early-2025 MiniMind2-V: 2024 names (complex RoPE), theta 1e6; a bias-free Linear
        state, _ = gen1_checkpoint(heads=4, kv_heads=2, theta=1e6)
        settings = dict(heads=4, kv_heads=2, rope=lambda x: rope_complex_adjacent(x, 1e6), eps=1e-5)
        tower, recipe, projector = "clip", "clip_last_hidden_state_without_cls", ("linear", False)
        overrides = {"num_attention_heads": 4, "rope_theta": 1e6}
    elif case == "minimind-v-2024-siglip":  # 2024 code with its SigLIP option: encoder output through a hook
        state, _ = gen1_checkpoint(heads=4, kv_heads=2)
        settings = dict(heads=4, kv_heads=2, rope=lambda x: rope_complex_adjacent(x, 1e4), eps=1e-5)
        tower, recipe, projector = "siglip", "siglip_encoder_hook", ("linear", True)
        overrides = {"num_attention_heads": 4, "rope_theta": 1e4}
    else:  # minimind-3v (2026): minimind-3 names (q/k norm), LayerNorm-MLP on SigLIP2 last_hidden_state
        assert case == "minimind-3v"
        state, _ = llama_checkpoint(qk_norm=True, eps=1e-6)
        settings = dict(heads=4, kv_heads=2, rope=lambda x: rope_rotate_half(x, 1e6), eps=1e-6)
        tower, recipe, projector, overrides = "siglip", "siglip_last_hidden_state", ("mlp", True), {}
    state.update(projector_weights(projector[0], VISION["hidden_size"], bias=projector[1]))
    tokenizer, placeholder = ("minimind3", "<|image_pad|>") if projector[0] == "mlp" else ("minimind2", "@")
    return state, settings, tower, recipe, overrides, tokenizer, placeholder


CASES = ["minimind2-v", "minimind2-v-2024-names-unbiased", "minimind-v-2024-siglip", "minimind-3v"]


@pytest.fixture(scope="module")
def towers(tmp_path_factory):
    root = tmp_path_factory.mktemp("towers")
    return {"clip": clip_tower(root / "clip"), "siglip": siglip_tower(root / "siglip")}


@pytest.fixture(scope="module")
def tokenizers(tmp_path_factory):
    """MiniMind2-V's tokenizer (no named image token) and minimind-3v's (<|image_pad|> named), both
    with a template that renders string content only, as the originals do."""
    root = tmp_path_factory.mktemp("tokenizers")
    return {
        "minimind2": original_tokenizer(root / "minimind2"),
        "minimind3": original_tokenizer(root / "minimind3", image_tokens=True),
    }


def original_prompt_ids(tokenizer, text: str, placeholder: str, chat: bool = False) -> list[int]:
    """The original's prompt: each <image> -> the bare placeholder run, in the message text."""
    text = text.replace("<image>", placeholder * PATCHES)
    if chat:
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": text}], add_generation_prompt=True, tokenize=False
        )
    return tokenizer(text)["input_ids"]


@pytest.mark.parametrize("case", CASES)
def test_converted_vlm_logits_and_prompts_equal_the_original(case, towers, tokenizers, tmp_path):
    state, settings, tower_kind, recipe, overrides, tokenizer_kind, placeholder = original_checkpoint(case)
    tower = towers[tower_kind]
    torch.save(state, tmp_path / "sft_vlm_64.pth")
    convert_vlm_checkpoint(
        tmp_path / "sft_vlm_64.pth",
        tower,
        out=tmp_path / "converted",
        overrides=overrides,
        tokenizer=tokenizers[tokenizer_kind],
    )

    # The converted folder reloads with the Auto classes and keeps the original's prompt layout.
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "converted").eval()
    processor = AutoProcessor.from_pretrained(tmp_path / "converted")
    original = AutoTokenizer.from_pretrained(tokenizers[tokenizer_kind])
    assert model.config.image_seq_length == processor.image_seq_length == PATCHES
    assert (processor.image_token, processor.image_block_markers) == (placeholder, False)
    assert model.config.image_token_id == processor.image_token_id == original.convert_tokens_to_ids(placeholder)
    saved = json.loads((tmp_path / "converted" / "processor_config.json").read_text())
    assert (saved["image_token"], saved["image_block_markers"]) == (placeholder, False)
    info = json.loads((tmp_path / "converted" / "conversion_info.json").read_text())
    assert info["vlm_layout"] == ("mlp" if case == "minimind-3v" else "linear") and info["vision_tower"] == str(tower)
    assert info["image_prompt"] == f"{PATCHES} x {placeholder!r} per image, no start/end markers"
    tower_processor = AutoImageProcessor.from_pretrained(tower)  # the original preprocessed with the tower's own
    for text, names in PROMPTS:
        images = [image(name) for name in names]
        inputs = processor(text=text, images=images, return_tensors="pt")
        assert inputs["input_ids"][0].tolist() == original_prompt_ids(original, text, placeholder)
        pixel_values = tower_processor(images=images, return_tensors="pt")["pixel_values"]
        assert torch.equal(inputs["pixel_values"], pixel_values)
        projected = original_projector(original_features(tower, recipe, pixel_values), state)
        reference = original_logits(state, inputs["input_ids"], projected, processor.image_token_id, **settings)
        with torch.no_grad():
            ours = model(**inputs).logits
        assert reference.abs().max() > 0.5  # non-trivial logits
        assert (ours - reference).abs().max() < 1e-5, case
        with torch.no_grad():  # the image positions really carry the projected features
            blind = model.language_model(input_ids=inputs["input_ids"]).logits
        assert (blind - reference).abs().max() > 1e-3

    # The README's list-content snippet gives the original's chat prompt.
    prompt = processor.apply_chat_template(README_MESSAGES, add_generation_prompt=True, tokenize=False)
    inputs = processor(text=prompt, images=[image("red")], return_tensors="pt")
    assert inputs["input_ids"][0].tolist() == original_prompt_ids(
        original, "<image>What colour is the shape?", placeholder, chat=True
    )
    # String content renders exactly as the original template does (the prelude only flattens lists).
    text = [{"role": "user", "content": "hi"}]
    assert processor.apply_chat_template(text, tokenize=False) == original.apply_chat_template(text, tokenize=False)


def test_siglip_feature_source_matters(towers):
    """minimind-3v read SigLIP's last_hidden_state (post-LayerNorm); MiniMind-V reads
    hidden_states[-1]. The converted config ties them; without that the features differ."""
    pixel_values = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    post = original_features(towers["siglip"], "siglip_last_hidden_state", pixel_values)
    pre = original_features(towers["siglip"], "siglip_encoder_hook", pixel_values)
    assert (post - pre).abs().max() > 0.1


def test_image_token_count_follows_the_tower():
    """196 placeholders for clip-vit-base-patch16 (224 px, 16 px patches, CLS dropped),
    64 for siglip2-base-p32-256-ve (256 px, 32 px patches)."""
    text = dict(hidden_size=64, num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=2, vocab_size=6400)
    clip = CLIPVisionConfig(image_size=224, patch_size=16).to_dict()
    siglip = SiglipVisionConfig(image_size=256, patch_size=32).to_dict()
    assert MiniMindVConfig(text_config=text, vision_config=clip, projector_type="linear").image_seq_length == 196
    assert MiniMindVConfig(text_config=text, vision_config=siglip).image_seq_length == 64


def test_minimind2_tokenizer_keeps_at_sign_plain_text(towers, tokenizers, tmp_path):
    """`@` is MiniMind2-V's placeholder but an ordinary character of its tokenizer: the saved
    tokenizer does not turn it into a (skipped) special token."""
    state, *_, overrides, _, _ = original_checkpoint("minimind2-v")
    convert_vlm_checkpoint(
        save(state, tmp_path / "m.pth"),
        towers["clip"],
        tmp_path / "out",
        overrides=overrides,
        tokenizer=tokenizers["minimind2"],
    )
    saved = AutoTokenizer.from_pretrained(tmp_path / "out")
    assert saved.decode(saved("mail me @ home")["input_ids"], skip_special_tokens=True) == "mail me @ home"
    assert "image_token" not in json.loads((tmp_path / "out" / "tokenizer_config.json").read_text())
    assert saved.chat_template.startswith(IMAGE_PARTS_PRELUDE)  # the original template, taught content lists
    processor = AutoProcessor.from_pretrained(tmp_path / "out")
    with pytest.raises(ValueError, match="write '@' nowhere else"):  # a stray placeholder is refused, not misplaced
        processor(text="<image> mail me @ home", images=[image("red")])

    # The server renders with the tokenizer's template: image_url parts give the original's prompt too.
    from minimind_hf.serving.engine import ChatEngine

    engine = ChatEngine(AutoModelForCausalLM.from_pretrained(tmp_path / "out"), saved, processor=processor)
    png = io.BytesIO()
    image("red").save(png, format="PNG")
    url = "data:image/png;base64," + base64.b64encode(png.getvalue()).decode()
    prompt = engine.encode_prompt(
        [
            {
                "role": "user",
                "content": [{"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": "Colour?"}],
            }
        ]
    )
    original = AutoTokenizer.from_pretrained(tokenizers["minimind2"])
    assert prompt.input_ids == original_prompt_ids(original, "<image>Colour?", "@", chat=True)


def test_shipped_tokenizer_keeps_its_template_and_gets_the_bare_layout(towers, tmp_path):
    state, *_ = original_checkpoint("minimind-3v")
    convert_vlm_checkpoint(save(state, tmp_path / "m.pth"), towers["siglip"], tmp_path / "out", tokenizer="shipped")
    processor = AutoProcessor.from_pretrained(tmp_path / "out")
    assert processor.chat_template == CHAT_TEMPLATE  # it renders image parts itself: no prelude
    prompt = processor.apply_chat_template(README_MESSAGES, add_generation_prompt=True, tokenize=False)
    assert "<|vision_start|>" in prompt  # our template's marked block ...
    ids = processor(text=prompt, images=[image("red")])["input_ids"][0]
    start = processor.tokenizer.convert_tokens_to_ids("<|vision_start|>")
    assert start not in ids and ids.count(processor.image_token_id) == PATCHES  # ... becomes the bare run


# ----------------------------------------------------------------------------- strictness


def save(state, path):
    torch.save(state, path)
    return path


def test_projector_keys_are_strict(towers, tokenizers, tmp_path):
    state, *_ = original_checkpoint("minimind-3v")
    broken = {k: v for k, v in state.items() if k != "vision_proj.mlp.3.bias"}
    broken["vision_proj.mlp.4.weight"] = torch.zeros(1)
    path = save(broken, tmp_path / "m.pth")
    tokenizer = tokenizers["minimind3"]
    with pytest.raises(CheckpointError, match="match no known MiniMind-V layout") as error:
        convert_vlm_checkpoint(path, towers["siglip"], tokenizer=tokenizer)
    assert "vision_proj.mlp.4.weight" in str(error.value)
    with pytest.raises(CheckpointError) as error:  # an explicit layout lists exactly what is wrong
        convert_vlm_checkpoint(path, towers["siglip"], layout="mlp", tokenizer=tokenizer)
    assert "missing (1): vision_proj.mlp.3.bias" in str(error.value)
    assert "unexpected (1): vision_proj.mlp.4.weight" in str(error.value)


def test_language_model_keys_are_strict(towers, tokenizers, tmp_path):
    state, *_ = original_checkpoint("minimind2-v")
    del state["model.layers.1.mlp.up_proj.weight"]
    with pytest.raises(CheckpointError, match=r"missing \(1\): model.layers.1.mlp.up_proj.weight"):
        convert_vlm_checkpoint(
            save(state, tmp_path / "m.pth"),
            towers["clip"],
            overrides={"num_attention_heads": 4},
            tokenizer=tokenizers["minimind2"],
        )


def test_wrong_tower_is_refused(towers, tokenizers, tmp_path):
    state, *_ = original_checkpoint("minimind2-v")
    state.update(projector_weights("linear", vision_hidden=32))  # trained on a 32-wide tower, not ours (48)
    with pytest.raises(CheckpointError, match="projector shapes do not fit"):
        convert_vlm_checkpoint(
            save(state, tmp_path / "m.pth"),
            towers["clip"],
            overrides={"num_attention_heads": 4},
            tokenizer=tokenizers["minimind2"],
        )


def test_wrong_or_missing_tokenizer_is_refused(towers, tokenizers, tmp_path):
    state, *_ = original_checkpoint("minimind-3v")
    path = save(state, tmp_path / "m.pth")
    with pytest.raises(CheckpointError, match="--tokenizer FOLDER, the `model/` folder"):
        convert_vlm_checkpoint(path, towers["siglip"])
    # MiniMind2's tokenizer has no <|image_pad|> token: minimind-3v's placeholders would be split.
    with pytest.raises(CheckpointError, match=f"does not write {PATCHES} x '<\\|image_pad\\|>'"):
        convert_vlm_checkpoint(path, towers["siglip"], tokenizer=tokenizers["minimind2"])


def test_interim_strip_merging_layout_is_refused(towers, tokenizers, tmp_path):
    state, *_ = original_checkpoint("minimind-3v")
    for key in [k for k in state if k.startswith("vision_proj.")]:
        del state[key]
    # Linear(768 * 4 -> hidden), GELU, Linear: four consecutive SigLIP2 tokens concatenated.
    state.update(
        {
            "vision_proj.mlp.0.weight": torch.zeros(DIM, 4 * 48),
            "vision_proj.mlp.0.bias": torch.zeros(DIM),
            "vision_proj.mlp.2.weight": torch.zeros(DIM, DIM),
            "vision_proj.mlp.2.bias": torch.zeros(DIM),
        }
    )
    with pytest.raises(CheckpointError, match="1x4 strips"):
        convert_vlm_checkpoint(save(state, tmp_path / "m.pth"), towers["siglip"], tokenizer=tokenizers["minimind3"])


def test_text_converter_points_vlm_checkpoints_to_the_vision_tower(tokenizers, tmp_path):
    state, *_ = original_checkpoint("minimind2-v")
    with pytest.raises(CheckpointError, match="--vision-tower"):
        convert_checkpoint(save(state, tmp_path / "m.pth"), overrides={"num_attention_heads": 4})
    text_only = {k: v for k, v in state.items() if not k.startswith("vision_proj.")}
    with pytest.raises(CheckpointError, match="not a MiniMind-V checkpoint"):
        convert_vlm_checkpoint(
            save(text_only, tmp_path / "llm.pth"),
            tmp_path,
            overrides={"num_attention_heads": 4},
            tokenizer=tokenizers["minimind2"],
        )


def test_resume_file_with_tower_weights_and_fp16(towers, tokenizers, tmp_path, capsys):
    """train_*_vlm.py resume files: {"model": full state dict incl. vision_encoder.*, "optimizer": ...}, DDP prefix;
    the regular .pth files are fp16."""
    state, settings, _, recipe, overrides, *_ = original_checkpoint("minimind2-v")
    tower_state = {f"vision_encoder.{k}": v for k, v in CLIPModel.from_pretrained(towers["clip"]).state_dict().items()}
    wrapped = {"model": {f"module.{k}": v.half() for k, v in {**state, **tower_state}.items()}, "epoch": 1}
    model = convert_vlm_checkpoint(
        save(wrapped, tmp_path / "resume.pth"), towers["clip"], overrides=overrides, tokenizer=tokenizers["minimind2"]
    )
    assert f"ignored {len(tower_state)} vision_encoder.* tensors" in capsys.readouterr().out
    assert model.dtype == torch.float32
    expected = state["vision_proj.vision_proj.0.weight"].half().float()
    assert torch.equal(model.projector.layers[0].weight, expected)


# ----------------------------------------------------------------------------- command line


def test_cli_converts_a_vlm_and_the_result_exports(towers, tokenizers, tmp_path, capsys):
    """MiniMind2-V with its own tokenizer, by the command line; the export runs the README snippet."""
    from minimind_hf.export import export_model

    state, settings, _, recipe, *_ = original_checkpoint("minimind2-v")
    path = save(state, tmp_path / "sft_vlm_512.pth")
    convert_cli.main(
        [
            str(path),
            str(tmp_path / "converted"),
            "--vision-tower",
            str(towers["clip"]),
            "--tokenizer",
            str(tokenizers["minimind2"]),
            "--num-attention-heads",
            "4",
        ]
    )
    assert (
        "clip_vision_model tower, linear projector, 16 x @ per image, no start/end markers" in capsys.readouterr().out
    )
    with pytest.raises(SystemExit) as exit_:  # a layout flag without a tower exits with the reason
        convert_cli.main([str(path), str(tmp_path / "x"), "--vlm-layout", "mlp"])
    assert exit_.value.code == 2

    out = export_model(tmp_path / "converted", tmp_path / "export")
    card = (out / "README.md").read_text()
    assert "MiniMind-V layout: MiniMind-V (2024) / MiniMind2-V (2025)" in card and "clip_vision_model" in card
    model = AutoModelForCausalLM.from_pretrained(out).eval()
    processor = AutoProcessor.from_pretrained(out)
    prompt = processor.apply_chat_template(README_MESSAGES, add_generation_prompt=True, tokenize=False)
    inputs = processor(text=prompt, images=[image("noise")], return_tensors="pt")
    original = AutoTokenizer.from_pretrained(tokenizers["minimind2"])
    assert inputs["input_ids"][0].tolist() == original_prompt_ids(
        original, "<image>What colour is the shape?", "@", chat=True
    )
    projected = original_projector(original_features(towers["clip"], recipe, inputs["pixel_values"]), state)
    reference = original_logits(state, inputs["input_ids"], projected, processor.image_token_id, **settings)
    with torch.no_grad():
        assert (model(**inputs).logits - reference).abs().max() < 1e-5
