"""One small function per stage. Each builds data, a model and a stock trainer
(Trainer / TRL DPOTrainer / a distillation Trainer), trains, and leaves a complete folder."""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass

import torch
from transformers import Trainer, TrainingArguments

from ..data.text import CausalLMCollator, SFTOptions, build_dpo_dataset, build_pretrain_dataset, build_sft_dataset
from .args import (
    AdapterArguments,
    DataArguments,
    DistillArguments,
    ModelArguments,
    RecipeError,
    RLArguments,
    VisionArguments,
)
from .common import (
    build_model,
    closing_lines,
    load_split,
    load_tokenizer_for,
    resolve_resume,
    set_generation_defaults,
    write_run_info,
)
from .distill import DistillationTrainer

logger = logging.getLogger(__name__)


@dataclass
class StageInputs:
    stage: str
    model_args: ModelArguments
    data_args: DataArguments
    adapter_args: AdapterArguments
    distill_args: DistillArguments
    training_args: TrainingArguments
    vision_args: VisionArguments | None = None
    rl_args: RLArguments | None = None


# ----------------------------------------------------------------------------- data


def _sft_options(data_args: DataArguments, seed: int) -> SFTOptions:
    return SFTOptions(
        max_length=data_args.max_length,
        last_turn_only=data_args.last_turn_only,
        system_prompt_ratio=data_args.system_prompt_ratio,
        empty_think_keep_ratio=data_args.empty_think_keep_ratio,
        seed=seed,
    )


def build_datasets(inputs: StageInputs, tokenizer, kind: str):
    """(train, eval, report) for a token-level stage; eval may be None."""
    data_args, seed = inputs.data_args, inputs.training_args.seed + inputs.data_args.data_seed_offset
    if not data_args.train_files:
        raise RecipeError(f"stage {inputs.stage!r} needs train_files")
    datasets, report = [], None
    for files in (data_args.train_files, data_args.eval_files):
        records, split_report = load_split(data_args, files, "pretrain" if kind == "pretrain" else "sft", seed)
        if records is not None:
            if kind == "pretrain":
                records = build_pretrain_dataset(
                    records, tokenizer, data_args.max_length, data_args.packing, split_report, data_args.num_proc
                )
            else:
                records = build_sft_dataset(records, tokenizer, _sft_options(data_args, seed), split_report, data_args.num_proc)
                if data_args.packing:
                    from ..data.text import pack

                    records = pack(records, data_args.max_length)
            if not data_args.streaming and len(records) == 0:
                from ..data.sources import DataSourceError

                dropped = "; ".join(f"{reason}: {count}" for reason, count in split_report.dropped.most_common())
                raise DataSourceError(f"{', '.join(map(str, files))}: no example is left after tokenisation"
                                      + (f" (dropped - {dropped})" if dropped else "") + f"; max_length is {data_args.max_length}")
        datasets.append(records)
        report = split_report if report is None else report  # the training split's report is the run's
    if data_args.streaming:
        print("streaming: records are validated as training reads them; the report is in run_info.json", flush=True)
    else:
        print(report.summary(), flush=True)
    return datasets[0], datasets[1], report


# ----------------------------------------------------------------------------- LoRA / freezing


DEFAULT_LORA_TARGETS = r"model\.layers\.\d+\.(self_attn\.(q_proj|k_proj|v_proj|o_proj)|mlp\.(gate_proj|up_proj|down_proj))"


def lora_config(adapter_args: AdapterArguments, default_targets: str = DEFAULT_LORA_TARGETS, modules_to_save=None):
    from peft import LoraConfig

    targets = adapter_args.lora_target_modules or default_targets
    return LoraConfig(
        r=adapter_args.lora_r,
        lora_alpha=adapter_args.lora_alpha,
        lora_dropout=adapter_args.lora_dropout,
        target_modules=targets,
        modules_to_save=modules_to_save if modules_to_save is not None else adapter_args.modules_to_save,
        layers_to_transform=adapter_args.layers_to_transform,
        layers_pattern="layers" if adapter_args.layers_to_transform is not None else None,
        task_type="CAUSAL_LM",
    )


def check_adapter_flags(adapter_args: AdapterArguments, allow_frozen_llm: bool = False) -> None:
    if adapter_args.use_lora and adapter_args.tune_llm:
        raise RecipeError("use_lora with tune_llm=true: the LLM cannot be fully tuned and LoRA-adapted at once (set tune_llm: false)")
    if not adapter_args.use_lora and not adapter_args.tune_llm and not allow_frozen_llm:
        raise RecipeError("tune_llm=false without use_lora leaves nothing to train")


def apply_adapters(model, adapter_args: AdapterArguments):
    if not adapter_args.use_lora:
        return model
    from peft import get_peft_model

    return get_peft_model(model, lora_config(adapter_args))


def save_merged(model, tokenizer, output_dir: str, processor=None) -> str:
    """LoRA folded into the base weights: a plain full model folder under output_dir/merged."""
    merged_dir = f"{output_dir}/merged"
    merged = model.merge_and_unload()
    set_generation_defaults(merged, tokenizer)
    merged.save_pretrained(merged_dir)
    (processor or tokenizer).save_pretrained(merged_dir)
    return merged_dir


# ----------------------------------------------------------------------------- stages


def _train_and_save(trainer, inputs: StageInputs, tokenizer, report, processor=None) -> None:
    args = trainer.args
    result = trainer.train(resume_from_checkpoint=resolve_resume(args.resume_from_checkpoint, args.output_dir))
    model = trainer.model
    set_generation_defaults(model, tokenizer)
    trainer.save_model(args.output_dir)  # model (or adapter) + tokenizer + generation config
    if inputs.adapter_args.use_lora and inputs.adapter_args.merge_lora and trainer.is_world_process_zero():
        merged = trainer.accelerator.unwrap_model(model)
        save_merged(merged, tokenizer, args.output_dir, processor)
    if trainer.eval_dataset is not None:  # the held-out loss at the end (logged, so it is plotted too)
        trainer.evaluate()
    trainer.save_state()
    info = write_run_info(trainer, args.output_dir, inputs.stage, report, mean_train_loss=result.training_loss)
    if trainer.is_world_process_zero():
        plot_curves(args.output_dir)
        print("\n".join(closing_lines(info, args.output_dir, inputs.stage)), flush=True)
    trainer.accelerator.wait_for_everyone()


def plot_curves(output_dir: str) -> None:
    """training_curves.png next to the model; a plotting problem never fails a finished run."""
    from ..plotting import plot_training

    try:
        plot_training(output_dir)
    except (ValueError, OSError) as error:  # e.g. a run too short to have logged anything
        logger.warning("no training curves plotted: %s", error)


def run_causal_lm(inputs: StageInputs) -> None:
    """pretrain, sft, lora and distill: next-token loss on masked labels."""
    stage = inputs.stage
    tokenizer = load_tokenizer_for(inputs.model_args)
    train, evaluation, report = build_datasets(inputs, tokenizer, "pretrain" if stage == "pretrain" else "sft")
    model = apply_adapters(build_model(inputs.model_args, tokenizer, stage), inputs.adapter_args)
    common = dict(
        model=model,
        args=inputs.training_args,
        train_dataset=train,
        eval_dataset=evaluation,
        data_collator=CausalLMCollator(pad_token_id=tokenizer.pad_token_id),
        processing_class=tokenizer,
    )
    if stage == "distill":
        trainer = DistillationTrainer(teacher=load_teacher(inputs, tokenizer), distill_args=inputs.distill_args, **common)
    else:
        trainer = Trainer(**common)
    _train_and_save(trainer, inputs, tokenizer, report)


def load_teacher(inputs: StageInputs, tokenizer):
    from ..utils import load_pretrained

    path = inputs.distill_args.teacher_model_name_or_path
    if not path:
        raise RecipeError("stage 'distill' needs teacher_model_name_or_path")
    teacher = load_pretrained(path, dtype=torch.float32)
    if teacher.config.vocab_size != len(tokenizer) and teacher.config.vocab_size < len(tokenizer):
        raise RecipeError(f"teacher {path} has a smaller vocabulary than the tokenizer ({teacher.config.vocab_size} < {len(tokenizer)})")
    return teacher.eval().requires_grad_(False)


def run_dpo(inputs: StageInputs) -> None:
    from trl import DPOTrainer

    data_args, seed = inputs.data_args, inputs.training_args.seed + inputs.data_args.data_seed_offset
    tokenizer = load_tokenizer_for(inputs.model_args)
    train, report = load_split(data_args, data_args.train_files, "dpo", seed)
    if train is None:
        raise RecipeError("stage 'dpo' needs train_files")
    evaluation, _ = load_split(data_args, data_args.eval_files, "dpo", seed)
    print(report.summary(), flush=True)
    train = build_dpo_dataset(train)
    evaluation = build_dpo_dataset(evaluation) if evaluation is not None else None

    model = build_model(inputs.model_args, tokenizer, "dpo")
    peft_config = lora_config(inputs.adapter_args) if inputs.adapter_args.use_lora else None
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
    _train_and_save(trainer, inputs, tokenizer, report)


from .rl import run_grpo, run_reward  # noqa: E402  (uses the helpers above)
from .vision import run_vlm  # noqa: E402  (uses the helpers above)

STAGE_RUNNERS = {
    "pretrain": run_causal_lm,
    "sft": run_causal_lm,
    "lora": run_causal_lm,
    "distill": run_causal_lm,
    "dpo": run_dpo,
    "reward": run_reward,
    "grpo": run_grpo,
    "vlm_pretrain": run_vlm,
    "vlm_sft": run_vlm,
}
