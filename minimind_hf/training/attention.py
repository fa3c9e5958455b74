"""Document attention for packed rows: each packed document attends only to itself.

A packed row holds several documents whose ``position_ids`` restart at 0 (see
:class:`~minimind_hf.data.text.CausalLMCollator`). transformers' ``sdpa`` masks that row with a
block-diagonal causal mask but still computes the full row x row score matrix - the
cross-document blocks are computed and thrown away, so attention cost grows with the row
length instead of the document length. ``document_sdpa`` runs SDPA once per document (causal,
no mask), which skips those blocks on any device, including the CPU (where FlexAttention has no
backward pass and flash-attention does not exist). Outputs equal ``sdpa``'s within float
rounding; anything that is not a packed, unpadded, cache-free row falls back to plain ``sdpa``.

``import minimind_hf.training.attention`` registers the name with transformers' attention and
mask interfaces; a model then opts in with ``set_attn_implementation("document_sdpa")``.
"""

from __future__ import annotations

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

DOCUMENT_SDPA = "document_sdpa"


def document_boundaries(position_ids: torch.Tensor) -> list[list[int]]:
    """Per row, the start of every document plus the row end: a document starts where its
    position id is 0 (the first position always starts one)."""
    starts = position_ids == 0
    starts[:, 0] = True
    width = position_ids.shape[1]
    return [row.nonzero().flatten().tolist() + [width] for row in starts]


def document_sdpa_forward(module, query, key, value, attention_mask, dropout=0.0, scaling=None, **kwargs):
    position_ids = kwargs.get("position_ids")
    packed_row = attention_mask is None and position_ids is not None and query.shape[2] == key.shape[2]
    if not packed_row or position_ids.shape != query.shape[:1] + query.shape[2:3]:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout, scaling, **kwargs)
    kwargs.pop("is_causal", None)
    rows = []
    for row, bounds in enumerate(document_boundaries(position_ids)):
        pieces = [
            sdpa_attention_forward(
                module,
                query[row : row + 1, :, start:end],
                key[row : row + 1, :, start:end],
                value[row : row + 1, :, start:end],
                None,
                dropout,
                scaling,
                is_causal=True,
                **kwargs,
            )[0]
            for start, end in zip(bounds[:-1], bounds[1:])
        ]
        rows.append(torch.cat(pieces, dim=1))
    return torch.cat(rows, dim=0), None


def document_sdpa_mask(batch_size, q_length, kv_length, q_offset=0, kv_offset=0, attention_mask=None, **kwargs):
    """No mask for an unpadded, cache-free batch (documents come from ``position_ids``);
    otherwise exactly ``sdpa``'s mask, for the fallback path."""
    unpadded = attention_mask is None or bool(attention_mask.all())
    if unpadded and q_length == kv_length and q_offset == 0 and kv_offset == 0:
        return None
    return sdpa_mask(
        batch_size, q_length, kv_length, q_offset=q_offset, kv_offset=kv_offset, attention_mask=attention_mask, **kwargs
    )


AttentionInterface.register(DOCUMENT_SDPA, document_sdpa_forward)
AttentionMaskInterface.register(DOCUMENT_SDPA, document_sdpa_mask)
