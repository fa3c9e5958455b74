"""MiniMind: a small Llama/Qwen3-style decoder-only language model.

Self-contained: this file is copied into trust_remote_code exports, so it imports only
torch, transformers and its configuration (relatively). Layout and conventions follow
transformers' `modeling_qwen3.py`: attention goes through the attention-function
interface (eager / sdpa / flash_attention_2 / flex), caching through the Cache API, and
parameter names match Llama/Qwen3 so weights map one to one. What differs between
transformers releases (4.57 and 5.x; the cache argument is `past_key_values` up to 5.23
and `cache` from 5.24) is handled in `compat.py`, next to this file.
"""

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from transformers.activations import ACT2FN
from transformers.cache_utils import Cache, DynamicCache
from transformers.generation import GenerationMixin
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import (
    MoeCausalLMOutputWithPast,
    MoeModelOutputWithPast,
    SequenceClassifierOutputWithPast,
)
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS, dynamic_rope_update
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS, PreTrainedModel
from transformers.processing_utils import Unpack
from transformers.utils import TransformersKwargs, can_return_tuple

from .compat import (
    CACHE_NAME,
    OutputRecorder,
    cache_kwargs,
    causal_mask,
    check_model_inputs,
    normal_,
    pop_cache,
    tied_weights,
)
from .configuration_minimind import MiniMindConfig


class MiniMindRMSNorm(nn.Module):
    def __init__(self, hidden_size: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.variance_epsilon = eps

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        input_dtype = hidden_states.dtype
        hidden_states = hidden_states.to(torch.float32)
        variance = hidden_states.pow(2).mean(-1, keepdim=True)
        hidden_states = hidden_states * torch.rsqrt(variance + self.variance_epsilon)
        return self.weight * hidden_states.to(input_dtype)

    def extra_repr(self):
        return f"{tuple(self.weight.shape)}, eps={self.variance_epsilon}"


class MiniMindRotaryEmbedding(nn.Module):
    """Rotate-half RoPE; YaRN and the other scaled variants come from transformers."""

    def __init__(self, config: MiniMindConfig):
        super().__init__()
        self.config = config
        self.max_seq_len_cached = config.max_position_embeddings
        self.original_max_seq_len = config.max_position_embeddings
        self.rope_type = config.rope_parameters["rope_type"]
        rope_init_fn: Callable = self.compute_default_rope_parameters
        if self.rope_type != "default":
            rope_init_fn = ROPE_INIT_FUNCTIONS[self.rope_type]
        inv_freq, self.attention_scaling = rope_init_fn(config, None)
        # Non-persistent: recomputed by `_init_weights` after `from_pretrained`.
        self.register_buffer("inv_freq", inv_freq, persistent=False)
        self.register_buffer("original_inv_freq", inv_freq.clone(), persistent=False)

    @staticmethod
    def compute_default_rope_parameters(config: MiniMindConfig, device=None, **kwargs) -> tuple[torch.Tensor, float]:
        base = config.rope_parameters["rope_theta"]
        dim = config.head_dim
        inv_freq = 1.0 / (
            base ** (torch.arange(0, dim, 2, dtype=torch.int64).to(device=device, dtype=torch.float) / dim)
        )
        return inv_freq, 1.0

    @torch.no_grad()
    @dynamic_rope_update
    def forward(self, x: torch.Tensor, position_ids: torch.Tensor):
        freqs = position_ids[..., None].float() * self.inv_freq.to(device=x.device, dtype=torch.float)
        emb = torch.cat((freqs, freqs), dim=-1)
        cos = emb.cos() * self.attention_scaling
        sin = emb.sin() * self.attention_scaling
        return cos.to(dtype=x.dtype), sin.to(dtype=x.dtype)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def apply_rotary_pos_emb(q, k, cos, sin, unsqueeze_dim: int = 1):
    cos = cos.unsqueeze(unsqueeze_dim)
    sin = sin.unsqueeze(unsqueeze_dim)
    return (q * cos) + (rotate_half(q) * sin), (k * cos) + (rotate_half(k) * sin)


def repeat_kv(hidden_states: torch.Tensor, n_rep: int) -> torch.Tensor:
    """(batch, kv_heads, seq, dim) -> (batch, kv_heads * n_rep, seq, dim) for grouped-query attention."""
    if n_rep == 1:
        return hidden_states
    batch, kv_heads, seq_len, head_dim = hidden_states.shape
    hidden_states = hidden_states[:, :, None].expand(batch, kv_heads, n_rep, seq_len, head_dim)
    return hidden_states.reshape(batch, kv_heads * n_rep, seq_len, head_dim)


def eager_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    **kwargs: Unpack[TransformersKwargs],
):
    key_states = repeat_kv(key, module.num_key_value_groups)
    value_states = repeat_kv(value, module.num_key_value_groups)
    attn_weights = torch.matmul(query, key_states.transpose(2, 3)) * scaling
    if attention_mask is not None:
        attn_weights = attn_weights + attention_mask
    attn_weights = F.softmax(attn_weights, dim=-1, dtype=torch.float32).to(query.dtype)
    attn_weights = F.dropout(attn_weights, p=dropout, training=module.training)
    attn_output = torch.matmul(attn_weights, value_states).transpose(1, 2).contiguous()
    return attn_output, attn_weights


class MiniMindAttention(nn.Module):
    """Grouped-query attention with optional per-head q/k RMSNorm (MiniMind-3 / Qwen3)."""

    def __init__(self, config: MiniMindConfig, layer_idx: int):
        super().__init__()
        self.config = config
        self.layer_idx = layer_idx
        self.head_dim = config.head_dim
        self.num_key_value_groups = config.num_attention_heads // config.num_key_value_heads
        self.scaling = self.head_dim**-0.5
        self.attention_dropout = config.dropout
        self.is_causal = True
        bias = config.attention_bias
        self.q_proj = nn.Linear(config.hidden_size, config.num_attention_heads * self.head_dim, bias=bias)
        self.k_proj = nn.Linear(config.hidden_size, config.num_key_value_heads * self.head_dim, bias=bias)
        self.v_proj = nn.Linear(config.hidden_size, config.num_key_value_heads * self.head_dim, bias=bias)
        self.o_proj = nn.Linear(config.num_attention_heads * self.head_dim, config.hidden_size, bias=bias)
        self.qk_norm = config.qk_norm
        if config.qk_norm:
            self.q_norm = MiniMindRMSNorm(self.head_dim, eps=config.rms_norm_eps)
            self.k_norm = MiniMindRMSNorm(self.head_dim, eps=config.rms_norm_eps)

    def forward(
        self,
        hidden_states: torch.Tensor,
        position_embeddings: tuple[torch.Tensor, torch.Tensor],
        attention_mask: torch.Tensor | None,
        cache: Cache | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        input_shape = hidden_states.shape[:-1]
        hidden_shape = (*input_shape, -1, self.head_dim)
        query_states = self.q_proj(hidden_states).view(hidden_shape)
        key_states = self.k_proj(hidden_states).view(hidden_shape)
        if self.qk_norm:
            query_states, key_states = self.q_norm(query_states), self.k_norm(key_states)
        query_states, key_states = query_states.transpose(1, 2), key_states.transpose(1, 2)
        value_states = self.v_proj(hidden_states).view(hidden_shape).transpose(1, 2)

        cos, sin = position_embeddings
        query_states, key_states = apply_rotary_pos_emb(query_states, key_states, cos, sin)
        if cache is not None:
            key_states, value_states = cache.update(key_states, value_states, self.layer_idx)

        attention_interface: Callable = eager_attention_forward
        if self.config._attn_implementation != "eager":
            attention_interface = ALL_ATTENTION_FUNCTIONS[self.config._attn_implementation]
        attn_output, attn_weights = attention_interface(
            self,
            query_states,
            key_states,
            value_states,
            attention_mask,
            dropout=0.0 if not self.training else self.attention_dropout,
            scaling=self.scaling,
            **kwargs,
        )
        attn_output = self.o_proj(attn_output.reshape(*input_shape, -1).contiguous())
        return attn_output, attn_weights


class MiniMindMLP(nn.Module):
    """SwiGLU feed-forward: down(act(gate(x)) * up(x))."""

    def __init__(self, config: MiniMindConfig, intermediate_size: int | None = None):
        super().__init__()
        intermediate_size = intermediate_size or config.intermediate_size
        self.gate_proj = nn.Linear(config.hidden_size, intermediate_size, bias=False)
        self.up_proj = nn.Linear(config.hidden_size, intermediate_size, bias=False)
        self.down_proj = nn.Linear(intermediate_size, config.hidden_size, bias=False)
        self.act_fn = ACT2FN[config.hidden_act]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(self.act_fn(self.gate_proj(x)) * self.up_proj(x))


class MiniMindRouter(nn.Linear):
    """Top-k softmax router. Its logits are recorded for the load-balancing loss.

    `norm_topk_prob` means what it means in Qwen3-MoE: the chosen weights are rescaled to sum
    to 1 for any k, so at top-1 the chosen expert gets weight 1 (as minimind-3 routes)."""

    def __init__(self, config: MiniMindConfig):
        super().__init__(config.hidden_size, config.num_experts, bias=False)
        self.top_k = config.num_experts_per_tok
        self.norm_topk_prob = config.norm_topk_prob

    def forward(self, hidden_states: torch.Tensor):
        router_logits = F.linear(hidden_states, self.weight)
        probs = F.softmax(router_logits, dim=-1, dtype=torch.float32)
        top_weights, top_indices = torch.topk(probs, self.top_k, dim=-1)
        if self.norm_topk_prob:
            top_weights = top_weights / (top_weights.sum(dim=-1, keepdim=True) + 1e-20)
        return router_logits, top_weights.to(hidden_states.dtype), top_indices


class MiniMindMoE(nn.Module):
    """Routed SwiGLU experts (+ optional shared experts that see every token)."""

    def __init__(self, config: MiniMindConfig):
        super().__init__()
        self.num_experts = config.num_experts
        self.gate = MiniMindRouter(config)
        self.experts = nn.ModuleList(
            [MiniMindMLP(config, config.moe_intermediate_size) for _ in range(config.num_experts)]
        )
        self.shared_experts = nn.ModuleList(
            [MiniMindMLP(config, config.moe_intermediate_size) for _ in range(config.num_shared_experts)]
        )

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        batch, seq_len, hidden = hidden_states.shape
        flat = hidden_states.reshape(-1, hidden)
        _, top_weights, top_indices = self.gate(flat)
        output = torch.zeros_like(flat)
        # Dispatch: each expert runs once on exactly the tokens routed to it.
        expert_mask = F.one_hot(top_indices, num_classes=self.num_experts).permute(2, 1, 0)  # (E, k, T)
        for expert_idx in expert_mask.sum(dim=(1, 2)).nonzero().flatten().tolist():
            slot, token_idx = torch.where(expert_mask[expert_idx])
            expert_out = self.experts[expert_idx](flat[token_idx]) * top_weights[token_idx, slot, None]
            output.index_add_(0, token_idx, expert_out.to(output.dtype))
        for shared in self.shared_experts:
            output = output + shared(flat)
        return output.reshape(batch, seq_len, hidden)


class MiniMindDecoderLayer(GradientCheckpointingLayer):
    def __init__(self, config: MiniMindConfig, layer_idx: int):
        super().__init__()
        self.self_attn = MiniMindAttention(config, layer_idx)
        self.mlp = MiniMindMoE(config) if config.use_moe else MiniMindMLP(config)
        self.input_layernorm = MiniMindRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.post_attention_layernorm = MiniMindRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.dropout = nn.Dropout(config.dropout)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        use_cache: bool | None = False,
        position_embeddings: tuple[torch.Tensor, torch.Tensor] | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> torch.Tensor:
        # The cache arrives under the running transformers' name, so that gradient
        # checkpointing (GradientCheckpointingLayer) can drop it.
        cache = pop_cache(kwargs)
        attn_output, _ = self.self_attn(
            hidden_states=self.input_layernorm(hidden_states),
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            use_cache=use_cache,
            position_embeddings=position_embeddings,
            **kwargs,
        )
        # Dropout modules are only called when active: per-call overhead shows in decoding.
        if self.dropout.p > 0:
            attn_output = self.dropout(attn_output)
        hidden_states = hidden_states + attn_output
        mlp_output = self.mlp(self.post_attention_layernorm(hidden_states))
        if self.dropout.p > 0:
            mlp_output = self.dropout(mlp_output)
        return hidden_states + mlp_output


class MiniMindPreTrainedModel(PreTrainedModel):
    config: MiniMindConfig
    config_class = MiniMindConfig
    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _no_split_modules = ["MiniMindDecoderLayer"]
    _skip_keys_device_placement = [CACHE_NAME]
    _supports_flash_attn = True
    _supports_sdpa = True
    _supports_flex_attn = True
    _can_compile_fullgraph = False  # MoE dispatch is data dependent; dense models compile fine
    _supports_attention_backend = True
    _can_record_outputs = {
        "router_logits": OutputRecorder(MiniMindRouter, index=0),
        "hidden_states": MiniMindDecoderLayer,
        "attentions": MiniMindAttention,
    }

    @classmethod
    def _can_set_attn_implementation(cls) -> bool:
        # transformers 5.x decides this by searching the modeling file's source for a call of
        # the attention registry's `get_interface` method, which 4.57 lacks; MiniMindAttention
        # does dispatch through ALL_ATTENTION_FUNCTIONS, so set_attn_implementation works on both.
        return True

    @torch.no_grad()
    def _init_weights(self, module):
        super()._init_weights(module)
        if isinstance(module, MiniMindRouter):
            normal_(module.weight, std=self.config.initializer_range)


class MiniMindModel(MiniMindPreTrainedModel):
    def __init__(self, config: MiniMindConfig):
        super().__init__(config)
        self.vocab_size = config.vocab_size
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.dropout = nn.Dropout(config.dropout)
        self.layers = nn.ModuleList([MiniMindDecoderLayer(config, i) for i in range(config.num_hidden_layers)])
        self.norm = MiniMindRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.rotary_emb = MiniMindRotaryEmbedding(config)
        self.gradient_checkpointing = False
        self.post_init()

    def get_input_embeddings(self):
        return self.embed_tokens

    def set_input_embeddings(self, value):
        self.embed_tokens = value

    @check_model_inputs
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        past_key_values: Cache | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        use_cache: bool | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> MoeModelOutputWithPast:
        r"""The KV cache may be passed as `past_key_values` or `cache` (transformers >= 5.24)."""
        cache = pop_cache(kwargs, past_key_values)
        cache_position = kwargs.pop("cache_position", None)  # only transformers 4.57 passes it
        if (input_ids is None) ^ (inputs_embeds is not None):
            raise ValueError("Pass exactly one of input_ids or inputs_embeds")
        if inputs_embeds is None:
            inputs_embeds = self.embed_tokens(input_ids)
        if position_ids is None:
            past_seen = cache.get_seq_length() if cache is not None else 0
            position_ids = (torch.arange(inputs_embeds.shape[1], device=inputs_embeds.device) + past_seen).unsqueeze(0)

        # A 2D padding mask becomes a 4D causal mask here. With no mask, no past and
        # position_ids that restart at 0, transformers builds a block-diagonal mask for
        # padding-free packed rows - so the mask is built before a fresh cache is created.
        if isinstance(attention_mask, dict):  # already prepared by generate()
            mask = attention_mask["full_attention"]
        else:
            mask = causal_mask(self.config, inputs_embeds, attention_mask, cache, position_ids, cache_position)
        if use_cache and cache is None:
            cache = DynamicCache(config=self.config)

        hidden_states = self.dropout(inputs_embeds) if self.dropout.p > 0 else inputs_embeds
        position_embeddings = self.rotary_emb(hidden_states, position_ids)
        for decoder_layer in self.layers:
            hidden_states = decoder_layer(
                hidden_states,
                attention_mask=mask,
                position_ids=position_ids,
                use_cache=use_cache,
                position_embeddings=position_embeddings,
                **cache_kwargs(cache),
                **kwargs,
            )
        hidden_states = self.norm(hidden_states)
        return MoeModelOutputWithPast(last_hidden_state=hidden_states, **cache_kwargs(cache if use_cache else None))


def load_balancing_loss(
    router_logits: tuple[torch.Tensor, ...],
    num_experts: int,
    top_k: int,
    attention_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Switch-Transformer balance loss, summed over MoE layers as MiniMind does.

    Per layer: num_experts * sum_i(f_i * P_i), where f_i is the share of top-k slots routed
    to expert i and P_i the mean router probability of expert i. Padding is excluded when a
    2D attention mask is given.
    """
    total = router_logits[0].new_zeros((), dtype=torch.float32)
    weights = None
    if attention_mask is not None and attention_mask.dim() == 2:
        weights = attention_mask.reshape(-1).to(router_logits[0].device, torch.float32)
    for logits in router_logits:
        probs = F.softmax(logits.float(), dim=-1)
        chosen = F.one_hot(torch.topk(probs, top_k, dim=-1).indices, num_experts).float().mean(dim=1)
        if weights is None or weights.numel() != probs.shape[0]:
            fraction, mean_prob = chosen.mean(0), probs.mean(0)
        else:
            denom = weights.sum().clamp(min=1.0)
            fraction = (chosen * weights[:, None]).sum(0) / denom
            mean_prob = (probs * weights[:, None]).sum(0) / denom
        total = total + num_experts * (fraction * mean_prob).sum()
    return total


class MiniMindForCausalLM(MiniMindPreTrainedModel, GenerationMixin):
    _tied_weights_keys = tied_weights("lm_head.weight", "model.embed_tokens.weight")
    _tp_plan = {"lm_head": "colwise_gather_output"}
    _pp_plan = {"lm_head": (["hidden_states"], ["logits"])}

    def __init__(self, config: MiniMindConfig):
        super().__init__(config)
        self.model = MiniMindModel(config)
        self.vocab_size = config.vocab_size
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def get_input_embeddings(self):
        return self.model.embed_tokens

    def set_input_embeddings(self, value):
        self.model.embed_tokens = value

    def get_output_embeddings(self):
        return self.lm_head

    def set_output_embeddings(self, new_embeddings):
        self.lm_head = new_embeddings

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        past_key_values: Cache | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        output_router_logits: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        **kwargs: Unpack[TransformersKwargs],
    ) -> MoeCausalLMOutputWithPast:
        r"""`labels` are shifted inside (ignore index -100). For MoE models the router
        load-balancing loss, times `router_aux_loss_coef`, is added to `loss` whenever labels
        are given, and returned as `aux_loss`. The KV cache may be passed as
        `past_key_values` or `cache`; it is returned under the running transformers' name."""
        cache = pop_cache(kwargs, past_key_values)
        if output_router_logits is None:
            output_router_logits = self.config.output_router_logits or (self.config.use_moe and labels is not None)
        output_router_logits = output_router_logits and self.config.use_moe
        outputs: MoeModelOutputWithPast = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            output_router_logits=output_router_logits,
            **cache_kwargs(cache),
            **kwargs,
        )
        hidden_states = outputs.last_hidden_state
        slice_indices = slice(-logits_to_keep, None) if isinstance(logits_to_keep, int) else logits_to_keep
        logits = self.lm_head(hidden_states[:, slice_indices, :])

        loss = None
        if labels is not None:
            loss = self.loss_function(logits=logits, labels=labels, vocab_size=self.config.vocab_size, **kwargs)

        aux_loss = None
        if output_router_logits and outputs.router_logits:
            mask = attention_mask if isinstance(attention_mask, torch.Tensor) else None
            aux_loss = load_balancing_loss(
                outputs.router_logits, self.config.num_experts, self.config.num_experts_per_tok, mask
            )
            if loss is not None:
                loss = loss + self.config.router_aux_loss_coef * self._aux_share(labels, kwargs) * aux_loss.to(
                    loss.device
                )

        return MoeCausalLMOutputWithPast(
            loss=loss,
            aux_loss=aux_loss,
            logits=logits,
            **cache_kwargs(getattr(outputs, CACHE_NAME)),
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
            router_logits=outputs.router_logits,
        )

    @staticmethod
    def _aux_share(labels: torch.Tensor, kwargs: dict) -> float | torch.Tensor:
        """Under gradient accumulation Trainer sums micro-batch losses normalised by the
        total label count (`num_items_in_batch`); weighting the aux loss by this micro-batch's
        share of labels keeps its total equal to one token-weighted mean."""
        num_items = kwargs.get("num_items_in_batch")
        if num_items is None:
            return 1.0
        local = (labels[..., 1:] != -100).sum()
        return local.to(torch.float32) / torch.as_tensor(num_items, device=labels.device, dtype=torch.float32)


class MiniMindForSequenceClassification(MiniMindPreTrainedModel):
    """MiniMind with a linear `score` head read at each row's last real token: reward models
    (`num_labels=1`, TRL's RewardTrainer / GRPOTrainer) and classifiers. The last real token
    is the last position the 2D `attention_mask` keeps, else the last one that is not
    `pad_token_id` (left or right padding either way). A causal-LM folder loads into it with
    only `score.weight` new."""

    def __init__(self, config: MiniMindConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.model = MiniMindModel(config)
        self.score = nn.Linear(config.hidden_size, config.num_labels, bias=False)
        self.post_init()

    def get_input_embeddings(self):
        return self.model.embed_tokens

    def set_input_embeddings(self, value):
        self.model.embed_tokens = value

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        past_key_values: Cache | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> SequenceClassifierOutputWithPast:
        cache = pop_cache(kwargs, past_key_values)
        outputs: MoeModelOutputWithPast = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            **cache_kwargs(cache),
            **kwargs,
        )
        logits = self.score(outputs.last_hidden_state)
        batch, length = logits.shape[:2]
        positions = torch.arange(length, device=logits.device)
        if isinstance(attention_mask, torch.Tensor) and attention_mask.dim() == 2:
            keep = attention_mask.to(logits.device).bool()
        elif input_ids is not None and self.config.pad_token_id is not None:
            keep = input_ids.to(logits.device) != self.config.pad_token_id
        else:
            keep = torch.ones(batch, length, dtype=torch.bool, device=logits.device)
        last = (positions * keep).argmax(-1)  # the highest kept position (0 for an empty row)
        pooled_logits = logits[torch.arange(batch, device=logits.device), last]

        loss = None
        if labels is not None:
            loss = self.loss_function(logits=logits, labels=labels, pooled_logits=pooled_logits, config=self.config)
        return SequenceClassifierOutputWithPast(
            loss=loss, logits=pooled_logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )


__all__ = [
    "MiniMindPreTrainedModel",
    "MiniMindModel",
    "MiniMindForCausalLM",
    "MiniMindForSequenceClassification",
    "load_balancing_loss",
]
