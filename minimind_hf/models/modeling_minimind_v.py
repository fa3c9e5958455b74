"""MiniMind-V: a MiniMind language model that reads images.

A vision tower (any transformers vision model: CLIP, SigLIP, ...) encodes each image into
patch features; an optional reduction merges neighbouring patches; a projector maps them
into the text embedding space, and they replace the embeddings of the image placeholder
tokens (vectorised masked_scatter). Pixel values are consumed at prefill only - generate()
drops them on later steps - so cached generation, streaming and batches work unchanged.

Self-contained (copied into trust_remote_code exports): imports only torch, transformers
and the MiniMind files, relatively.
"""

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoModel
from transformers.cache_utils import Cache
from transformers.generation import GenerationMixin
from transformers.modeling_outputs import MoeCausalLMOutputWithPast
from transformers.modeling_utils import PreTrainedModel
from transformers.utils import can_return_tuple

from .compat import CACHE_NAME, cache_kwargs, pop_cache, tied_weights, unwrap_vision_tower
from .configuration_minimind_v import MiniMindVConfig
from .modeling_minimind import MiniMindForCausalLM


class MiniMindVProjector(nn.Module):
    def __init__(self, config: MiniMindVConfig, in_features: int):
        super().__init__()
        out = config.text_config.hidden_size
        if config.projector_type == "linear":
            self.layers = nn.Sequential(nn.Linear(in_features, out))
        else:  # LLaVA-1.5 style, with the input LayerNorm current MiniMind-V adds
            self.layers = nn.Sequential(
                nn.LayerNorm(in_features), nn.Linear(in_features, out), nn.GELU(), nn.Linear(out, out)
            )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers(features)


def reduce_patches(features: torch.Tensor, grid: int, method: str, factor: int) -> torch.Tensor:
    """(images, grid*grid, C) -> fewer tokens: pixel shuffle stacks each factor x factor block
    into channels (C * factor^2); average pooling keeps C."""
    if method == "none":
        return features
    images, _, channels = features.shape
    x = features.reshape(images, grid, grid, channels)
    if method == "avg_pool":
        x = F.avg_pool2d(x.permute(0, 3, 1, 2), factor).permute(0, 2, 3, 1)
        return x.reshape(images, -1, channels)
    g = grid // factor
    x = x.reshape(images, g, factor, g, factor, channels).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(images, g * g, factor * factor * channels)


class MiniMindVPreTrainedModel(PreTrainedModel):
    config: MiniMindVConfig
    config_class = MiniMindVConfig
    base_model_prefix = ""
    supports_gradient_checkpointing = True
    _no_split_modules = ["MiniMindDecoderLayer"]
    _skip_keys_device_placement = [CACHE_NAME]
    _supports_flash_attn = True
    _supports_sdpa = True
    _supports_attention_backend = True


class MiniMindVForCausalLM(MiniMindVPreTrainedModel, GenerationMixin):
    _tied_weights_keys = tied_weights("language_model.lm_head.weight", "language_model.model.embed_tokens.weight")

    def __init__(self, config: MiniMindVConfig):
        super().__init__(config)
        self.language_model = MiniMindForCausalLM(config.text_config)
        self.vision_tower = unwrap_vision_tower(AutoModel.from_config(config.vision_config))
        width = config.vision_config.hidden_size
        if config.token_reduction == "pixel_shuffle":
            width *= config.reduction_factor**2
        self.projector = MiniMindVProjector(config, width)
        self.post_init()
        if config.freeze_vision_tower:
            self.vision_tower.requires_grad_(False)

    # The language model's embeddings are the model's (resize, tying, PEFT all look here).
    def get_input_embeddings(self):
        return self.language_model.get_input_embeddings()

    def set_input_embeddings(self, value):
        self.language_model.set_input_embeddings(value)

    def get_output_embeddings(self):
        return self.language_model.get_output_embeddings()

    def set_output_embeddings(self, value):
        self.language_model.set_output_embeddings(value)

    def get_image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(images, 3, H, W) -> (images, image_seq_length, text hidden size)."""
        config = self.config
        # A frozen tower never builds a graph, whatever its parameters' requires_grad says
        # (from_pretrained hands back fresh parameters).
        with torch.set_grad_enabled(torch.is_grad_enabled() and not config.freeze_vision_tower):
            tower_dtype = next(self.vision_tower.parameters()).dtype
            outputs = self.vision_tower(pixel_values=pixel_values.to(tower_dtype), output_hidden_states=True)
        features = outputs.hidden_states[config.vision_feature_layer]
        grid = config.patch_grid
        has_cls = features.shape[1] == grid * grid + 1
        drop = has_cls if config.drop_cls_token is None else config.drop_cls_token
        if drop:
            features = features[:, 1:]
        if features.shape[1] != grid * grid:
            raise ValueError(
                f"the vision tower returned {features.shape[1]} tokens per image, expected a {grid}x{grid} patch grid"
            )
        features = reduce_patches(features, grid, config.token_reduction, config.reduction_factor)
        return self.projector(features.to(self.projector.layers[-1].weight.dtype))

    def merge_image_features(self, input_ids: torch.Tensor, inputs_embeds: torch.Tensor, pixel_values: torch.Tensor):
        """Write projected image features into the placeholder positions, image by image in reading order."""
        mask = input_ids == self.config.image_token_id
        features = self.get_image_features(pixel_values)
        placeholders, expected = int(mask.sum()), features.shape[0] * features.shape[1]
        if placeholders != expected:
            raise ValueError(
                f"{placeholders} image placeholder tokens in the input but {features.shape[0]} image(s) x "
                f"{features.shape[1]} tokens = {expected} image features: every image needs exactly "
                f"{features.shape[1]} consecutive {self.config.image_token} tokens (use the processor)"
            )
        return inputs_embeds.masked_scatter(mask.unsqueeze(-1), features.to(inputs_embeds.dtype))

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        pixel_values: torch.FloatTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        past_key_values: Cache | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        **kwargs,
    ) -> MoeCausalLMOutputWithPast:
        r"""`pixel_values` holds every image of the batch in reading order (sample by sample);
        each fills the next run of `image_seq_length` placeholder tokens. The KV cache may be
        passed as `past_key_values` or `cache`."""
        cache = pop_cache(kwargs, past_key_values)
        # Decoding steps after the prefill carry no placeholders; transformers 4.57's generate()
        # still passes pixel_values to them (5.x drops them), so they are ignored here.
        decoding = cache is not None and cache.get_seq_length() > 0
        if decoding and input_ids is not None and not (input_ids == self.config.image_token_id).any():
            pixel_values = None
        if inputs_embeds is None:
            inputs_embeds = self.get_input_embeddings()(input_ids)
            if pixel_values is not None and pixel_values.shape[0] > 0:
                inputs_embeds = self.merge_image_features(input_ids, inputs_embeds, pixel_values)
        elif pixel_values is not None:
            raise ValueError("pass input_ids (not inputs_embeds) together with pixel_values")
        return self.language_model(
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            position_ids=position_ids,
            labels=labels,
            use_cache=use_cache,
            logits_to_keep=logits_to_keep,
            **cache_kwargs(cache),
            **kwargs,
        )


__all__ = ["MiniMindVForCausalLM", "MiniMindVPreTrainedModel", "MiniMindVProjector", "reduce_patches"]
