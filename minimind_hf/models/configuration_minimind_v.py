"""MiniMind-V configuration: a MiniMind text config + any transformers vision config.

Self-contained (copied into trust_remote_code exports): imports only transformers and the
MiniMind configuration, relatively.
"""

from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

from .configuration_minimind import MiniMindConfig

# A CLIP ViT small enough for CPU tests and the offline quickstart: 32x32 images, 8x8
# patches -> 16 patch tokens (+ CLS, dropped). Real runs name a pretrained tower instead.
TINY_VISION_CONFIG = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "image_size": 32,
    "patch_size": 8,
    "projection_dim": 64,
}


class MiniMindVConfig(PreTrainedConfig):
    r"""MiniMind-V: image patch features from `vision_config`'s model, optionally reduced
    (pixel shuffle or average pooling over the patch grid), projected (`linear` or LLaVA's
    LayerNorm-MLP) into the text embedding space at the positions of `image_token_id`.
    Each image occupies `image_seq_length` placeholder tokens."""

    model_type = "minimind-v"
    sub_configs_defaults = {
        "text_config": SubConfigSpec(config_class=MiniMindConfig),
        "vision_config": SubConfigSpec(
            config_class=AutoConfig, model_type="clip_vision_model", init_kwargs=TINY_VISION_CONFIG
        ),
    }

    text_config: dict | PreTrainedConfig | None = None
    vision_config: dict | PreTrainedConfig | None = None
    # Where the pretrained vision weights came from (informational once saved: the tower's
    # weights live in this model's own safetensors).
    vision_tower_name_or_path: str | None = None
    image_token_id: int = 3  # <|image_pad|> in the shipped tokenizer
    image_token: str = "<|image_pad|>"
    projector_type: str = "mlp"  # "linear" (MiniMind-V seed era) or "mlp" (LLaVA-1.5 / current MiniMind-V)
    vision_feature_layer: int = -1
    drop_cls_token: bool | None = None  # None: drop a leading CLS token when the tower has one
    token_reduction: str = "none"  # "none", "pixel_shuffle" or "avg_pool"
    reduction_factor: int = 2
    freeze_vision_tower: bool = True
    tie_word_embeddings: bool = True
    image_seq_length: int | None = None

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        if self.projector_type not in ("linear", "mlp"):
            raise ValueError(f"projector_type must be 'linear' or 'mlp', got {self.projector_type!r}")
        if self.token_reduction not in ("none", "pixel_shuffle", "avg_pool"):
            raise ValueError(f"token_reduction must be none, pixel_shuffle or avg_pool, got {self.token_reduction!r}")
        self.tie_word_embeddings = self.text_config.tie_word_embeddings
        grid = self.patch_grid
        if self.token_reduction != "none" and grid % self.reduction_factor:
            raise ValueError(f"the {grid}x{grid} patch grid is not divisible by reduction_factor {self.reduction_factor}")
        factor = self.reduction_factor if self.token_reduction != "none" else 1
        self.image_seq_length = (grid // factor) ** 2

    @property
    def patch_grid(self) -> int:
        return self.vision_config.image_size // self.vision_config.patch_size


__all__ = ["MiniMindVConfig", "TINY_VISION_CONFIG"]
