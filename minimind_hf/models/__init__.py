"""Model definitions. Each configuration_*/modeling_* file is self-contained (exports copy them)."""

from .configuration_minimind import MiniMindConfig
from .modeling_minimind import MiniMindForCausalLM, MiniMindModel, MiniMindPreTrainedModel

__all__ = ["MiniMindConfig", "MiniMindForCausalLM", "MiniMindModel", "MiniMindPreTrainedModel"]
