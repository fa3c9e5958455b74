"""MiniMind configuration.

Self-contained: this file is copied into trust_remote_code exports, so it imports only
transformers. Field names follow transformers' Llama/Qwen3 configs; MiniMind's own
spellings (`rope_theta`, `rope_scaling`, `inference_rope_scaling`, `aux_loss_alpha`,
`n_routed_experts`, ...) are accepted as aliases when loading MiniMind configs.
"""

import math

import transformers
from transformers import PretrainedConfig as PreTrainedConfig  # the spelling both 4.57 and 5.x know

# transformers 4.x reads RoPE settings from `rope_theta` / `rope_scaling`, 5.x from `rope_parameters`.
_LEGACY_ROPE = int(transformers.__version__.split(".")[0]) < 5

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


def config_keys() -> set[str]:
    """Every key a MiniMind config (or a recipe's `model_config`) may set, MiniMind spellings included."""
    import inspect

    names = set(inspect.signature(MiniMindConfig.__init__).parameters) - {"self", "kwargs"}
    return names | set(_ALIASES) | {"rope_theta", "rope_scaling", "dtype", "torch_dtype"}


def standard_rope_parameters(rope_parameters, rope_scaling, rope_theta, default_theta: float) -> dict:
    """One complete RoPE dict, `{"rope_type", "rope_theta", ...scaling}`, from any spelling:
    transformers 5's `rope_parameters`, or 4.x / MiniMind's `rope_scaling` + `rope_theta`
    (MiniMind writes the type as `type`)."""
    params = dict(rope_parameters or rope_scaling or {})
    params["rope_type"] = params.pop("rope_type", None) or params.pop("type", None) or "default"
    params.pop("type", None)
    if params.get("rope_theta") is None:
        params["rope_theta"] = float(rope_theta) if rope_theta is not None else default_theta
    return params


class MiniMindConfig(PreTrainedConfig):
    r"""Configuration of a MiniMind decoder-only language model.

    A dense MiniMind with `qk_norm=False` is weight-for-weight a Llama model; with
    `qk_norm=True` it is a Qwen3 model. `use_moe=True` replaces every MLP with a top-k
    routed mixture of SwiGLU experts (plus optional always-on shared experts).

    Written as a classic `__init__` (not transformers 5's dataclass fields) so that the
    same file runs on transformers 4.57 and 5.x.
    """

    model_type = "minimind"
    keys_to_ignore_at_inference = ["past_key_values", "cache"]
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

    def __init__(
        self,
        vocab_size: int = 6400,
        hidden_size: int = 512,
        intermediate_size: int | None = None,
        num_hidden_layers: int = 8,
        num_attention_heads: int = 8,
        num_key_value_heads: int | None = 2,
        head_dim: int | None = None,
        hidden_act: str = "silu",
        max_position_embeddings: int = 32768,
        initializer_range: float = 0.02,
        rms_norm_eps: float = 1e-5,
        use_cache: bool = True,
        tie_word_embeddings: bool = True,
        rope_parameters: dict | None = None,
        inference_rope_scaling: bool = False,
        qk_norm: bool = False,
        attention_bias: bool = False,
        dropout: float = 0.0,
        # Mixture of experts
        use_moe: bool = False,
        num_experts: int = 4,
        num_experts_per_tok: int = 2,
        num_shared_experts: int = 0,
        moe_intermediate_size: int | None = None,
        norm_topk_prob: bool = True,
        router_aux_loss_coef: float | None = None,  # 0.01 for MoE models, 0 for dense ones
        output_router_logits: bool = False,
        pad_token_id: int | None = 0,
        bos_token_id: int | None = 1,
        eos_token_id: int | list[int] | None = 2,
        **kwargs,
    ):
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.intermediate_size = intermediate_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.num_key_value_heads = num_key_value_heads
        self.head_dim = head_dim
        self.hidden_act = hidden_act
        self.max_position_embeddings = max_position_embeddings
        self.initializer_range = initializer_range
        self.rms_norm_eps = rms_norm_eps
        self.use_cache = use_cache
        self.inference_rope_scaling = inference_rope_scaling
        self.qk_norm = qk_norm
        self.attention_bias = attention_bias
        self.dropout = dropout
        self.use_moe = use_moe
        self.num_experts = num_experts
        self.num_experts_per_tok = num_experts_per_tok
        self.num_shared_experts = num_shared_experts
        self.moe_intermediate_size = moe_intermediate_size
        self.norm_topk_prob = norm_topk_prob
        self.router_aux_loss_coef = router_aux_loss_coef
        self.output_router_logits = output_router_logits
        # MiniMind's spellings, as its config.json files carry them, win over the defaults.
        for old, new in _ALIASES.items():
            if old in kwargs:
                setattr(self, new, kwargs.pop(old))
        if self.num_key_value_heads is None:
            self.num_key_value_heads = self.num_attention_heads
        self._validate_sizes()
        if self.head_dim is None:
            self.head_dim = self.hidden_size // self.num_attention_heads
        if self.intermediate_size is None:
            self.intermediate_size = minimind_intermediate_size(self.hidden_size)
        if self.router_aux_loss_coef is None:
            # Dense models declare no aux loss (TRL keys its MoE handling off this value).
            self.router_aux_loss_coef = 0.01 if self.use_moe else 0.0
        if self.moe_intermediate_size is None:
            self.moe_intermediate_size = self.intermediate_size

        rope_scaling = kwargs.pop("rope_scaling", None)
        if self.inference_rope_scaling and not (rope_scaling or rope_parameters):
            rope_scaling = dict(MINIMIND_YARN_DEFAULTS)
        self.rope_parameters = standard_rope_parameters(
            rope_parameters, rope_scaling, kwargs.pop("rope_theta", None), self.default_theta
        )
        if _LEGACY_ROPE:  # transformers 4.x computes RoPE from these two attributes
            self.rope_theta = self.rope_parameters["rope_theta"]
            scaling = {k: v for k, v in self.rope_parameters.items() if k != "rope_theta"}
            self.rope_scaling = None if scaling["rope_type"] == "default" else scaling
        super().__init__(
            pad_token_id=pad_token_id,
            bos_token_id=bos_token_id,
            eos_token_id=eos_token_id,
            tie_word_embeddings=tie_word_embeddings,
            **kwargs,
        )
        self._validate_moe()

    def _validate_sizes(self):
        """Sizes that would otherwise build a silently different model, or fail deep in torch."""
        for name in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError(
                f"num_attention_heads ({self.num_attention_heads}) must be a multiple of "
                f"num_key_value_heads ({self.num_key_value_heads})"
            )
        if self.head_dim is None and self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) must be a multiple of num_attention_heads "
                f"({self.num_attention_heads}), or set head_dim explicitly"
            )
        head_dim = self.head_dim or self.hidden_size // self.num_attention_heads
        if head_dim % 2:
            raise ValueError(
                f"the head size ({head_dim} = hidden_size / num_attention_heads) must be even for rotary embeddings"
            )

    def _validate_moe(self):
        if self.use_moe and not 1 <= self.num_experts_per_tok <= self.num_experts:
            raise ValueError(
                f"num_experts_per_tok ({self.num_experts_per_tok}) must be between 1 and "
                f"num_experts ({self.num_experts})"
            )


__all__ = [
    "MiniMindConfig",
    "config_keys",
    "minimind_intermediate_size",
    "standard_rope_parameters",
    "MINIMIND_YARN_DEFAULTS",
]
