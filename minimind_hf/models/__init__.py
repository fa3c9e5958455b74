"""Model definitions. Each configuration_*/modeling_* file is self-contained (exports copy them).

Importing this package registers `minimind` with AutoConfig / AutoModel / AutoModelForCausalLM /
AutoModelForSequenceClassification (reward models) and `minimind-v` with AutoConfig /
AutoModelForCausalLM / AutoModelForImageTextToText / AutoProcessor.
"""

from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForImageTextToText,
    AutoModelForSequenceClassification,
    AutoProcessor,
)

from .configuration_minimind import MiniMindConfig
from .configuration_minimind_v import MiniMindVConfig
from .modeling_minimind import (
    MiniMindForCausalLM,
    MiniMindForSequenceClassification,
    MiniMindModel,
    MiniMindPreTrainedModel,
)
from .modeling_minimind_v import MiniMindVForCausalLM
from .processing_minimind_v import MiniMindVProcessor

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
]
