"""Train the MiniMind byte-level BPE tokenizer.

    python scripts/train_tokenizer.py --output-dir out/tokenizer                  # embedded pydoc corpus
    python scripts/train_tokenizer.py --output-dir out/tokenizer --input a.jsonl b.txt --vocab-size 6400

The shipped default (minimind_hf/assets/tokenizer) is `--output-dir minimind_hf/assets/tokenizer`
with no --input. Besides the tokenizer files, training_info.json records the corpus fingerprint.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import sys
from collections.abc import Iterator
from pathlib import Path

import tokenizers

from minimind_hf.data.corpus import chunk_text, hashed, pretrain_split
from minimind_hf.tokenizer import train_tokenizer

DEFAULT_CORPUS = "pydoc_data.topics, pretrain_split(held_out_fraction=0.05, seed=0) train part"


def read_texts(paths: list[Path]) -> Iterator[str]:
    """Stream documents: one per jsonl record ("text" field); .txt files are cut into blank-line chunks."""
    for path in paths:
        if path.suffix == ".txt":
            yield from chunk_text(path.read_text(encoding="utf-8"))
            continue
        with path.open(encoding="utf-8") as f:
            for line_number, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    text = json.loads(line)["text"]
                except (json.JSONDecodeError, KeyError, TypeError) as error:
                    raise SystemExit(f"{path}:{line_number}: expected a JSON object with a 'text' field ({error!r})")
                if not isinstance(text, str):
                    raise SystemExit(f"{path}:{line_number}: 'text' must be a string, got {type(text).__name__}")
                yield text


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output-dir", required=True, type=Path, help="folder for save_pretrained")
    parser.add_argument("--vocab-size", type=int, default=6400)
    parser.add_argument("--min-frequency", type=int, default=2)
    parser.add_argument("--input", nargs="+", type=Path, help=".jsonl ({'text': ...}) or .txt files; default: pydoc")
    args = parser.parse_args(argv)

    if args.input:
        missing = [str(p) for p in args.input if not p.is_file()]
        if missing:
            parser.error(f"input file(s) not found: {', '.join(missing)}")
        texts, source = read_texts(args.input), [str(p) for p in args.input]
    else:
        texts, source = pretrain_split()[0], DEFAULT_CORPUS

    digest, stats = hashlib.sha256(), {"documents": 0, "characters": 0}

    def counted(stream):
        for text in stream:
            stats["documents"] += 1
            stats["characters"] += len(text)
            yield text

    tokenizer = train_tokenizer(
        counted(hashed(texts, digest)), args.output_dir, vocab_size=args.vocab_size, min_frequency=args.min_frequency
    )
    info = {
        "source": source,
        **stats,
        "sha256": digest.hexdigest(),
        "vocab_size": args.vocab_size,
        "min_frequency": args.min_frequency,
        "python": platform.python_version(),
        "tokenizers": tokenizers.__version__,
    }
    (args.output_dir / "training_info.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    print(f"saved a {len(tokenizer)}-token tokenizer trained on {stats['documents']} documents to {args.output_dir}")


if __name__ == "__main__":
    sys.exit(main())
