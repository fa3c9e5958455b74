"""A recipe YAML (plus `--key value` overrides) -> checked StageInputs for the stage's runner.

:func:`parse` first checks what needs neither torch nor transformers - the YAML, the stage, our
own keys' values and choices, and (``check_paths=True``, as the CLI does) local data files and
the starting folder - so a mistake there fails in a fraction of a second; then it imports the
stage's trainer arguments (transformers / TRL, hence torch) for their keys and values.
:func:`validate` runs every check that needs no data: the paths again, and those that need
the model code (model_config) or the stage module.
"""

from __future__ import annotations

from dataclasses import fields

from ..data.embedded import EMBEDDED_PREFIX
from ..data.report import DataError
from ..data.sources import DataSource, local_files
from .adapters import check_adapter_flags
from .args import (
    AdapterArguments,
    DataArguments,
    DistillArguments,
    ModelArguments,
    RecipeError,
    RLArguments,
    StageInputs,
    VisionArguments,
    read_recipe,
    split_recipe,
)
from .loading import require_model_path
from .stages import STAGES, VISION_STAGES, stage_module

# The argument groups of every recipe, in --help order; the stage's TrainingArguments class comes last.
ARGUMENT_GROUPS = (ModelArguments, DataArguments, AdapterArguments, DistillArguments, VisionArguments, RLArguments)


def stage_defaults(stage: str) -> dict:
    """Defaults under the recipe: MiniMind's schedule, our collators' columns (the device's
    numerics are :func:`device_defaults`)."""
    defaults = {
        "lr_scheduler_type": "cosine_with_min_lr",
        "lr_scheduler_kwargs": {"min_lr_rate": 0.1},  # cosine decay to 10% of the peak, as MiniMind
        "report_to": "none",
        "logging_steps": 10,
        "save_strategy": "no",
        "activation_checkpointing": False,  # TRL's DPOConfig would default it on
        "remove_unused_columns": False,  # packed rows carry seq_lengths for the collator
    }
    if stage in ("pretrain", "sft", "lora", "distill", "vlm_pretrain", "vlm_sft"):
        defaults["include_num_input_tokens_seen"] = "all"  # run_info's tokens_seen (rows incl. padding)
        defaults["prediction_loss_only"] = True  # eval needs the loss only: keep no vocabulary-wide logits
    if stage == "lora":
        defaults.update(use_lora=True, tune_llm=False)
    if stage == "vlm_pretrain":
        defaults.update(tune_llm=False)  # the projector learns; LLM and tower stay frozen
    if stage in ("dpo", "reward"):
        defaults.pop("remove_unused_columns")  # DPOTrainer / RewardTrainer manage their own columns
    if stage == "grpo":
        # MiniMind's train_grpo.py: CISPO (clipped importance weights, upper bound 5.0) and a k3 KL of 0.1.
        defaults.update(loss_type="cispo", epsilon_high=5.0, beta=0.1)
    return defaults


def device_defaults() -> dict:
    """bf16 where the GPU has it, the CPU where there is no GPU."""
    import torch

    on_gpu = torch.cuda.is_available()
    return {"bf16": on_gpu and torch.cuda.is_bf16_supported(), "use_cpu": not on_gpu}


def training_args_class(stage: str):
    if stage == "dpo":
        from trl import DPOConfig

        return DPOConfig
    if stage == "reward":
        from trl import RewardConfig

        return RewardConfig
    if stage == "grpo":
        from trl import GRPOConfig

        return GRPOConfig
    from transformers import TrainingArguments

    return TrainingArguments


def parse(path: str, overrides: list[str], check_paths: bool = False):
    recipe = read_recipe(path, overrides)
    stage = recipe.get("stage")
    if stage == "ppo":
        import trl

        raise RecipeError(
            f"{path}: stage 'ppo' is not available: TRL {trl.__version__} ships no PPOTrainer (neither "
            "trl nor trl.experimental has one); use stage 'grpo' (recipes/grpo.yaml), the supported RL path"
        )
    if stage not in STAGES:
        raise RecipeError(f"{path}: `stage` must be one of {', '.join(STAGES)} (got {stage!r})")
    defaults = stage_defaults(stage)
    if "gradient_checkpointing" in recipe:  # the deprecated alias only applies when the new name is unset
        defaults.pop("activation_checkpointing")
    if recipe.get("lr_scheduler_type", defaults["lr_scheduler_type"]) != defaults["lr_scheduler_type"]:
        defaults.pop("lr_scheduler_kwargs")  # min_lr_rate belongs to MiniMind's schedule only
    if stage == "grpo" and recipe.get("loss_type", "cispo") != "cispo":
        defaults.pop("epsilon_high")  # 5.0 bounds CISPO's weights; grpo / dapo clip the ratio at 1 + epsilon
    merged = {**defaults, **recipe}
    model_args, data_args = own_arguments(merged)
    if check_paths:
        _raise_all(path_problems(stage, model_args, data_args))
    merged = {**device_defaults(), **merged}
    types = (*ARGUMENT_GROUPS, training_args_class(stage))
    model_args, data_args, adapter_args, distill_args, vision_args, rl_args, training_args = split_recipe(merged, types)
    if stage == "lora" and not adapter_args.use_lora:
        raise RecipeError("stage 'lora' with use_lora=false: use stage 'sft' for full fine-tuning")
    return StageInputs(stage, model_args, data_args, adapter_args, distill_args, training_args, vision_args, rl_args)


def own_arguments(recipe: dict):
    """Our argument groups' values checked before torch / transformers are imported; returns
    the model and data arguments."""
    own = {f.name for group in ARGUMENT_GROUPS for f in fields(group) if f.init}
    model_args, data_args, *_ = split_recipe({k: v for k, v in recipe.items() if k in own}, ARGUMENT_GROUPS)
    return model_args, data_args


def path_problems(stage: str, model_args, data_args) -> list[str]:
    """Missing local data files and starting folder (no torch needed)."""
    problems = []
    for check in (_check_model_source, _check_data_files):
        try:
            check(stage, model_args, data_args)
        except (RecipeError, DataError) as error:
            problems.append(str(error))
    return problems


def validate(inputs) -> None:
    """Checks that need no data or model: fail before anything heavy is built, with every
    problem found listed at once."""
    stage_check = getattr(stage_module(inputs.stage), "check", None)
    problems = path_problems(inputs.stage, inputs.model_args, inputs.data_args)
    for check in (_check_flags, _check_attention, _check_model_config, stage_check):
        if check is None:
            continue
        try:
            check(inputs)
        except (RecipeError, DataError) as error:
            problems.append(str(error))
    _raise_all(problems)


def _raise_all(problems: list[str]) -> None:
    if len(problems) == 1:
        raise RecipeError(problems[0])
    if problems:
        raise RecipeError(f"{len(problems)} problems in the recipe:\n- " + "\n- ".join(problems))


def _check_flags(inputs) -> None:
    check_adapter_flags(inputs.adapter_args, allow_frozen_llm=inputs.stage in VISION_STAGES)
    if inputs.data_args.streaming:
        if inputs.stage not in ("pretrain", "sft", "lora", "distill"):
            raise RecipeError(
                f"streaming: true is for text stages (pretrain, sft, lora, distill), not {inputs.stage!r}"
            )
        if inputs.training_args.max_steps <= 0:
            raise RecipeError("streaming: true needs max_steps (a stream has no length to count epochs by)")
    if inputs.data_args.replay_ratio > 0:
        if inputs.stage not in ("sft", "lora", "distill"):
            raise RecipeError(f"replay_files / replay_ratio are for sft, lora and distill, not {inputs.stage!r}")
        if inputs.data_args.streaming:
            raise RecipeError("replay needs a materialised data set: set streaming: false")


def _check_attention(inputs) -> None:
    """Kernels that cannot train here fail now, not with a traceback in the first step."""
    import importlib.util

    import torch

    kernel = inputs.model_args.attn_implementation
    on_cpu = not torch.cuda.is_available() or inputs.training_args.use_cpu
    fallback = "use document_sdpa (packed rows) or sdpa"
    if kernel in ("flash_attention_2", "flash_attention_3"):
        package = "flash_attn" if kernel == "flash_attention_2" else "flash_attn_interface"
        if on_cpu or importlib.util.find_spec(package) is None:
            raise RecipeError(
                f"attn_implementation {kernel} needs a CUDA GPU and the {package} package "
                f"(pip install flash-attn); {fallback}"
            )
    if kernel == "flex_attention" and on_cpu:
        raise RecipeError(f"attn_implementation flex_attention cannot train on the CPU (no backward pass); {fallback}")


def _check_model_source(stage, model_args, data_args) -> None:
    if stage != "pretrain" or model_args.model_name_or_path:
        require_model_path(model_args, stage)


def _check_model_config(inputs) -> None:
    """A fresh model's preset + model_config build a valid config (known keys, sizes that divide)."""
    import difflib

    from ..models.configuration_minimind import config_keys
    from ..presets import preset_config
    from ..utils import DTYPES

    model_args = inputs.model_args
    if inputs.stage != "pretrain" or model_args.model_name_or_path:
        return
    known = config_keys()
    unknown = sorted(set(model_args.model_config) - known)
    if unknown:
        hints = [
            key
            + (f" (did you mean {', '.join(close)}?)" if (close := difflib.get_close_matches(key, known, n=2)) else "")
            for key in unknown
        ]
        raise RecipeError(f"model_config: unknown key(s) {'; '.join(hints)}")
    for key in ("dtype", "torch_dtype"):
        value = model_args.model_config.get(key)
        if value is not None and value not in DTYPES:
            raise RecipeError(f"model_config: {key} {value!r} is not one of {', '.join(DTYPES)}")
    try:
        preset_config(model_args.preset or "tiny", **model_args.model_config)
    except (ValueError, TypeError) as error:
        raise RecipeError(f"model_config / preset: {error}") from None


def _check_data_files(stage, model_args, data_args) -> None:
    """Every local data file, folder or glob the recipe names exists (hub ids are opened later)."""

    missing = []
    for key in ("train_files", "eval_files", "replay_files"):
        for entry in getattr(data_args, key):
            path = entry.get("path") if isinstance(entry, dict) else entry
            if not isinstance(path, str) or path.startswith(EMBEDDED_PREFIX) or "$" in path:
                continue  # built-in sets and $VARS are resolved (and checked) when the data is read
            try:
                local_files(DataSource(path))
            except ValueError as error:
                missing.append(f"{key}: {error}")
    if missing:
        raise RecipeError("\n  ".join(missing))
