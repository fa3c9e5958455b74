"""Perplexity and bits per byte of documents, with an overlapping sliding window.

Each document is scored on its own, with the tokenizer's bos token (eos when it has none)
prepended, so every text token is predicted; documents longer than `max_length` are scored
with an overlapping sliding window in which only the tokens not seen by the previous window
are counted (the HF perplexity guide).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from .scoring import pad_id, tail_logprobs

DEFAULT_MAX_LENGTH_CAP = 2048  # default perplexity window at most (memory); also the context when a config has none


@dataclass
class PerplexityResult:
    documents: int
    tokens: int  # scored tokens: all text tokens, not the prepended bos
    bytes: int  # UTF-8 bytes of the documents
    nll: float  # summed negative log-likelihood, nats
    max_length: int
    stride: int

    @property
    def ppl(self) -> float:
        return math.exp(self.nll / self.tokens) if self.tokens else float("nan")

    @property
    def bpb(self) -> float:
        # Bits per byte does not depend on the tokenizer, so models with different vocabularies compare.
        return self.nll / math.log(2) / self.bytes if self.bytes else float("nan")

    def to_dict(self) -> dict:
        return {
            **asdict(self),
            "nll_per_token": self.nll / self.tokens if self.tokens else float("nan"),
            "ppl": self.ppl,
            "bpb": self.bpb,
        }


def read_documents(source: str | Path) -> list[str]:
    """`pydoc` (the embedded held-out split), a .txt file (one document) or a pretrain data file
    (.jsonl / .json / .parquet / .csv with a "text" field, read and checked by `data.sources`)."""
    if str(source) == "pydoc":
        from ..data.embedded.corpus import pretrain_split

        return pretrain_split()[1]
    path = Path(source)
    if path.suffix == ".txt":
        return [path.read_text(encoding="utf-8")]
    from ..data.sources import iter_records

    return [record["text"] for record in iter_records(str(path), "pretrain")]


def window_spans(n_tokens: int, max_length: int, stride: int) -> list[tuple[int, int, int]]:
    """(begin, end, first_target) windows covering targets 1..n-1, each target scored exactly once.

    A window is tokens[begin:end] (at most max_length) and scores targets first_target..end-1.
    The first window scores all it can; each next one moves its end by `stride` and scores only
    those new tokens, so every later target sees at least max_length - stride tokens of context.
    Unlike the HF guide's loop the last window is full length too (more context, same count).
    """
    if not 0 < stride < max_length:
        raise ValueError(
            f"stride must be in 1..max_length-1 (a window's first token is context only), "
            f"got stride={stride}, max_length={max_length}"
        )
    end = min(max_length, n_tokens)
    spans = [(0, end, 1)] if end > 1 else []  # position 0 is the bos: context, never a target
    while end < n_tokens:
        new_end = min(end + stride, n_tokens)
        spans.append((new_end - max_length, new_end, end))
        end = new_end
    return spans


def model_context(model) -> int:
    """The model's context length (lm-eval's default too), 2048 when the config does not say."""
    return getattr(model.config, "max_position_embeddings", None) or DEFAULT_MAX_LENGTH_CAP


def perplexity(
    model,
    tokenizer,
    documents: Sequence[str],
    max_length: int | None = None,
    stride: int | None = None,
    batch_size: int = 8,
) -> PerplexityResult:
    # Windows are full length on every long document, so the default caps memory at 2048 tokens.
    max_length = max_length or min(model_context(model), DEFAULT_MAX_LENGTH_CAP)
    stride = stride or max(1, max_length // 2)
    prefix = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    if prefix is None:
        raise ValueError("the tokenizer has neither a bos nor an eos token to start a document with")
    windows, n_scored = [], []  # a window scores its last end - first_target tokens
    for text in documents:
        ids = [prefix, *tokenizer(text, add_special_tokens=False)["input_ids"]]
        for begin, end, first_target in window_spans(len(ids), max_length, stride):
            windows.append(ids[begin:end])
            n_scored.append(end - first_target)
    logprobs = tail_logprobs(model, windows, n_scored, pad_id(tokenizer), batch_size)
    nll = -sum(float(lp.double().sum()) for lp in logprobs)
    tokens = sum(n_scored)
    n_bytes = sum(len(text.encode("utf-8")) for text in documents)
    return PerplexityResult(len(documents), tokens, n_bytes, nll, max_length, stride)


def evaluate_perplexity(
    model,
    tokenizer,
    data: str | Path = "pydoc",
    limit: int | None = None,
    max_length: int | None = None,
    stride: int | None = None,
    batch_size: int = 8,
) -> dict:
    """Perplexity / bits per byte of the first `limit` documents of `data` (see :func:`read_documents`)."""
    result = perplexity(model, tokenizer, read_documents(data)[:limit], max_length, stride, batch_size)
    return {"data": str(data), **result.to_dict()}
