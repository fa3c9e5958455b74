"""Import an original MiniMind checkpoint (.pth) as a minimind-hf model folder.

    python scripts/convert_checkpoint.py full_sft_512.pth out/minimind2-small --tokenizer minimind/model
    python scripts/convert_checkpoint.py pretrain_768.pth out/m --tokenizer minimind/model --config original/config.json
    python scripts/convert_checkpoint.py model.pth out/m --tokenizer minimind/model \
        --num-attention-heads 16 --rope-theta 1e4
    python scripts/convert_checkpoint.py sft_vlm_512.pth out/minimind2-v --tokenizer minimind-v/model \
        --vision-tower minimind-v/model/vision_model/clip-vit-base-patch16
    python scripts/convert_checkpoint.py sft_vlm_768.pth out/minimind-3v --tokenizer minimind-v/model \
        --vision-tower minimind-v/model/siglip2-base-p32-256-ve

The generation is detected from the key names and sizes are read from the tensor shapes.
Settings the tensors cannot show come from the release of the original code that wrote the
checkpoint, the query heads from q_norm or a published model's shape; what stays unknown
stops the conversion with the flag (or --config, the original config.json) that supplies it.
--tokenizer is required: the `model/` folder of the original repository (tokenizer.json +
tokenizer_config.json), or `shipped` for this project's tokenizer (other token ids).
MiniMind-V checkpoints (`vision_proj.*` keys) need the vision tower they were trained with
(--vision-tower: a local folder or hub id); the .pth files do not contain it.
"""

from __future__ import annotations

import argparse

from ..export import (
    GENERATIONS,
    VLM_LAYOUTS,
    CheckpointError,
    convert_checkpoint,
    convert_vlm_checkpoint,
    read_original_config,
)
from ..tokenizer import load_tokenizer
from ..utils import DTYPES, is_vlm

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
    parser.add_argument(
        "--generation", default="auto", choices=["auto", *GENERATIONS], help=f"layout of the checkpoint: {gens}"
    )
    parser.add_argument("--dtype", default="float32", choices=list(DTYPES), help="dtype of the saved weights")
    parser.add_argument("--config", help="the original project's config.json (dim/n_heads/... or hidden_size/...)")
    parser.add_argument(
        "--tokenizer",
        help="the tokenizer the checkpoint was trained with: the original repository's "
        "model/ folder; `shipped` = this project's tokenizer (other token ids)",
    )
    parser.add_argument(
        "--vision-tower",
        metavar="PATH",
        help="MiniMind-V: the CLIP / SigLIP folder (or hub id) the checkpoint was trained with",
    )
    layouts = ", ".join(f"{key} = {layout.name}" for key, layout in VLM_LAYOUTS.items())
    parser.add_argument(
        "--vlm-layout", default="auto", choices=["auto", *VLM_LAYOUTS], help=f"MiniMind-V projector layout: {layouts}"
    )
    for field, kind in OVERRIDE_FLAGS.items():
        parser.add_argument("--" + field.replace("_", "-"), type=kind, dest=field)
    parser.add_argument(
        "--no-norm-topk-prob",
        dest="norm_topk_prob",
        action="store_false",
        default=None,
        help="the original was trained with norm_topk_prob=False (no renormalised top-k weights)",
    )
    parser.add_argument(
        "--inference-rope-scaling",
        action="store_true",
        default=None,
        help="enable MiniMind-3's YaRN context extension at inference",
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    fields = [*OVERRIDE_FLAGS, "norm_topk_prob", "inference_rope_scaling"]
    overrides = {name: getattr(args, name) for name in fields if getattr(args, name) is not None}
    if args.vlm_layout != "auto" and not args.vision_tower:
        parser.error("--vlm-layout only applies with --vision-tower")
    try:  # every expected failure is a CheckpointError: its message, exit code 2, no traceback
        original = read_original_config(args.config) if args.config else None
        if args.vision_tower:
            model = convert_vlm_checkpoint(
                args.checkpoint,
                args.vision_tower,
                args.out,
                args.generation,
                args.vlm_layout,
                original,
                overrides,
                args.dtype,
                args.tokenizer,
            )
        else:
            model = convert_checkpoint(
                args.checkpoint, args.out, args.generation, original, overrides, args.dtype, args.tokenizer
            )
    except CheckpointError as error:
        parser.exit(2, f"conversion failed: {error}\n")
    vlm = is_vlm(model)
    c = model.config.text_config if vlm else model.config
    tokenizer_size = len(load_tokenizer(args.out))
    if tokenizer_size > c.vocab_size:
        print(f"warning: the tokenizer has {tokenizer_size} tokens but the model only {c.vocab_size} embeddings")
    print(
        f"converted {args.checkpoint} -> {args.out}: hidden {c.hidden_size}, {c.num_hidden_layers} layers, "
        f"{c.num_attention_heads}/{c.num_key_value_heads} heads, moe={c.use_moe}, qk_norm={c.qk_norm}"
    )
    if vlm:
        v = model.config
        print(
            f"  MiniMind-V: {v.vision_config.model_type} tower, {v.projector_type} projector, "
            f"{v.image_seq_length} x {v.image_token} per image, no start/end markers (as the original)"
        )


if __name__ == "__main__":
    main()
