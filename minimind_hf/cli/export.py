"""Export a MiniMind folder for use anywhere, optionally pushing it to the Hugging Face Hub.

python scripts/export.py out/sft exports/minimind-sft                      # trust_remote_code folder
python scripts/export.py out/sft exports/minimind-llama --format llama     # plain LlamaForCausalLM
python scripts/export.py out/lora exports/merged --merge-lora [--base out/sft]
python scripts/export.py out/sft exports/x --push-to-hub user/minimind-sft [--private]
python scripts/export.py out/vlm_sft exports/minimind-v                   # MiniMind-V: model + processor
python scripts/export.py out/vlm_sft exports/v-llm --language-model-only --format llama
python scripts/export.py out/sft exports/minimind-gguf --format gguf [--quant q8_0]   # llama.cpp
python scripts/export.py out/sft exports/minimind-ollama --format ollama              # GGUF + Modelfile
"""

from __future__ import annotations

import argparse

from ..export import (
    DTYPES,
    EXPORT_FORMATS,
    GGUF_FORMATS,
    GGUF_QUANTS,
    ExportError,
    GGUFExportError,
    NativeExportError,
    export_model,
    ollama_command,
    push_to_hub,
)
from ..utils import ModelLoadError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "src", help="a save_pretrained MiniMind / MiniMind-V folder (e.g. a training output) or a LoRA adapter folder"
    )
    parser.add_argument("out", help="new (or empty) output folder")
    parser.add_argument(
        "--format",
        default="remote-code",
        choices=EXPORT_FORMATS,
        help="remote-code: our classes + trust_remote_code; llama / qwen3 / qwen3-moe: stock classes; "
        "gguf: one llama.cpp file; ollama: the GGUF + a Modelfile",
    )
    parser.add_argument("--dtype", choices=list(DTYPES), help="dtype of the exported weights (default float32)")
    parser.add_argument("--quant", choices=GGUF_QUANTS, help="GGUF weight type for gguf / ollama (default f16)")
    parser.add_argument("--merge-lora", action="store_true", help="SRC is a LoRA adapter: merge it into its base first")
    parser.add_argument(
        "--base", help="base model folder for --merge-lora (default: the adapter's base_model_name_or_path)"
    )
    parser.add_argument(
        "--language-model-only",
        action="store_true",
        help="SRC is a MiniMind-V: export only its language model (any format; no vision, no processor)",
    )
    parser.add_argument(
        "--push-to-hub", metavar="REPO", help="then upload the folder to this Hub model repo (user/name)"
    )
    parser.add_argument("--private", action="store_true", help="create the Hub repo as private")
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.private and not args.push_to_hub:
        parser.error("--private only applies with --push-to-hub")
    gguf = args.format in GGUF_FORMATS
    if args.quant and not gguf:
        parser.error("--quant applies to --format gguf / ollama (use --dtype for the other formats)")
    if args.dtype and gguf:
        parser.error("--dtype applies to transformers folders; a GGUF export takes --quant")
    try:
        out = export_model(
            args.src,
            args.out,
            fmt=args.format,
            dtype=args.dtype or "float32",
            merge_lora=args.merge_lora,
            base=args.base,
            repo_id=args.push_to_hub,
            language_model_only=args.language_model_only,
            quant=args.quant or "f16",
        )
    except (ExportError, NativeExportError, GGUFExportError, ModelLoadError) as error:
        parser.exit(2, f"export failed: {error}\n")
    weights = (args.quant or "f16") if gguf else (args.dtype or "float32")
    print(f"exported {args.src} -> {out} ({args.format}, {weights})")
    if args.format == "ollama":
        print(f"run it: {ollama_command(out)}")
    if args.push_to_hub:
        url = push_to_hub(out, args.push_to_hub, private=args.private)
        print(f"pushed to {url}")


if __name__ == "__main__":
    main()
