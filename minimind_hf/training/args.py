"""Recipe arguments: a YAML file (plus `--key value` overrides) fills these dataclasses and
the stage's own TrainingArguments / DPOConfig, HfArgumentParser style."""

from __future__ import annotations

import difflib
import enum
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Literal

import yaml


@dataclass
class ModelArguments:
    model_name_or_path: str | None = field(
        default=None, metadata={"help": "Starting model folder; empty for a fresh model from `preset`."}
    )
    preset: str | None = field(
        default=None,
        metadata={
            "help": "MiniMind preset for a fresh model (pretrain): minimind2-small, minimind2(-moe), minimind-3(-moe), "
            "tiny (default)."
        },
    )
    model_config: dict = field(
        default_factory=dict,
        metadata={
            "help": "Overrides of the preset's config fields (pretrain from scratch; e.g. num_hidden_layers: 2)."
        },
    )
    tokenizer_name_or_path: str | None = field(
        default=None, metadata={"help": "Tokenizer folder; default: the starting model's, else the shipped one."}
    )
    attn_implementation: (
        Literal["eager", "sdpa", "document_sdpa", "flash_attention_2", "flash_attention_3", "flex_attention"] | None
    ) = field(
        default=None,
        metadata={
            "help": "Attention kernel; default: document_sdpa with packing (SDPA per packed document, skipping "
            "cross-document blocks), else the model's own (not used by vlm_*)."
        },
    )
    previous_recipe: str | None = field(
        default=None, metadata={"help": "Recipe that produces model_name_or_path (named in the error if missing)."}
    )


@dataclass
class DataArguments:
    train_files: list = field(
        default_factory=list,
        metadata={"help": "Files / globs / hub ids, or {path, weight} mappings; `embedded:NAME` for built-in data."},
    )
    eval_files: list = field(
        default_factory=list,
        metadata={"help": "Held-out data (same forms as train_files): eval loss and the stage's metrics; empty: none."},
    )
    max_length: int = field(
        default=512,
        metadata={
            "help": "Max tokens per example (longer: truncated) or packed row; dpo / reward: TRL's max_length too; "
            "grpo: unused."
        },
    )
    packing: bool = field(
        default=False,
        metadata={
            "help": "pretrain / sft / lora / distill: pack examples into max_length rows (pretrain splits long docs)."
        },
    )
    streaming: bool = field(
        default=False,
        metadata={
            "help": "Read, tokenise and pack on the fly (no Arrow cache); needs max_steps; text stages only, "
            "no mixture weights."
        },
    )
    skip_invalid: bool = field(
        default=False,
        metadata={
            "help": "Skip bad records / unreadable images (counted per reason in the report) instead of failing."
        },
    )
    num_proc: int | None = field(
        default=None, metadata={"help": "Processes for tokenising (datasets.map num_proc); default: in-process."}
    )
    last_turn_only: bool = field(
        default=False,
        metadata={"help": "Chat stages (sft, lora, distill, vlm_*): supervise only the last assistant turn, not all."},
    )
    system_prompt_ratio: float = field(
        default=0.0,
        metadata={"help": "Chat stages: share (0-1) of system-less conversations given a random system prompt."},
    )
    empty_think_keep_ratio: float = field(
        default=1.0,
        metadata={
            "help": "Chat stages: share (0-1) of examples keeping the empty think block before replies without "
            "reasoning; 1.0: all."
        },
    )
    data_seed_offset: int = field(
        default=0,
        metadata={
            "help": "Data seed = seed + this: embedded data, mixture sampling, chat augmentation, grpo thinking split."
        },
    )
    replay_files: list = field(
        default_factory=list,
        metadata={
            "help": "sft / lora / distill: pretraining text (same forms as train_files) replayed among the chats "
            "so fine-tuning does not forget language; see replay_ratio."
        },
    )
    replay_ratio: float = field(
        default=0.0,
        metadata={"help": "Share (0-1) of the training rows that are replayed documents (loss on every token)."},
    )

    def __post_init__(self):
        if not 0.0 <= self.replay_ratio < 1.0:
            raise ValueError(f"replay_ratio must be at least 0 and below 1, got {self.replay_ratio}")
        if self.replay_ratio > 0 and not self.replay_files:
            raise ValueError("replay_ratio > 0 needs replay_files (the pretraining text to replay)")


@dataclass
class AdapterArguments:
    """LoRA (PEFT) and MiniCPM-V style freezing flags."""

    use_lora: bool = field(
        default=False,
        metadata={"help": "Train LoRA adapters (PEFT) instead of the full LLM; needs tune_llm: false; stage lora: on."},
    )
    lora_r: int = field(default=8, metadata={"help": "LoRA rank r (the adapters' inner size)."})
    lora_alpha: int = field(
        default=16, metadata={"help": "LoRA scaling: adapter updates are scaled by lora_alpha / lora_r."}
    )
    lora_dropout: float = field(default=0.05, metadata={"help": "Dropout (0-1) on the input of the LoRA adapters."})
    lora_target_modules: str | list | None = field(
        default=None,
        metadata={
            "help": "A regex over module names, or a list of module name suffixes; default: every attention and "
            "MLP projection."
        },
    )
    modules_to_save: list | None = field(
        default=None,
        metadata={
            "help": "LoRA: modules trained in full and saved with the adapters (reward: default [score]; vlm_*: "
            "+ projector)."
        },
    )
    layers_to_transform: list | None = field(
        default=None, metadata={"help": "LoRA: adapt only these decoder layer indices (e.g. [6, 7]); default: all."}
    )
    merge_lora: bool = field(
        default=False,
        metadata={"help": "LoRA: also save base + adapters merged as a full model in output_dir/merged."},
    )
    tune_llm: bool = field(
        default=True,
        metadata={
            "help": "Train the full LLM; false with use_lora (vlm_*: false freezes it); default false in lora, "
            "vlm_pretrain."
        },
    )
    tune_vision: bool = field(
        default=False, metadata={"help": "vlm_*: also train the vision tower (frozen otherwise)."}
    )


@dataclass
class DistillArguments:
    teacher_model_name_or_path: str | None = field(
        default=None,
        metadata={"help": "distill: the teacher model folder / hub id (vocabulary at least the tokenizer's size)."},
    )
    distill_alpha: float = field(
        default=0.5,
        metadata={"help": "distill: loss = alpha * CE (hard labels) + (1 - alpha) * T^2 * KL(teacher || student)."},
    )
    distill_temperature: float = field(
        default=1.0, metadata={"help": "distill: temperature T that softens teacher and student logits in the KL."}
    )


@dataclass
class RLArguments:
    """grpo: the rewards that score each rollout (summed with GRPOConfig's `reward_weights`).

    Each reward's settings follow its name; see minimind_hf/training/rewards.py."""

    reward_funcs: list = field(
        default_factory=lambda: ["exact_answer"],
        metadata={
            "help": "exact_answer, length_window, think_format, repetition, tool_format, tool_call_match, "
            "reward_model, module:function."
        },
    )
    answer_column: str = field(
        default="answer",
        metadata={"help": "The data field with the reference answer (exact_answer, held-out accuracy)."},
    )
    length_window: list = field(
        default_factory=lambda: [20, 800],
        metadata={"help": "length_window: [low, high] answer characters (inclusive) that earn +length_reward."},
    )
    length_reward: float = field(
        default=0.5, metadata={"help": "length_window: +this inside the window, -this outside (MiniMind: +-0.5)."}
    )
    think_reward: float = field(
        default=0.25,
        metadata={"help": "think_format: +this for one closed think block, -this for a broken one, 0 without tags."},
    )
    repetition_ngram: int = field(
        default=3, metadata={"help": "repetition: word n-gram size whose repeats in the answer are penalised."}
    )
    repetition_cap: float = field(
        default=0.5, metadata={"help": "repetition: the largest penalty, -min(cap, 2 * cap * repeated n-gram share)."}
    )
    reward_model_path: str | None = field(
        default=None, metadata={"help": "reward_model: a folder from stage 'reward' (or a hub id)."}
    )
    reward_clip: list = field(
        default_factory=lambda: [-3.0, 3.0], metadata={"help": "reward_model: [low, high] clip of its scores."}
    )
    thinking_ratio: float | None = field(
        default=None,
        metadata={
            "help": "Share (0-1) of prompts rolled out with thinking on, the rest off (seeded); "
            "default: as chat_template_kwargs says."
        },
    )
    eval_max_new_tokens: int | None = field(
        default=None,
        metadata={"help": "Held-out accuracy before / after: reply length (default max_completion_length)."},
    )
    tools: list = field(
        default_factory=list,
        metadata={
            "help": "Agentic RL: tools rollouts may call (builtin, a built-in tool's name, module:function); "
            "results masked from loss."
        },
    )


@dataclass
class VisionArguments:
    """MiniMind-V: the tower, the projector and where images live."""

    vision_tower_name_or_path: str | None = field(
        default=None,
        metadata={
            "help": "vlm_pretrain: pretrained vision model (CLIP, SigLIP ...) folder / hub id; empty: vision_config."
        },
    )
    vision_config: dict = field(
        default_factory=dict,
        metadata={"help": "vlm_pretrain without a tower path: tower config (random init); empty: a tiny CLIP ViT."},
    )
    projector_type: str = field(
        default="mlp", metadata={"help": "vlm_pretrain: projector into the LLM's embeddings: linear or mlp (LLaVA's)."}
    )
    token_reduction: str = field(
        default="none",
        metadata={"help": "vlm_pretrain: none, pixel_shuffle or avg_pool (reduction_factor^2 fewer image tokens)."},
    )
    reduction_factor: int = field(
        default=2,
        metadata={"help": "vlm_pretrain: side of the patch blocks token_reduction merges; must divide the patch grid."},
    )
    vision_feature_layer: int = field(
        default=-1, metadata={"help": "vlm_pretrain: the tower's hidden-state layer used as image features (-1: last)."}
    )
    images_root: str | None = field(
        default=None,
        metadata={"help": "vlm_*: folder that relative image paths start from (or embedded:NAME; ~, $VARS expand)."},
    )
    train_llm_last_n_layers: int = field(
        default=0, metadata={"help": "vlm_*: with tune_llm false, still train the last N LLM layers (0: none)."}
    )
    tune_projector: bool = field(
        default=True, metadata={"help": "vlm_*: train the projector (in full, also next to LoRA adapters)."}
    )


@dataclass
class StageInputs:
    """Everything a stage runner gets: the recipe split into its argument groups."""

    stage: str
    model_args: ModelArguments
    data_args: DataArguments
    adapter_args: AdapterArguments
    distill_args: DistillArguments
    training_args: typing.Any  # the stage's TrainingArguments / DPOConfig / RewardConfig / GRPOConfig
    vision_args: VisionArguments | None = None
    rl_args: RLArguments | None = None

    @property
    def data_seed(self) -> int:
        """The seed of data order, sampling and augmentation (the training seed plus an offset)."""
        return self.training_args.seed + self.data_args.data_seed_offset


class RecipeError(ValueError):
    """A recipe that cannot run: unknown keys, a missing predecessor, contradictory flags."""


def read_recipe(path: str | Path, overrides: list[str] | None = None) -> dict:
    """YAML recipe + `--key value` / `--key=value` overrides (values parsed as YAML)."""
    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"recipe {path} not found")
    try:
        recipe = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(error, "problem", None) or str(error)
        raise RecipeError(f"{where}: YAML syntax error: {problem}") from None
    except UnicodeDecodeError as error:
        raise RecipeError(f"{path}: not a UTF-8 text file ({error})") from None
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
        raise RecipeError(f"unknown recipe key(s): {'; '.join(hints)}.\nValid keys: {', '.join(sorted(valid))}")
    problems, typed = [], dict(recipe)
    for dtype in dataclass_types:
        hints = _type_hints(dtype)
        for f in fields(dtype):
            if f.init and f.name in recipe:
                try:
                    typed[f.name] = conform(recipe[f.name], hints.get(f.name, typing.Any))
                except TypeError as error:
                    problems.append(f"{f.name}: {error}")
    if problems:  # every wrong value at once, before anything is built
        raise RecipeError("invalid recipe value(s):\n  " + "\n  ".join(problems))
    out = []
    for dtype in dataclass_types:
        names = {f.name for f in fields(dtype) if f.init}
        try:
            out.append(dtype(**{k: v for k, v in typed.items() if k in names}))
        except (ValueError, TypeError) as error:  # the arguments' own checks (choices, combinations)
            raise RecipeError(f"invalid recipe: {error}") from None
    return tuple(out)


def _type_hints(dtype) -> dict:
    try:
        return typing.get_type_hints(dtype)
    except Exception:  # an annotation that does not resolve: check only what does
        return {}


def conform(value, hint):
    """`value` as the field type `hint` wants it, or TypeError saying what was expected.
    YAML already typed the value; this only widens where that is safe (int -> float, a
    single string -> a one-element list, a whole float -> int) and refuses the rest."""
    origin = typing.get_origin(hint)
    if hint is typing.Any or isinstance(hint, (str, typing.TypeVar)):
        return value
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        for option in options:  # a value that already has one of the types stays as it is
            if (
                isinstance(option, type)
                and isinstance(value, option)
                and not (option is int and isinstance(value, bool))
            ):
                return value
        for option in sorted(options, key=lambda o: o is str):  # then widen; str last: everything converts to it
            if option is type(None):
                continue
            try:
                return conform(value, option)
            except TypeError:
                pass
        raise TypeError(f"expected {_describe(hint)}, got {value!r}")
    if origin is typing.Literal:
        if value in typing.get_args(hint):
            return value
        raise TypeError(f"expected one of {', '.join(map(repr, typing.get_args(hint)))}, got {value!r}")
    base = origin or hint
    if base is bool:
        if isinstance(value, bool):
            return value
    elif base is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif base is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif base is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)  # `run_name: 2024`
    elif base in (list, tuple, typing.Sequence):
        if isinstance(value, (str, dict)):
            value = [value]  # `--train_files data.jsonl` means a one-element list, not its characters
        if isinstance(value, (list, tuple)):
            (item,) = typing.get_args(hint) or (typing.Any,)
            return [conform(v, item) for v in value]
    elif base is dict:
        if isinstance(value, dict):
            return value
    elif isinstance(base, type) and issubclass(base, enum.Enum):
        choices = [member.value for member in base]
        if isinstance(value, base) or value in choices:
            return value
        raise TypeError(f"expected one of {', '.join(map(str, choices))}, got {value!r}")
    else:
        return value  # other classes: the arguments' own checks decide
    raise TypeError(f"expected {_describe(hint)}, got {value!r}")


def _describe(hint) -> str:
    options = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    names = [
        f"one of {', '.join(map(repr, typing.get_args(o)))}"
        if typing.get_origin(o) is typing.Literal
        else getattr(o, "__name__", str(o))
        for o in options
        if o is not type(None)
    ]
    return " or ".join(names) + (" (or null)" if type(None) in options else "")
