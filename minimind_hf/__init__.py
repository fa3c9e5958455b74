"""minimind-hf: MiniMind / MiniMind-V as first-class Hugging Face models.

Importing the package registers `minimind` with AutoConfig / AutoModel /
AutoModelForCausalLM, so `from_pretrained(folder)` works without remote code.
"""

from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

from .models import MiniMindConfig, MiniMindForCausalLM, MiniMindModel, MiniMindPreTrainedModel
from .presets import PRESETS, preset_config

__version__ = "0.1.0"

AutoConfig.register("minimind", MiniMindConfig, exist_ok=True)
AutoModel.register(MiniMindConfig, MiniMindModel, exist_ok=True)
AutoModelForCausalLM.register(MiniMindConfig, MiniMindForCausalLM, exist_ok=True)

__all__ = [
    "MiniMindConfig",
    "MiniMindForCausalLM",
    "MiniMindModel",
    "MiniMindPreTrainedModel",
    "PRESETS",
    "preset_config",
]
