"""MiniMind-V configuration: a MiniMind text config + any transformers vision config.

Self-contained (copied into trust_remote_code exports): imports only transformers and the
MiniMind configuration, relatively.
"""

from transformers import AutoConfig
from transformers import PretrainedConfig as PreTrainedConfig  # the spelling both 4.57 and 5.x know

from .configuration_minimind import MiniMindConfig

DEFAULT_VISION_MODEL_TYPE = "clip_vision_model"
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
    Each image occupies `image_seq_length` placeholder tokens.

    A classic `__init__` (as LLaVA's configs in transformers 4.x) so that the file runs on
    transformers 4.57 and 5.x alike."""

    model_type = "minimind-v"
    sub_configs = {"text_config": MiniMindConfig, "vision_config": AutoConfig}

    def __init__(
        self,
        text_config: dict | PreTrainedConfig | None = None,
        vision_config: dict | PreTrainedConfig | None = None,
        # Where the pretrained vision weights came from (informational once saved: the
        # tower's weights live in this model's own safetensors).
        vision_tower_name_or_path: str | None = None,
        image_token_id: int = 3,  # <|image_pad|> in the shipped tokenizer
        image_token: str = "<|image_pad|>",
        projector_type: str = "mlp",  # "linear" (MiniMind-V seed era) or "mlp" (LLaVA-1.5 / current MiniMind-V)
        vision_feature_layer: int = -1,
        drop_cls_token: bool | None = None,  # None: drop a leading CLS token when the tower has one
        token_reduction: str = "none",  # "none", "pixel_shuffle" or "avg_pool"
        reduction_factor: int = 2,
        freeze_vision_tower: bool = True,
        image_seq_length: int | None = None,  # derived from the patch grid and the reduction
        **kwargs,
    ):
        if text_config is None or isinstance(text_config, dict):
            text_config = MiniMindConfig(**(text_config or {}))
        if vision_config is None:
            vision_config = dict(TINY_VISION_CONFIG)
        if isinstance(vision_config, dict):
            vision_config = dict(vision_config)
            vision_config = AutoConfig.for_model(
                vision_config.pop("model_type", DEFAULT_VISION_MODEL_TYPE), **vision_config
            )
        self.text_config = text_config
        self.vision_config = vision_config
        self.vision_tower_name_or_path = vision_tower_name_or_path
        self.image_token_id = image_token_id
        self.image_token = image_token
        self.projector_type = projector_type
        self.vision_feature_layer = vision_feature_layer
        self.drop_cls_token = drop_cls_token
        self.token_reduction = token_reduction
        self.reduction_factor = reduction_factor
        self.freeze_vision_tower = freeze_vision_tower
        kwargs["tie_word_embeddings"] = text_config.tie_word_embeddings
        super().__init__(**kwargs)

        if self.projector_type not in ("linear", "mlp"):
            raise ValueError(f"projector_type must be 'linear' or 'mlp', got {self.projector_type!r}")
        if self.token_reduction not in ("none", "pixel_shuffle", "avg_pool"):
            raise ValueError(f"token_reduction must be none, pixel_shuffle or avg_pool, got {self.token_reduction!r}")
        grid = self.patch_grid
        if self.token_reduction != "none" and grid % self.reduction_factor:
            raise ValueError(
                f"the {grid}x{grid} patch grid is not divisible by reduction_factor {self.reduction_factor}"
            )
        factor = self.reduction_factor if self.token_reduction != "none" else 1
        self.image_seq_length = (grid // factor) ** 2

    @property
    def patch_grid(self) -> int:
        return self.vision_config.image_size // self.vision_config.patch_size


__all__ = ["MiniMindVConfig", "TINY_VISION_CONFIG"]
