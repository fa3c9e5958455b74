"""Stages vlm_pretrain and vlm_sft (MiniMind-V).

vlm_pretrain: start from a MiniMind LLM folder, attach a vision tower and a new projector;
train the projector (optionally the last N LLM layers) on image-caption data.
vlm_sft: start from a MiniMind-V folder; full LLM tuning, or LoRA (regex targets) with
MiniCPM-V's tune_vision / tune_llm / modules_to_save flags.
"""

from __future__ import annotations

import os

import torch
from transformers import AutoConfig, AutoProcessor, Trainer

from ..data.embedded import EMBEDDED_PREFIX, embedded_path
from ..data.vision import VisionCollator, VisionOptions, build_vision_dataset
from ..utils import is_vlm, load_pretrained
from .adapters import set_vlm_trainable
from .args import RecipeError, StageInputs
from .data import load_splits, sft_options
from .finish import train_and_save
from .loading import require_model_path


def load_vlm(inputs):
    """(model, processor): a new VLM around an LLM folder, or an existing MiniMind-V folder."""
    from ..tokenizer import load_tokenizer
    from ..vlm import build_vlm

    path = require_model_path(inputs.model_args, inputs.stage)
    config = AutoConfig.from_pretrained(path)
    if is_vlm(config):
        return load_pretrained(path, dtype=torch.float32), AutoProcessor.from_pretrained(path)
    if inputs.stage == "vlm_sft":
        raise RecipeError(
            f"vlm_sft starts from a MiniMind-V folder; {path} is a {config.model_type} model (run vlm_pretrain first)"
        )
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


def run(inputs: StageInputs) -> None:
    data_args, seed = inputs.data_args, inputs.data_seed
    if data_args.packing:
        raise RecipeError("packing is not supported for image data (set packing: false)")
    model, processor = load_vlm(inputs)
    options = sft_options(
        data_args,
        seed,
        VisionOptions,
        images_root=resolve_images_root(inputs.vision_args.images_root, seed),
        image_seq_length=model.config.image_seq_length,
        skip_invalid=data_args.skip_invalid,
    )
    train, evaluation, report = load_splits(
        inputs,
        "sft",
        lambda records, report: build_vision_dataset(records, processor.tokenizer, options, report, data_args.num_proc),
    )
    model = set_vlm_trainable(model, inputs)
    trainer = Trainer(
        model=model,
        args=inputs.training_args,
        train_dataset=train,
        eval_dataset=evaluation,
        data_collator=VisionCollator(
            pad_token_id=processor.tokenizer.pad_token_id, image_processor=processor.image_processor
        ),
        processing_class=processor,
    )
    train_and_save(trainer, inputs, processor.tokenizer, report, processor=processor)
