"""What to export: a MiniMind / MiniMind-V folder loaded in float32, or a LoRA adapter merged
into its base, with the folders its tokenizer and run records are looked up in."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoConfig

from ..models import MiniMindForCausalLM, MiniMindVForCausalLM
from ..utils import load_pretrained
from .formats import ExportError
from .remote_code import REMOTE_CODE_SPECS, REWARD_MODEL_CLASS


@dataclass
class Source:
    """A MiniMind ready to export, and the folders it came from (most specific first:
    a LoRA adapter folder, then its base) where tokenizer and run records are looked up."""

    model: MiniMindForCausalLM | MiniMindVForCausalLM
    folders: list[Path]


def load_source(src: str | Path, merge_lora: bool = False, base: str | Path | None = None) -> Source:
    src = Path(src)
    if not src.is_dir():
        raise ExportError(f"{src} is not a folder (expected a save_pretrained folder or a LoRA adapter folder)")
    adapter_config = src / "adapter_config.json"
    if adapter_config.exists():
        if not merge_lora:
            raise ExportError(
                f"{src} is a LoRA adapter; pass --merge-lora (merge_lora=True) to export base + adapter merged"
            )
        return _load_merged(src, base)
    if merge_lora:
        raise ExportError(f"--merge-lora was given but {src} has no adapter_config.json (not a LoRA adapter folder)")
    return Source(_load_minimind(src), [src])


def _load_minimind(path: str | Path) -> MiniMindForCausalLM | MiniMindVForCausalLM:
    # Load in float32 whatever the stored dtype: merging and casting happen after.
    config = AutoConfig.from_pretrained(str(path))
    model_type = config.model_type
    if model_type not in REMOTE_CODE_SPECS:
        raise ExportError(
            f"{path} holds a {model_type!r} model; only MiniMind models ({', '.join(REMOTE_CODE_SPECS)}) are exported"
        )
    if REWARD_MODEL_CLASS in (getattr(config, "architectures", None) or ()):  # a reward model (stage `reward`)
        from transformers import AutoModelForSequenceClassification

        return load_pretrained(path, auto_class=AutoModelForSequenceClassification, dtype=torch.float32).eval()
    return load_pretrained(path, dtype=torch.float32).eval()


def _load_merged(adapter_dir: Path, base: str | Path | None) -> Source:
    from peft import PeftModel  # only this path needs peft

    if base is None:
        base = json.loads((adapter_dir / "adapter_config.json").read_text()).get("base_model_name_or_path")
        if not base:
            raise ExportError(f"{adapter_dir}/adapter_config.json names no base model; pass --base BASE_FOLDER")
    base = Path(base)
    if not base.is_dir():
        raise ExportError(f"LoRA base model {base} is not a local folder; pass --base BASE_FOLDER")
    merged = PeftModel.from_pretrained(_load_minimind(base), str(adapter_dir)).merge_and_unload()
    return Source(merged.eval(), [adapter_dir, base])


def language_model_of(model: MiniMindVForCausalLM) -> MiniMindForCausalLM:
    """The VLM's MiniMind language model (its own weights, not a copy), generating as the VLM did."""
    language_model = model.language_model
    language_model.generation_config = model.generation_config
    return language_model
