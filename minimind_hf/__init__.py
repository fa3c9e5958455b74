"""minimind-hf: MiniMind / MiniMind-V as first-class Hugging Face models.

Importing the package registers `minimind` with AutoConfig / AutoModel /
AutoModelForCausalLM / AutoModelForSequenceClassification (reward models), and
`minimind-v` with AutoConfig / AutoModelForCausalLM / AutoModelForImageTextToText /
AutoProcessor, so `from_pretrained(folder)` works without remote code.
"""

import os
import warnings

import torch

# accelerate imports DeepSpeed whenever it is installed, and DeepSpeed then announces
# "Setting accelerator to CPU" on every CPU-only run; naming the accelerator keeps it quiet.
if "DS_ACCELERATOR" not in os.environ and not torch.cuda.is_available():
    os.environ["DS_ACCELERATOR"] = "cpu"
# PEFT 0.21 reads `model.is_gradient_checkpointing`, which transformers 5.24 renamed to
# `is_activation_checkpointing` (same value): the FutureWarning is noise on every LoRA / DPO run.
warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)

from transformers import (  # noqa: E402
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForImageTextToText,
    AutoModelForSequenceClassification,
    AutoProcessor,
)

from .models import (  # noqa: E402
    MiniMindConfig,
    MiniMindForCausalLM,
    MiniMindModel,
    MiniMindPreTrainedModel,
    MiniMindVConfig,
    MiniMindVForCausalLM,
    MiniMindVProcessor,
)
from .models.modeling_minimind import MiniMindForSequenceClassification  # noqa: E402
from .presets import PRESETS, preset_config  # noqa: E402

__version__ = "0.1.0"

AutoConfig.register("minimind", MiniMindConfig, exist_ok=True)
AutoModel.register(MiniMindConfig, MiniMindModel, exist_ok=True)
AutoModelForCausalLM.register(MiniMindConfig, MiniMindForCausalLM, exist_ok=True)
AutoModelForSequenceClassification.register(MiniMindConfig, MiniMindForSequenceClassification, exist_ok=True)
AutoConfig.register("minimind-v", MiniMindVConfig, exist_ok=True)
AutoModelForCausalLM.register(MiniMindVConfig, MiniMindVForCausalLM, exist_ok=True)
AutoModelForImageTextToText.register(MiniMindVConfig, MiniMindVForCausalLM, exist_ok=True)
AutoProcessor.register(MiniMindVConfig, MiniMindVProcessor, exist_ok=True)

__all__ = [
    "MiniMindConfig",
    "MiniMindForCausalLM",
    "MiniMindForSequenceClassification",
    "MiniMindModel",
    "MiniMindPreTrainedModel",
    "MiniMindVConfig",
    "MiniMindVForCausalLM",
    "MiniMindVProcessor",
    "PRESETS",
    "preset_config",
]
