"""Original MiniMind checkpoints -> our model: exact logits for every generation, strict keys.

Each generation's forward is re-written here from its published description (a compact,
independent reference: generation 1 with the 2024 code's complex adjacent-pair RoPE), run
on tiny random weights saved under the ORIGINAL key names, and compared with our model
after conversion.
"""

import importlib.util
import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM

import minimind_hf  # noqa: F401  (registers the Auto classes)
from minimind_hf.convert import CheckpointError, adjacent_pairs_to_halves, convert_checkpoint, detect_generation

VOCAB, DIM, LAYERS, FFN, EXPERTS = 96, 64, 2, 96, 4
IDS = torch.randint(0, VOCAB, (2, 11), generator=torch.Generator().manual_seed(7))

# ----------------------------------------------------------------------------- reference forward


def rms_norm(x, weight, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


def rope_complex_adjacent(x, theta):
    """2024 MiniMind: (2i, 2i+1) as one complex number, multiplied by e^{i * pos * f_i}."""
    seq, dim = x.shape[1], x.shape[-1]
    freqs = 1.0 / (theta ** (torch.arange(0, dim, 2)[: dim // 2].float() / dim))
    pos_cis = torch.polar(torch.ones(seq, dim // 2), torch.outer(torch.arange(seq).float(), freqs))
    as_complex = torch.view_as_complex(x.float().reshape(*x.shape[:-1], -1, 2))
    return torch.view_as_real(as_complex * pos_cis[None, :, None, :]).flatten(3)


def rope_rotate_half(x, theta):
    """MiniMind2 / minimind-3: (i, i + d/2) rotated by angle pos * f_i."""
    seq, dim = x.shape[1], x.shape[-1]
    freqs = 1.0 / (theta ** (torch.arange(0, dim, 2).float() / dim))
    angles = torch.outer(torch.arange(seq).float(), freqs)
    cos = torch.cat([angles.cos(), angles.cos()], -1)[None, :, None, :]
    sin = torch.cat([angles.sin(), angles.sin()], -1)[None, :, None, :]
    return x * cos + torch.cat([-x[..., dim // 2:], x[..., : dim // 2]], -1) * sin


def attention(x, w, heads, kv_heads, rope, eps, q_norm=None, k_norm=None):
    batch, seq, _ = x.shape
    q = (x @ w["q"].T).view(batch, seq, heads, -1)
    k = (x @ w["k"].T).view(batch, seq, kv_heads, -1)
    v = (x @ w["v"].T).view(batch, seq, kv_heads, -1)
    if q_norm is not None:
        q, k = rms_norm(q, q_norm, eps), rms_norm(k, k_norm, eps)
    q, k = rope(q), rope(k)
    k, v = (t.repeat_interleave(heads // kv_heads, dim=2) for t in (k, v))
    q, k, v = (t.transpose(1, 2) for t in (q, k, v))
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    scores = scores.masked_fill(torch.ones(seq, seq, dtype=torch.bool).triu(1), float("-inf"))
    out = (scores.softmax(-1) @ v).transpose(1, 2).reshape(batch, seq, -1)
    return out @ w["o"].T


def swiglu(x, gate, up, down):
    return (F.silu(x @ gate.T) * (x @ up.T)) @ down.T


def moe(x, router, experts, shared, top_k, norm_topk):
    flat = x.reshape(-1, x.shape[-1])
    weights, chosen = torch.topk((flat @ router.T).softmax(-1), top_k, dim=-1)
    if top_k > 1 and norm_topk:
        weights = weights / weights.sum(-1, keepdim=True)
    out = torch.zeros_like(flat)
    for t in range(flat.shape[0]):
        for slot in range(top_k):
            out[t] += weights[t, slot] * swiglu(flat[t], *experts[chosen[t, slot]])
    for expert in shared:
        out += swiglu(flat, *expert)
    return out.reshape(x.shape)


def reference_logits(layers, embed, final_norm, output, *, heads, kv_heads, rope, eps, top_k=None):
    """`layers`: per layer a dict with norm1, norm2, attn {q,k,v,o}, optional q_norm/k_norm,
    and either ffn (gate, up, down) or router + experts [...] + shared [...]."""
    h = embed[IDS]
    for layer in layers:
        h = h + attention(rms_norm(h, layer["norm1"], eps), layer["attn"], heads, kv_heads, rope, eps,
                          layer.get("q_norm"), layer.get("k_norm"))
        x = rms_norm(h, layer["norm2"], eps)
        if "router" in layer:
            h = h + moe(x, layer["router"], layer["experts"], layer["shared"], top_k, norm_topk=True)
        else:
            h = h + swiglu(x, *layer["ffn"])
    return rms_norm(h, final_norm, eps) @ output.T


# ----------------------------------------------------------------------------- original checkpoints


class Weights:
    """Random tensors, remembered both by role (for the reference) and original key (for the .pth)."""

    def __init__(self, seed):
        self.gen = torch.Generator().manual_seed(seed)
        self.state = {}

    def __call__(self, key, *shape, norm=False):
        noise = torch.randn(shape, generator=self.gen)
        self.state[key] = 1.0 + 0.1 * noise if norm else 0.1 * noise
        return self.state[key]


def gen1_checkpoint(moe=False, heads=16, kv_heads=8, seed=0):
    """2024 names: tok_embeddings / attention.w* / feed_forward.w1 (gate) w2 (down) w3 (up); output tied."""
    w, hd = Weights(seed), DIM // heads
    embed = w("tok_embeddings.weight", VOCAB, DIM)
    w.state["output.weight"] = embed  # `self.tok_embeddings.weight = self.output.weight`

    def ffn(prefix):
        return (w(f"{prefix}.w1.weight", FFN, DIM), w(f"{prefix}.w3.weight", FFN, DIM), w(f"{prefix}.w2.weight", DIM, FFN))

    layers = []
    for i in range(LAYERS):
        p = f"layers.{i}"
        layer = dict(
            norm1=w(f"{p}.attention_norm.weight", DIM, norm=True),
            norm2=w(f"{p}.ffn_norm.weight", DIM, norm=True),
            attn=dict(q=w(f"{p}.attention.wq.weight", heads * hd, DIM), k=w(f"{p}.attention.wk.weight", kv_heads * hd, DIM),
                      v=w(f"{p}.attention.wv.weight", kv_heads * hd, DIM), o=w(f"{p}.attention.wo.weight", DIM, heads * hd)),
        )
        if moe:
            layer["router"] = w(f"{p}.feed_forward.gate.weight", EXPERTS, DIM)
            layer["experts"] = [ffn(f"{p}.feed_forward.experts.{e}") for e in range(EXPERTS)]
            layer["shared"] = [ffn(f"{p}.feed_forward.shared_experts")]  # one shared FeedForward
        else:
            layer["ffn"] = ffn(f"{p}.feed_forward")
        layers.append(layer)
    final = w("norm.weight", DIM, norm=True)
    reference = reference_logits(layers, embed, final, embed, heads=heads, kv_heads=kv_heads,
                                 rope=lambda x: rope_complex_adjacent(x, 1e4), eps=1e-5, top_k=2)
    return w.state, reference


def llama_checkpoint(qk_norm, moe=False, heads=4, kv_heads=2, shared="list", top_k=2, theta=1e6, eps=1e-5, seed=0):
    """MiniMind2 / minimind-3 names (model.layers.N.self_attn.q_proj, mlp.gate_proj, ...)."""
    w, hd = Weights(seed), DIM // heads
    embed = w("model.embed_tokens.weight", VOCAB, DIM)
    w.state["lm_head.weight"] = embed

    def ffn(prefix):
        return (w(f"{prefix}.gate_proj.weight", FFN, DIM), w(f"{prefix}.up_proj.weight", FFN, DIM),
                w(f"{prefix}.down_proj.weight", DIM, FFN))

    layers = []
    for i in range(LAYERS):
        p = f"model.layers.{i}"
        layer = dict(
            norm1=w(f"{p}.input_layernorm.weight", DIM, norm=True),
            norm2=w(f"{p}.post_attention_layernorm.weight", DIM, norm=True),
            attn={n: w(f"{p}.self_attn.{n}_proj.weight", *shape) for n, shape in
                  dict(q=(heads * hd, DIM), k=(kv_heads * hd, DIM), v=(kv_heads * hd, DIM), o=(DIM, heads * hd)).items()},
        )
        if qk_norm:
            layer["q_norm"] = w(f"{p}.self_attn.q_norm.weight", hd, norm=True)
            layer["k_norm"] = w(f"{p}.self_attn.k_norm.weight", hd, norm=True)
        if moe:
            layer["router"] = w(f"{p}.mlp.gate.weight", EXPERTS, DIM)
            layer["experts"] = [ffn(f"{p}.mlp.experts.{e}") for e in range(EXPERTS)]
            names = {"list": [f"{p}.mlp.shared_experts.0"], "single": [f"{p}.mlp.shared_experts"], None: []}[shared]
            layer["shared"] = [ffn(name) for name in names]
        else:
            layer["ffn"] = ffn(f"{p}.mlp")
        layers.append(layer)
    final = w("model.norm.weight", DIM, norm=True)
    reference = reference_logits(layers, embed, final, embed, heads=heads, kv_heads=kv_heads,
                                 rope=lambda x: rope_rotate_half(x, theta), eps=eps, top_k=top_k)
    return w.state, reference


CASES = {
    "gen1-dense": ("1", lambda: gen1_checkpoint(), {}),
    "gen1-moe": ("1", lambda: gen1_checkpoint(moe=True), {}),
    # MiniMind2 used 8 query heads; this tiny one has 4, so the flag supplies what shapes cannot.
    "minimind2-dense": ("2", lambda: llama_checkpoint(qk_norm=False), {"num_attention_heads": 4}),
    "minimind2-moe-shared-list": ("2", lambda: llama_checkpoint(qk_norm=False, moe=True), {"num_attention_heads": 4}),
    "minimind2-moe-shared-single": ("2", lambda: llama_checkpoint(qk_norm=False, moe=True, shared="single"),
                                    {"num_attention_heads": 4}),
    # minimind-3: head size read from q_norm, so no flag; eps 1e-6, MoE top-1 without shared experts.
    "minimind3-dense": ("3", lambda: llama_checkpoint(qk_norm=True, eps=1e-6), {}),
    "minimind3-moe": ("3", lambda: llama_checkpoint(qk_norm=True, moe=True, shared=None, top_k=1, eps=1e-6), {}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_converted_logits_equal_reference(case, tmp_path):
    generation, build, overrides = CASES[case]
    state, reference = build()
    assert detect_generation(state) == generation
    torch.save(state, tmp_path / "model.pth")
    model = convert_checkpoint(tmp_path / "model.pth", overrides=overrides)
    with torch.no_grad():
        ours = model(IDS).logits
    assert reference.abs().max() > 0.5  # non-trivial logits
    assert (ours - reference).abs().max() < 1e-5
    assert model.lm_head.weight is model.model.embed_tokens.weight  # tied, as the originals were


def test_minimind3_config_read_from_shapes_and_defaults(tmp_path):
    state, _ = llama_checkpoint(qk_norm=True, moe=True, shared=None, top_k=1, heads=2, kv_heads=1, eps=1e-6)
    torch.save(state, tmp_path / "m.pth")
    config = convert_checkpoint(tmp_path / "m.pth").config
    assert (config.num_attention_heads, config.num_key_value_heads, config.head_dim) == (2, 1, 32)
    assert (config.num_experts, config.num_experts_per_tok, config.num_shared_experts) == (4, 1, 0)
    assert config.qk_norm and config.rms_norm_eps == 1e-6 and config.rope_parameters["rope_theta"] == 1e6


def test_head_count_default_and_a_wrong_override(tmp_path):
    # Without q_norm the shapes cannot tell the query-head count: the generation default is used ...
    state, _ = llama_checkpoint(qk_norm=False)
    torch.save(state, tmp_path / "m.pth")
    assert convert_checkpoint(tmp_path / "m.pth").config.num_attention_heads == 8  # MiniMind2's 8
    # ... and an override that does not fit the tensors fails loudly, pointing at the flag.
    with pytest.raises(CheckpointError, match="num-attention-heads"):
        convert_checkpoint(tmp_path / "m.pth", overrides={"num_attention_heads": 3})


def test_permutation_maps_adjacent_pairs_to_halves():
    rows = torch.arange(8.0)[:, None]  # one head of size 8: pairs (0,1) (2,3) (4,5) (6,7)
    assert adjacent_pairs_to_halves(rows, 1).flatten().tolist() == [0, 2, 4, 6, 1, 3, 5, 7]
    two_heads = torch.arange(8.0)[:, None]
    assert adjacent_pairs_to_halves(two_heads, 2).flatten().tolist() == [0, 2, 1, 3, 4, 6, 5, 7]


# ----------------------------------------------------------------------------- strictness and wrappers


def test_missing_and_unexpected_keys_are_listed(tmp_path):
    state, _ = gen1_checkpoint()
    del state["layers.1.attention.wv.weight"]
    state["layers.0.attention.rotary_scale"] = torch.zeros(1)
    torch.save(state, tmp_path / "m.pth")
    with pytest.raises(CheckpointError) as error:
        convert_checkpoint(tmp_path / "m.pth")
    message = str(error.value)
    assert "missing (1): layers.1.attention.wv.weight" in message
    assert "unexpected (1): layers.0.attention.rotary_scale" in message


def test_unmappable_checkpoint_is_refused(tmp_path):
    torch.save({"encoder.weight": torch.zeros(2, 2)}, tmp_path / "m.pth")
    with pytest.raises(CheckpointError, match="not a MiniMind checkpoint"):
        convert_checkpoint(tmp_path / "m.pth")


def test_compile_and_ddp_prefixes_resume_wrapper_and_fp16(tmp_path):
    state, reference = gen1_checkpoint(moe=True)
    # torch.compile + DDP prefixes, a resume-style {"model": ...} dict, half precision as MiniMind saves.
    wrapped = {"model": {f"module._orig_mod.{k}": v.half() for k, v in state.items()}, "step": torch.tensor(3)}
    torch.save(wrapped, tmp_path / "m.pth")
    model = convert_checkpoint(tmp_path / "m.pth")
    assert model.dtype == torch.float32
    expected = state["layers.0.attention.wv.weight"].half().float()
    assert torch.equal(model.model.layers[0].self_attn.v_proj.weight, expected)
    with torch.no_grad():
        assert (model(IDS).logits - reference).abs().max() < 0.05  # fp16-rounded weights, same model
    assert convert_checkpoint(tmp_path / "m.pth", dtype="bfloat16").dtype == torch.bfloat16


def _load_script(name):
    path = Path(__file__).resolve().parents[1] / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"script_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_writes_a_model_folder(tmp_path):
    state, reference = gen1_checkpoint(heads=4, kv_heads=2)
    torch.save(state, tmp_path / "pretrain_64.pth")
    # The original LMConfig, as its config.json spells it: the heads come from here.
    (tmp_path / "config.json").write_text(json.dumps({"dim": DIM, "n_heads": 4, "n_kv_heads": 2, "norm_eps": 1e-5,
                                                     "multiple_of": 64, "flash_attn": True, "n_shared_experts": True}))
    out = tmp_path / "converted"
    cli = _load_script("convert_checkpoint")
    cli.main([str(tmp_path / "pretrain_64.pth"), str(out), "--config", str(tmp_path / "config.json")])
    model = AutoModelForCausalLM.from_pretrained(out)
    with torch.no_grad():
        assert (model(IDS).logits - reference).abs().max() < 1e-5
    assert (out / "tokenizer.json").exists() and (out / "generation_config.json").exists()
    assert json.loads((out / "conversion_info.json").read_text())["generation"] == "1"
    assert model.generation_config.eos_token_id == 2

    with pytest.raises(SystemExit):  # a bad flag combination exits with the reason, no traceback
        _load_script("convert_checkpoint").main([str(tmp_path / "pretrain_64.pth"), str(tmp_path / "x"),
                                                 "--num-attention-heads", "3"])
