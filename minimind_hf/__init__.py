"""minimind-hf: MiniMind / MiniMind-V as first-class Hugging Face models.

Importing the package registers `minimind` with AutoConfig / AutoModel /
AutoModelForCausalLM, and `minimind-v` with AutoConfig / AutoModelForCausalLM /
AutoModelForImageTextToText / AutoProcessor, so `from_pretrained(folder)` works without
remote code.
"""

from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForImageTextToText,
    AutoProcessor,
)

from .models import (
    MiniMindConfig,
    MiniMindForCausalLM,
    MiniMindModel,
    MiniMindPreTrainedModel,
    MiniMindVConfig,
    MiniMindVForCausalLM,
    MiniMindVProcessor,
)
from .presets import PRESETS, preset_config

__version__ = "0.1.0"

AutoConfig.register("minimind", MiniMindConfig, exist_ok=True)
AutoModel.register(MiniMindConfig, MiniMindModel, exist_ok=True)
AutoModelForCausalLM.register(MiniMindConfig, MiniMindForCausalLM, exist_ok=True)
AutoConfig.register("minimind-v", MiniMindVConfig, exist_ok=True)
AutoModelForCausalLM.register(MiniMindVConfig, MiniMindVForCausalLM, exist_ok=True)
AutoModelForImageTextToText.register(MiniMindVConfig, MiniMindVForCausalLM, exist_ok=True)
AutoProcessor.register(MiniMindVConfig, MiniMindVProcessor, exist_ok=True)

__all__ = [
    "MiniMindConfig",
    "MiniMindForCausalLM",
    "MiniMindModel",
    "MiniMindPreTrainedModel",
    "MiniMindVConfig",
    "MiniMindVForCausalLM",
    "MiniMindVProcessor",
    "PRESETS",
    "preset_config",
]
