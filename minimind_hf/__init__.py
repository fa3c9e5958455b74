"""minimind-hf: MiniMind / MiniMind-V as first-class Hugging Face models.

Importing the package registers `minimind` with AutoConfig / AutoModel /
AutoModelForCausalLM / AutoModelForSequenceClassification (reward models), and
`minimind-v` with AutoConfig / AutoModelForCausalLM / AutoModelForImageTextToText /
AutoProcessor, so `from_pretrained(folder)` works without remote code. The registration runs
when transformers is imported (:mod:`.registration`), and the classes below load on first
use, so the import itself is light: the CLIs answer `--help` and check a recipe before torch
is imported.
"""

import importlib
import warnings

from .registration import register_when_transformers_loads

# PEFT 0.21 reads `model.is_gradient_checkpointing`, which transformers 5.24 renamed to
# `is_activation_checkpointing` (same value): the FutureWarning is noise on every LoRA / DPO run.
warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)

register_when_transformers_loads()

__version__ = "0.1.0"

# Public name -> the module that defines it (imported on first access).
_EXPORTS = {
    "MiniMindConfig": ".models",
    "MiniMindForCausalLM": ".models",
    "MiniMindModel": ".models",
    "MiniMindPreTrainedModel": ".models",
    "MiniMindVConfig": ".models",
    "MiniMindVForCausalLM": ".models",
    "MiniMindVProcessor": ".models",
    "MiniMindForSequenceClassification": ".models",
    "PRESETS": ".presets",
    "preset_config": ".presets",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
