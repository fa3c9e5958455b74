"""MiniMind-V stages.

vlm_pretrain: start from a MiniMind LLM folder, attach a vision tower and a new projector;
train the projector (optionally the last N LLM layers) on image-caption data.
vlm_sft: start from a MiniMind-V folder; full LLM tuning, or LoRA (regex targets) with
MiniCPM-V's tune_vision / tune_llm / modules_to_save flags.
"""

from __future__ import annotations

import logging
import os

import torch
from transformers import AutoConfig, AutoProcessor, Trainer

from ..data.vision import VisionCollator, VisionOptions, build_vision_dataset
from .args import RecipeError
from ..utils import is_vlm, load_pretrained
from .common import EMBEDDED_PREFIX, embedded_path, load_split, require_model_path

logger = logging.getLogger(__name__)

DEFAULT_VLM_LORA_TARGETS = (
    r"language_model\.model\.layers\.\d+\.(self_attn\.(q_proj|k_proj|v_proj|o_proj)|mlp\.(gate_proj|up_proj|down_proj))"
)


def load_vlm(inputs):
    """(model, processor): a new VLM around an LLM folder, or an existing MiniMind-V folder."""
    from ..tokenizer import load_tokenizer
    from ..vlm import build_vlm

    path = require_model_path(inputs.model_args, inputs.stage)
    config = AutoConfig.from_pretrained(path)
    if is_vlm(config):
        return load_pretrained(path, dtype=torch.float32), AutoProcessor.from_pretrained(path)
    if inputs.stage == "vlm_sft":
        raise RecipeError(f"vlm_sft starts from a MiniMind-V folder; {path} is a {config.model_type} model (run vlm_pretrain first)")
    vision = inputs.vision_args
    tokenizer = load_tokenizer(inputs.model_args.tokenizer_name_or_path or path)
    llm = load_pretrained(path, dtype=torch.float32)
    return build_vlm(
        llm,
        tokenizer,
        vision_tower_name_or_path=vision.vision_tower_name_or_path,
        vision_config=vision.vision_config or None,
        projector_type=vision.projector_type,
        token_reduction=vision.token_reduction,
        reduction_factor=vision.reduction_factor,
        vision_feature_layer=vision.vision_feature_layer,
    )


def resolve_images_root(root: str | None, seed: int) -> str | None:
    if root is None:
        return None
    if root.startswith(EMBEDDED_PREFIX):
        return embedded_path(root, seed)
    return os.path.expanduser(os.path.expandvars(root))


def set_trainable(model, inputs):
    """Freeze everything, then open exactly what the flags ask for; returns the model to train."""
    from .stages import lora_config

    adapter, vision = inputs.adapter_args, inputs.vision_args
    model.requires_grad_(False)
    model.projector.requires_grad_(vision.tune_projector)
    model.vision_tower.requires_grad_(adapter.tune_vision)
    model.config.freeze_vision_tower = not adapter.tune_vision
    if adapter.tune_llm:
        model.language_model.requires_grad_(True)
    elif vision.train_llm_last_n_layers:
        for layer in model.language_model.model.layers[-vision.train_llm_last_n_layers :]:
            layer.requires_grad_(True)
    if adapter.use_lora:
        from peft import get_peft_model

        # The projector is trained in full next to the adapters (MiniCPM-V trains its resampler so).
        keep = list(adapter.modules_to_save or []) + (["projector"] if vision.tune_projector else [])
        model = get_peft_model(model, lora_config(adapter, DEFAULT_VLM_LORA_TARGETS, modules_to_save=keep))
        if adapter.tune_vision:  # PEFT froze the tower with the rest of the base model
            model.base_model.model.vision_tower.requires_grad_(True)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if not trainable:
        raise RecipeError("nothing to train: enable tune_projector, tune_llm, tune_vision or use_lora")
    total = sum(p.numel() for p in model.parameters())
    print(f"trainable parameters: {trainable:,} of {total:,} ({100 * trainable / total:.2f}%)", flush=True)
    return model


def run_vlm(inputs) -> None:
    from .stages import _train_and_save

    data_args, seed = inputs.data_args, inputs.training_args.seed + inputs.data_args.data_seed_offset
    model, processor = load_vlm(inputs)
    options = VisionOptions(
        max_length=data_args.max_length,
        last_turn_only=data_args.last_turn_only,
        system_prompt_ratio=data_args.system_prompt_ratio,
        empty_think_keep_ratio=data_args.empty_think_keep_ratio,
        seed=seed,
        images_root=resolve_images_root(inputs.vision_args.images_root, seed),
        image_seq_length=model.config.image_seq_length,
        skip_invalid=data_args.skip_invalid,
    )
    if data_args.packing:
        raise RecipeError("packing is not supported for image data (set packing: false)")
    splits, report = [], None
    for files in (data_args.train_files, data_args.eval_files):
        records, split_report = load_split(data_args, files, "sft", seed)
        if records is not None:
            records = build_vision_dataset(records, processor.tokenizer, options, split_report, data_args.num_proc)
            if len(records) == 0:
                raise split_report.nothing_usable([str(f) for f in files])
        splits.append(records)
        report = split_report if report is None else report
    if splits[0] is None:
        raise RecipeError(f"stage {inputs.stage!r} needs train_files")
    print(report.summary(), flush=True)

    model = set_trainable(model, inputs)
    trainer = Trainer(
        model=model,
        args=inputs.training_args,
        train_dataset=splits[0],
        eval_dataset=splits[1],
        data_collator=VisionCollator(pad_token_id=processor.tokenizer.pad_token_id, image_processor=processor.image_processor),
        processing_class=processor,
    )
    _train_and_save(trainer, inputs, processor.tokenizer, report, processor=processor)
