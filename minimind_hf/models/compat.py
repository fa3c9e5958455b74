"""What differs between the transformers releases MiniMind runs on, in one place.

The model files are copied into trust_remote_code exports, which must load where users
are: transformers 4.57 (MiniMind's own pin) as well as every 5.x release the package
declares. The differences that touch a model file:

- the KV cache argument and output field: `past_key_values` up to 5.23, `cache` from 5.24
  (the old name still works there, with a deprecation warning on every call);
- `create_causal_mask`: 4.57 wants `input_embeds` and `cache_position`, 5.x `inputs_embeds`;
- output capturing: 4.57's `check_model_inputs` became 5.x's `merge_with_config_defaults`
  + `capture_outputs`;
- configurations: 5.x standardises RoPE settings into `rope_parameters`, 4.57 reads
  `rope_theta` / `rope_scaling`; composite configs declare sub-configs differently;
- tied weights: a {target: source} dict in 5.x, a list of targets in 4.57;
- vision towers: 4.57's CLIPVisionModel / SiglipVisionModel wrap their layers in a
  `vision_model` module, 5.x's hold them directly - so the parameter names differ.

Self-contained like the model files (imports only torch and transformers).
"""

import dataclasses
import inspect

import torch
import transformers
from transformers.masking_utils import create_causal_mask
from transformers.modeling_outputs import MoeModelOutputWithPast

TRANSFORMERS_MAJOR = int(transformers.__version__.split(".")[0])

# The name the running transformers uses for the KV cache (forward argument and output field).
CACHE_NAME = "cache" if "cache" in {f.name for f in dataclasses.fields(MoeModelOutputWithPast)} else "past_key_values"

try:  # transformers >= 5
    from transformers.utils.generic import merge_with_config_defaults
    from transformers.utils.output_capturing import OutputRecorder, capture_outputs

    def check_model_inputs(forward):
        return merge_with_config_defaults(capture_outputs(forward))

except ImportError:  # transformers 4.57
    from transformers.utils.generic import OutputRecorder, check_model_inputs  # noqa: F401

try:  # transformers >= 5: initialisers that skip tensors loaded from a checkpoint
    from transformers import initialization as _init
except ImportError:
    _init = None


def normal_(tensor: torch.Tensor, std: float) -> None:
    if _init is not None:
        _init.normal_(tensor, mean=0.0, std=std)
    else:
        tensor.data.normal_(mean=0.0, std=std)


def tied_weights(target: str, source: str):
    """`_tied_weights_keys` in the form the running transformers expects."""
    return {target: source} if TRANSFORMERS_MAJOR >= 5 else [target]


def unwrap_vision_tower(tower: torch.nn.Module) -> torch.nn.Module:
    """The module that holds the tower's layers directly: 4.57's `vision_model` wrapper is
    dropped, so a tower's parameter names (`embeddings.*`, `encoder.*`) are the same on 4.57
    and 5.x and an export saved by one loads in the other."""
    inner = getattr(tower, "vision_model", None)
    if isinstance(inner, torch.nn.Module) and sum(1 for _ in tower.parameters()) == sum(1 for _ in inner.parameters()):
        return inner
    return tower


def pop_cache(kwargs: dict, cache=None):
    """The cache passed under either name (`past_key_values` or `cache`), removed from kwargs."""
    for name in ("past_key_values", "cache"):
        value = kwargs.pop(name, None)
        if value is not None:
            if cache is not None and value is not cache:
                raise ValueError("pass the KV cache once, as `cache` or as `past_key_values`, not both")
            cache = value
    return cache


def cache_kwargs(cache) -> dict:
    """`{name: cache}` under the running transformers' name, for outputs and layer calls."""
    return {CACHE_NAME: cache}


_MASK_PARAMETERS = set(inspect.signature(create_causal_mask).parameters)


def causal_mask(config, inputs_embeds, attention_mask, cache, position_ids, cache_position=None):
    """`create_causal_mask` called the way the running transformers spells its arguments."""
    kwargs = {"config": config, "attention_mask": attention_mask, "position_ids": position_ids}
    kwargs["inputs_embeds" if "inputs_embeds" in _MASK_PARAMETERS else "input_embeds"] = inputs_embeds
    kwargs["cache" if "cache" in _MASK_PARAMETERS else "past_key_values"] = cache
    if "cache_position" in _MASK_PARAMETERS:  # 4.57 locates the new tokens by cache_position
        if cache_position is None:
            past = cache.get_seq_length() if cache is not None else 0
            cache_position = torch.arange(past, past + inputs_embeds.shape[1], device=inputs_embeds.device)
        kwargs["cache_position"] = cache_position
    return create_causal_mask(**kwargs)


__all__ = [
    "CACHE_NAME",
    "OutputRecorder",
    "TRANSFORMERS_MAJOR",
    "cache_kwargs",
    "causal_mask",
    "check_model_inputs",
    "normal_",
    "pop_cache",
    "tied_weights",
    "unwrap_vision_tower",
]
