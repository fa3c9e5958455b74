"""Stage dpo: TRL's DPOTrainer on conversational preference pairs."""

from __future__ import annotations

import copy

from .adapters import peft_config_for
from .args import StageInputs
from .data import preference_datasets
from .finish import train_and_save
from .loading import build_model, load_tokenizer_for


def run(inputs: StageInputs) -> None:
    from trl import DPOTrainer

    tokenizer = load_tokenizer_for(inputs.model_args)
    train, evaluation, report = preference_datasets(inputs)
    model = build_model(inputs.model_args, tokenizer, "dpo")
    peft_config = peft_config_for(inputs.adapter_args)
    # The reference is a frozen copy of the start model; with LoRA, TRL uses the base model
    # with the adapter disabled. (trl's ref_model=None would reload from config._name_or_path.)
    ref_model = None if peft_config else copy.deepcopy(model).eval().requires_grad_(False)
    trainer = DPOTrainer(
        model=model,
        ref_model=ref_model,
        args=inputs.training_args,
        train_dataset=train,
        eval_dataset=evaluation,
        processing_class=tokenizer,
        peft_config=peft_config,
    )
    train_and_save(trainer, inputs, tokenizer, report)
