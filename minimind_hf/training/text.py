"""Stages pretrain, sft, lora and distill: next-token loss on masked labels with a stock Trainer
whose head runs only at supervised positions (:mod:`.supervised_head`); packed rows use
document attention (:mod:`.attention`); distill: MiniMind's CE + KL objective, :mod:`.distill`."""

from __future__ import annotations

import torch

from ..data.text import CausalLMCollator
from ..utils import load_pretrained
from .adapters import apply_adapters
from .args import RecipeError, StageInputs
from .attention import DOCUMENT_SDPA
from .data import text_datasets
from .finish import train_and_save
from .loading import build_model, load_tokenizer_for
from .supervised_head import SupervisedHeadTrainer


def run(inputs: StageInputs) -> None:
    stage = inputs.stage
    tokenizer = load_tokenizer_for(inputs.model_args)
    train, evaluation, report = text_datasets(inputs, tokenizer, "pretrain" if stage == "pretrain" else "sft")
    model = build_model(inputs.model_args, tokenizer, stage)
    if inputs.data_args.packing and not inputs.model_args.attn_implementation:
        model.set_attn_implementation(DOCUMENT_SDPA)  # packed documents attend only to themselves
    model = apply_adapters(model, inputs.adapter_args)
    common = dict(
        model=model,
        args=inputs.training_args,
        train_dataset=train,
        eval_dataset=evaluation,
        data_collator=CausalLMCollator(pad_token_id=tokenizer.pad_token_id),
        processing_class=tokenizer,
    )
    if stage == "distill":
        from .distill import DistillationTrainer

        trainer = DistillationTrainer(
            teacher=load_teacher(inputs, tokenizer), distill_args=inputs.distill_args, **common
        )
    else:
        trainer = SupervisedHeadTrainer(**common)
    train_and_save(trainer, inputs, tokenizer, report)


def load_teacher(inputs: StageInputs, tokenizer):
    path = inputs.distill_args.teacher_model_name_or_path
    if not path:
        raise RecipeError("stage 'distill' needs teacher_model_name_or_path")
    teacher = load_pretrained(path, dtype=torch.float32)
    if teacher.config.vocab_size < len(tokenizer):
        raise RecipeError(
            f"teacher {path} has a smaller vocabulary than the tokenizer ({teacher.config.vocab_size} < {len(tokenizer)})"  # noqa: E501
        )
    return teacher.eval().requires_grad_(False)
