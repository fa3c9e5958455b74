#!/usr/bin/env python
"""Export a MiniMind folder for use anywhere, optionally pushing it to the Hugging Face Hub.

    python scripts/export.py out/sft exports/minimind-sft                      # trust_remote_code folder
    python scripts/export.py out/sft exports/minimind-llama --format llama     # plain LlamaForCausalLM
    python scripts/export.py out/lora exports/merged --merge-lora [--base out/sft]
    python scripts/export.py out/sft exports/x --push-to-hub user/minimind-sft [--private]
    python scripts/export.py out/vlm_sft exports/minimind-v                   # MiniMind-V: model + processor
    python scripts/export.py out/vlm_sft exports/v-llm --language-model-only --format llama
"""

import argparse

from minimind_hf.export import DTYPES, EXPORT_FORMATS, ExportError, NativeExportError, export_model, push_to_hub
from minimind_hf.utils import ModelLoadError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("src", help="a save_pretrained MiniMind / MiniMind-V folder (e.g. a training output) or a LoRA "
                                    "adapter folder")
    parser.add_argument("out", help="new (or empty) output folder")
    parser.add_argument("--format", default="remote-code", choices=EXPORT_FORMATS,
                        help="remote-code: our classes + trust_remote_code; llama / qwen3 / qwen3-moe: stock classes")
    parser.add_argument("--dtype", default="float32", choices=list(DTYPES), help="dtype of the exported weights")
    parser.add_argument("--merge-lora", action="store_true", help="SRC is a LoRA adapter: merge it into its base first")
    parser.add_argument("--base", help="base model folder for --merge-lora (default: the adapter's base_model_name_or_path)")
    parser.add_argument("--language-model-only", action="store_true",
                        help="SRC is a MiniMind-V: export only its language model (any format; no vision, no processor)")
    parser.add_argument("--push-to-hub", metavar="REPO", help="then upload the folder to this Hub model repo (user/name)")
    parser.add_argument("--private", action="store_true", help="create the Hub repo as private")
    return parser


def main(argv=None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.private and not args.push_to_hub:
        parser.error("--private only applies with --push-to-hub")
    try:
        out = export_model(args.src, args.out, fmt=args.format, dtype=args.dtype, merge_lora=args.merge_lora,
                           base=args.base, repo_id=args.push_to_hub, language_model_only=args.language_model_only)
    except (ExportError, NativeExportError, ModelLoadError) as error:
        parser.exit(2, f"export failed: {error}\n")
    print(f"exported {args.src} -> {out} ({args.format}, {args.dtype})")
    if args.push_to_hub:
        url = push_to_hub(out, args.push_to_hub, private=args.private)
        print(f"pushed to {url}")


if __name__ == "__main__":
    main()
