"""MiniMind <-> stock transformers architectures.

A dense MiniMind is weight-for-weight a `LlamaForCausalLM` (no q/k norm) or a
`Qwen3ForCausalLM` (q/k norm); an MoE MiniMind without shared experts is a
`Qwen3MoeForCausalLM` once its per-expert Linear weights are fused into the 3D tensors
transformers 5 stores. These mappings are the test oracles and the native export path
(`write_native`: a stock-class folder, no remote code).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from transformers import (
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedConfig,
    Qwen3Config,
    Qwen3ForCausalLM,
    Qwen3MoeConfig,
    Qwen3MoeForCausalLM,
)

from ..models import MiniMindConfig, MiniMindForCausalLM

NATIVE_FORMATS = ("llama", "qwen3", "qwen3-moe")
# Stock class for each native model_type (native_config(...).model_type).
NATIVE_CLASSES = {"llama": LlamaForCausalLM, "qwen3": Qwen3ForCausalLM, "qwen3_moe": Qwen3MoeForCausalLM}


class NativeExportError(ValueError):
    """The MiniMind configuration has no exact stock-transformers equivalent."""


def default_native_format(config: MiniMindConfig) -> str:
    if config.use_moe:
        return "qwen3-moe"
    return "qwen3" if config.qk_norm else "llama"


def native_config(config: MiniMindConfig, fmt: str | None = None) -> PreTrainedConfig:
    """The stock config whose model computes exactly what `config`'s MiniMind computes."""
    fmt = fmt or default_native_format(config)
    _check_mappable(config, fmt)
    common = dict(
        vocab_size=config.vocab_size,
        hidden_size=config.hidden_size,
        num_hidden_layers=config.num_hidden_layers,
        num_attention_heads=config.num_attention_heads,
        num_key_value_heads=config.num_key_value_heads,
        head_dim=config.head_dim,
        hidden_act=config.hidden_act,
        max_position_embeddings=config.max_position_embeddings,
        initializer_range=config.initializer_range,
        rms_norm_eps=config.rms_norm_eps,
        tie_word_embeddings=config.tie_word_embeddings,
        rope_parameters=dict(config.rope_parameters),
        attention_bias=config.attention_bias,
        attention_dropout=config.dropout,
        pad_token_id=config.pad_token_id,
        bos_token_id=config.bos_token_id,
        eos_token_id=config.eos_token_id,
    )
    if fmt == "llama":
        return LlamaConfig(intermediate_size=config.intermediate_size, mlp_bias=False, **common)
    if fmt == "qwen3":
        return Qwen3Config(intermediate_size=config.intermediate_size, **common)
    return Qwen3MoeConfig(
        intermediate_size=config.intermediate_size,
        moe_intermediate_size=config.moe_intermediate_size,
        num_experts=config.num_experts,
        num_experts_per_tok=config.num_experts_per_tok,
        norm_topk_prob=config.norm_topk_prob,  # the same rule: renormalise for any k
        router_aux_loss_coef=config.router_aux_loss_coef,
        decoder_sparse_step=1,
        mlp_only_layers=[],
        **common,
    )


def _check_mappable(config: MiniMindConfig, fmt: str) -> None:
    if fmt not in NATIVE_FORMATS:
        raise NativeExportError(f"unknown native format {fmt!r}; choose one of {NATIVE_FORMATS}")
    if fmt in ("llama", "qwen3") and config.use_moe:
        raise NativeExportError(f"an MoE MiniMind cannot become a dense {fmt} model; use format 'qwen3-moe'")
    if fmt == "llama" and config.qk_norm:
        raise NativeExportError("Llama has no q/k RMSNorm; a MiniMind with qk_norm=True maps to 'qwen3'")
    if fmt in ("qwen3", "qwen3-moe") and not config.qk_norm:
        raise NativeExportError(
            f"{fmt} always applies q/k RMSNorm; a MiniMind with qk_norm=False maps to 'llama'"
            + (" (MoE without q/k norm has no stock equivalent)" if config.use_moe else "")
        )
    if fmt == "qwen3-moe":
        if not config.use_moe:
            raise NativeExportError("format 'qwen3-moe' needs an MoE MiniMind (use_moe=True)")
        if config.num_shared_experts:
            raise NativeExportError(
                f"this MiniMind has {config.num_shared_experts} shared expert(s); Qwen3-MoE has no shared "
                "experts, so the model cannot be exported natively (use the remote-code format)"
            )


def to_native_state_dict(state_dict: dict[str, torch.Tensor], config: MiniMindConfig, fmt: str | None = None):
    """Rename/fuse MiniMind weights into the stock architecture's layout."""
    fmt = fmt or default_native_format(config)
    _check_mappable(config, fmt)
    if fmt != "qwen3-moe":
        return dict(state_dict)
    out = {k: v for k, v in state_dict.items() if ".mlp.experts." not in k}
    for layer in range(config.num_hidden_layers):
        prefix = f"model.layers.{layer}.mlp"
        experts = range(config.num_experts)
        out[f"{prefix}.experts.gate_up_proj"] = torch.stack(
            [
                torch.cat(
                    [
                        state_dict[f"{prefix}.experts.{e}.gate_proj.weight"],
                        state_dict[f"{prefix}.experts.{e}.up_proj.weight"],
                    ]
                )
                for e in experts
            ]
        )
        out[f"{prefix}.experts.down_proj"] = torch.stack(
            [state_dict[f"{prefix}.experts.{e}.down_proj.weight"] for e in experts]
        )
    return out


def write_native(model: MiniMindForCausalLM, out: Path, fmt: str) -> None:
    """Save the MiniMind `model` as the stock class of `fmt` (its config and weights) in `out`."""
    config = native_config(model.config, fmt)
    native = NATIVE_CLASSES[config.model_type](config).to(model.dtype)
    # strict: every stock parameter must come from ours, nothing of ours may be left over.
    native.load_state_dict(to_native_state_dict(model.state_dict(), model.config, fmt), strict=True)
    native.tie_weights()
    native.generation_config = model.generation_config
    native.save_pretrained(out)
    _add_legacy_config_keys(out / "config.json", config)


def _add_legacy_config_keys(path: Path, config) -> None:
    """transformers 5 writes RoPE settings only inside `rope_parameters` and the expert count
    as `num_local_experts`. Older readers (transformers 4.x, some GGUF converters) would fall
    back to their defaults - a silently different model - so also write the old spellings."""
    data = json.loads(path.read_text())
    rope = dict(config.rope_parameters)
    data.setdefault("rope_theta", rope.pop("rope_theta"))
    if rope.get("rope_type", "default") != "default":
        data.setdefault("rope_scaling", rope)
    if config.model_type == "qwen3_moe":
        data.setdefault("num_experts", config.num_local_experts)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
