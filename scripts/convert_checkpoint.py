#!/usr/bin/env python
"""Import an original MiniMind checkpoint (.pth) as a minimind-hf model folder.

    python scripts/convert_checkpoint.py pretrain_512.pth out/minimind-v1-small          # generation auto-detected
    python scripts/convert_checkpoint.py full_sft_768.pth out/minimind2 --generation 2
    python scripts/convert_checkpoint.py model.pth out/m --config original/config.json --num-attention-heads 16
    python scripts/convert_checkpoint.py sft_vlm_512.pth out/minimind2-v --vision-tower clip-vit-base-patch16
    python scripts/convert_checkpoint.py sft_vlm_768.pth out/minimind-3v --vision-tower siglip2-base-p32-256-ve

Sizes are read from the tensor shapes; query heads, RoPE theta, eps and MoE top-k come from
the generation's published defaults unless --config or the flags below say otherwise.
MiniMind-V checkpoints (`vision_proj.*` keys) need the vision tower they were trained with
(--vision-tower: a local folder or hub id); the .pth files do not contain it.
"""

import argparse

from minimind_hf.convert import (
    GENERATIONS,
    VLM_LAYOUTS,
    CheckpointError,
    convert_checkpoint,
    convert_vlm_checkpoint,
    read_original_config,
)
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
    parser.add_argument("--vision-tower", metavar="PATH",
                        help="MiniMind-V: the CLIP / SigLIP folder (or hub id) the checkpoint was trained with")
    layouts = ", ".join(f"{key} = {layout.name}" for key, layout in VLM_LAYOUTS.items())
    parser.add_argument("--vlm-layout", default="auto", choices=["auto", *VLM_LAYOUTS],
                        help=f"MiniMind-V projector layout: {layouts}")
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
    if args.vlm_layout != "auto" and not args.vision_tower:
        parser.error("--vlm-layout only applies with --vision-tower")
    try:
        if args.vision_tower:
            model = convert_vlm_checkpoint(args.checkpoint, args.vision_tower, args.out, args.generation, args.vlm_layout,
                                           original, overrides, args.dtype, args.tokenizer)
        else:
            model = convert_checkpoint(args.checkpoint, args.out, args.generation, original, overrides, args.dtype,
                                       args.tokenizer)
    except CheckpointError as error:
        parser.exit(2, f"conversion failed: {error}\n")
    vlm = model.config.model_type == "minimind-v"
    c = model.config.text_config if vlm else model.config
    tokenizer_size = len(load_tokenizer(args.out))
    if args.tokenizer is None:
        print("note: saved minimind_hf's shipped tokenizer; original MiniMind checkpoints need the tokenizer they were "
              "trained with (pass --tokenizer, e.g. the original repository's model/ folder)")
    if tokenizer_size > c.vocab_size:
        print(f"warning: the tokenizer has {tokenizer_size} tokens but the model only {c.vocab_size} embeddings")
    print(f"converted {args.checkpoint} -> {args.out}: hidden {c.hidden_size}, {c.num_hidden_layers} layers, "
          f"{c.num_attention_heads}/{c.num_key_value_heads} heads, moe={c.use_moe}, qk_norm={c.qk_norm}")
    if vlm:
        v = model.config
        print(f"  MiniMind-V: {v.vision_config.model_type} tower, {v.projector_type} projector, "
              f"{v.image_seq_length} x {v.image_token} per image")


if __name__ == "__main__":
    main()
