"""Small shared builders for tests: tiny configs and randomised weights."""

import torch

from minimind_hf import MiniMindConfig, MiniMindForCausalLM, preset_config

# The "tiny" preset (64 wide, 2 layers, 4 heads / 2 kv heads) with a small vocabulary and context.
TINY = dict(vocab_size=128, intermediate_size=96, max_position_embeddings=256)


# The language model of the tiny MiniMind-V models the VLM tests build (the shipped tokenizer's vocabulary).
VLM_TEXT = dict(
    vocab_size=6400,
    hidden_size=64,
    intermediate_size=96,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
)


def tiny_config(**overrides) -> MiniMindConfig:
    return preset_config("tiny", **{**TINY, **overrides})


@torch.no_grad()
def randomize(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give every weight (norms included) a non-trivial value so oracle comparisons bite."""
    gen = torch.Generator().manual_seed(seed)
    for name, param in model.named_parameters():
        noise = torch.randn(param.shape, generator=gen)
        if "norm" in name:
            param.copy_(1.0 + 0.1 * noise)
        else:
            param.copy_(0.08 * noise)
    return model


def tiny_model(seed: int = 0, attn: str = "sdpa", **overrides) -> MiniMindForCausalLM:
    torch.manual_seed(seed)
    model = MiniMindForCausalLM(tiny_config(**overrides))
    model.set_attn_implementation(attn)
    return randomize(model, seed).eval()


def minimind_style_tokenizer(bpe, chat_template: str, **extra):
    """A trained `tokenizers` BPE wrapped with MiniMind's special tokens, as MiniMind ships them."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token="<|endoftext|>",
        chat_template=chat_template,
        **extra,
    )
