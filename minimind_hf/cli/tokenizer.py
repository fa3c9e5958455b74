"""Train the MiniMind byte-level BPE tokenizer.

    minimind-tokenizer --output-dir out/tokenizer                  # embedded pydoc corpus
    minimind-tokenizer --output-dir out/tokenizer --input a.jsonl b.txt --vocab-size 6400

The shipped default (minimind_hf/assets/tokenizer) is `--output-dir minimind_hf/assets/tokenizer`
with no --input. Besides the tokenizer files, training_info.json records the corpus fingerprint.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
from collections.abc import Iterator
from pathlib import Path

import tokenizers

from ..data.embedded.corpus import chunk_text, hashed, pretrain_split
from ..data.report import DataError
from ..data.sources import iter_records
from ..tokenizer import train_tokenizer

DEFAULT_CORPUS = "pydoc_data.topics, pretrain_split(held_out_fraction=0.05, seed=0) train part"


def read_texts(paths: list[Path]) -> Iterator[str]:
    """Stream documents: .txt files cut into blank-line chunks; any pretrain data file (.jsonl, .json,
    .parquet, .csv with a "text" field) record by record, checked by `data.sources`."""
    for path in paths:
        if path.suffix == ".txt":
            yield from chunk_text(path.read_text(encoding="utf-8"))
        else:
            yield from (record["text"] for record in iter_records(str(path), "pretrain"))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output-dir", required=True, type=Path, help="folder for save_pretrained")
    parser.add_argument("--vocab-size", type=int, default=6400)
    parser.add_argument("--min-frequency", type=int, default=2)
    parser.add_argument(
        "--input", nargs="+", type=Path, help=".txt files or pretrain data files ({'text': ...}); default: pydoc"
    )
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

    try:
        tokenizer = train_tokenizer(
            counted(hashed(texts, digest)),
            args.output_dir,
            vocab_size=args.vocab_size,
            min_frequency=args.min_frequency,
        )
    except DataError as error:  # a bad record: FILE:LINE and what is wrong, no traceback
        raise SystemExit(f"error: {error}") from None
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
    main()
