"""Pieces every stage shares: tokenizer, starting model, data, checkpoints, final folder."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from ..data.sources import DataSource, ValidationReport, load_records
from ..utils import RUN_INFO_FILE, set_generation_defaults  # noqa: F401  (stages import it from here)
from .args import DataArguments, ModelArguments, RecipeError

EMBEDDED_PREFIX = "embedded:"


def cache_home() -> Path:
    return Path(os.environ.get("MINIMIND_HF_HOME", Path.home() / ".cache" / "minimind_hf"))


# ----------------------------------------------------------------------------- data


def resolve_sources(entries: list, seed: int) -> list:
    """`embedded:NAME` -> the built-in data file (written on first use); `$VARS` and `~` expanded."""
    if isinstance(entries, (str, dict)):  # one source, not a sequence of characters / keys
        entries = [entries]
    resolved = []
    for entry in entries:
        path = entry.get("path") if isinstance(entry, dict) else entry
        if isinstance(path, str) and not path.startswith(EMBEDDED_PREFIX):
            # Recipes name data under a user-set folder: $MINIMIND_DATA/sft_t2t_mini.jsonl
            expanded = os.path.expanduser(os.path.expandvars(path))
            if "$" in expanded:
                raise RecipeError(f"data path {path}: environment variable not set")
            entry = {**entry, "path": expanded} if isinstance(entry, dict) else expanded
            path = expanded
        if isinstance(path, str) and path.startswith(EMBEDDED_PREFIX):
            path = embedded_path(path, seed)
            entry = {**entry, "path": path} if isinstance(entry, dict) else path
        resolved.append(DataSource(**entry) if isinstance(entry, dict) else entry)
    return resolved


def embedded_path(name: str, seed: int) -> str:
    """`embedded:NAME` -> the file (or folder) of a built-in data set, written on first use."""
    import importlib

    key = name[len(EMBEDDED_PREFIX):] if name.startswith(EMBEDDED_PREFIX) else name
    folder = cache_home() / "embedded" / f"seed{seed}"
    available = []
    # Text sets first; the image sets (drawn with Pillow) only when asked for.
    for module, writer in (("synthetic", "write_embedded_datasets"), ("synthetic_rl", "write_embedded_rl_datasets"),
                           ("synthetic_tools", "write_embedded_tool_datasets"),
                           ("synthetic_vision", "write_embedded_vision_datasets")):
        module = importlib.import_module(f"..data.{module}", __package__)
        if key in module.EMBEDDED_NAMES:
            return str(getattr(module, writer)(folder, seed=seed)[key])
        available += module.EMBEDDED_NAMES
    raise RecipeError(f"unknown embedded data set {name!r}; available: {', '.join(sorted(available))}")


def load_split(data_args: DataArguments, files: list, kind: str, seed: int):
    if not files:
        return None, ValidationReport(kind)
    if data_args.streaming:
        dataset, report = stream_split(data_args, files, kind, seed)
        _require_a_record(resolve_sources(files, seed), kind, data_args.skip_invalid)
        return dataset, report
    dataset, report = load_records(resolve_sources(files, seed), kind, skip_invalid=data_args.skip_invalid, seed=seed)
    if len(dataset) == 0:
        raise report.nothing_usable([str(getattr(s, "path", s)) for s in resolve_sources(files, seed)])
    return dataset, report


def _require_a_record(sources: list, kind: str, skip_invalid: bool) -> None:
    """A stream must yield at least one record: read until the first one (cheap), else say why."""
    from ..data.sources import iter_records

    probe = ValidationReport(kind)
    if next(iter_records(sources, kind, skip_invalid=skip_invalid, report=probe), None) is None:
        raise probe.nothing_usable([str(getattr(s, "path", s)) for s in sources])


def stream_split(data_args: DataArguments, files: list, kind: str, seed: int):
    """Records read, validated and normalised on the fly (corpora larger than the disk
    budget for an Arrow cache). The report fills as training reads; mixture weights do not
    apply (there is no length to sample from)."""
    import datasets

    report = ValidationReport(kind)
    sources = resolve_sources(files, seed)
    if any(getattr(s, "weight", 1.0) != 1.0 for s in sources):
        raise RecipeError("mixture weights need a materialised data set: remove `weight` or set streaming: false")
    from ..data.sources import features

    dataset = datasets.IterableDataset.from_generator(
        _stream,
        features=features(kind),  # known columns, so builders can drop them
        gen_kwargs={"sources": sources, "kind": kind, "skip_invalid": data_args.skip_invalid, "report": report},
    )
    return dataset, report


def _stream(sources, kind, skip_invalid, report):
    from ..data.sources import iter_records

    # Trainer restarts the stream for every pass over it; the report describes the data once,
    # so only the first pass counts (later passes would double every read / skip count).
    counting = report if not report.files else ValidationReport(kind)
    yield from iter_records(sources, kind, skip_invalid=skip_invalid, report=counting)


# ----------------------------------------------------------------------------- model


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
    if name is None and model_args.model_name_or_path and (Path(model_args.model_name_or_path) / "tokenizer_config.json").exists():
        name = model_args.model_name_or_path
    return load_tokenizer(name)


def build_model(model_args: ModelArguments, tokenizer, stage: str):
    """A fresh model from a preset (pretrain without a start), else the named folder."""
    from .. import MiniMindForCausalLM, preset_config
    from ..utils import load_pretrained

    attn = {"attn_implementation": model_args.attn_implementation} if model_args.attn_implementation else {}
    if stage == "pretrain" and not model_args.model_name_or_path:
        overrides = dict(model_args.model_config)
        overrides.setdefault("pad_token_id", tokenizer.pad_token_id)
        overrides.setdefault("bos_token_id", tokenizer.bos_token_id)
        overrides.setdefault("eos_token_id", tokenizer.eos_token_id)
        config = preset_config(model_args.preset or "tiny", **overrides)
        if len(tokenizer) > config.vocab_size:
            raise RecipeError(f"tokenizer has {len(tokenizer)} tokens but the model's vocab_size is {config.vocab_size}")
        model = MiniMindForCausalLM(config)
        if model_args.attn_implementation:
            model.set_attn_implementation(model_args.attn_implementation)
        return model
    if model_args.preset or model_args.model_config:
        raise RecipeError("preset / model_config only apply to a fresh pretraining model; remove them or model_name_or_path")
    path = require_model_path(model_args, stage)
    return load_pretrained(path, dtype=torch.float32, **attn)


# ----------------------------------------------------------------------------- checkpoints


def resolve_resume(value: str | None, output_dir: str) -> str | None:
    """`auto` -> the newest complete checkpoint in output_dir (or None to start fresh)."""
    if not value:
        return None
    if value != "auto":
        if not Path(value).is_dir():
            raise RecipeError(f"resume_from_checkpoint {value} is not a folder")
        return value
    checkpoints = sorted(
        ((int(path.name.split("-")[-1]), path) for path in Path(output_dir).glob("checkpoint-*")
         if path.name.split("-")[-1].isdigit()),
        reverse=True,
    )
    for _, path in checkpoints:
        problem = _incomplete(path)
        if problem is None:
            return str(path)
        print(f"resume: skipping {path} ({problem}); trying the previous checkpoint", flush=True)
    return None


def _incomplete(checkpoint: Path) -> str | None:
    """Why a checkpoint cannot be resumed from (a run killed while saving), or None."""
    state = checkpoint / "trainer_state.json"
    if not state.is_file():  # written last when saving: its absence means the save did not finish
        return "no trainer_state.json"
    try:
        json.loads(state.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return "trainer_state.json is half-written"
    weights = [f for f in checkpoint.iterdir() if f.suffix in (".safetensors", ".bin", ".pt") or f.name == "pytorch_model"]
    if not weights and not any(checkpoint.glob("global_step*")):  # DeepSpeed keeps its own folder
        return "no weights"
    from safetensors import safe_open

    for file in checkpoint.glob("*.safetensors"):
        try:
            with safe_open(str(file), "pt") as handle:
                handle.keys()
        except Exception:  # SafetensorError: truncated
            return f"{file.name} is truncated"
    return None


# ----------------------------------------------------------------------------- final folder


def write_run_info(trainer, output_dir: str, stage: str, report: ValidationReport | None,
                   mean_train_loss: float | None = None) -> dict:
    """A small record of how the run went: tests and users read world size and data counts here."""
    args = trainer.args
    info = {
        "stage": stage,
        "world_size": args.world_size,
        "distributed_type": str(trainer.accelerator.distributed_type),
        "deepspeed": bool(trainer.is_deepspeed_enabled),
        "global_step": trainer.state.global_step,
        "train_loss_first": next((h["loss"] for h in trainer.state.log_history if "loss" in h), None),
        "train_loss_last": next((h["loss"] for h in reversed(trainer.state.log_history) if "loss" in h), None),
        "train_loss_mean": mean_train_loss,
        "eval_loss": next((h["eval_loss"] for h in reversed(trainer.state.log_history) if "eval_loss" in h), None),
        # GRPO counts its prompt + completion tokens itself; DPO / reward trainers do not count.
        "tokens_seen": trainer.state.num_input_tokens_seen or next(
            (h["num_tokens"] for h in reversed(trainer.state.log_history) if "num_tokens" in h), None),
        "train_runtime": next((h["train_runtime"] for h in reversed(trainer.state.log_history)
                               if "train_runtime" in h), None),
    }
    if report is not None:
        info["data"] = report.to_dict()
    if trainer.is_world_process_zero():
        Path(output_dir).mkdir(parents=True, exist_ok=True)
        Path(output_dir, RUN_INFO_FILE).write_text(json.dumps(info, indent=2))
    return info


# What to run after each stage (the shipped chain); a custom output folder is passed on.
NEXT_STEP = {
    "pretrain": ("recipe", "recipes/sft.yaml"),
    "sft": ("recipe", "recipes/dpo.yaml"),
    "dpo": ("command", "python scripts/chat.py {out}"),
    "lora": ("command", "python scripts/chat.py {out}/merged"),
    "distill": ("command", "python scripts/eval.py {out} --task ppl"),
    "reward": ("command", "accelerate launch scripts/train.py recipes/grpo.yaml --reward_funcs '[exact_answer, reward_model]' "
                          "--reward_weights '[1.0, 0.1]' --reward_model_path {out}"),
    "grpo": ("command", "python scripts/eval.py {out} --task arithmetic --thinking"),
    "agent": ("command", "python scripts/eval.py {out} --task toolcall"),  # grpo with tools
    "vlm_pretrain": ("recipe", "recipes/vlm_sft.yaml"),
    "vlm_sft": ("command", "python scripts/chat.py {out} --image PICTURE.png"),
}


def closing_lines(info: dict, output_dir: str, stage: str) -> list[str]:
    """Where the model is, how good it got, what to run next."""
    import math

    lines = [f"saved:  {output_dir} (model, tokenizer, run_info.json, training_curves.png)"]
    first, last, evaluated = info.get("train_loss_first"), info.get("train_loss_last"), info.get("eval_loss")
    if first is not None and last is not None:
        result = f"train loss {first:.4g} -> {last:.4g}"
    elif info.get("train_loss_mean") is not None:  # a run shorter than logging_steps
        result = f"train loss {info['train_loss_mean']:.4g} (mean)"
    else:
        result = "no train loss"
    if evaluated is not None:
        result += f"; held-out eval loss {evaluated:.4g} (perplexity {math.exp(min(evaluated, 50)):.4g})"
    lines.append(f"result: {result} after {info.get('global_step')} steps")
    kind, target = NEXT_STEP.get(stage, ("command", "python scripts/export.py {out} exports/NAME"))
    if kind == "recipe":
        import yaml

        recipe = Path(__file__).resolve().parents[2] / target  # a source checkout ships the recipes
        expected = (yaml.safe_load(recipe.read_text()) if recipe.is_file() else None) or {}
        command = f"accelerate launch scripts/train.py {target}"
        if Path(expected.get("model_name_or_path", "")) != Path(output_dir):
            command += f" --model_name_or_path {output_dir}"
    else:
        command = target.format(out=output_dir)
    lines.append(f"next:   {command}")
    return lines
