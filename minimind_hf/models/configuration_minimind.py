"""MiniMind configuration.

Self-contained: this file is copied into trust_remote_code exports, so it imports only
transformers. Field names follow transformers' Llama/Qwen3 configs; MiniMind's own
spellings (`rope_theta`, `rope_scaling`, `inference_rope_scaling`, `aux_loss_alpha`,
`n_routed_experts`, ...) are accepted as aliases when loading MiniMind configs.
"""

import math

from transformers import PreTrainedConfig

# The YaRN settings MiniMind-3 switches on with `inference_rope_scaling=True`
# (2048 trained positions stretched 16x, no attention temperature change).
MINIMIND_YARN_DEFAULTS = {
    "rope_type": "yarn",
    "factor": 16.0,
    "original_max_position_embeddings": 2048,
    "beta_fast": 32.0,
    "beta_slow": 1.0,
    "attention_factor": 1.0,
}

# MiniMind spelling -> our field name.
_ALIASES = {
    "dim": "hidden_size",
    "n_layers": "num_hidden_layers",
    "n_heads": "num_attention_heads",
    "n_kv_heads": "num_key_value_heads",
    "norm_eps": "rms_norm_eps",
    "max_seq_len": "max_position_embeddings",
    "n_routed_experts": "num_experts",
    "n_shared_experts": "num_shared_experts",
    "aux_loss_alpha": "router_aux_loss_coef",
    "use_qk_norm": "qk_norm",
}


def minimind_intermediate_size(hidden_size: int, multiple_of: int = 64) -> int:
    """MiniMind2's default FFN width: 8/3 * hidden rounded up to a multiple of 64."""
    return multiple_of * math.ceil(int(hidden_size * 8 / 3) / multiple_of)


class MiniMindConfig(PreTrainedConfig):
    r"""Configuration of a MiniMind decoder-only language model.

    A dense MiniMind with `qk_norm=False` is weight-for-weight a Llama model; with
    `qk_norm=True` it is a Qwen3 model. `use_moe=True` replaces every MLP with a top-k
    routed mixture of SwiGLU experts (plus optional always-on shared experts).
    """

    model_type = "minimind"
    keys_to_ignore_at_inference = ["past_key_values"]
    default_theta = 1_000_000.0
    base_model_tp_plan = {
        "layers.*.self_attn.q_proj": "colwise",
        "layers.*.self_attn.k_proj": "colwise",
        "layers.*.self_attn.v_proj": "colwise",
        "layers.*.self_attn.o_proj": "rowwise",
        "layers.*.mlp.gate_proj": "colwise",
        "layers.*.mlp.up_proj": "colwise",
        "layers.*.mlp.down_proj": "rowwise",
    }

    vocab_size: int = 6400
    hidden_size: int = 512
    intermediate_size: int | None = None
    num_hidden_layers: int = 8
    num_attention_heads: int = 8
    num_key_value_heads: int | None = 2
    head_dim: int | None = None
    hidden_act: str = "silu"
    max_position_embeddings: int = 32768
    initializer_range: float = 0.02
    rms_norm_eps: float = 1e-5
    use_cache: bool = True
    tie_word_embeddings: bool = True
    rope_parameters: dict | None = None
    inference_rope_scaling: bool = False
    qk_norm: bool = False
    attention_bias: bool = False
    dropout: float = 0.0
    # Mixture of experts
    use_moe: bool = False
    num_experts: int = 4
    num_experts_per_tok: int = 2
    num_shared_experts: int = 0
    moe_intermediate_size: int | None = None
    norm_topk_prob: bool = True
    router_aux_loss_coef: float | None = None  # 0.01 for MoE models, 0 for dense ones
    output_router_logits: bool = False
    pad_token_id: int | None = 0
    bos_token_id: int | None = 1
    eos_token_id: int | list[int] | None = 2

    def __post_init__(self, **kwargs):
        # Unknown keys arrive here; MiniMind's spellings are mapped onto our fields.
        for old, new in _ALIASES.items():
            if old in kwargs:
                setattr(self, new, kwargs.pop(old))
        if self.num_key_value_heads is None:
            self.num_key_value_heads = self.num_attention_heads
        if self.head_dim is None:
            self.head_dim = self.hidden_size // self.num_attention_heads
        if self.intermediate_size is None:
            self.intermediate_size = minimind_intermediate_size(self.hidden_size)
        if self.router_aux_loss_coef is None:
            # Dense models declare no aux loss (TRL keys its MoE handling off this value).
            self.router_aux_loss_coef = 0.01 if self.use_moe else 0.0
        if self.moe_intermediate_size is None:
            self.moe_intermediate_size = self.intermediate_size
        if self.inference_rope_scaling and not (kwargs.get("rope_scaling") or self.rope_parameters):
            kwargs["rope_scaling"] = dict(MINIMIND_YARN_DEFAULTS)
        super().__post_init__(**kwargs)
        self._validate()

    def _validate(self):
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError(
                f"num_attention_heads ({self.num_attention_heads}) must be a multiple of "
                f"num_key_value_heads ({self.num_key_value_heads})"
            )
        if self.use_moe and not 1 <= self.num_experts_per_tok <= self.num_experts:
            raise ValueError(
                f"num_experts_per_tok ({self.num_experts_per_tok}) must be between 1 and "
                f"num_experts ({self.num_experts})"
            )


__all__ = ["MiniMindConfig", "minimind_intermediate_size", "MINIMIND_YARN_DEFAULTS"]
