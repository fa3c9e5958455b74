"""MiniMind behaves like a stock transformers causal LM: oracles, cache, packing, MoE, reload."""

import math

import pytest
import torch
from helpers import tiny_config, tiny_model
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    LlamaForCausalLM,
    Qwen3ForCausalLM,
    Qwen3MoeForCausalLM,
    TextStreamer,
)

import minimind_hf  # noqa: F401  (registers the Auto classes)
from minimind_hf import MiniMindConfig, MiniMindForCausalLM, preset_config
from minimind_hf.export.native import NativeExportError, native_config, to_native_state_dict


def oracle_for(model: MiniMindForCausalLM, attn: str = "sdpa"):
    config = native_config(model.config)
    cls = {"llama": LlamaForCausalLM, "qwen3": Qwen3ForCausalLM, "qwen3_moe": Qwen3MoeForCausalLM}[config.model_type]
    config._attn_implementation = attn
    oracle = cls(config).eval()
    missing, unexpected = oracle.load_state_dict(to_native_state_dict(model.state_dict(), model.config), strict=False)
    assert not unexpected and set(missing) <= {"lm_head.weight"}, (missing, unexpected)
    oracle.tie_weights()
    return oracle


# ---------------------------------------------------------------- presets


@pytest.mark.parametrize(
    "name, millions",
    [
        ("minimind2-small", 25.83),
        ("minimind2", 104.03),
        ("minimind2-moe", 145.03),
        ("minimind-3", 63.91),
        ("minimind-3-moe", 198.42),
    ],
)
def test_preset_parameter_counts(name, millions):
    with torch.device("meta"):
        model = MiniMindForCausalLM(preset_config(name))
    # Tied embeddings are counted once, as MiniMind reports them.
    assert round(sum(p.numel() for p in model.parameters()) / 1e6, 2) == millions
    assert model.lm_head.weight is model.model.embed_tokens.weight


def test_unknown_preset_lists_choices():
    with pytest.raises(ValueError, match="minimind-3"):
        preset_config("minimind-9")


def test_minimind_config_aliases():
    config = MiniMindConfig(dim=96, n_layers=3, n_heads=6, n_kv_heads=2, norm_eps=1e-6, rope_theta=1e4)
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads) == (96, 3, 6)
    assert config.num_key_value_heads == 2 and config.rms_norm_eps == 1e-6
    assert config.rope_parameters["rope_theta"] == 1e4 and config.head_dim == 16


# ---------------------------------------------------------------- oracles


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
@pytest.mark.parametrize("qk_norm, oracle_cls", [(False, LlamaForCausalLM), (True, Qwen3ForCausalLM)])
def test_logits_match_oracle(attn, qk_norm, oracle_cls):
    model = tiny_model(attn=attn, qk_norm=qk_norm)
    oracle = oracle_for(model, attn)
    assert isinstance(oracle, oracle_cls)
    ids = torch.randint(0, 128, (3, 17), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)
    mask[1, :5] = 0  # a left-padded row too
    with torch.no_grad():
        ours, theirs = model(ids, attention_mask=mask).logits, oracle(ids, attention_mask=mask).logits
    assert ours.abs().max() > 0.1  # weights are not trivially small
    assert (ours - theirs)[mask.bool()].abs().max() < 1e-5
    greedy = dict(max_new_tokens=12, do_sample=False, pad_token_id=0)
    assert torch.equal(model.generate(ids[:1], **greedy), oracle.generate(ids[:1], **greedy))


def test_moe_logits_match_qwen3_moe_oracle():
    model = tiny_model(qk_norm=True, use_moe=True, num_experts=4, num_experts_per_tok=2)
    oracle = oracle_for(model)
    ids = torch.randint(0, 128, (2, 13), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert (model(ids).logits - oracle(ids).logits).abs().max() < 1e-5


@pytest.mark.parametrize("norm_topk_prob", [True, False])
def test_top1_moe_matches_qwen3_moe_oracle(norm_topk_prob):
    """`norm_topk_prob` has Qwen3-MoE's meaning: renormalise the chosen weights for any k. The
    original minimind-3 router does the same (top-1 -> weight 1); MiniMind2's top-1 kept the raw
    probability, which is norm_topk_prob=False here."""
    model = tiny_model(qk_norm=True, use_moe=True, num_experts=4, num_experts_per_tok=1, norm_topk_prob=norm_topk_prob)
    oracle = oracle_for(model)
    assert oracle.config.norm_topk_prob is norm_topk_prob
    ids = torch.randint(0, 128, (2, 13), generator=torch.Generator().manual_seed(3))
    weights = []
    model.model.layers[0].mlp.gate.register_forward_hook(lambda module, args, out: weights.append(out[1]))
    with torch.no_grad():
        assert (model(ids).logits - oracle(ids).logits).abs().max() < 1e-5
    if norm_topk_prob:
        assert torch.equal(weights[0], torch.ones_like(weights[0]))
    else:  # the top-1 softmax probability of 4 experts
        assert (weights[0] < 1).all() and (weights[0] > 0.25).all()


def test_preset_minimind3_moe_routes_like_the_original():
    """minimind-3-moe = the original minimind-3: top-1, renormalised, and Qwen3-MoE reproduces it."""
    config = preset_config(
        "minimind-3-moe",
        hidden_size=64,
        num_hidden_layers=1,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=96,
        vocab_size=128,
    )
    assert (config.num_experts_per_tok, config.norm_topk_prob) == (1, True)
    assert native_config(config).norm_topk_prob is True


def test_native_mapping_refuses_shared_experts():
    config = tiny_config(qk_norm=True, use_moe=True, num_shared_experts=1)
    with pytest.raises(NativeExportError, match="shared expert"):
        native_config(config)
    with pytest.raises(NativeExportError, match="q/k"):
        native_config(tiny_config(qk_norm=True), "llama")


# ---------------------------------------------------------------- RoPE / YaRN


def minimind3_yarn_inv_freq(dim, base, factor, orig_max, beta_fast, beta_slow):
    """YaRN as MiniMind-3 writes it: f'(i) = f(i) * ((1 - ramp) + ramp / factor)."""
    freqs = 1.0 / (base ** (torch.arange(0, dim, 2)[: dim // 2].float() / dim))

    def inv_dim(beta):
        return (dim * math.log(orig_max / (beta * 2 * math.pi))) / (2 * math.log(base))

    low, high = max(math.floor(inv_dim(beta_fast)), 0), min(math.ceil(inv_dim(beta_slow)), dim // 2 - 1)
    ramp = torch.clamp((torch.arange(dim // 2).float() - low) / max(high - low, 0.001), 0, 1)
    return freqs * (1 - ramp + ramp / factor)


def test_yarn_matches_minimind_formula_and_llama_oracle():
    config = tiny_config(
        hidden_size=128,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=4096,
        inference_rope_scaling=True,
    )
    assert config.rope_parameters["rope_type"] == "yarn" and config.rope_parameters["factor"] == 16.0
    model = MiniMindForCausalLM(config)
    expected = minimind3_yarn_inv_freq(64, 1e6, 16.0, 2048, 32.0, 1.0)
    assert torch.allclose(model.model.rotary_emb.inv_freq, expected, rtol=1e-6)
    assert model.model.rotary_emb.attention_scaling == 1.0
    default = MiniMindForCausalLM(tiny_config(hidden_size=128, num_attention_heads=2, num_key_value_heads=1))
    assert not torch.allclose(default.model.rotary_emb.inv_freq, expected)  # YaRN really changed something

    from helpers import randomize

    randomize(model.eval())
    ids = torch.randint(0, 128, (1, 40))
    with torch.no_grad():
        assert (model(ids).logits - oracle_for(model)(ids).logits).abs().max() < 1e-5


def test_rope_buffers_survive_reload(tmp_path):
    model = tiny_model(inference_rope_scaling=True)
    model.save_pretrained(tmp_path)
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path)
    assert torch.equal(reloaded.model.rotary_emb.inv_freq, model.model.rotary_emb.inv_freq)


# ---------------------------------------------------------------- generation


def test_greedy_with_and_without_cache_identical():
    model = tiny_model()
    ids = torch.randint(3, 128, (1, 6))
    kwargs = dict(max_new_tokens=15, do_sample=False, pad_token_id=0)
    with_cache = model.generate(ids, use_cache=True, **kwargs)
    without = model.generate(ids, use_cache=False, **kwargs)
    assert with_cache.shape[1] == 21 and torch.equal(with_cache, without)


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_left_padded_batch_equals_single_runs(attn):
    model = tiny_model(attn=attn)
    prompts = [torch.randint(3, 128, (n,), generator=torch.Generator().manual_seed(n)) for n in (3, 7, 5)]
    width = max(len(p) for p in prompts)
    ids = torch.zeros(len(prompts), width, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, p in enumerate(prompts):
        ids[row, width - len(p) :] = p
        mask[row, width - len(p) :] = 1
    kwargs = dict(max_new_tokens=10, do_sample=False, pad_token_id=0)
    batch = model.generate(ids, attention_mask=mask, **kwargs)
    for row, p in enumerate(prompts):
        single = model.generate(p[None], **kwargs)
        assert torch.equal(batch[row, width:], single[0, len(p) :])


def test_beam_search_and_sampling():
    model = tiny_model()
    ids = torch.randint(3, 128, (2, 5))
    beams = model.generate(ids, num_beams=3, num_return_sequences=2, max_new_tokens=6, do_sample=False, pad_token_id=0)
    assert beams.shape == (4, 11)
    torch.manual_seed(0)
    first = model.generate(ids, do_sample=True, top_k=20, top_p=0.9, temperature=0.8, max_new_tokens=8, pad_token_id=0)
    torch.manual_seed(0)
    again = model.generate(ids, do_sample=True, top_k=20, top_p=0.9, temperature=0.8, max_new_tokens=8, pad_token_id=0)
    assert first.shape == (2, 13) and torch.equal(first, again)


def test_streamer_receives_every_generated_token():
    class Recorder(TextStreamer):
        def __init__(self):
            self.chunks = []

        def put(self, value):
            self.chunks.append(value.flatten().tolist())

        def end(self):
            self.ended = True

    model = tiny_model()
    ids = torch.randint(3, 128, (1, 4))
    streamer = Recorder()
    out = model.generate(ids, max_new_tokens=7, do_sample=False, pad_token_id=0, streamer=streamer)
    # First put is the prompt, then one put per generated token.
    assert streamer.chunks[0] == ids[0].tolist()
    assert sum(streamer.chunks[1:], []) == out[0, 4:].tolist() and streamer.ended


def test_set_attn_implementation_switches_the_kernel():
    ids = torch.randint(3, 128, (1, 6), generator=torch.Generator().manual_seed(2))
    model = tiny_model(attn="eager")
    assert model.config._attn_implementation == "eager"
    weights = model(ids, output_attentions=True).attentions  # only eager attention returns its weights
    assert len(weights) == model.config.num_hidden_layers and weights[0].shape == (1, 4, 6, 6)
    torch.testing.assert_close(weights[0].sum(-1), torch.ones(1, 4, 6))
    assert torch.all(weights[0].triu(1) == 0)  # causal
    model.set_attn_implementation("sdpa")
    assert model.config._attn_implementation == "sdpa"


# ---------------------------------------------------------------- packing


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_packed_forward_equals_separate_documents(attn):
    model = tiny_model(attn=attn)
    docs = [torch.randint(3, 128, (n,), generator=torch.Generator().manual_seed(10 + n)) for n in (5, 9, 3)]
    packed = torch.cat(docs)[None]
    position_ids = torch.cat([torch.arange(len(d)) for d in docs])[None]
    with torch.no_grad():
        packed_logits = model(packed, position_ids=position_ids).logits[0]
        start = 0
        for doc in docs:
            alone = model(doc[None]).logits[0]
            assert (packed_logits[start : start + len(doc)] - alone).abs().max() < 1e-5
            start += len(doc)
        # Without restarting positions the documents would see each other: the test can fail.
        leaky = model(packed).logits[0]
        assert (leaky[5:14] - model(docs[1][None]).logits[0]).abs().max() > 1e-3


# ---------------------------------------------------------------- loss


def test_labels_give_shifted_cross_entropy_and_num_items_in_batch():
    model = tiny_model()
    ids = torch.randint(3, 128, (2, 8))
    labels = ids.clone()
    labels[0, :3] = -100
    out = model(ids, labels=labels)
    logits = out.logits[:, :-1].reshape(-1, 128)
    target = labels[:, 1:].reshape(-1)
    expected = torch.nn.functional.cross_entropy(logits, target, ignore_index=-100)
    assert torch.allclose(out.loss, expected, atol=1e-6)
    summed = torch.nn.functional.cross_entropy(logits, target, ignore_index=-100, reduction="sum")
    out = model(ids, labels=labels, num_items_in_batch=torch.tensor(40))
    assert torch.allclose(out.loss, summed / 40, atol=1e-6)


def test_gradient_checkpointing_gives_same_gradients():
    grads = []
    for checkpointing in (False, True):
        model = tiny_model(use_moe=True).train()
        if checkpointing:
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        ids = torch.randint(3, 128, (2, 10), generator=torch.Generator().manual_seed(4))
        model(ids, labels=ids).loss.backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        assert torch.allclose(grads[0][name], grads[1][name], atol=1e-6), name


# ---------------------------------------------------------------- MoE


def test_moe_aux_loss_is_added_to_loss():
    model = tiny_model(use_moe=True, num_experts=4, num_experts_per_tok=2, router_aux_loss_coef=0.1)
    ids = torch.randint(3, 128, (2, 12))
    out = model(ids, labels=ids)
    plain = torch.nn.functional.cross_entropy(out.logits[:, :-1].reshape(-1, 128), ids[:, 1:].reshape(-1))
    assert out.aux_loss is not None and out.aux_loss > 0
    assert torch.allclose(out.loss, plain + 0.1 * out.aux_loss, atol=1e-6)
    assert len(out.router_logits) == 2  # one per MoE layer
    # Balance loss of a perfectly uniform router equals num_layers * 1.0.
    from minimind_hf.models.modeling_minimind import load_balancing_loss

    uniform = (torch.zeros(24, 4), torch.zeros(24, 4))
    assert torch.allclose(load_balancing_loss(uniform, 4, 2), torch.tensor(2.0))
    assert model(ids).aux_loss is None  # inference: no router bookkeeping


def test_moe_top_k_and_expert_gradients():
    model = tiny_model(use_moe=True, num_experts=4, num_experts_per_tok=2).train()
    routed = []
    moe = model.model.layers[0].mlp
    moe.gate.register_forward_hook(lambda mod, inp, out: routed.append(out[2]))
    ids = torch.randint(3, 128, (1, 3))  # 3 tokens x top-2: at most 6 expert slots
    model(ids, labels=ids).loss.backward()
    indices = routed[0]
    assert indices.shape == (3, 2) and all(len(set(row.tolist())) == 2 for row in indices)
    used = set(indices.flatten().tolist())
    for e, expert in enumerate(moe.experts):
        has_grad = expert.down_proj.weight.grad is not None and expert.down_proj.weight.grad.abs().sum() > 0
        assert has_grad == (e in used), e
    assert moe.gate.weight.grad.abs().sum() > 0


def test_shared_experts_always_run():
    model = tiny_model(use_moe=True, num_shared_experts=1).train()
    ids = torch.randint(3, 128, (1, 6))
    model(ids, labels=ids).loss.backward()
    assert model.model.layers[1].mlp.shared_experts[0].up_proj.weight.grad.abs().sum() > 0


# ---------------------------------------------------------------- save / load


@pytest.mark.parametrize("overrides", [{}, {"qk_norm": True, "use_moe": True, "num_shared_experts": 1}])
def test_save_and_reload_round_trip(tmp_path, overrides):
    model = tiny_model(**overrides)
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    assert AutoConfig.from_pretrained(tmp_path).model_type == "minimind"
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert isinstance(reloaded, MiniMindForCausalLM)
    assert reloaded.lm_head.weight.data_ptr() == reloaded.model.embed_tokens.weight.data_ptr()
    ids = torch.randint(3, 128, (2, 9))
    with torch.no_grad():
        assert torch.equal(model(ids).logits, reloaded(ids).logits)
    kwargs = dict(max_new_tokens=8, do_sample=False, pad_token_id=0)
    assert torch.equal(model.generate(ids, **kwargs), reloaded.generate(ids, **kwargs))


def test_preset_trains_with_trainer_and_generates(tmp_path):
    """The plain transformers Trainer fits a counting pattern; greedy decoding then continues it."""
    from datasets import Dataset
    from transformers import Trainer, TrainingArguments

    torch.manual_seed(0)
    model = MiniMindForCausalLM(preset_config("tiny", vocab_size=64, max_position_embeddings=64))
    gen = torch.Generator().manual_seed(0)
    rows = []
    for _ in range(256):
        start = int(torch.randint(3, 40, (1,), generator=gen))
        ids = list(range(start, start + 16))
        rows.append({"input_ids": ids, "labels": ids})
    args = TrainingArguments(
        output_dir=str(tmp_path),
        max_steps=80,
        learning_rate=5e-3,
        per_device_train_batch_size=16,
        lr_scheduler_type="cosine",
        warmup_steps=5,
        logging_steps=10,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        seed=0,
        disable_tqdm=True,
    )
    trainer = Trainer(model=model, args=args, train_dataset=Dataset.from_list(rows))
    trainer.train()
    losses = [log["loss"] for log in trainer.state.log_history if "loss" in log]
    assert losses[-1] < 0.25 * losses[0], losses
    prompt = torch.tensor([[20, 21, 22, 23]])
    out = model.eval().generate(prompt, max_new_tokens=6, do_sample=False, pad_token_id=0)
    assert out[0, 4:].tolist() == [24, 25, 26, 27, 28, 29]
