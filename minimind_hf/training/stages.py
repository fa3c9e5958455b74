"""The stage table: which module runs each recipe `stage`.

A stage module has ``run(inputs: StageInputs)`` and may have ``check(inputs)`` (recipe checks
that need no data or model, run before anything heavy is built). A new stage is one module
here plus one line in :data:`STAGE_MODULES`.
"""

from __future__ import annotations

import importlib
from types import ModuleType

STAGE_MODULES = {
    "pretrain": "text",
    "sft": "text",
    "lora": "text",
    "distill": "text",
    "dpo": "dpo",
    "reward": "reward",
    "grpo": "grpo",
    "vlm_pretrain": "vision",
    "vlm_sft": "vision",
}
STAGES = tuple(STAGE_MODULES)
VISION_STAGES = ("vlm_pretrain", "vlm_sft")


def stage_module(stage: str) -> ModuleType:
    """The module of a stage, imported on first use (a text stage never imports TRL's GRPO code)."""
    return importlib.import_module(f".{STAGE_MODULES[stage]}", __package__)
