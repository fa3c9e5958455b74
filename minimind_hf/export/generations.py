"""The layouts of original MiniMind checkpoints, the releases of the original code that wrote
them, and the MiniMindConfig a checkpoint's tensors (plus those releases) imply.

Three key layouts ("generations") of the original project are in circulation:

- `1`, 2024 names: `tok_embeddings`, `layers.N.attention.w{q,k,v,o}`, `layers.N.feed_forward.w{1,2,3}`
  (w1 gate, w2 down, w3 up), `attention_norm`, `ffn_norm`, `norm`, `output`; MoE as
  `feed_forward.gate` + `feed_forward.experts.E.w*` + ONE `feed_forward.shared_experts.w*`. Its
  RoPE rotates ADJACENT pairs (complex form), ours rotates halves, so q/k rows are permuted per
  head - exact, no fine-tuning needed. Written by two lines of code: minimind (2024, RoPE theta
  1e4, 16/8 heads) and the first MiniMind2 releases (Feb-Apr 2025, theta 1e6, 8/2 heads).
- `2`, MiniMind2 (2025): already our (Llama) names; shared experts as a list (`shared_experts.S.*`)
  or a single module.
- `3`, minimind-3 (2026): Qwen3 names with `q_norm` / `k_norm` (head size read from them).

Sizes (hidden, layers, FFN, k/v width, experts, tied embeddings) are read from the tensor
shapes. What shapes cannot tell is never guessed silently: each line of the original code
fixed it (`Release.settings`: RoPE theta, eps, top-k, aux-loss coefficient - its training
scripts only set sizes), the query-head count comes from q_norm, an original config file,
a flag, or an exact match with a published model's shape, and anything still unknown stops
the conversion with an error naming the value and the flag. Where each value came from is
printed and written to conversion_info.json. Every key must be accounted for: missing or
unexpected keys are an error that lists them, never a silent `strict=False`.

MoE routing follows each line: minimind-3 renormalises the top-k weights whenever its
`norm_topk_prob` is set (top-1: weight 1), the older code only when k > 1. Our
`norm_topk_prob` has Qwen3-MoE's meaning (renormalise for any k), so it is set to what the
original computed.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import torch

from ..models import MiniMindConfig
from ..models.configuration_minimind import _ALIASES as CONFIG_ALIASES
from .checkpoint import CheckpointError


@dataclass(frozen=True)
class Release:
    """One line of the original code: the settings it fixed (its training scripts set only the
    sizes) and the models published with it, by (hidden, layers, query heads, kv heads, MoE)."""

    name: str
    settings: dict  # MiniMindConfig fields the tensors cannot reveal
    published: dict[str, tuple[int, int, int, int, bool]]
    # minimind-3 renormalises the top-k weights for any k; the older routers only when k > 1.
    renormalises_top1: bool = False


@dataclass(frozen=True)
class Generation:
    """One key layout, and the releases that wrote it."""

    name: str
    original_name: Callable[[str, bool], str]  # (our key, single shared expert module?) -> its key
    releases: tuple[Release, ...]
    adjacent_pair_rope: bool = False


# ----------------------------------------------------------------------------- key layouts


_GEN1_TOP = {
    "model.embed_tokens.weight": "tok_embeddings.weight",
    "lm_head.weight": "output.weight",
    "model.norm.weight": "norm.weight",
}
# Applied in order to the part after `model.layers.N.`; the first matching prefix is renamed.
_GEN1_LAYER_PREFIXES = (
    ("self_attn.q_proj.", "attention.wq."),
    ("self_attn.k_proj.", "attention.wk."),
    ("self_attn.v_proj.", "attention.wv."),
    ("self_attn.o_proj.", "attention.wo."),
    ("input_layernorm.", "attention_norm."),
    ("post_attention_layernorm.", "ffn_norm."),
    ("mlp.shared_experts.0.", "feed_forward.shared_experts."),  # generation 1 has one shared FeedForward
    ("mlp.", "feed_forward."),
)
_GEN1_FFN = {"gate_proj.": "w1.", "down_proj.": "w2.", "up_proj.": "w3."}


def _gen1_name(ours: str, single_shared: bool = True) -> str:
    if ours in _GEN1_TOP:
        return _GEN1_TOP[ours]
    layer, rest = re.fullmatch(r"model\.layers\.(\d+)\.(.+)", ours).groups()
    for old, new in _GEN1_LAYER_PREFIXES:
        if rest.startswith(old):
            rest = new + rest[len(old) :]
            break
    for old, new in _GEN1_FFN.items():
        rest = rest.replace(old, new)
    return f"layers.{layer}.{rest}"


def _llama_name(ours: str, single_shared: bool = False) -> str:
    # MiniMind2 / minimind-3 already use our names; some MiniMind2 versions kept one shared
    # expert as a plain module (`shared_experts.gate_proj`) instead of a list.
    return ours.replace("mlp.shared_experts.0.", "mlp.shared_experts.") if single_shared else ours


# Aux-loss coefficients only matter for further MoE training; MiniMind2 lowered its 0.1 to 0.01 in
# December 2025 (pass --config for such a checkpoint).
_MINIMIND2_MODELS = {
    "MiniMind2-Small": (512, 8, 8, 2, False),
    "MiniMind2-MoE": (640, 8, 8, 2, True),
    "MiniMind2": (768, 16, 8, 2, False),
}
MINIMIND_2024 = Release(
    "minimind (2024)",
    dict(
        rope_theta=1e4, rms_norm_eps=1e-5, num_experts_per_tok=2, router_aux_loss_coef=0.01, max_position_embeddings=512
    ),
    {
        "minimind-v1-small": (512, 8, 16, 8, False),
        "minimind-v1-moe": (512, 8, 16, 8, True),
        "minimind-v1": (768, 16, 16, 8, False),
    },
)
MINIMIND2_EARLY = Release(
    "MiniMind2 (Feb-Apr 2025, 2024 key names)",
    dict(
        rope_theta=1e6, rms_norm_eps=1e-5, num_experts_per_tok=2, router_aux_loss_coef=0.1, max_position_embeddings=8192
    ),
    _MINIMIND2_MODELS,
)
MINIMIND2 = Release(
    "MiniMind2 (2025)",
    dict(
        rope_theta=1e6,
        rms_norm_eps=1e-5,
        num_experts_per_tok=2,
        router_aux_loss_coef=0.1,
        max_position_embeddings=32768,
    ),
    _MINIMIND2_MODELS,
)
MINIMIND3 = Release(
    "minimind-3 (2026)",
    dict(
        rope_theta=1e6,
        rms_norm_eps=1e-6,
        num_experts_per_tok=1,
        router_aux_loss_coef=5e-4,
        max_position_embeddings=32768,
    ),
    {"minimind-3": (768, 8, 8, 4, False), "minimind-3-moe": (768, 8, 8, 4, True)},
    renormalises_top1=True,
)

GENERATIONS = {
    "1": Generation(
        "2024 key names (minimind 2024, early MiniMind2)",
        _gen1_name,
        (MINIMIND_2024, MINIMIND2_EARLY),
        adjacent_pair_rope=True,
    ),
    "2": Generation("MiniMind2 (2025)", _llama_name, (MINIMIND2,)),
    "3": Generation("minimind-3 (2026)", _llama_name, (MINIMIND3,)),
}
# Settings only an MoE model has.
_MOE_SETTINGS = ("num_experts_per_tok", "router_aux_loss_coef")


def detect_generation(state_dict: dict) -> str:
    if "tok_embeddings.weight" in state_dict:
        return "1"
    if "model.embed_tokens.weight" not in state_dict:
        raise CheckpointError(
            "not a MiniMind checkpoint: neither `tok_embeddings.weight` (2024) nor `model.embed_tokens.weight` "
            f"(MiniMind2 / minimind-3) is present; first keys: {sorted(state_dict)[:8]}"
        )
    return "3" if "model.layers.0.self_attn.q_norm.weight" in state_dict else "2"


# ----------------------------------------------------------------------------- config


def infer_config(
    state_dict: dict, generation: str, original_config: dict | None = None, overrides: dict | None = None
) -> tuple[MiniMindConfig, dict]:
    """Config from tensor shapes, over the settings of the release that wrote the checkpoint
    and an `original_config` (the original project's config.json, MiniMind spellings welcome).
    Explicit `overrides` (command-line flags) win over everything, shapes included.

    Returns the config and a record of how the values the tensors cannot show were decided
    (`settings`: field -> where its value came from, `release`, `published_model`)."""
    gen = GENERATIONS[generation]
    single_shared = has_single_shared_module(state_dict, gen)

    def tensor(ours: str) -> torch.Tensor | None:
        return state_dict.get(gen.original_name(ours, single_shared))

    def size(ours: str, dim: int = 0) -> int:
        if tensor(ours) is None:
            raise CheckpointError(f"missing {gen.original_name(ours, single_shared)!r}, needed to infer the model size")
        return tensor(ours).shape[dim]

    def count(template: str) -> int:
        n = 0
        while tensor(template.format(n)) is not None:
            n += 1
        return n

    given, flags = _normalise(original_config or {}), _normalise(overrides or {})
    user = {**given, **flags}
    embed, prefix = "model.embed_tokens.weight", "model.layers.0"
    shapes = dict(
        vocab_size=size(embed),
        hidden_size=size(embed, 1),
        num_hidden_layers=count("model.layers.{}.input_layernorm.weight"),
    )
    experts = count(prefix + ".mlp.experts.{}.gate_proj.weight")
    if tensor(f"{prefix}.mlp.gate.weight") is not None:  # the MoE router
        if not experts:
            raise CheckpointError("the checkpoint has an MoE router (mlp.gate / feed_forward.gate) but no experts.0.*")
        ffn = size(f"{prefix}.mlp.experts.0.gate_proj.weight")
        shapes.update(
            use_moe=True,
            num_experts=experts,
            intermediate_size=ffn,
            moe_intermediate_size=ffn,
            num_shared_experts=count(prefix + ".mlp.shared_experts.{}.gate_proj.weight"),
        )
    else:
        shapes.update(use_moe=False, num_shared_experts=0, intermediate_size=size(f"{prefix}.mlp.gate_proj.weight"))
    lm_head = tensor("lm_head.weight")
    shapes["tie_word_embeddings"] = lm_head is None or torch.equal(lm_head, tensor(embed))

    hidden, kv_width = shapes["hidden_size"], size(f"{prefix}.self_attn.k_proj.weight")
    q_norm = tensor(f"{prefix}.self_attn.q_norm.weight")
    shapes["qk_norm"] = q_norm is not None
    published = _published_match(gen, hidden, shapes["num_hidden_layers"], kv_width, shapes["use_moe"])
    release, why_release = _release(gen, published, user, original_config)
    sources, missing = {}, []  # field -> where its value came from; what nothing supplies
    if q_norm is not None:  # q_norm reveals the head size, so the head counts follow
        heads = size(f"{prefix}.self_attn.q_proj.weight") // q_norm.shape[0]
        sources["num_attention_heads"] = "read from the q_norm size"
    elif "num_attention_heads" in user:
        heads = user["num_attention_heads"]
    elif published is not None:
        heads = published.heads
        sources["num_attention_heads"] = f"the shape of the published {published.name}"
    else:
        heads = None
        missing.append(
            (
                "num_attention_heads",
                "--num-attention-heads",
                "the number of query heads: wq / q_proj is hidden x hidden whatever it is",
            )
        )
    if release is None:
        missing.append(
            (
                "rope_theta",
                "--rope-theta",
                "2024 key names were written with theta 1e4 (minimind 2024) and 1e6 (early MiniMind2)",
            )
        )
    if missing:
        known = ", ".join(name for r in gen.releases for name in r.published)
        raise CheckpointError(
            f"cannot read {' or '.join(name for name, *_ in missing)} from this checkpoint, and its shape (hidden "
            f"{hidden}, {shapes['num_hidden_layers']} layers, k/v width {kv_width}, moe={shapes['use_moe']}) matches no "  # noqa: E501
            f"published {gen.name} model ({known}):\n"
            + "".join(f"  {name}: {reason}; pass {flag} or the original --config\n" for name, flag, reason in missing)
        )
    head_dim = q_norm.shape[0] if q_norm is not None else user.get("head_dim") or hidden // heads
    shapes.update(num_attention_heads=heads, head_dim=head_dim, num_key_value_heads=kv_width // head_dim)

    fixed = {k: v for k, v in release.settings.items() if shapes["use_moe"] or k not in _MOE_SETTINGS}
    sources.update({k: f"fixed by the {release.name} code{why_release}" for k in fixed if k not in user})
    # Explicit overrides win even over shapes: a wrong one then fails the shape check, loudly.
    fields = {**fixed, **given, **shapes, **flags}
    if fields["use_moe"]:
        # Our norm_topk_prob renormalises for any k: set it to what the original router computed.
        original, top_k = fields.get("norm_topk_prob", True), fields["num_experts_per_tok"]
        fields["norm_topk_prob"] = original and (release.renormalises_top1 or top_k > 1)
        rule = "for any k" if release.renormalises_top1 else "only when k > 1"
        sources["norm_topk_prob"] = (
            f"the {release.name} router, norm_topk_prob={original}, top-{top_k}: it renormalises {rule}"
        )
    try:
        config = MiniMindConfig(**fields)
    except ValueError as error:
        raise CheckpointError(
            f"inferred config is invalid ({error}); set the head counts explicitly "
            "(--num-attention-heads, --num-key-value-heads) or pass the original --config"
        ) from error

    def value(name):
        return config.rope_parameters["rope_theta"] if name == "rope_theta" else getattr(config, name)

    is_published = published is not None and published.heads == config.num_attention_heads
    return config, {
        "release": release.name,
        "published_model": published.name if is_published else None,
        "settings": {name: {"value": value(name), "from": source} for name, source in sources.items()},
    }


class _Published(NamedTuple):
    release: Release
    name: str
    heads: int


def _published_match(gen: Generation, hidden: int, layers: int, kv_width: int, moe: bool) -> _Published | None:
    """The published model with exactly these shapes (k/v width = kv heads x hidden / heads)."""
    for release in gen.releases:
        for name, (p_hidden, p_layers, heads, kv_heads, p_moe) in release.published.items():
            if (p_hidden, p_layers, kv_heads * p_hidden // heads, p_moe) == (hidden, layers, kv_width, moe):
                return _Published(release, name, heads)
    return None


def _release(
    gen: Generation, published: _Published | None, user: dict, original_config: dict | None
) -> tuple[Release | None, str]:
    """The line of code that wrote the checkpoint (None: cannot tell), and why, if it needed telling."""
    if len(gen.releases) == 1:
        return gen.releases[0], ""
    if published is not None:
        return published.release, f" (the shape of the published {published.name})"
    if "rope_theta" in user:
        theta = float(user["rope_theta"])
        return (MINIMIND_2024 if theta == 1e4 else MINIMIND2_EARLY), f" (RoPE theta {theta:g} given)"
    if original_config is not None:
        return MINIMIND_2024, " (the original config has no rope_theta, as the 2024 LMConfig)"
    return None, ""


# MiniMind spellings the config already understands, plus generation 1's FFN width.
_ALIASES = {**CONFIG_ALIASES, "hidden_dim": "intermediate_size"}
_KNOWN = (set(inspect.signature(MiniMindConfig.__init__).parameters) - {"self", "kwargs"}) | {
    "rope_theta",
    "rope_scaling",
}


def _normalise(values: dict) -> dict:
    """MiniMind spellings -> our field names; keys our config does not have (flash_attn,
    seq_aux, multiple_of, ...) are dropped; settings we cannot honour are refused."""
    if values.get("scoring_func", "softmax") != "softmax":
        raise CheckpointError(f"MoE scoring function {values['scoring_func']!r} is not supported (only softmax)")
    out = {}
    for key, value in values.items():
        key = _ALIASES.get(key, key)
        if key in _KNOWN and value is not None:
            out[key] = value
    if isinstance(out.get("num_shared_experts"), bool):  # generation 1 declares `n_shared_experts: bool`
        out["num_shared_experts"] = int(out["num_shared_experts"])
    return out


def read_original_config(path: str | Path) -> dict:
    """An original MiniMind config.json (LMConfig / MiniMindConfig fields)."""
    try:
        config = json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        raise CheckpointError(f"cannot read the original config {path}: {error}") from error
    if not isinstance(config, dict):
        raise CheckpointError(f"the original config {path} is not a JSON object")
    return config


def has_single_shared_module(state_dict: dict, gen: Generation) -> bool:
    return gen.original_name("model.layers.0.mlp.shared_experts.0.gate_proj.weight", True) in state_dict
