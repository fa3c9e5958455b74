"""Log-probabilities a model assigns to given tokens: the base of perplexity and multiple choice."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def model_device(model) -> torch.device:
    """Where the model's inputs go: its `device` (transformers models, test doubles), else its first parameter's."""
    device = getattr(model, "device", None)
    return device if device is not None else next(model.parameters()).device


def pad_id(tokenizer) -> int:
    for token_id in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if token_id is not None:
            return token_id
    return 0


@torch.no_grad()
def tail_logprobs(
    model, sequences: Sequence[Sequence[int]], n_tail: Sequence[int], pad_id: int = 0, batch_size: int = 8
) -> list[torch.Tensor]:
    """For each sequence, log p(token[t] | tokens[:t]) of its last `n_tail` tokens (float32, on CPU).

    Perplexity windows and answer continuations are both scored at the end of a sequence.
    Sequences are batched by length and right-padded: with causal attention, padding after a
    sequence cannot change the logits of the tokens before it.
    """
    order = sorted(range(len(sequences)), key=lambda i: -len(sequences[i]))
    results: list[torch.Tensor | None] = [None] * len(sequences)
    device = model_device(model)
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        width = len(sequences[chunk[0]])
        input_ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, i in enumerate(chunk):
            input_ids[row, : len(sequences[i])] = torch.tensor(sequences[i], dtype=torch.long)
            attention_mask[row, : len(sequences[i])] = 1
        logits = model(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device)).logits
        for row, i in enumerate(chunk):
            n, k = len(sequences[i]), n_tail[i]
            if not 0 <= k < n:
                raise ValueError(f"cannot score the last {k} tokens of a {n}-token sequence (the first is context)")
            targets = input_ids[row, n - k : n].to(logits.device)
            # cross_entropy = -log_softmax at the target; only the scored rows (large vocabularies).
            results[i] = -F.cross_entropy(logits[row, n - k - 1 : n - 1].float(), targets, reduction="none").cpu()
    return results  # type: ignore[return-value]
