"""Original MiniMind-V checkpoints -> our MiniMind-V.

MiniMind-V checkpoints are one of the language models of `generations.py` plus `vision_proj.*`
(the projector); the original code loaded the vision tower separately and left it out of the
`.pth`, so `convert_vlm_checkpoint` takes the tower's folder and rebuilds the VLM around
it. The projector layouts are an explicit table (`VLM_LAYOUTS`), each with the prompt layout
the original trained on (bare placeholders, no start/end markers):

- "linear" - MiniMind-V (2024) and MiniMind2-V (2025): `vision_proj.vision_proj.0` is one
  Linear(vision hidden -> hidden) applied to every patch feature; MiniMind2-V feeds CLIP
  ViT-B/16's `last_hidden_state` without CLS to 196 plain-text `@` placeholders. The 2024 code
  fed CLIP ViT-B/32's CLS token too, which MiniMind-V cannot: it converts but is not exact (a
  warning says so); its SigLIP option (encoder output, no CLS, 98 `<` + 98 `>` placeholders -
  196 positions, here 196 `@`: the same positions, overwritten by the image either way) is exact.
- "mlp" - minimind-3v (2026): `vision_proj.mlp.{0,1,3}` is LayerNorm, Linear, GELU,
  Linear on SigLIP2 (`siglip2-base-p32-256-ve`: 256 px, 32 px patches) `last_hidden_state`:
  64 `<|image_pad|>` tokens per image, no token merging. SigLIP's `last_hidden_state` has
  the tower's post-LayerNorm applied, so the converted config sets the vision config's
  `tie_last_hidden_states` (the transformers switch that makes `hidden_states[-1]` - what
  MiniMind-V reads - that same tensor).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..models import MiniMindVForCausalLM, MiniMindVProcessor
from ..utils import DTYPES, set_generation_defaults
from ..vlm import build_vlm
from .checkpoint import VISION_PROJ_PREFIX, CheckpointError, check_keys, load_state_dict, natural_order
from .convert import convert_language_model, load_original_tokenizer, write_conversion_info
from .generations import MINIMIND_2024

# Resume files ({"model": full state dict, ...}) also hold the frozen tower; its weights come
# from the tower folder instead (the `.pth` files the original saves leave it out).
VISION_ENCODER_PREFIX = "vision_encoder."


@dataclass(frozen=True)
class VLMLayout:
    """One original projector layout and how it maps onto `MiniMindVForCausalLM.projector`."""

    name: str
    projector_type: str  # our MiniMindVConfig.projector_type
    keys: dict[str, str]  # original key -> our key (inside the VLM)
    # The placeholder the original wrote once per image position, bare (no start/end markers);
    # a tokenizer that names its own image token keeps that one (the positions are what count).
    image_token: str
    optional: tuple[str, ...] = ()  # original keys that may be absent (a Linear without bias): zeros
    # The original read the tower's `last_hidden_state`: post-LayerNorm for SigLIP (CLIP's
    # `last_hidden_state` is the encoder output either way).
    features_after_post_layernorm: bool = False


VLM_LAYOUTS = {
    "linear": VLMLayout(
        "MiniMind-V (2024) / MiniMind2-V (2025): VisionProj = Linear on patch features",
        "linear",
        {
            "vision_proj.vision_proj.0.weight": "projector.layers.0.weight",
            "vision_proj.vision_proj.0.bias": "projector.layers.0.bias",
        },
        image_token="@",
        optional=("vision_proj.vision_proj.0.bias",),
    ),
    "mlp": VLMLayout(
        "minimind-3v (2026): MMVisionProjector = LayerNorm, Linear, GELU, Linear on SigLIP2 last_hidden_state",
        "mlp",
        {f"vision_proj.mlp.{i}.{p}": f"projector.layers.{i}.{p}" for i in (0, 1, 3) for p in ("weight", "bias")},
        image_token="<|image_pad|>",
        features_after_post_layernorm=True,
    ),
}

# Layouts seen in the wild that MiniMindVForCausalLM cannot reproduce exactly: a key that
# identifies each, and why it is refused rather than approximated.
UNMAPPABLE_VLM_LAYOUTS = {
    "vision_proj.mlp.2.weight": (
        "this is the interim MiniMind-V layout (MMVisionProjector = Linear over 4 consecutive tokens of a "
        "SigLIP2-NaFlex tower concatenated, GELU, Linear; no LayerNorm). It merges 1x4 strips of the patch grid "
        "where MiniMind-V's pixel shuffle merges 2x2 blocks, and its NaFlex tower takes variable-resolution "
        "patches, so no MiniMind-V configuration computes the same thing"
    ),
}


def detect_vlm_layout(projector_state: dict) -> str:
    keys = set(projector_state)
    for name, layout in VLM_LAYOUTS.items():
        if set(layout.keys) - set(layout.optional) <= keys <= set(layout.keys):
            if name == "mlp" and projector_state["vision_proj.mlp.0.weight"].dim() != 1:
                continue  # mlp.0 must be the LayerNorm
            return name
    for key, reason in UNMAPPABLE_VLM_LAYOUTS.items():
        if key in keys:
            raise CheckpointError(f"cannot convert this MiniMind-V projector exactly: {reason}")
    known = "; ".join(f"{name}: {', '.join(layout.keys)}" for name, layout in VLM_LAYOUTS.items())
    raise CheckpointError(
        f"the projector keys {sorted(keys, key=natural_order)} match no known MiniMind-V layout ({known})"
    )


def convert_projector_state(projector_state: dict, layout: VLMLayout, expected: dict) -> dict[str, torch.Tensor]:
    """Original projector tensors -> ours, strictly (`expected`: our projector's state dict)."""
    check_keys(
        set(projector_state),
        set(layout.keys),
        set(layout.optional),
        f"projector keys do not match the layout {layout.name!r}",
    )
    out, wrong_shapes = {}, []
    for theirs, ours in layout.keys.items():
        local = ours.removeprefix("projector.")
        tensor = projector_state.get(theirs)
        if tensor is None:  # an unbiased Linear (LLaVA-1 style): a zero bias computes the same
            tensor = torch.zeros_like(expected[local])
        if tensor.shape != expected[local].shape:
            wrong_shapes.append(f"{theirs}: {tuple(tensor.shape)}, expected {tuple(expected[local].shape)}")
        out[local] = tensor.to(torch.float32)
    if wrong_shapes:
        raise CheckpointError(
            "projector shapes do not fit this language model and vision tower (the projector maps the tower's "
            "hidden size to the language model's; pass the tower the checkpoint was trained with):\n  "
            + "\n  ".join(wrong_shapes)
        )
    return out


def convert_vlm_checkpoint(
    checkpoint: str | Path,
    vision_tower: str | Path,
    out: str | Path | None = None,
    generation: str = "auto",
    layout: str = "auto",
    original_config: dict | None = None,
    overrides: dict | None = None,
    dtype: str = "float32",
    tokenizer: str | Path | None = None,
) -> MiniMindVForCausalLM:
    """An original MiniMind-V `.pth` (language model + `vision_proj.*`) plus the vision tower
    it was trained with (a CLIP / SigLIP folder or hub id) and its tokenizer -> our MiniMind-V,
    prompted with the original's image layout. With `out`, also save a model folder with its
    processor and conversion_info.json. `generation`, `original_config`, `overrides`, `dtype`
    and `tokenizer` mean what they mean for `convert_checkpoint`; `layout` picks `VLM_LAYOUTS`."""
    tok = load_original_tokenizer(tokenizer)
    state_dict = load_state_dict(checkpoint)
    projector_state = {k: v for k, v in state_dict.items() if k.startswith(VISION_PROJ_PREFIX)}
    if not projector_state:
        raise CheckpointError(
            f"{checkpoint} has no {VISION_PROJ_PREFIX}* weights: not a MiniMind-V checkpoint "
            "(convert it without a vision tower)"
        )
    tower_keys = [k for k in state_dict if k.startswith(VISION_ENCODER_PREFIX)]
    llm_state = {k: v for k, v in state_dict.items() if not k.startswith((VISION_PROJ_PREFIX, VISION_ENCODER_PREFIX))}
    layout = detect_vlm_layout(projector_state) if layout == "auto" else layout
    if layout not in VLM_LAYOUTS:
        raise CheckpointError(f"unknown MiniMind-V layout {layout!r}; choose auto or one of {', '.join(VLM_LAYOUTS)}")
    spec = VLM_LAYOUTS[layout]

    llm, info = convert_language_model(llm_state, generation, original_config, overrides)
    set_generation_defaults(llm, tok)
    if getattr(tok, "image_token", None) is None:
        # build_vlm reads the placeholder from the tokenizer; MiniMind2's names none (`@` is plain text
        # there). A plain attribute: not a special token, not saved.
        tok.image_token = spec.image_token
    try:
        model, processor = build_vlm(
            llm, tok, vision_tower_name_or_path=str(vision_tower), projector_type=spec.projector_type
        )
    except (OSError, ValueError) as error:
        raise CheckpointError(f"cannot load the vision tower {vision_tower}: {error}") from error
    config = model.config
    _check_placeholder(tok, config.image_token, config.image_token_id, config.image_seq_length, tokenizer)
    processor = MiniMindVProcessor(
        image_processor=processor.image_processor,
        tokenizer=tok,
        image_seq_length=config.image_seq_length,
        image_token=config.image_token,
        image_block_markers=False,
    )  # the original's bare placeholders
    # The tokenizer's copy too: the server renders with it.
    processor.chat_template = tok.chat_template = _image_parts_template(processor)
    if spec.features_after_post_layernorm:
        config.vision_config.tie_last_hidden_states = True  # hidden_states[-1] := last_hidden_state
    model.projector.load_state_dict(
        convert_projector_state(projector_state, spec, model.projector.state_dict()), strict=True
    )
    if info["release"] == MINIMIND_2024.name and config.vision_config.model_type.startswith("clip"):
        print(
            "warning: MiniMind-V v1 (2024) fed CLIP's CLS token as an image token too (50 placeholders for "
            "ViT-B/32); MiniMind-V drops it, so such a checkpoint does not convert exactly. MiniMind2-V "
            "checkpoints (196 placeholders, CLS dropped) are exact."
        )
    if tower_keys:
        print(
            f"note: ignored {len(tower_keys)} {VISION_ENCODER_PREFIX}* tensors (the frozen tower saved in a resume "
            f"file); the tower's weights come from {vision_tower}"
        )
    model = model.to(DTYPES[dtype]).eval()
    if out is not None:
        model.save_pretrained(str(out))
        processor.save_pretrained(str(out))
        prompt = f"{config.image_seq_length} x {config.image_token!r} per image, no start/end markers"
        write_conversion_info(
            out,
            checkpoint,
            info,
            tokenizer=str(tokenizer),
            vlm_layout=layout,
            vlm_layout_name=spec.name,
            vision_tower=str(vision_tower),
            image_prompt=prompt,
        )
    return model


def _check_placeholder(tok, token: str, token_id: int, count: int, tokenizer) -> None:
    """The original's placeholder run must tokenise as `count` copies of one token (no BPE merges)."""
    ids = tok(token * count, add_special_tokens=False)["input_ids"]
    if ids != [token_id] * count:
        raise CheckpointError(
            f"the tokenizer {tokenizer} does not write {count} x {token!r} (the original's image placeholders) as "
            f"{count} copies of one token (it gives {len(ids)} ids, {len(set(ids))} distinct); pass the tokenizer the "
            "checkpoint was trained with"
        )


# Original MiniMind chat templates render string content only (a content list renders as
# nothing). Put in front of such a template, this turns content parts into that string - text
# kept, one `<image>` (the original data's marker) per image part - for the processor to expand.
IMAGE_PARTS_PRELUDE = """{#- minimind-hf: content parts -> one string, an <image> marker per image part -#}
{%- set flat = namespace(messages=[]) -%}
{%- for message in messages -%}
    {%- if message.content is string or message.content is mapping or message.content is not iterable -%}
        {%- set flat.messages = flat.messages + [message] -%}
    {%- else -%}
        {%- set text = namespace(value='') -%}
        {%- for part in message.content -%}
            {%- if part.type in ('image', 'image_url') -%}
                {%- set text.value = text.value + '<image>' -%}
            {%- elif part.text is defined -%}
                {%- set text.value = text.value + part.text -%}
            {%- endif -%}
        {%- endfor -%}
        {%- set flat.messages = flat.messages + [dict(message, content=text.value)] -%}
    {%- endif -%}
{%- endfor -%}
{%- set messages = flat.messages -%}
"""


def _image_parts_template(processor) -> str | None:
    """The tokenizer's chat template, with IMAGE_PARTS_PRELUDE when it does not place images itself."""
    template = processor.chat_template
    if not isinstance(template, str):
        return template
    probe = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "?"}]}]
    try:
        rendered = processor.apply_chat_template(probe, tokenize=False)
    except Exception:  # a template that cannot take a content list at all
        rendered = ""
    if processor.normalize_image_markers(rendered).count(processor.image_token) == 1:
        return template
    return IMAGE_PARTS_PRELUDE + template
