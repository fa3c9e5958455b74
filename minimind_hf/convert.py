"""Import original MiniMind PyTorch checkpoints (`.pth` state dicts) into our MiniMind.

Three generations of the original project are in circulation:

- generation 1 (2024, "minimind-v1"): `tok_embeddings`, `layers.N.attention.w{q,k,v,o}`,
  `layers.N.feed_forward.w{1,2,3}` (w1 gate, w2 down, w3 up), `attention_norm`, `ffn_norm`,
  `norm`, `output`; MoE as `feed_forward.gate` + `feed_forward.experts.E.w*` + ONE
  `feed_forward.shared_experts.w*`. Its RoPE rotates ADJACENT pairs (complex form), ours
  rotates halves, so q/k rows are permuted per head - exact, no fine-tuning needed.
  Defaults: theta 1e4, eps 1e-5, 16 query heads, top-2 routing, 512 positions.
- MiniMind2 (2025): already our (Llama) names; theta 1e6, eps 1e-5, 8 query heads, top-2
  routing, shared experts as a list (`shared_experts.S.*`) or a single module.
- minimind-3 (2026): Qwen3 names with `q_norm` / `k_norm` (head size read from them),
  eps 1e-6, MoE top-1.

Sizes (hidden, layers, FFN, kv heads, experts, tied embeddings) are read from the tensor
shapes; what shapes cannot tell (query heads, RoPE theta, eps, top-k, ...) comes from the
generation's published defaults, an original config file, or explicit overrides, in that
order of increasing priority. Every key must be accounted for: missing or unexpected keys
are an error that lists them, never a silent `strict=False`.

MiniMind-V checkpoints are one of those language models plus `vision_proj.*` (the
projector); the original code loaded the vision tower separately and left it out of the
`.pth`, so `convert_vlm_checkpoint` takes the tower's folder and rebuilds the VLM around
it. The projector layouts are an explicit table (`VLM_LAYOUTS`):

- "linear" - MiniMind-V (2024) and MiniMind2-V (2025): `vision_proj.vision_proj.0` is one
  Linear(vision hidden -> hidden) applied to every patch feature; MiniMind2-V feeds CLIP
  ViT-B/16's `last_hidden_state` without CLS (196 tokens per image). Early-2025 MiniMind2-V
  kept the 2024 key names with MiniMind2 settings (pass 8 heads / theta 1e6 as overrides).
  The 2024 code fed CLIP ViT-B/32's CLS token too, which MiniMind-V cannot: it converts but
  is not exact (a warning says so); its SigLIP option (encoder output, no CLS) is exact.
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

import torch

from .models import MiniMindConfig, MiniMindForCausalLM, MiniMindVForCausalLM
from .models.configuration_minimind import _ALIASES as CONFIG_ALIASES
from .export import CONVERSION_INFO_FILE, DTYPES
from .tokenizer import load_tokenizer

# Wrappers that prefix every key: torch.compile and DistributedDataParallel.
WRAPPER_PREFIXES = ("_orig_mod.", "module.")
# Derived buffers some versions saved (RoPE tables, causal mask): recomputed, safe to drop.
DERIVED_BUFFERS = ("pos_cis", "freqs_cos", "freqs_sin", "mask")


class CheckpointError(ValueError):
    """The checkpoint does not match the layout it is being converted from."""


@dataclass(frozen=True)
class Generation:
    name: str
    defaults: dict  # MiniMindConfig fields the tensors cannot reveal
    original_name: Callable[[str, bool], str]  # (our key, single shared expert module?) -> its key
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


GENERATIONS = {
    "1": Generation(
        "minimind (2024)",
        dict(num_attention_heads=16, rope_theta=1e4, rms_norm_eps=1e-5, num_experts_per_tok=2, max_position_embeddings=512),
        _gen1_name,
        adjacent_pair_rope=True,
    ),
    "2": Generation(
        "MiniMind2 (2025)",
        dict(num_attention_heads=8, rope_theta=1e6, rms_norm_eps=1e-5, num_experts_per_tok=2, max_position_embeddings=32768),
        _llama_name,
    ),
    "3": Generation(
        "minimind-3 (2026)",
        dict(num_attention_heads=8, rope_theta=1e6, rms_norm_eps=1e-6, num_experts_per_tok=1, max_position_embeddings=32768),
        _llama_name,
    ),
}


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
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        # weights_only: a checkpoint is data, never code to run.
        state = torch.load(str(path), map_location="cpu", weights_only=True)
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
) -> MiniMindConfig:
    """Config from tensor shapes, over the generation's defaults and an `original_config`
    (the original project's config.json, MiniMind spellings welcome). Explicit `overrides`
    (command-line flags) win over everything, shapes included."""
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

    settings = {**gen.defaults, **_normalise(original_config or {})}
    overrides = _normalise(overrides or {})
    embed = "model.embed_tokens.weight"
    shapes = dict(vocab_size=size(embed), hidden_size=size(embed, 1))
    shapes["num_hidden_layers"] = count("model.layers.{}.input_layernorm.weight")
    prefix = "model.layers.0"
    q_norm = tensor(f"{prefix}.self_attn.q_norm.weight")
    shapes["qk_norm"] = q_norm is not None
    # Query heads are invisible in the shapes unless q_norm reveals the head size.
    head_dim = q_norm.shape[0] if q_norm is not None else None
    if head_dim is not None:
        shapes["num_attention_heads"] = size(f"{prefix}.self_attn.q_proj.weight") // head_dim
    else:
        head_dim = shapes["hidden_size"] // {**settings, **overrides}["num_attention_heads"]
    shapes["head_dim"] = head_dim
    shapes["num_key_value_heads"] = size(f"{prefix}.self_attn.k_proj.weight") // head_dim

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

    # Explicit overrides win even over shapes: a wrong one then fails the shape check, loudly.
    fields = {**settings, **shapes, **overrides}
    try:
        return MiniMindConfig(**fields)
    except ValueError as error:
        raise CheckpointError(
            f"inferred config is invalid ({error}); set the head counts explicitly "
            "(--num-attention-heads, --num-key-value-heads) or pass the original --config"
        ) from error


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
    """An original MiniMind config.json (LMConfig / MiniMindConfig fields), as overrides."""
    return json.loads(Path(path).read_text())


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
    folder (weights, config, generation config, tokenizer, conversion_info.json)."""
    state_dict = load_state_dict(checkpoint)
    if any(key.startswith(VISION_PROJ_PREFIX) for key in state_dict):
        raise CheckpointError(
            f"{checkpoint} is a MiniMind-V checkpoint (it has {VISION_PROJ_PREFIX}* projector weights); convert it "
            "with its vision tower: --vision-tower TOWER_FOLDER (convert_vlm_checkpoint)"
        )
    model, generation = convert_language_model(state_dict, generation, original_config, overrides)
    model = model.to(DTYPES[dtype]).eval()
    if out is not None:
        from .training.common import set_generation_defaults  # the same stop/pad tokens training sets

        tok = load_tokenizer(tokenizer)
        set_generation_defaults(model, tok)
        model.save_pretrained(str(out))
        tok.save_pretrained(str(out))
        _write_conversion_info(out, checkpoint, generation)
    return model


def convert_language_model(
    state_dict: dict, generation: str = "auto", original_config: dict | None = None, overrides: dict | None = None
) -> tuple[MiniMindForCausalLM, str]:
    """Our MiniMind (float32) from an original language-model state dict, and its generation."""
    if generation == "auto":
        generation = detect_generation(state_dict)
    if generation not in GENERATIONS:
        raise CheckpointError(f"unknown generation {generation!r}; choose auto or one of {', '.join(GENERATIONS)}")
    config = infer_config(state_dict, generation, original_config, overrides)
    model = MiniMindForCausalLM(config)
    model.load_state_dict(convert_state_dict(state_dict, config, generation), strict=True)
    return model, generation


def _write_conversion_info(out, checkpoint, generation: str, **extra) -> None:
    info = {"converted_from": str(checkpoint), "generation": generation, "generation_name": GENERATIONS[generation].name}
    Path(out, CONVERSION_INFO_FILE).write_text(json.dumps({**info, **extra}, indent=2) + "\n")


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
        optional=("vision_proj.vision_proj.0.bias",),
    ),
    "mlp": VLMLayout(
        "minimind-3v (2026): MMVisionProjector = LayerNorm, Linear, GELU, Linear on SigLIP2 last_hidden_state",
        "mlp",
        {f"vision_proj.mlp.{i}.{p}": f"projector.layers.{i}.{p}" for i in (0, 1, 3) for p in ("weight", "bias")},
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
    it was trained with (a CLIP / SigLIP folder or hub id) -> our MiniMind-V. With `out`,
    also save a model folder with its processor and conversion_info.json."""
    from .training.common import set_generation_defaults
    from .vlm import build_vlm

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

    llm, generation = convert_language_model(llm_state, generation, original_config, overrides)
    tok = load_tokenizer(tokenizer)
    if getattr(tok, "image_token", None) is None:
        raise CheckpointError(
            f"the tokenizer {tokenizer or '(shipped)'} declares no image token (`image_token`, e.g. <|image_pad|>); "
            "MiniMind-V needs one for its placeholders"
        )
    set_generation_defaults(llm, tok)
    try:
        model, processor = build_vlm(llm, tok, vision_tower_name_or_path=str(vision_tower),
                                     projector_type=spec.projector_type)
    except (OSError, ValueError) as error:
        raise CheckpointError(f"cannot load the vision tower {vision_tower}: {error}") from error
    if spec.features_after_post_layernorm:
        model.config.vision_config.tie_last_hidden_states = True  # hidden_states[-1] := last_hidden_state
    model.projector.load_state_dict(convert_projector_state(projector_state, spec, model.projector.state_dict()),
                                    strict=True)
    if generation == "1" and model.config.vision_config.model_type.startswith("clip"):
        print("warning: MiniMind-V v1 (2024) fed CLIP's CLS token as an image token too (50 placeholders for "
              "ViT-B/32); MiniMind-V drops it, so such a checkpoint does not convert exactly. MiniMind2-V "
              "checkpoints with 2024 key names (196 placeholders, CLS dropped) are exact.")
    if tower_keys:
        print(f"note: ignored {len(tower_keys)} {VISION_ENCODER_PREFIX}* tensors (the frozen tower saved in a resume "
              f"file); the tower's weights come from {vision_tower}")
    model = model.to(DTYPES[dtype]).eval()
    if out is not None:
        model.save_pretrained(str(out))
        processor.save_pretrained(str(out))
        _write_conversion_info(out, checkpoint, generation, vlm_layout=layout, vlm_layout_name=spec.name,
                               vision_tower=str(vision_tower))
    return model


__all__ = [
    "CheckpointError",
    "GENERATIONS",
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
    "load_state_dict",
    "read_original_config",
]
