"""The remote-code format: the weights plus our own self-contained model files, with the
config.json `auto_map` that makes `from_pretrained(folder, trust_remote_code=True)` load
them where `minimind_hf` is not installed."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from ..models import MiniMindForCausalLM, MiniMindVForCausalLM

MODELS_DIR = Path(__file__).resolve().parent.parent / "models"


@dataclass(frozen=True)
class RemoteCodeSpec:
    """What a trust_remote_code folder of one model type needs: which self-contained files
    from `minimind_hf/models` to copy, and the config.json `auto_map` pointing into them."""

    files: tuple[str, ...]
    auto_map: dict[str, str]


VLM_MODEL_TYPE = "minimind-v"
REWARD_MODEL_CLASS = "MiniMindForSequenceClassification"
# One entry per exportable model type.
REMOTE_CODE_SPECS: dict[str, RemoteCodeSpec] = {
    "minimind": RemoteCodeSpec(
        files=("compat.py", "configuration_minimind.py", "modeling_minimind.py"),
        auto_map={
            "AutoConfig": "configuration_minimind.MiniMindConfig",
            "AutoModel": "modeling_minimind.MiniMindModel",
            "AutoModelForCausalLM": "modeling_minimind.MiniMindForCausalLM",
            "AutoModelForSequenceClassification": "modeling_minimind.MiniMindForSequenceClassification",
        },
    ),
    # The processor's own auto_map (processor_config.json, tokenizer_config.json) is written
    # by `save_processor`; config.json carries AutoProcessor too, AutoProcessor's last resort.
    VLM_MODEL_TYPE: RemoteCodeSpec(
        files=(
            "compat.py",
            "configuration_minimind.py",
            "modeling_minimind.py",
            "configuration_minimind_v.py",
            "modeling_minimind_v.py",
            "processing_minimind_v.py",
        ),
        auto_map={
            "AutoConfig": "configuration_minimind_v.MiniMindVConfig",
            "AutoModelForCausalLM": "modeling_minimind_v.MiniMindVForCausalLM",
            "AutoModelForImageTextToText": "modeling_minimind_v.MiniMindVForCausalLM",
            "AutoProcessor": "processing_minimind_v.MiniMindVProcessor",
        },
    ),
}


def write_remote_code(model: MiniMindForCausalLM | MiniMindVForCausalLM, out: Path) -> None:
    spec = REMOTE_CODE_SPECS[model.config.model_type]
    previous = getattr(model.config, "auto_map", None)
    model.config.auto_map = dict(spec.auto_map)
    try:
        # save_pretrained writes the tied embedding once (lm_head is re-tied on load).
        model.save_pretrained(out)
    finally:  # the in-memory model stays as it was
        if previous is None:
            del model.config.auto_map
        else:
            model.config.auto_map = previous
    for name in spec.files:
        shutil.copy2(MODELS_DIR / name, out / name)
