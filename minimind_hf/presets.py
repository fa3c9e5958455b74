"""Published MiniMind sizes, by the names users know them by.

`preset_config("minimind-3")` returns a ready `MiniMindConfig`; keyword overrides win, so
`preset_config("minimind2-small", num_hidden_layers=2)` shrinks a known shape for tests.
"""

from .models.configuration_minimind import MiniMindConfig

_MINIMIND2 = dict(vocab_size=6400, rms_norm_eps=1e-5, max_position_embeddings=32768, num_key_value_heads=2)
_MINIMIND3 = dict(
    vocab_size=6400,
    hidden_size=768,
    num_hidden_layers=8,
    num_attention_heads=8,
    num_key_value_heads=4,
    intermediate_size=2432,  # ceil(768 * pi / 64) * 64
    qk_norm=True,
    rms_norm_eps=1e-6,
    max_position_embeddings=32768,
)

PRESETS: dict[str, dict] = {
    "minimind2-small": dict(_MINIMIND2, hidden_size=512, num_hidden_layers=8, num_attention_heads=8),
    "minimind2": dict(_MINIMIND2, hidden_size=768, num_hidden_layers=16, num_attention_heads=8),
    "minimind2-moe": dict(
        _MINIMIND2,
        hidden_size=640,
        num_hidden_layers=8,
        num_attention_heads=8,
        use_moe=True,
        num_experts=4,
        num_experts_per_tok=2,
        num_shared_experts=1,
        norm_topk_prob=True,
    ),
    "minimind-3": dict(_MINIMIND3),
    # As the original minimind-3 routes: top-1, weights renormalised, so the chosen expert's output is added
    # with weight 1 (MiniMind2's top-2 router renormalises too).
    "minimind-3-moe": dict(_MINIMIND3, use_moe=True, num_experts=4, num_experts_per_tok=1, norm_topk_prob=True),
    # A few-hundred-thousand-parameter model for CPU quickstarts and tests.
    "tiny": dict(
        vocab_size=6400,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=192,
        max_position_embeddings=1024,
    ),
}


def preset_config(name: str, **overrides) -> MiniMindConfig:
    if name not in PRESETS:
        raise ValueError(f"unknown MiniMind preset {name!r}; choose one of: {', '.join(PRESETS)}")
    return MiniMindConfig(**{**PRESETS[name], **overrides})
