"""Recipe arguments: a YAML file (plus `--key value` overrides) fills these dataclasses and
the stage's own TrainingArguments / DPOConfig, HfArgumentParser style."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field, fields
from pathlib import Path

import yaml

STAGES = ("pretrain", "sft", "lora", "dpo", "distill", "vlm_pretrain", "vlm_sft")
VISION_STAGES = ("vlm_pretrain", "vlm_sft")


@dataclass
class ModelArguments:
    model_name_or_path: str | None = field(
        default=None, metadata={"help": "Starting model folder; empty for a fresh model from `preset`."}
    )
    preset: str | None = field(default=None, metadata={"help": "MiniMind preset for a fresh model (pretrain)."})
    model_config: dict = field(default_factory=dict, metadata={"help": "Overrides of the preset's config fields."})
    tokenizer_name_or_path: str | None = field(
        default=None, metadata={"help": "Tokenizer folder; default: the starting model's, else the shipped one."}
    )
    attn_implementation: str | None = field(default=None, metadata={"help": "eager, sdpa or flash_attention_2."})
    previous_recipe: str | None = field(
        default=None, metadata={"help": "Recipe that produces model_name_or_path (named in the error if missing)."}
    )


@dataclass
class DataArguments:
    train_files: list = field(
        default_factory=list,
        metadata={"help": "Files / globs / hub ids, or {path, weight} mappings; `embedded:NAME` for built-in data."},
    )
    eval_files: list = field(default_factory=list)
    max_length: int = 512
    packing: bool = False
    streaming: bool = field(
        default=False, metadata={"help": "Read, tokenise and pack on the fly (no Arrow cache); needs max_steps."}
    )
    skip_invalid: bool = False
    num_proc: int | None = None
    last_turn_only: bool = False
    system_prompt_ratio: float = 0.0
    empty_think_keep_ratio: float = 1.0
    data_seed_offset: int = 0


@dataclass
class AdapterArguments:
    """LoRA (PEFT) and MiniCPM-V style freezing flags."""

    use_lora: bool = False
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lora_target_modules: str | list | None = field(
        default=None, metadata={"help": "A regex over module names, or a list of module name suffixes."}
    )
    modules_to_save: list | None = None
    layers_to_transform: list | None = None
    merge_lora: bool = False
    tune_llm: bool = True
    tune_vision: bool = False


@dataclass
class DistillArguments:
    teacher_model_name_or_path: str | None = None
    distill_alpha: float = 0.5  # weight of the hard-label CE; (1 - alpha) on the KL to the teacher
    distill_temperature: float = 1.0


@dataclass
class VisionArguments:
    """MiniMind-V: the tower, the projector and where images live."""

    vision_tower_name_or_path: str | None = field(
        default=None, metadata={"help": "Pretrained vision model (CLIP, SigLIP ...); empty: vision_config."}
    )
    vision_config: dict = field(default_factory=dict, metadata={"help": "A tower config (random init) when no path."})
    projector_type: str = "mlp"
    token_reduction: str = "none"
    reduction_factor: int = 2
    vision_feature_layer: int = -1
    images_root: str | None = field(default=None, metadata={"help": "Folder that relative image paths start from."})
    train_llm_last_n_layers: int = field(default=0, metadata={"help": "vlm_pretrain: also train the last N LLM layers."})
    tune_projector: bool = True


class RecipeError(ValueError):
    """A recipe that cannot run: unknown keys, a missing predecessor, contradictory flags."""


def read_recipe(path: str | Path, overrides: list[str] | None = None) -> dict:
    """YAML recipe + `--key value` / `--key=value` overrides (values parsed as YAML)."""
    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"recipe {path} not found")
    recipe = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(recipe, dict):
        raise RecipeError(f"{path}: a recipe is a mapping of keys to values")
    recipe.update(parse_overrides(overrides or []))
    return recipe


def parse_overrides(argv: list[str]) -> dict:
    out, i = {}, 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("--"):
            raise RecipeError(f"expected --key value, got {arg!r}")
        key, eq, value = arg[2:].partition("=")
        if not eq:
            if i + 1 >= len(argv) or argv[i + 1].startswith("--"):
                value = "true"  # a bare flag
            else:
                i += 1
                value = argv[i]
        out[key.replace("-", "_")] = parse_value(value)
        i += 1
    return out


def parse_value(text: str):
    """YAML typing, plus floats YAML 1.1 leaves as strings (`1e-4`)."""
    value = yaml.safe_load(text)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    return value


def split_recipe(recipe: dict, dataclass_types: tuple) -> tuple:
    """Fill `dataclass_types` from the recipe; unknown keys are an error listing the valid ones.

    Like HfArgumentParser.parse_dict, each dataclass takes the keys it declares.
    """
    valid = {f.name for dtype in dataclass_types for f in fields(dtype) if f.init}
    unknown = sorted(set(recipe) - valid - {"stage"})
    if unknown:
        hints = []
        for key in unknown:
            close = difflib.get_close_matches(key, valid, n=3)
            hints.append(f"{key}" + (f" (did you mean {', '.join(close)}?)" if close else ""))
        raise RecipeError(
            f"unknown recipe key(s): {'; '.join(hints)}.\nValid keys: {', '.join(sorted(valid))}"
        )
    out = []
    for dtype in dataclass_types:
        names = {f.name for f in fields(dtype) if f.init}
        out.append(dtype(**{k: v for k, v in recipe.items() if k in names}))
    return tuple(out)
