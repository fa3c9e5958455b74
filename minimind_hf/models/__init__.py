"""Model definitions. Each configuration_*/modeling_* file is self-contained (exports copy them)."""

from .configuration_minimind import MiniMindConfig
from .configuration_minimind_v import MiniMindVConfig
from .modeling_minimind import MiniMindForCausalLM, MiniMindModel, MiniMindPreTrainedModel
from .modeling_minimind_v import MiniMindVForCausalLM
from .processing_minimind_v import MiniMindVProcessor

__all__ = [
    "MiniMindConfig",
    "MiniMindForCausalLM",
    "MiniMindModel",
    "MiniMindPreTrainedModel",
    "MiniMindVConfig",
    "MiniMindVForCausalLM",
    "MiniMindVProcessor",
]
