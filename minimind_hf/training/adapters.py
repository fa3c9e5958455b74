"""What a stage trains: LoRA adapters (PEFT), MiniCPM-V style freezing flags, merging back."""

from __future__ import annotations

from .args import AdapterArguments, RecipeError

# Every attention and MLP projection of the decoder layers (module names as PEFT sees them).
DEFAULT_LORA_TARGETS = (
    r"model\.layers\.\d+\.(self_attn\.(q_proj|k_proj|v_proj|o_proj)|mlp\.(gate_proj|up_proj|down_proj))"
)
DEFAULT_VLM_LORA_TARGETS = r"language_model\." + DEFAULT_LORA_TARGETS  # the same layers inside a MiniMind-V


def lora_config(
    adapter_args: AdapterArguments,
    default_targets: str = DEFAULT_LORA_TARGETS,
    modules_to_save=None,
    task_type: str = "CAUSAL_LM",
):
    from peft import LoraConfig

    return LoraConfig(
        r=adapter_args.lora_r,
        lora_alpha=adapter_args.lora_alpha,
        lora_dropout=adapter_args.lora_dropout,
        target_modules=adapter_args.lora_target_modules or default_targets,
        modules_to_save=modules_to_save if modules_to_save is not None else adapter_args.modules_to_save,
        layers_to_transform=adapter_args.layers_to_transform,
        layers_pattern="layers" if adapter_args.layers_to_transform is not None else None,
        task_type=task_type,
    )


def peft_config_for(adapter_args: AdapterArguments):
    """The LoRA config for TRL trainers (they wrap the model themselves), or None without LoRA."""
    return lora_config(adapter_args) if adapter_args.use_lora else None


def check_adapter_flags(adapter_args: AdapterArguments, allow_frozen_llm: bool = False) -> None:
    if adapter_args.use_lora and adapter_args.tune_llm:
        raise RecipeError(
            "use_lora with tune_llm=true: the LLM cannot be fully tuned and LoRA-adapted at once (set tune_llm: false)"
        )
    if not adapter_args.use_lora and not adapter_args.tune_llm and not allow_frozen_llm:
        raise RecipeError("tune_llm=false without use_lora leaves nothing to train")


def apply_adapters(model, adapter_args: AdapterArguments):
    if not adapter_args.use_lora:
        return model
    from peft import get_peft_model

    return get_peft_model(model, lora_config(adapter_args))


def set_vlm_trainable(model, inputs):
    """MiniMind-V: freeze everything, then open exactly what the flags ask for; returns the model to train."""
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
    from ..utils import print_main  # utils imports torch: recipe checks use this module before that

    print_main(f"trainable parameters: {trainable:,} of {total:,} ({100 * trainable / total:.2f}%)")
    return model


def save_merged(model, tokenizer, output_dir: str, processor=None) -> str:
    """LoRA folded into the base weights: a plain full model folder under output_dir/merged."""
    from ..utils import set_generation_defaults

    merged_dir = f"{output_dir}/merged"
    merged = model.merge_and_unload()
    set_generation_defaults(merged, tokenizer)
    merged.save_pretrained(merged_dir)
    (processor or tokenizer).save_pretrained(merged_dir)
    return merged_dir
