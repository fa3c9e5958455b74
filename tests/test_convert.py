"""Original MiniMind checkpoints -> our model: exact logits for every generation, strict keys,
no silent guesses.

Each generation's forward is re-written here from its published description (docs/export.md:
a compact, independent reference; generation 1 with the 2024 code's complex adjacent-pair
RoPE; each router with its own renormalisation rule), run on random weights saved under the
ORIGINAL key names - tiny ones, and the published sizes - and compared with our model after
conversion: logits and greedy generations.
"""

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from helpers import minimind_style_tokenizer
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoModelForCausalLM, AutoTokenizer

import minimind_hf  # noqa: F401  (registers the Auto classes)
from minimind_hf import preset_config
from minimind_hf.cli import convert as convert_cli
from minimind_hf.export.checkpoint import CheckpointError
from minimind_hf.export.convert import adjacent_pairs_to_halves, convert_checkpoint, convert_language_model
from minimind_hf.export.generations import detect_generation, infer_config

VOCAB = 320  # >= the test tokenizers below (specials + 256 bytes + a few merges)
TINY = dict(vocab=VOCAB, dim=64, layers=2, ffn=96, experts=4)
IDS = torch.randint(0, VOCAB, (2, 11), generator=torch.Generator().manual_seed(7))

# ----------------------------------------------------------------------------- reference forward


def rms_norm(x, weight, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


def rope_complex_adjacent(x, theta):
    """2024 key names (minimind 2024, early MiniMind2): (2i, 2i+1) as one complex number, multiplied by e^{i * pos * f_i}."""  # noqa: E501
    seq, dim = x.shape[1], x.shape[-1]
    freqs = 1.0 / (theta ** (torch.arange(0, dim, 2)[: dim // 2].float() / dim))
    pos_cis = torch.polar(torch.ones(seq, dim // 2), torch.outer(torch.arange(seq).float(), freqs))
    as_complex = torch.view_as_complex(x.reshape(*x.shape[:-1], -1, 2).contiguous())
    return torch.view_as_real(as_complex * pos_cis[None, :, None, :]).flatten(3)


def rope_rotate_half(x, theta):
    """MiniMind2 / minimind-3: (i, i + d/2) rotated by angle pos * f_i."""
    seq, dim = x.shape[1], x.shape[-1]
    freqs = 1.0 / (theta ** (torch.arange(0, dim, 2).float() / dim))
    angles = torch.outer(torch.arange(seq).float(), freqs)
    cos = torch.cat([angles.cos(), angles.cos()], -1)[None, :, None, :]
    sin = torch.cat([angles.sin(), angles.sin()], -1)[None, :, None, :]
    return x * cos + torch.cat([-x[..., dim // 2 :], x[..., : dim // 2]], -1) * sin


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


def original_renormalises(generation: str, top_k: int, norm_topk_prob: bool) -> bool:
    """The originals' routers: minimind-3 rescales the chosen top-k weights to sum 1 whenever
    norm_topk_prob is set (so top-1 adds its expert with weight 1); the 2024 and MiniMind2 code
    only when top_k > 1 (top-1 keeps the raw softmax probability)."""
    return norm_topk_prob and (generation == "3" or top_k > 1)


def moe(x, router, experts, shared, top_k, renormalise):
    flat = x.reshape(-1, x.shape[-1])
    weights, chosen = torch.topk((flat @ router.T).softmax(-1), top_k, dim=-1)
    if renormalise:
        weights = weights / weights.sum(-1, keepdim=True)
    out = torch.zeros_like(flat)
    for t in range(flat.shape[0]):
        for slot in range(top_k):
            out[t] += weights[t, slot] * swiglu(flat[t], *experts[chosen[t, slot]])
    for expert in shared:
        out += swiglu(flat, *expert)
    return out.reshape(x.shape)


def _float64(x):
    if isinstance(x, torch.Tensor):
        return x.double()
    if isinstance(x, dict):
        return {k: _float64(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(_float64(v) for v in x)
    return x


def reference_forward(layers, embed, final_norm, output, *, heads, kv_heads, rope, eps, top_k=None, renormalise=None):
    """`layers`: per layer a dict with norm1, norm2, attn {q,k,v,o}, optional q_norm/k_norm,
    and either ffn (gate, up, down) or router + experts [...] + shared [...]. Returns ids -> logits,
    computed in float64 (RoPE tables in float32, as the originals built them), so a comparison
    measures our float32 rounding only."""
    layers, embed, final_norm, output = _float64((layers, embed, final_norm, output))

    @torch.no_grad()
    def forward(ids):
        h = embed[ids]
        for layer in layers:
            h = attention_block(h, layer, heads, kv_heads, rope, eps)
            x = rms_norm(h, layer["norm2"], eps)
            if "router" in layer:
                h = h + moe(x, layer["router"], layer["experts"], layer["shared"], top_k, renormalise)
            else:
                h = h + swiglu(x, *layer["ffn"])
        return rms_norm(h, final_norm, eps) @ output.T

    return forward


def attention_block(h, layer, heads, kv_heads, rope, eps):
    """The residual attention half of a pre-norm decoder layer."""
    normed = rms_norm(h, layer["norm1"], eps)
    return h + attention(normed, layer["attn"], heads, kv_heads, rope, eps, layer.get("q_norm"), layer.get("k_norm"))


def reference_greedy(forward, ids, steps):
    for _ in range(steps):
        ids = torch.cat([ids, forward(ids)[:, -1].argmax(-1, keepdim=True)], dim=1)
    return ids


# ----------------------------------------------------------------------------- original checkpoints


class Weights:
    """Random tensors, remembered both by role (for the reference) and original key (for the .pth)."""

    def __init__(self, seed):
        self.gen = torch.Generator().manual_seed(seed)
        self.state = {}

    def __call__(self, key, *shape, norm=False):
        noise = torch.randn(shape, generator=self.gen)
        # 0.1 at the tiny size; 1/sqrt(fan-in) at the published sizes keeps activations O(1).
        self.state[key] = 1.0 + 0.1 * noise if norm else noise.mul_(min(0.1, shape[-1] ** -0.5))
        return self.state[key]


def attention_layer(w, norm1, norm2, projection, dim, heads, kv_heads, hd):
    """One layer's two RMSNorms and q/k/v/o projections, under the original key names
    (`projection`: the q/k/v/o key with `{}` for the letter)."""
    shapes = dict(q=(heads * hd, dim), k=(kv_heads * hd, dim), v=(kv_heads * hd, dim), o=(dim, heads * hd))
    return dict(
        norm1=w(norm1, dim, norm=True),
        norm2=w(norm2, dim, norm=True),
        attn={n: w(projection.format(n), *shape) for n, shape in shapes.items()},
    )


def gen1_checkpoint(moe=False, heads=16, kv_heads=8, theta=1e4, size=TINY, seed=0):
    """2024 names: tok_embeddings / attention.w* / feed_forward.w1 (gate) w2 (down) w3 (up); output tied;
    one shared FeedForward. Written by minimind (2024: theta 1e4) and early MiniMind2 (2025: theta 1e6)."""
    dim, ffn = size["dim"], size["ffn"]
    w, hd = Weights(seed), dim // heads
    embed = w("tok_embeddings.weight", size["vocab"], dim)
    w.state["output.weight"] = embed  # `self.tok_embeddings.weight = self.output.weight`

    def feed_forward(prefix):
        return (
            w(f"{prefix}.w1.weight", ffn, dim),
            w(f"{prefix}.w3.weight", ffn, dim),
            w(f"{prefix}.w2.weight", dim, ffn),
        )

    layers = []
    for i in range(size["layers"]):
        p = f"layers.{i}"
        layer = attention_layer(
            w,
            f"{p}.attention_norm.weight",
            f"{p}.ffn_norm.weight",
            p + ".attention.w{}.weight",
            dim,
            heads,
            kv_heads,
            hd,
        )
        if moe:
            layer["router"] = w(f"{p}.feed_forward.gate.weight", size["experts"], dim)
            layer["experts"] = [feed_forward(f"{p}.feed_forward.experts.{e}") for e in range(size["experts"])]
            layer["shared"] = [feed_forward(f"{p}.feed_forward.shared_experts")]
        else:
            layer["ffn"] = feed_forward(f"{p}.feed_forward")
        layers.append(layer)
    final = w("norm.weight", dim, norm=True)
    forward = reference_forward(
        layers,
        embed,
        final,
        embed,
        heads=heads,
        kv_heads=kv_heads,
        rope=lambda x: rope_complex_adjacent(x, theta),
        eps=1e-5,
        top_k=2,
        renormalise=original_renormalises("1", 2, True),
    )
    return w.state, forward


def llama_checkpoint(
    qk_norm,
    moe=False,
    heads=4,
    kv_heads=2,
    shared="list",
    top_k=2,
    norm_topk_prob=True,
    theta=1e6,
    eps=1e-5,
    size=TINY,
    seed=0,
):
    """MiniMind2 (qk_norm=False) / minimind-3 (qk_norm=True) names: model.layers.N.self_attn.q_proj, mlp.gate_proj, ..."""  # noqa: E501
    dim, ffn = size["dim"], size["ffn"]
    w, hd = Weights(seed), dim // heads
    embed = w("model.embed_tokens.weight", size["vocab"], dim)
    w.state["lm_head.weight"] = embed

    def feed_forward(prefix):
        return (
            w(f"{prefix}.gate_proj.weight", ffn, dim),
            w(f"{prefix}.up_proj.weight", ffn, dim),
            w(f"{prefix}.down_proj.weight", dim, ffn),
        )

    layers = []
    for i in range(size["layers"]):
        p = f"model.layers.{i}"
        layer = attention_layer(
            w,
            f"{p}.input_layernorm.weight",
            f"{p}.post_attention_layernorm.weight",
            p + ".self_attn.{}_proj.weight",
            dim,
            heads,
            kv_heads,
            hd,
        )
        if qk_norm:
            layer["q_norm"] = w(f"{p}.self_attn.q_norm.weight", hd, norm=True)
            layer["k_norm"] = w(f"{p}.self_attn.k_norm.weight", hd, norm=True)
        if moe:
            layer["router"] = w(f"{p}.mlp.gate.weight", size["experts"], dim)
            layer["experts"] = [feed_forward(f"{p}.mlp.experts.{e}") for e in range(size["experts"])]
            names = {"list": [f"{p}.mlp.shared_experts.0"], "single": [f"{p}.mlp.shared_experts"], None: []}[shared]
            layer["shared"] = [feed_forward(name) for name in names]
        else:
            layer["ffn"] = feed_forward(f"{p}.mlp")
        layers.append(layer)
    final = w("model.norm.weight", dim, norm=True)
    generation = "3" if qk_norm else "2"
    forward = reference_forward(
        layers,
        embed,
        final,
        embed,
        heads=heads,
        kv_heads=kv_heads,
        rope=lambda x: rope_rotate_half(x, theta),
        eps=eps,
        top_k=top_k,
        renormalise=original_renormalises(generation, top_k, norm_topk_prob),
    )
    return w.state, forward


HEADS4 = {"num_attention_heads": 4}
CASES = {
    # Tiny shapes match no published model, so what the tensors cannot show comes from flags.
    "gen1-dense": ("1", lambda: gen1_checkpoint(), {"num_attention_heads": 16, "rope_theta": 1e4}),
    "gen1-moe": ("1", lambda: gen1_checkpoint(moe=True), {"num_attention_heads": 16, "rope_theta": 1e4}),
    "gen1-names-minimind2-early": (
        "1",
        lambda: gen1_checkpoint(heads=4, kv_heads=2, theta=1e6),
        {"num_attention_heads": 4, "rope_theta": 1e6},
    ),
    "minimind2-dense": ("2", lambda: llama_checkpoint(qk_norm=False), HEADS4),
    "minimind2-moe-shared-list": ("2", lambda: llama_checkpoint(qk_norm=False, moe=True), HEADS4),
    "minimind2-moe-shared-single": ("2", lambda: llama_checkpoint(qk_norm=False, moe=True, shared="single"), HEADS4),
    # MiniMind2's router at top-1 keeps the raw probability; without norm_topk_prob it never renormalises.
    "minimind2-moe-top1": (
        "2",
        lambda: llama_checkpoint(qk_norm=False, moe=True, top_k=1),
        {**HEADS4, "num_experts_per_tok": 1},
    ),
    "minimind2-moe-no-norm": (
        "2",
        lambda: llama_checkpoint(qk_norm=False, moe=True, norm_topk_prob=False),
        {**HEADS4, "norm_topk_prob": False},
    ),
    # minimind-3: head size read from q_norm, so no flag; eps 1e-6; MoE top-1, renormalised (weight 1).
    "minimind3-dense": ("3", lambda: llama_checkpoint(qk_norm=True, eps=1e-6), {}),
    "minimind3-moe": ("3", lambda: llama_checkpoint(qk_norm=True, moe=True, shared=None, top_k=1, eps=1e-6), {}),
    "minimind3-moe-no-norm": (
        "3",
        lambda: llama_checkpoint(qk_norm=True, moe=True, shared=None, top_k=1, eps=1e-6, norm_topk_prob=False),
        {"norm_topk_prob": False},
    ),
    "minimind3-moe-top2": (
        "3",
        lambda: llama_checkpoint(qk_norm=True, moe=True, shared=None, top_k=2, eps=1e-6),
        {"num_experts_per_tok": 2},
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_converted_logits_and_greedy_generation_equal_reference(case, tmp_path):
    generation, build, overrides = CASES[case]
    state, forward = build()
    assert detect_generation(state) == generation
    torch.save(state, tmp_path / "model.pth")
    model = convert_checkpoint(tmp_path / "model.pth", overrides=overrides)
    reference = forward(IDS)
    with torch.no_grad():
        ours = model(IDS).logits
    assert reference.abs().max() > 0.5  # non-trivial logits
    assert (ours - reference).abs().max() < 1e-5
    assert model.lm_head.weight is model.model.embed_tokens.weight  # tied, as the originals were
    model.generation_config.eos_token_id = None  # the reference loop never stops early
    generated = model.generate(IDS, max_new_tokens=6, do_sample=False, pad_token_id=0)
    assert torch.equal(generated, reference_greedy(forward, IDS, 6))


def test_router_rules_differ_at_top1():
    """The rules above are not vacuous: at top-1, renormalising (minimind-3) changes the logits."""
    state, raw = llama_checkpoint(qk_norm=True, moe=True, shared=None, top_k=1, eps=1e-6, norm_topk_prob=False)
    _, renormalised = llama_checkpoint(qk_norm=True, moe=True, shared=None, top_k=1, eps=1e-6)
    assert (raw(IDS) - renormalised(IDS)).abs().max() > 1e-2
    model, info = convert_language_model(state)  # minimind-3 default: norm_topk_prob=True
    assert model.config.norm_topk_prob is True and info["settings"]["norm_topk_prob"]["value"] is True
    weights = []
    model.model.layers[0].mlp.gate.register_forward_hook(lambda module, args, out: weights.append(out[1]))
    with torch.no_grad():
        model(IDS)
    assert torch.equal(weights[0], torch.ones_like(weights[0]))  # top-1, renormalised: weight exactly 1


# ----------------------------------------------------------------------------- published sizes


def _preset_size(name):
    c = preset_config(name)
    return dict(
        vocab=c.vocab_size,
        dim=c.hidden_size,
        layers=c.num_hidden_layers,
        ffn=c.intermediate_size,
        experts=c.num_experts,
    ), c


def _v1_size(layers=8, dim=512):  # the 2024 FFN: 2/3 * 4 * dim, rounded up to a multiple of 64
    return dict(vocab=6400, dim=dim, layers=layers, ffn=64 * math.ceil(int(2 * 4 * dim / 3) / 64), experts=4)


def _published(name):
    """(original checkpoint, reference forward, preset or None) at a published size, built from
    the documented shapes; the converter gets no flags."""
    if name.startswith("minimind-v1") or name == "MiniMind2-Small (2024 key names)":
        early = name.startswith("MiniMind2")
        heads, kv, theta = (8, 2, 1e6) if early else (16, 8, 1e4)
        return (
            *gen1_checkpoint(moe=name.endswith("moe"), heads=heads, kv_heads=kv, theta=theta, size=_v1_size()),
            None,
        )
    size, preset = _preset_size(name)
    if preset.qk_norm:
        state, forward = llama_checkpoint(
            qk_norm=True, moe=preset.use_moe, heads=8, kv_heads=4, shared=None, top_k=1, eps=1e-6, size=size
        )
    else:
        state, forward = llama_checkpoint(qk_norm=False, moe=preset.use_moe, heads=8, kv_heads=2, size=size)
    return state, forward, preset


# Million parameters (tied embeddings counted once), as our presets and the original READMEs give them
# (the 2024 README rounds: minimind-v1-small "26M", minimind-v1-moe "4x26M").
PUBLISHED = {
    "minimind2-small": 25.83,
    "minimind2": 104.03,
    "minimind2-moe": 145.03,
    "minimind-3": 63.91,
    "minimind-3-moe": 198.42,
    "minimind-v1-small": 26.88,
    "minimind-v1-moe": 96.10,
    "MiniMind2-Small (2024 key names)": 25.83,
}
ARCHITECTURE = (
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "intermediate_size",
    "qk_norm",
    "rms_norm_eps",
    "use_moe",
    "num_experts",
    "num_experts_per_tok",
    "num_shared_experts",
    "moe_intermediate_size",
    "norm_topk_prob",
    "tie_word_embeddings",
)


@pytest.mark.parametrize("name", list(PUBLISHED))
def test_published_sizes_convert_exactly_without_flags(name):
    torch.manual_seed(0)
    state, forward, preset = _published(name)
    model, info = convert_language_model(state)
    del state
    config = model.config
    assert round(sum(p.numel() for p in model.parameters()) / 1e6, 2) == PUBLISHED[name]
    if preset is not None:  # our presets are the published models
        assert {k: getattr(config, k) for k in ARCHITECTURE} == {k: getattr(preset, k) for k in ARCHITECTURE}
        assert config.rope_parameters == preset.rope_parameters
        assert info["published_model"].lower() == name
    if name == "minimind-3-moe":  # 198M total, 64M active: one of four experts per token
        expert = sum(p.numel() for p in model.model.layers[0].mlp.experts[0].parameters())
        active = sum(p.numel() for p in model.parameters()) - 3 * expert * config.num_hidden_layers
        assert round(active / 1e6) == 64
    reference = forward(IDS)
    with torch.no_grad():
        ours = model(IDS).logits
    assert reference.abs().max() > 0.5
    assert (ours - reference).abs().max() < 1e-5


def test_published_shape_decides_the_release_of_2024_key_names(capsys):
    """2024 key names come from two lines of code; the published shapes tell them apart (k/v width
    dim/2 with 16 heads in 2024, dim/4 with 8 heads in MiniMind2), and the decision is printed."""
    v1, _ = gen1_checkpoint(heads=16, kv_heads=8, size=_v1_size())
    early, _ = gen1_checkpoint(heads=8, kv_heads=2, size=_v1_size())
    config, record = infer_config(v1, "1")
    assert (config.num_attention_heads, config.num_key_value_heads, config.rope_parameters["rope_theta"]) == (
        16,
        8,
        1e4,
    )
    assert record["published_model"] == "minimind-v1-small" and config.max_position_embeddings == 512
    config, record = infer_config(early, "1")
    assert (config.num_attention_heads, config.num_key_value_heads, config.rope_parameters["rope_theta"]) == (8, 2, 1e6)
    assert record["published_model"] == "MiniMind2-Small"
    assert record["settings"]["num_attention_heads"] == {
        "value": 8,
        "from": "the shape of the published MiniMind2-Small",
    }
    assert "(the shape of the published MiniMind2-Small)" in record["settings"]["rope_theta"]["from"]


# ----------------------------------------------------------------------------- no silent guesses


def test_missing_head_count_is_an_error_naming_the_flag(tmp_path):
    state, _ = llama_checkpoint(qk_norm=False)  # tiny: no q_norm, no published shape
    torch.save(state, tmp_path / "m.pth")
    with pytest.raises(CheckpointError) as error:
        convert_checkpoint(tmp_path / "m.pth")
    message = str(error.value)
    assert "num_attention_heads" in message and "--num-attention-heads" in message and "--config" in message
    assert "rope_theta" not in message  # MiniMind2's theta is fixed by its code
    # ... and an override that does not fit the tensors fails loudly, pointing at the flag.
    with pytest.raises(CheckpointError, match="num-attention-heads"):
        convert_checkpoint(tmp_path / "m.pth", overrides={"num_attention_heads": 3})


def test_2024_key_names_need_theta_unless_known(tmp_path):
    state, _ = gen1_checkpoint(heads=4, kv_heads=2)
    torch.save(state, tmp_path / "m.pth")
    with pytest.raises(CheckpointError) as error:
        convert_checkpoint(tmp_path / "m.pth")
    assert "num_attention_heads" in str(error.value) and "--rope-theta" in str(error.value)
    with pytest.raises(CheckpointError, match="rope_theta.*1e4.*1e6"):
        convert_checkpoint(tmp_path / "m.pth", overrides=HEADS4)
    # The 2024 LMConfig has no rope_theta field: an original config without one is the 2024 code.
    model = convert_checkpoint(tmp_path / "m.pth", original_config={"dim": 64, "n_heads": 4, "n_kv_heads": 2})
    assert model.config.rope_parameters["rope_theta"] == 1e4 and model.config.router_aux_loss_coef == 0.0


def test_minimind3_config_read_from_shapes_and_release(tmp_path):
    state, _ = llama_checkpoint(qk_norm=True, moe=True, shared=None, top_k=1, heads=2, kv_heads=1, eps=1e-6)
    torch.save(state, tmp_path / "m.pth")
    config = convert_checkpoint(tmp_path / "m.pth").config
    assert (config.num_attention_heads, config.num_key_value_heads, config.head_dim) == (2, 1, 32)
    assert (config.num_experts, config.num_experts_per_tok, config.num_shared_experts) == (4, 1, 0)
    assert config.qk_norm and config.rms_norm_eps == 1e-6 and config.rope_parameters["rope_theta"] == 1e6
    assert config.router_aux_loss_coef == 5e-4 and config.norm_topk_prob  # as minimind-3 trained


def test_per_generation_aux_loss_coefficients():
    for build, overrides, coef in [
        (lambda: gen1_checkpoint(moe=True), {"num_attention_heads": 16, "rope_theta": 1e4}, 0.01),
        (lambda: gen1_checkpoint(moe=True), {"num_attention_heads": 16, "rope_theta": 1e6}, 0.1),
        (lambda: llama_checkpoint(False, moe=True), HEADS4, 0.1),
        (lambda: llama_checkpoint(True, moe=True, shared=None, top_k=1), {}, 5e-4),
    ]:
        model, info = convert_language_model(build()[0], overrides=overrides)
        assert model.config.router_aux_loss_coef == coef and info["settings"]["router_aux_loss_coef"]["value"] == coef
    dense, _ = convert_language_model(llama_checkpoint(True)[0])
    assert dense.config.router_aux_loss_coef == 0.0  # dense models declare no aux loss


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
        convert_checkpoint(tmp_path / "m.pth", overrides={"num_attention_heads": 16, "rope_theta": 1e4})
    message = str(error.value)
    assert "missing (1): layers.1.attention.wv.weight" in message
    assert "unexpected (1): layers.0.attention.rotary_scale" in message


def test_unmappable_checkpoint_is_refused(tmp_path):
    torch.save({"encoder.weight": torch.zeros(2, 2)}, tmp_path / "m.pth")
    with pytest.raises(CheckpointError, match="not a MiniMind checkpoint"):
        convert_checkpoint(tmp_path / "m.pth")


def test_compile_and_ddp_prefixes_resume_wrapper_and_fp16(tmp_path):
    state, forward = gen1_checkpoint(moe=True)
    # torch.compile + DDP prefixes, a resume-style {"model": ...} dict, half precision as MiniMind saves.
    wrapped = {"model": {f"module._orig_mod.{k}": v.half() for k, v in state.items()}, "step": torch.tensor(3)}
    torch.save(wrapped, tmp_path / "m.pth")
    flags = {"num_attention_heads": 16, "rope_theta": 1e4}
    model = convert_checkpoint(tmp_path / "m.pth", overrides=flags)
    assert model.dtype == torch.float32
    expected = state["layers.0.attention.wv.weight"].half().float()
    assert torch.equal(model.model.layers[0].self_attn.v_proj.weight, expected)
    with torch.no_grad():
        assert (model(IDS).logits - forward(IDS)).abs().max() < 0.05  # fp16-rounded weights, same model
    assert convert_checkpoint(tmp_path / "m.pth", overrides=flags, dtype="bfloat16").dtype == torch.bfloat16


# ----------------------------------------------------------------------------- tokenizers and the command line


# A ChatML template that, like the original MiniMind ones, renders string content only (a
# content list renders as nothing) and adds a default system prompt.
ORIGINAL_STYLE_TEMPLATE = (
    "{%- if messages[0].role != 'system' %}{{- '<|im_start|>system\\nYou are a helpful assistant<|im_end|>\\n' }}"
    "{%- endif %}{%- for message in messages %}{%- set content = message.content if message.content is string else '' %}"  # noqa: E501
    "{{- '<|im_start|>' + message.role + '\\n' + content + '<|im_end|>\\n' }}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


def original_tokenizer(folder: Path, image_tokens: bool = False) -> Path:
    """A byte-level BPE in the original MiniMind tokenizers' format: <|endoftext|> <|im_start|>
    <|im_end|> as ids 0-2 and no named image token (MiniMind2), or with minimind-3's
    <|vision_start|> <|vision_end|> <|image_pad|> and `image_token` named."""
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    specials += ["<|vision_start|>", "<|vision_end|>", "<|image_pad|>"] if image_tokens else []
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=specials,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    bpe.train_from_iterator(
        ["what is in this picture", "describe the image", "a red square", "hello world"] * 4, trainer
    )
    extra = {"extra_special_tokens": {"image_token": "<|image_pad|>"}} if image_tokens else {}
    tokenizer = minimind_style_tokenizer(bpe, ORIGINAL_STYLE_TEMPLATE, **extra)
    tokenizer.save_pretrained(folder)
    assert len(tokenizer) <= VOCAB
    return folder


def test_cli_writes_a_model_folder_with_the_original_tokenizer(tmp_path, capsys):
    state, forward = gen1_checkpoint(heads=4, kv_heads=2)
    torch.save(state, tmp_path / "pretrain_64.pth")
    # The original LMConfig, as its config.json spells it: the heads come from here, theta from its era.
    (tmp_path / "config.json").write_text(
        json.dumps(
            {
                "dim": 64,
                "n_heads": 4,
                "n_kv_heads": 2,
                "norm_eps": 1e-5,
                "multiple_of": 64,
                "flash_attn": True,
                "n_shared_experts": True,
            }
        )
    )
    tokenizer = original_tokenizer(tmp_path / "minimind" / "model")
    out = tmp_path / "converted"
    convert_cli.main(
        [
            str(tmp_path / "pretrain_64.pth"),
            str(out),
            "--config",
            str(tmp_path / "config.json"),
            "--tokenizer",
            str(tokenizer),
        ]
    )
    printed = capsys.readouterr().out
    assert "rope_theta = 10000.0: fixed by the minimind (2024) code (the original config has no rope_theta" in printed
    model = AutoModelForCausalLM.from_pretrained(out)
    with torch.no_grad():
        assert (model(IDS).logits - forward(IDS)).abs().max() < 1e-5
    assert AutoTokenizer.from_pretrained(out).get_vocab() == AutoTokenizer.from_pretrained(tokenizer).get_vocab()
    info = json.loads((out / "conversion_info.json").read_text())
    assert info["generation"] == "1" and info["release"] == "minimind (2024)" and info["tokenizer"] == str(tokenizer)
    assert info["settings"]["rope_theta"]["value"] == 1e4
    assert model.generation_config.eos_token_id == 2


def _exit_code(capsys, argv):
    with pytest.raises(SystemExit) as exit_:
        convert_cli.main(argv)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return exit_.value.code, err


def test_cli_errors_exit_2_with_the_reason(tmp_path, capsys):
    state, _ = llama_checkpoint(qk_norm=False)
    torch.save(state, tmp_path / "m.pth")
    tokenizer = str(original_tokenizer(tmp_path / "tok"))
    code, err = _exit_code(capsys, [str(tmp_path / "m.pth"), str(tmp_path / "a")])  # no --tokenizer
    assert code == 2 and "--tokenizer" in err and "model/" in err and "tokenizer.json" in err and "shipped" in err
    code, err = _exit_code(capsys, [str(tmp_path / "m.pth"), str(tmp_path / "b"), "--tokenizer", tokenizer])
    assert code == 2 and "--num-attention-heads" in err
    code, err = _exit_code(capsys, [str(tmp_path / "missing.pth"), str(tmp_path / "c"), "--tokenizer", tokenizer])
    assert code == 2 and "no checkpoint file" in err
    (tmp_path / "bad.json").write_text("{not json")
    code, err = _exit_code(
        capsys,
        [
            str(tmp_path / "m.pth"),
            str(tmp_path / "d"),
            "--tokenizer",
            tokenizer,
            "--config",
            str(tmp_path / "bad.json"),
        ],
    )
    assert code == 2 and "cannot read the original config" in err
    code, err = _exit_code(
        capsys, [str(tmp_path / "m.pth"), str(tmp_path / "e"), "--tokenizer", tokenizer, "--num-attention-heads", "3"]
    )
    assert code == 2 and "num-attention-heads" in err


def test_shipped_tokenizer_only_when_asked_for(tmp_path, capsys):
    state, _ = llama_checkpoint(qk_norm=True)
    torch.save(state, tmp_path / "m.pth")
    with pytest.raises(CheckpointError, match="tokenizer it was trained with"):
        convert_checkpoint(tmp_path / "m.pth", tmp_path / "a")
    assert not (tmp_path / "a").exists()  # refused before anything is written
    convert_checkpoint(tmp_path / "m.pth", tmp_path / "b", tokenizer="shipped")
    assert "token ids are not MiniMind's" in capsys.readouterr().out
    from minimind_hf.tokenizer import load_tokenizer

    assert AutoTokenizer.from_pretrained(tmp_path / "b").get_vocab() == load_tokenizer().get_vocab()
