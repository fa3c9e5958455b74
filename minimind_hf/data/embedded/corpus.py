"""Embedded pretraining corpus: the standard library's bundled documentation.

`pydoc_data.topics` ships with every CPython install (about 465 KB of English prose
and code samples), so the quickstart can pretrain and train a tokenizer with no network.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Iterable, Iterator

MAX_DOCUMENT_CHARS = 2000


def _join_greedily(pieces: list[str], separator: str, max_chars: int) -> list[str]:
    """Join consecutive pieces with `separator` while a chunk stays <= max_chars (a piece that is
    longer on its own becomes its own chunk)."""
    chunks, current = [], ""
    for piece in pieces:
        candidate = f"{current}{separator}{piece}" if current else piece
        if current and len(candidate) > max_chars:
            chunks.append(current)
            current = piece
        else:
            current = candidate
    return chunks + ([current] if current else [])


def _split_long(paragraph: str, max_chars: int) -> list[str]:
    """An oversized paragraph (a long grammar or table) is cut between lines instead."""
    if len(paragraph) <= max_chars:
        return [paragraph]
    return _join_greedily(paragraph.split("\n"), "\n", max_chars)


def chunk_text(text: str, max_chars: int = MAX_DOCUMENT_CHARS) -> list[str]:
    """Split on blank lines into chunks of at most ~max_chars (a single longer line stays whole)."""
    paragraphs = []
    for paragraph in re.split(r"\n[ \t]*\n", text.strip()):
        paragraph = paragraph.strip("\n")
        if paragraph.strip():
            paragraphs.extend(_split_long(paragraph, max_chars))
    return [chunk.strip() for chunk in _join_greedily(paragraphs, "\n\n", max_chars) if chunk.strip()]


def pydoc_documents(max_chars: int = MAX_DOCUMENT_CHARS) -> list[str]:
    """One or more documents per pydoc topic, in sorted-topic order so the list is deterministic."""
    from pydoc_data.topics import topics

    documents = []
    for key in sorted(topics):
        documents.extend(chunk_text(topics[key], max_chars))
    return documents


def pretrain_split(held_out_fraction: float = 0.05, seed: int = 0) -> tuple[list[str], list[str]]:
    """(train, held_out) documents: a seeded, disjoint split that keeps the original order in each part."""
    if not 0.0 <= held_out_fraction < 1.0:
        raise ValueError(f"held_out_fraction must be in [0, 1), got {held_out_fraction}")
    documents = pydoc_documents()
    n_held_out = round(len(documents) * held_out_fraction)
    held_out_ids = set(random.Random(seed).sample(range(len(documents)), n_held_out))
    train = [doc for i, doc in enumerate(documents) if i not in held_out_ids]
    held_out = [doc for i, doc in enumerate(documents) if i in held_out_ids]
    return train, held_out


def hashed(texts: Iterable[str], digest) -> Iterator[str]:
    """Yield `texts` unchanged while feeding them to `digest`: a corpus fingerprint in the same pass."""
    for text in texts:
        digest.update(text.encode("utf-8") + b"\0")
        yield text


def fingerprint(texts: Iterable[str]) -> str:
    """sha256 of a list of documents; tells whether two corpora (e.g. across Python versions) are equal."""
    digest = hashlib.sha256()
    for _ in hashed(texts, digest):
        pass
    return digest.hexdigest()
