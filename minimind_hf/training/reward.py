"""Stage reward: TRL's RewardTrainer on preference pairs (every DPO format we read).

A MiniMindForSequenceClassification starts from a causal-LM folder (only the `score` head is
new); the held-out pairwise accuracy is TRL's `eval_accuracy`, kept in run_info.json.
"""

from __future__ import annotations

import torch

from ..utils import load_pretrained
from .adapters import lora_config
from .args import StageInputs
from .data import preference_datasets
from .finish import replica_checksums, train_and_save
from .loading import attention_kwargs, load_tokenizer_for, starting_folder


def build_reward_model(inputs: StageInputs, tokenizer):
    """A MiniMindForSequenceClassification (num_labels=1) from a causal-LM or reward-model folder."""
    from transformers import AutoModelForSequenceClassification

    path = starting_folder(inputs.model_args, "reward")
    # Only the score head is new; anything else missing from the folder is an error (strict loader).
    model = load_pretrained(
        path,
        auto_class=AutoModelForSequenceClassification,
        allow_new=("score.",),
        num_labels=1,
        dtype=torch.float32,
        **attention_kwargs(inputs.model_args),
    )
    model.config.pad_token_id = tokenizer.pad_token_id
    return model


def run(inputs: StageInputs) -> None:
    from trl import RewardTrainer

    tokenizer = load_tokenizer_for(inputs.model_args)
    train, evaluation, report = preference_datasets(inputs)
    model = build_reward_model(inputs, tokenizer)
    peft_config = None
    if inputs.adapter_args.use_lora:  # the new head is trained in full next to the adapters
        peft_config = lora_config(
            inputs.adapter_args, modules_to_save=inputs.adapter_args.modules_to_save or ["score"], task_type="SEQ_CLS"
        )
    trainer = RewardTrainer(
        model=model,
        args=inputs.training_args,
        train_dataset=train,
        eval_dataset=evaluation,
        processing_class=tokenizer,
        peft_config=peft_config,
    )

    def results(model) -> dict:
        history = trainer.state.log_history
        out = {"eval_accuracy": next((h["eval_accuracy"] for h in reversed(history) if "eval_accuracy" in h), None)}
        return out | replica_checksums(trainer)

    def result_lines(info: dict) -> list[str]:
        if info.get("eval_accuracy") is None:
            return []
        return [f"result: held-out pairwise accuracy (chosen scored above rejected) {info['eval_accuracy']:.3f}"]

    train_and_save(trainer, inputs, tokenizer, report, results=results, result_lines=result_lines, show_eval_loss=False)
