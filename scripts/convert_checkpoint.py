#!/usr/bin/env python
"""Import an original MiniMind checkpoint (.pth) as a minimind-hf model folder.

    python scripts/convert_checkpoint.py pretrain_512.pth out/minimind-v1-small          # generation auto-detected
    python scripts/convert_checkpoint.py full_sft_768.pth out/minimind2 --generation 2
    python scripts/convert_checkpoint.py model.pth out/m --config original/config.json --num-attention-heads 16

Sizes are read from the tensor shapes; query heads, RoPE theta, eps and MoE top-k come from
the generation's published defaults unless --config or the flags below say otherwise.
"""

import argparse

from minimind_hf.convert import GENERATIONS, CheckpointError, convert_checkpoint, read_original_config
from minimind_hf.export import DTYPES
from minimind_hf.tokenizer import load_tokenizer

# flag -> MiniMindConfig field (only flags that were given override anything).
OVERRIDE_FLAGS = {
    "num_attention_heads": int,
    "num_key_value_heads": int,
    "head_dim": int,
    "rope_theta": float,
    "rms_norm_eps": float,
    "num_experts_per_tok": int,
    "max_position_embeddings": int,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="original state dict (.pth; .safetensors also accepted)")
    parser.add_argument("out", help="output model folder")
    gens = ", ".join(f"{key} = {gen.name}" for key, gen in GENERATIONS.items())
    parser.add_argument("--generation", default="auto", choices=["auto", *GENERATIONS], help=f"layout of the checkpoint: {gens}")
    parser.add_argument("--dtype", default="float32", choices=list(DTYPES), help="dtype of the saved weights")
    parser.add_argument("--config", help="the original project's config.json (dim/n_heads/... or hidden_size/...)")
    parser.add_argument("--tokenizer", help="tokenizer folder to save with the model (default: the shipped MiniMind tokenizer)")
    for field, kind in OVERRIDE_FLAGS.items():
        parser.add_argument("--" + field.replace("_", "-"), type=kind, dest=field)
    parser.add_argument("--no-norm-topk-prob", dest="norm_topk_prob", action="store_false", default=None,
                        help="do not renormalise the top-k routing weights")
    parser.add_argument("--inference-rope-scaling", action="store_true", default=None,
                        help="enable MiniMind-3's YaRN context extension at inference")
    return parser


def main(argv=None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    fields = [*OVERRIDE_FLAGS, "norm_topk_prob", "inference_rope_scaling"]
    overrides = {name: getattr(args, name) for name in fields if getattr(args, name) is not None}
    original = read_original_config(args.config) if args.config else None
    try:
        model = convert_checkpoint(args.checkpoint, args.out, args.generation, original, overrides, args.dtype, args.tokenizer)
    except CheckpointError as error:
        parser.exit(2, f"conversion failed: {error}\n")
    c = model.config
    tokenizer_size = len(load_tokenizer(args.out))
    if args.tokenizer is None:
        print("note: saved minimind_hf's shipped tokenizer; original MiniMind checkpoints need the tokenizer they were "
              "trained with (pass --tokenizer, e.g. the original repository's model/ folder)")
    if tokenizer_size > c.vocab_size:
        print(f"warning: the tokenizer has {tokenizer_size} tokens but the model only {c.vocab_size} embeddings")
    print(f"converted {args.checkpoint} -> {args.out}: hidden {c.hidden_size}, {c.num_hidden_layers} layers, "
          f"{c.num_attention_heads}/{c.num_key_value_heads} heads, moe={c.use_moe}, qk_norm={c.qk_norm}")


if __name__ == "__main__":
    main()
