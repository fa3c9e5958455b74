"""Import original MiniMind PyTorch checkpoints (`.pth` state dicts) into our MiniMind.

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

MiniMind-V checkpoints are one of those language models plus `vision_proj.*` (the
projector); the original code loaded the vision tower separately and left it out of the
`.pth`, so `convert_vlm_checkpoint` takes the tower's folder and rebuilds the VLM around
it. The projector layouts are an explicit table (`VLM_LAYOUTS`), each with the prompt layout
the original trained on (bare placeholders, no start/end markers):

- "linear" - MiniMind-V (2024) and MiniMind2-V (2025): `vision_proj.vision_proj.0` is one
  Linear(vision hidden -> hidden) applied to every patch feature; MiniMind2-V feeds CLIP
  ViT-B/16's `last_hidden_state` without CLS to 196 plain-text `@` placeholders. The 2024 code
  fed CLIP ViT-B/32's CLS token too, which MiniMind-V cannot: it converts but is not exact (a
  warning says so); its SigLIP option (encoder output, no CLS, 98 `<` + 98 `>` placeholders -
  196 positions, here 196 `@`: the same positions, overwritten by the image either way) is exact.
- "mlp" - minimind-3v (2026): `vision_proj.mlp.{0,1,3}` is LayerNorm, Linear, GELU,
  Linear on SigLIP2 (`siglip2-base-p32-256-ve`: 256 px, 32 px patches) `last_hidden_state`:
  64 `<|image_pad|>` tokens per image, no token merging. SigLIP's `last_hidden_state` has
  the tower's post-LayerNorm applied, so the converted config sets the vision config's
  `tie_last_hidden_states` (the transformers switch that makes `hidden_states[-1]` - what
  MiniMind-V reads - that same tensor).
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
from transformers.initialization import no_init_weights

from .models import MiniMindConfig, MiniMindForCausalLM, MiniMindVForCausalLM, MiniMindVProcessor
from .models.configuration_minimind import _ALIASES as CONFIG_ALIASES
from .utils import CONVERSION_INFO_FILE, DTYPES, set_generation_defaults
from .tokenizer import load_tokenizer

# Wrappers that prefix every key: torch.compile and DistributedDataParallel.
WRAPPER_PREFIXES = ("_orig_mod.", "module.")
# Derived buffers some versions saved (RoPE tables, causal mask): recomputed, safe to drop.
DERIVED_BUFFERS = ("pos_cis", "freqs_cos", "freqs_sin", "mask")


class CheckpointError(ValueError):
    """The checkpoint does not match the layout it is being converted from."""


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
            rest = new + rest[len(old):]
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
_MINIMIND2_MODELS = {"MiniMind2-Small": (512, 8, 8, 2, False), "MiniMind2-MoE": (640, 8, 8, 2, True),
                     "MiniMind2": (768, 16, 8, 2, False)}
MINIMIND_2024 = Release(
    "minimind (2024)",
    dict(rope_theta=1e4, rms_norm_eps=1e-5, num_experts_per_tok=2, router_aux_loss_coef=0.01,
         max_position_embeddings=512),
    {"minimind-v1-small": (512, 8, 16, 8, False), "minimind-v1-moe": (512, 8, 16, 8, True),
     "minimind-v1": (768, 16, 16, 8, False)},
)
MINIMIND2_EARLY = Release(
    "MiniMind2 (Feb-Apr 2025, 2024 key names)",
    dict(rope_theta=1e6, rms_norm_eps=1e-5, num_experts_per_tok=2, router_aux_loss_coef=0.1,
         max_position_embeddings=8192),
    _MINIMIND2_MODELS,
)
MINIMIND2 = Release(
    "MiniMind2 (2025)",
    dict(rope_theta=1e6, rms_norm_eps=1e-5, num_experts_per_tok=2, router_aux_loss_coef=0.1,
         max_position_embeddings=32768),
    _MINIMIND2_MODELS,
)
MINIMIND3 = Release(
    "minimind-3 (2026)",
    dict(rope_theta=1e6, rms_norm_eps=1e-6, num_experts_per_tok=1, router_aux_loss_coef=5e-4,
         max_position_embeddings=32768),
    {"minimind-3": (768, 8, 8, 4, False), "minimind-3-moe": (768, 8, 8, 4, True)},
    renormalises_top1=True,
)

GENERATIONS = {
    "1": Generation("2024 key names (minimind 2024, early MiniMind2)", _gen1_name, (MINIMIND_2024, MINIMIND2_EARLY),
                    adjacent_pair_rope=True),
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


# ----------------------------------------------------------------------------- reading


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a `.pth` (or `.safetensors`) checkpoint, wrapper prefixes removed."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint file {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            # weights_only: a checkpoint is data, never code to run.
            state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as error:  # torch / pickle / safetensors each raise their own kinds
        raise CheckpointError(f"cannot read {path} as a state dict: {error}") from error
    for wrapper in ("model", "state_dict"):  # resume checkpoints: {"model": ..., "optimizer": ...}
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path} does not hold a state dict of tensors")
    return {_strip_wrappers(key): value for key, value in state.items()}


def _strip_wrappers(key: str) -> str:
    stripped = True
    while stripped:
        stripped = False
        for prefix in WRAPPER_PREFIXES:
            if key.startswith(prefix):
                key, stripped = key[len(prefix):], True
    return key


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
    single_shared = _single_shared(state_dict, gen)

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
    shapes = dict(vocab_size=size(embed), hidden_size=size(embed, 1),
                  num_hidden_layers=count("model.layers.{}.input_layernorm.weight"))
    experts = count(prefix + ".mlp.experts.{}.gate_proj.weight")
    if tensor(f"{prefix}.mlp.gate.weight") is not None:  # the MoE router
        if not experts:
            raise CheckpointError("the checkpoint has an MoE router (mlp.gate / feed_forward.gate) but no experts.0.*")
        ffn = size(f"{prefix}.mlp.experts.0.gate_proj.weight")
        shapes.update(use_moe=True, num_experts=experts, intermediate_size=ffn, moe_intermediate_size=ffn,
                      num_shared_experts=count(prefix + ".mlp.shared_experts.{}.gate_proj.weight"))
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
        missing.append(("num_attention_heads", "--num-attention-heads",
                        "the number of query heads: wq / q_proj is hidden x hidden whatever it is"))
    if release is None:
        missing.append(("rope_theta", "--rope-theta",
                        "2024 key names were written with theta 1e4 (minimind 2024) and 1e6 (early MiniMind2)"))
    if missing:
        known = ", ".join(name for r in gen.releases for name in r.published)
        raise CheckpointError(
            f"cannot read {' or '.join(name for name, *_ in missing)} from this checkpoint, and its shape (hidden "
            f"{hidden}, {shapes['num_hidden_layers']} layers, k/v width {kv_width}, moe={shapes['use_moe']}) matches no "
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
        sources["norm_topk_prob"] = (f"the {release.name} router, norm_topk_prob={original}, top-{top_k}: "
                                     f"it renormalises {rule}")
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
    return config, {"release": release.name, "published_model": published.name if is_published else None,
                    "settings": {name: {"value": value(name), "from": source} for name, source in sources.items()}}


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
_KNOWN = (set(inspect.signature(MiniMindConfig.__init__).parameters) - {"self", "kwargs"}) | {"rope_theta", "rope_scaling"}


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


def _single_shared(state_dict: dict, gen: Generation) -> bool:
    return gen.original_name("model.layers.0.mlp.shared_experts.0.gate_proj.weight", True) in state_dict


# ----------------------------------------------------------------------------- conversion


def convert_state_dict(state_dict: dict, config: MiniMindConfig, generation: str) -> dict[str, torch.Tensor]:
    """Rename (and for generation 1, permute) every tensor into our layout. Strict: all
    expected keys present, nothing left over, every shape right."""
    gen = GENERATIONS[generation]
    single_shared = _single_shared(state_dict, gen)
    with torch.device("meta"):
        expected = MiniMindForCausalLM(config).state_dict()
    wanted = {gen.original_name(ours, single_shared): ours for ours in expected}
    optional = {gen.original_name("lm_head.weight", single_shared)} if config.tie_word_embeddings else set()
    present = {k for k in state_dict if k.rsplit(".", 1)[-1] not in DERIVED_BUFFERS}
    missing = sorted(set(wanted) - present - optional, key=_natural)
    unexpected = sorted(present - set(wanted), key=_natural)
    if missing or unexpected:
        raise CheckpointError(
            f"checkpoint keys do not match a {gen.name} MiniMind with this config "
            f"({config.num_hidden_layers} layers, moe={config.use_moe}, {config.num_shared_experts} shared experts):\n"
            f"  missing ({len(missing)}): {', '.join(missing) or '-'}\n"
            f"  unexpected ({len(unexpected)}): {', '.join(unexpected) or '-'}"
        )

    out, wrong_shapes = {}, []
    for theirs, ours in wanted.items():
        if theirs not in state_dict:  # tied output weight stored once
            continue
        tensor = state_dict[theirs].to(torch.float32)
        if tensor.shape != expected[ours].shape:
            wrong_shapes.append(f"{theirs}: {tuple(tensor.shape)}, expected {tuple(expected[ours].shape)}")
            continue
        if gen.adjacent_pair_rope and re.search(r"self_attn\.[qk]_proj\.weight$", ours):
            heads = config.num_attention_heads if ".q_proj." in ours else config.num_key_value_heads
            tensor = adjacent_pairs_to_halves(tensor, heads)
        out[ours] = tensor
    if wrong_shapes:
        raise CheckpointError(
            "tensor shapes do not fit the inferred config (check --num-attention-heads and the other flags):\n  "
            + "\n  ".join(wrong_shapes)
        )
    if config.tie_word_embeddings:
        out["lm_head.weight"] = out["model.embed_tokens.weight"]
    return out


def adjacent_pairs_to_halves(weight: torch.Tensor, num_heads: int) -> torch.Tensor:
    """Reorder each head's output rows from (x0, y0, x1, y1, ...) to (x0, x1, ..., y0, y1, ...).

    Complex RoPE rotates the pair (2i, 2i+1) by angle i; rotate-half RoPE rotates (i, i+d/2).
    Permuting q and k rows the same way inside a head maps one onto the other and leaves
    every q.k dot product unchanged, so the converted model is exact.
    """
    rows, cols = weight.shape
    return weight.reshape(num_heads, rows // num_heads // 2, 2, cols).transpose(1, 2).reshape(rows, cols)


def _natural(key: str):
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", key)]


def convert_checkpoint(
    checkpoint: str | Path,
    out: str | Path | None = None,
    generation: str = "auto",
    original_config: dict | None = None,
    overrides: dict | None = None,
    dtype: str = "float32",
    tokenizer: str | Path | None = None,
) -> MiniMindForCausalLM:
    """Load an original checkpoint as our model; with `out`, also save a normal model
    folder (weights, config, generation config, tokenizer, conversion_info.json). Saving
    needs the `tokenizer` the checkpoint was trained with (or `"shipped"`, knowingly)."""
    tok = load_original_tokenizer(tokenizer) if out is not None else None
    state_dict = load_state_dict(checkpoint)
    if any(key.startswith(VISION_PROJ_PREFIX) for key in state_dict):
        raise CheckpointError(
            f"{checkpoint} is a MiniMind-V checkpoint (it has {VISION_PROJ_PREFIX}* projector weights); convert it "
            "with its vision tower: --vision-tower TOWER_FOLDER (convert_vlm_checkpoint)"
        )
    model, info = convert_language_model(state_dict, generation, original_config, overrides)
    model = model.to(DTYPES[dtype]).eval()
    if out is not None:

        set_generation_defaults(model, tok)
        model.save_pretrained(str(out))
        tok.save_pretrained(str(out))
        _write_conversion_info(out, checkpoint, info, tokenizer=str(tokenizer))
    return model


def convert_language_model(
    state_dict: dict, generation: str = "auto", original_config: dict | None = None, overrides: dict | None = None
) -> tuple[MiniMindForCausalLM, dict]:
    """Our MiniMind (float32) from an original language-model state dict, and a record of the
    conversion (generation, release, where each setting the tensors cannot show came from),
    which is also printed."""
    if generation == "auto":
        generation = detect_generation(state_dict)
    if generation not in GENERATIONS:
        raise CheckpointError(f"unknown generation {generation!r}; choose auto or one of {', '.join(GENERATIONS)}")
    config, record = infer_config(state_dict, generation, original_config, overrides)
    weights = convert_state_dict(state_dict, config, generation)
    with no_init_weights():  # every weight is loaded (strictly) right after: skip the random init
        model = MiniMindForCausalLM(config)
    model.load_state_dict(weights, strict=True)
    model.tie_weights()
    info = {"generation": generation, "generation_name": GENERATIONS[generation].name, **record}
    print(f"note: {info['generation_name']} layout, written by the {info['release']} code"
          + (f", the shape of the published {info['published_model']}" if info["published_model"] else "")
          + "; settings the checkpoint does not hold:")
    for name, setting in info["settings"].items():
        print(f"  {name} = {setting['value']}: {setting['from']}")
    return model, info


def _write_conversion_info(out, checkpoint, info: dict, **extra) -> None:
    Path(out, CONVERSION_INFO_FILE).write_text(json.dumps({"converted_from": str(checkpoint), **info, **extra},
                                                          indent=2) + "\n")


SHIPPED_TOKENIZER = "shipped"


def load_original_tokenizer(tokenizer: str | Path | None):
    """The tokenizer a converted model is saved with. MiniMind's own one is required: this
    project's shipped tokenizer has other token ids, so it is taken only when asked for by name."""
    if tokenizer is None:
        raise CheckpointError(
            "a converted model needs the tokenizer it was trained with: pass --tokenizer FOLDER, the `model/` folder "
            "of your checkout of the original project (github.com/jingyaogong/minimind, or minimind-v for MiniMind-V), "
            "which holds tokenizer.json and tokenizer_config.json. `--tokenizer shipped` saves this project's "
            "tokenizer instead, whose token ids differ: only for a model you will train further on it"
        )
    if str(tokenizer) == SHIPPED_TOKENIZER:
        print("warning: saving minimind_hf's shipped tokenizer; its token ids are not MiniMind's, so the converted "
              "model reads and writes other tokens than it was trained on")
        return load_tokenizer()
    try:
        return load_tokenizer(tokenizer)
    except (OSError, ValueError) as error:
        raise CheckpointError(f"cannot load the tokenizer {tokenizer}: {error}") from error


# ----------------------------------------------------------------------------- MiniMind-V

VISION_PROJ_PREFIX = "vision_proj."
# Resume files ({"model": full state dict, ...}) also hold the frozen tower; its weights come
# from the tower folder instead (the `.pth` files the original saves leave it out).
VISION_ENCODER_PREFIX = "vision_encoder."


@dataclass(frozen=True)
class VLMLayout:
    """One original projector layout and how it maps onto `MiniMindVForCausalLM.projector`."""

    name: str
    projector_type: str  # our MiniMindVConfig.projector_type
    keys: dict[str, str]  # original key -> our key (inside the VLM)
    # The placeholder the original wrote once per image position, bare (no start/end markers);
    # a tokenizer that names its own image token keeps that one (the positions are what count).
    image_token: str
    optional: tuple[str, ...] = ()  # original keys that may be absent (a Linear without bias): zeros
    # The original read the tower's `last_hidden_state`: post-LayerNorm for SigLIP (CLIP's
    # `last_hidden_state` is the encoder output either way).
    features_after_post_layernorm: bool = False


VLM_LAYOUTS = {
    "linear": VLMLayout(
        "MiniMind-V (2024) / MiniMind2-V (2025): VisionProj = Linear on patch features",
        "linear",
        {"vision_proj.vision_proj.0.weight": "projector.layers.0.weight",
         "vision_proj.vision_proj.0.bias": "projector.layers.0.bias"},
        image_token="@",
        optional=("vision_proj.vision_proj.0.bias",),
    ),
    "mlp": VLMLayout(
        "minimind-3v (2026): MMVisionProjector = LayerNorm, Linear, GELU, Linear on SigLIP2 last_hidden_state",
        "mlp",
        {f"vision_proj.mlp.{i}.{p}": f"projector.layers.{i}.{p}" for i in (0, 1, 3) for p in ("weight", "bias")},
        image_token="<|image_pad|>",
        features_after_post_layernorm=True,
    ),
}

# Layouts seen in the wild that MiniMindVForCausalLM cannot reproduce exactly: a key that
# identifies each, and why it is refused rather than approximated.
UNMAPPABLE_VLM_LAYOUTS = {
    "vision_proj.mlp.2.weight": (
        "this is the interim MiniMind-V layout (MMVisionProjector = Linear over 4 consecutive tokens of a "
        "SigLIP2-NaFlex tower concatenated, GELU, Linear; no LayerNorm). It merges 1x4 strips of the patch grid "
        "where MiniMind-V's pixel shuffle merges 2x2 blocks, and its NaFlex tower takes variable-resolution "
        "patches, so no MiniMind-V configuration computes the same thing"
    ),
}


def detect_vlm_layout(projector_state: dict) -> str:
    keys = set(projector_state)
    for name, layout in VLM_LAYOUTS.items():
        if set(layout.keys) - set(layout.optional) <= keys <= set(layout.keys):
            if name == "mlp" and projector_state["vision_proj.mlp.0.weight"].dim() != 1:
                continue  # mlp.0 must be the LayerNorm
            return name
    for key, reason in UNMAPPABLE_VLM_LAYOUTS.items():
        if key in keys:
            raise CheckpointError(f"cannot convert this MiniMind-V projector exactly: {reason}")
    known = "; ".join(f"{name}: {', '.join(layout.keys)}" for name, layout in VLM_LAYOUTS.items())
    raise CheckpointError(f"the projector keys {sorted(keys, key=_natural)} match no known MiniMind-V layout ({known})")


def convert_projector_state(projector_state: dict, layout: VLMLayout, expected: dict) -> dict[str, torch.Tensor]:
    """Original projector tensors -> ours, strictly (`expected`: our projector's state dict)."""
    missing = sorted(set(layout.keys) - set(layout.optional) - set(projector_state), key=_natural)
    unexpected = sorted(set(projector_state) - set(layout.keys), key=_natural)
    if missing or unexpected:
        raise CheckpointError(
            f"projector keys do not match the layout {layout.name!r}:\n"
            f"  missing ({len(missing)}): {', '.join(missing) or '-'}\n"
            f"  unexpected ({len(unexpected)}): {', '.join(unexpected) or '-'}"
        )
    out, wrong_shapes = {}, []
    for theirs, ours in layout.keys.items():
        local = ours.removeprefix("projector.")
        tensor = projector_state.get(theirs)
        if tensor is None:  # an unbiased Linear (LLaVA-1 style): a zero bias computes the same
            tensor = torch.zeros_like(expected[local])
        if tensor.shape != expected[local].shape:
            wrong_shapes.append(f"{theirs}: {tuple(tensor.shape)}, expected {tuple(expected[local].shape)}")
        out[local] = tensor.to(torch.float32)
    if wrong_shapes:
        raise CheckpointError(
            "projector shapes do not fit this language model and vision tower (the projector maps the tower's "
            "hidden size to the language model's; pass the tower the checkpoint was trained with):\n  "
            + "\n  ".join(wrong_shapes)
        )
    return out


def convert_vlm_checkpoint(
    checkpoint: str | Path,
    vision_tower: str | Path,
    out: str | Path | None = None,
    generation: str = "auto",
    layout: str = "auto",
    original_config: dict | None = None,
    overrides: dict | None = None,
    dtype: str = "float32",
    tokenizer: str | Path | None = None,
) -> MiniMindVForCausalLM:
    """An original MiniMind-V `.pth` (language model + `vision_proj.*`) plus the vision tower
    it was trained with (a CLIP / SigLIP folder or hub id) and its tokenizer -> our MiniMind-V,
    prompted with the original's image layout. With `out`, also save a model folder with its
    processor and conversion_info.json."""
    from .vlm import build_vlm

    tok = load_original_tokenizer(tokenizer)
    state_dict = load_state_dict(checkpoint)
    projector_state = {k: v for k, v in state_dict.items() if k.startswith(VISION_PROJ_PREFIX)}
    if not projector_state:
        raise CheckpointError(f"{checkpoint} has no {VISION_PROJ_PREFIX}* weights: not a MiniMind-V checkpoint "
                              "(convert it without a vision tower)")
    tower_keys = [k for k in state_dict if k.startswith(VISION_ENCODER_PREFIX)]
    llm_state = {k: v for k, v in state_dict.items() if not k.startswith((VISION_PROJ_PREFIX, VISION_ENCODER_PREFIX))}
    layout = detect_vlm_layout(projector_state) if layout == "auto" else layout
    if layout not in VLM_LAYOUTS:
        raise CheckpointError(f"unknown MiniMind-V layout {layout!r}; choose auto or one of {', '.join(VLM_LAYOUTS)}")
    spec = VLM_LAYOUTS[layout]

    llm, info = convert_language_model(llm_state, generation, original_config, overrides)
    set_generation_defaults(llm, tok)
    if getattr(tok, "image_token", None) is None:
        # build_vlm reads the placeholder from the tokenizer; MiniMind2's names none (`@` is plain text
        # there). A plain attribute: not a special token, not saved.
        tok.image_token = spec.image_token
    try:
        model, processor = build_vlm(llm, tok, vision_tower_name_or_path=str(vision_tower),
                                     projector_type=spec.projector_type)
    except (OSError, ValueError) as error:
        raise CheckpointError(f"cannot load the vision tower {vision_tower}: {error}") from error
    config = model.config
    _check_placeholder(tok, config.image_token, config.image_token_id, config.image_seq_length, tokenizer)
    processor = MiniMindVProcessor(image_processor=processor.image_processor, tokenizer=tok,
                                   image_seq_length=config.image_seq_length, image_token=config.image_token,
                                   image_block_markers=False)  # the original's bare placeholders
    # The tokenizer's copy too: the server renders with it.
    processor.chat_template = tok.chat_template = _image_parts_template(processor)
    if spec.features_after_post_layernorm:
        config.vision_config.tie_last_hidden_states = True  # hidden_states[-1] := last_hidden_state
    model.projector.load_state_dict(convert_projector_state(projector_state, spec, model.projector.state_dict()),
                                    strict=True)
    if info["release"] == MINIMIND_2024.name and config.vision_config.model_type.startswith("clip"):
        print("warning: MiniMind-V v1 (2024) fed CLIP's CLS token as an image token too (50 placeholders for "
              "ViT-B/32); MiniMind-V drops it, so such a checkpoint does not convert exactly. MiniMind2-V "
              "checkpoints (196 placeholders, CLS dropped) are exact.")
    if tower_keys:
        print(f"note: ignored {len(tower_keys)} {VISION_ENCODER_PREFIX}* tensors (the frozen tower saved in a resume "
              f"file); the tower's weights come from {vision_tower}")
    model = model.to(DTYPES[dtype]).eval()
    if out is not None:
        model.save_pretrained(str(out))
        processor.save_pretrained(str(out))
        prompt = f"{config.image_seq_length} x {config.image_token!r} per image, no start/end markers"
        _write_conversion_info(out, checkpoint, info, tokenizer=str(tokenizer), vlm_layout=layout,
                               vlm_layout_name=spec.name, vision_tower=str(vision_tower), image_prompt=prompt)
    return model


def _check_placeholder(tok, token: str, token_id: int, count: int, tokenizer) -> None:
    """The original's placeholder run must tokenise as `count` copies of one token (no BPE merges)."""
    ids = tok(token * count, add_special_tokens=False)["input_ids"]
    if ids != [token_id] * count:
        raise CheckpointError(
            f"the tokenizer {tokenizer} does not write {count} x {token!r} (the original's image placeholders) as "
            f"{count} copies of one token (it gives {len(ids)} ids, {len(set(ids))} distinct); pass the tokenizer the "
            "checkpoint was trained with"
        )


# Original MiniMind chat templates render string content only (a content list renders as
# nothing). Put in front of such a template, this turns content parts into that string - text
# kept, one `<image>` (the original data's marker) per image part - for the processor to expand.
IMAGE_PARTS_PRELUDE = """{#- minimind-hf: content parts -> one string, an <image> marker per image part -#}
{%- set flat = namespace(messages=[]) -%}
{%- for message in messages -%}
    {%- if message.content is string or message.content is mapping or message.content is not iterable -%}
        {%- set flat.messages = flat.messages + [message] -%}
    {%- else -%}
        {%- set text = namespace(value='') -%}
        {%- for part in message.content -%}
            {%- if part.type in ('image', 'image_url') -%}
                {%- set text.value = text.value + '<image>' -%}
            {%- elif part.text is defined -%}
                {%- set text.value = text.value + part.text -%}
            {%- endif -%}
        {%- endfor -%}
        {%- set flat.messages = flat.messages + [dict(message, content=text.value)] -%}
    {%- endif -%}
{%- endfor -%}
{%- set messages = flat.messages -%}
"""


def _image_parts_template(processor) -> str | None:
    """The tokenizer's chat template, with IMAGE_PARTS_PRELUDE when it does not place images itself."""
    template = processor.chat_template
    if not isinstance(template, str):
        return template
    probe = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "?"}]}]
    try:
        rendered = processor.apply_chat_template(probe, tokenize=False)
    except Exception:  # a template that cannot take a content list at all
        rendered = ""
    if processor.normalize_image_markers(rendered).count(processor.image_token) == 1:
        return template
    return IMAGE_PARTS_PRELUDE + template


__all__ = [
    "CheckpointError",
    "GENERATIONS",
    "IMAGE_PARTS_PRELUDE",
    "Release",
    "UNMAPPABLE_VLM_LAYOUTS",
    "VLMLayout",
    "VLM_LAYOUTS",
    "adjacent_pairs_to_halves",
    "convert_checkpoint",
    "convert_language_model",
    "convert_projector_state",
    "convert_state_dict",
    "convert_vlm_checkpoint",
    "detect_generation",
    "detect_vlm_layout",
    "infer_config",
    "load_original_tokenizer",
    "load_state_dict",
    "read_original_config",
]
