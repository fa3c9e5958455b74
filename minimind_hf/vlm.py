"""Assemble a MiniMind-V from a MiniMind LLM and a vision tower (pretrained or from a config)."""

from __future__ import annotations

import torch
from transformers import AutoConfig, AutoImageProcessor, AutoModel, PreTrainedConfig

from .models import MiniMindForCausalLM, MiniMindVConfig, MiniMindVForCausalLM, MiniMindVProcessor
from .models.compat import unwrap_vision_tower
from .models.configuration_minimind_v import TINY_VISION_CONFIG


def vision_config_from(name_or_path: str | None, config: dict | None) -> PreTrainedConfig:
    """The tower's config: from a pretrained folder / hub id (a full CLIP/SigLIP checkpoint's
    vision part), else built from a dict (random init: tests and the offline quickstart)."""
    if name_or_path:
        loaded = AutoConfig.from_pretrained(name_or_path)
        return getattr(loaded, "vision_config", loaded)
    config = dict(config or TINY_VISION_CONFIG)
    model_type = config.pop("model_type", "clip_vision_model")
    return AutoConfig.for_model(model_type, **config)


def default_image_processor(vision_config: PreTrainedConfig):
    """Resize (+ centre crop for CLIP) to the tower's input size, normalise as the tower expects."""
    from transformers import CLIPImageProcessor, SiglipImageProcessor

    size = vision_config.image_size
    if vision_config.model_type.startswith("siglip"):
        return SiglipImageProcessor(size={"height": size, "width": size})
    return CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size})


def build_vlm(
    llm: MiniMindForCausalLM,
    tokenizer,
    vision_tower_name_or_path: str | None = None,
    vision_config: dict | None = None,
    **config_kwargs,
) -> tuple[MiniMindVForCausalLM, MiniMindVProcessor]:
    """A new MiniMind-V holding `llm`'s weights and the tower's (pretrained weights when a
    path is given; the same code path builds a random tower from a config offline)."""
    vision = vision_config_from(vision_tower_name_or_path, vision_config)
    config = MiniMindVConfig(
        text_config=llm.config.to_dict(),
        vision_config=vision.to_dict(),
        vision_tower_name_or_path=vision_tower_name_or_path,
        image_token_id=tokenizer.convert_tokens_to_ids(tokenizer.image_token),
        image_token=tokenizer.image_token,
        **config_kwargs,
    )
    model = MiniMindVForCausalLM(config)
    model.language_model.load_state_dict(llm.state_dict())
    if vision_tower_name_or_path:
        tower = AutoModel.from_pretrained(vision_tower_name_or_path, config=vision, dtype=torch.float32)
        missing, unexpected = model.vision_tower.load_state_dict(unwrap_vision_tower(tower).state_dict(), strict=False)
        if missing:
            raise ValueError(f"{vision_tower_name_or_path} lacks vision weights: {missing[:5]} ...")
        image_processor = AutoImageProcessor.from_pretrained(vision_tower_name_or_path)
    else:
        image_processor = default_image_processor(vision)
    model.generation_config = llm.generation_config
    processor = MiniMindVProcessor(
        image_processor=image_processor, tokenizer=tokenizer, image_seq_length=config.image_seq_length
    )
    return model, processor
