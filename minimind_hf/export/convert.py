"""Original MiniMind language-model checkpoints -> our MiniMind: every tensor renamed (and for
generation 1, q/k rows permuted) into our layout, strictly - all keys accounted for, every
shape right - and saved as a model folder with the tokenizer the checkpoint was trained with
and conversion_info.json (where each setting came from). The layouts and the config they
imply are in `generations.py`; MiniMind-V checkpoints in `convert_vlm.py`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch
from transformers.initialization import no_init_weights

from ..models import MiniMindConfig, MiniMindForCausalLM
from ..tokenizer import load_tokenizer
from ..utils import CONVERSION_INFO_FILE, DTYPES, set_generation_defaults
from .checkpoint import VISION_PROJ_PREFIX, CheckpointError, check_keys, load_state_dict
from .generations import GENERATIONS, detect_generation, has_single_shared_module, infer_config

# Derived buffers some versions saved (RoPE tables, causal mask): recomputed, safe to drop.
DERIVED_BUFFERS = ("pos_cis", "freqs_cos", "freqs_sin", "mask")


def convert_state_dict(state_dict: dict, config: MiniMindConfig, generation: str) -> dict[str, torch.Tensor]:
    """Rename (and for generation 1, permute) every tensor into our layout. Strict: all
    expected keys present, nothing left over, every shape right."""
    gen = GENERATIONS[generation]
    single_shared = has_single_shared_module(state_dict, gen)
    with torch.device("meta"):
        expected = MiniMindForCausalLM(config).state_dict()
    wanted = {gen.original_name(ours, single_shared): ours for ours in expected}
    optional = {gen.original_name("lm_head.weight", single_shared)} if config.tie_word_embeddings else set()
    present = {k for k in state_dict if k.rsplit(".", 1)[-1] not in DERIVED_BUFFERS}
    check_keys(
        present,
        set(wanted),
        optional,
        f"checkpoint keys do not match a {gen.name} MiniMind with this config "
        f"({config.num_hidden_layers} layers, moe={config.use_moe}, {config.num_shared_experts} shared experts)",
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
        write_conversion_info(out, checkpoint, info, tokenizer=str(tokenizer))
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
    print(
        f"note: {info['generation_name']} layout, written by the {info['release']} code"
        + (f", the shape of the published {info['published_model']}" if info["published_model"] else "")
        + "; settings the checkpoint does not hold:"
    )
    for name, setting in info["settings"].items():
        print(f"  {name} = {setting['value']}: {setting['from']}")
    return model, info


def write_conversion_info(out, checkpoint, info: dict, **extra) -> None:
    Path(out, CONVERSION_INFO_FILE).write_text(
        json.dumps({"converted_from": str(checkpoint), **info, **extra}, indent=2) + "\n"
    )


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
        print(
            "warning: saving minimind_hf's shipped tokenizer; its token ids are not MiniMind's, so the converted "
            "model reads and writes other tokens than it was trained on"
        )
        return load_tokenizer()
    try:
        return load_tokenizer(tokenizer)
    except (OSError, ValueError) as error:
        raise CheckpointError(f"cannot load the tokenizer {tokenizer}: {error}") from error
