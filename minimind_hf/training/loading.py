"""What a stage starts from: the tokenizer and the model (a fresh preset or a trained folder)."""

from __future__ import annotations

from pathlib import Path

from .args import ModelArguments, RecipeError


def require_model_path(model_args: ModelArguments, stage: str) -> str:
    path = model_args.model_name_or_path
    if not path:
        raise RecipeError(f"stage {stage!r} needs model_name_or_path (the model to start from)")
    # A missing folder that a previous recipe should have produced (or an explicit relative /
    # absolute path) is a local mistake, not a hub id to look up.
    if not Path(path).exists() and (model_args.previous_recipe or path.startswith((".", "/", "~"))):
        hint = (
            f": run `accelerate launch scripts/train.py {model_args.previous_recipe}` first"
            if model_args.previous_recipe
            else ""
        )
        raise RecipeError(f"starting model folder {path} not found{hint}")
    return path


def load_tokenizer_for(model_args: ModelArguments):
    from ..tokenizer import load_tokenizer

    name = model_args.tokenizer_name_or_path
    if (
        name is None
        and model_args.model_name_or_path
        and (Path(model_args.model_name_or_path) / "tokenizer_config.json").exists()
    ):
        name = model_args.model_name_or_path
    return load_tokenizer(name)


def attention_kwargs(model_args: ModelArguments) -> dict:
    from . import attention  # noqa: F401  (registers document_sdpa with transformers)

    return {"attn_implementation": model_args.attn_implementation} if model_args.attn_implementation else {}


def build_model(model_args: ModelArguments, tokenizer, stage: str):
    """A fresh model from a preset (pretrain without a start), else the named folder."""
    from ..models import MiniMindForCausalLM
    from ..presets import preset_config

    if stage == "pretrain" and not model_args.model_name_or_path:
        overrides = dict(model_args.model_config)
        overrides.setdefault("pad_token_id", tokenizer.pad_token_id)
        overrides.setdefault("bos_token_id", tokenizer.bos_token_id)
        overrides.setdefault("eos_token_id", tokenizer.eos_token_id)
        config = preset_config(model_args.preset or "tiny", **overrides)
        if len(tokenizer) > config.vocab_size:
            raise RecipeError(
                f"tokenizer has {len(tokenizer)} tokens but the model's vocab_size is {config.vocab_size}"
            )
        model = MiniMindForCausalLM(config)
        if model_args.attn_implementation:
            model.set_attn_implementation(**attention_kwargs(model_args))
        return model
    import torch

    from ..utils import load_pretrained

    return load_pretrained(starting_folder(model_args, stage), dtype=torch.float32, **attention_kwargs(model_args))


def starting_folder(model_args: ModelArguments, stage: str) -> str:
    """The trained folder a stage starts from (preset / model_config would be silently ignored)."""
    if model_args.preset or model_args.model_config:
        raise RecipeError(
            f"preset / model_config only apply to a fresh pretraining model; stage {stage!r} starts "
            "from model_name_or_path: remove them"
        )
    return require_model_path(model_args, stage)
