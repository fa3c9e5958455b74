"""Less work per real token, same numbers: document attention for packed rows and the output
head narrowed to supervised positions equal the plain paths (logits, loss, every gradient)."""

import tempfile
from pathlib import Path
from unittest import mock

import pytest
import torch
from helpers import tiny_model
from transformers import Trainer, TrainingArguments
from transformers.integrations import sdpa_attention

from minimind_hf.cli.train import main
from minimind_hf.data.text import CausalLMCollator
from minimind_hf.training.attention import DOCUMENT_SDPA
from minimind_hf.training.supervised_head import SupervisedHeadTrainer

DOCS = [[7, 5, 9], [11, 3, 8, 4, 2, 6, 5], [9, 9, 4, 13], [3, 12, 5, 7, 8, 2], [4, 10]]


def packed_batch():
    """Two packed rows (3 and 2 documents; the second right-padded by the collator)."""
    rows = []
    for docs in (DOCS[:3], DOCS[3:]):
        ids = sum(docs, [])
        rows.append({"input_ids": ids, "labels": ids, "seq_lengths": [len(d) for d in docs]})
    return CausalLMCollator(pad_token_id=0)(rows)


def forward_backward(model, **inputs):
    model.zero_grad()
    out = model(**inputs)
    out.loss.backward()
    return out, {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


# ----------------------------------------------------------------------------- document attention


def test_document_attention_equals_masked_sdpa_and_documents_alone():
    batch = packed_batch()
    model = tiny_model(attn="sdpa").train()
    masked, masked_grads = forward_backward(model, **batch)
    model.set_attn_implementation(DOCUMENT_SDPA)
    assert model.config._attn_implementation == DOCUMENT_SDPA
    document, document_grads = forward_backward(model, **batch)

    torch.testing.assert_close(document.loss, masked.loss, atol=1e-6, rtol=1e-6)
    real = batch["labels"] != -100
    torch.testing.assert_close(document.logits[real], masked.logits[real], atol=1e-5, rtol=1e-5)
    assert document_grads.keys() == masked_grads.keys()
    for name, grad in document_grads.items():
        torch.testing.assert_close(grad, masked_grads[name], atol=1e-6, rtol=1e-5, msg=name)
    # The independent oracle: every document run alone, with no packing at all.
    model.set_attn_implementation("sdpa")
    with torch.no_grad():
        for row, docs in enumerate((DOCS[:3], DOCS[3:])):
            start = 0
            for doc in docs:
                alone = model(input_ids=torch.tensor([doc])).logits[0]
                torch.testing.assert_close(document.logits[row, start : start + len(doc)], alone, atol=1e-5, rtol=1e-5)
                start += len(doc)


def test_document_attention_skips_cross_document_blocks():
    batch = packed_batch()
    model = tiny_model(attn=DOCUMENT_SDPA)
    seen = []
    real_sdpa = torch.nn.functional.scaled_dot_product_attention

    def spy(query, key, *args, **kwargs):
        seen.append(key.shape[-2])
        return real_sdpa(query, key, *args, **kwargs)

    with mock.patch.object(sdpa_attention.torch.nn.functional, "scaled_dot_product_attention", spy), torch.no_grad():
        model(**batch)
    layers = model.config.num_hidden_layers
    # One call per document per layer, never a full row; the second row's padding (the
    # collator continues its last document's positions) rides along with its last document.
    width = batch["input_ids"].shape[1]
    padding = width - sum(len(d) for d in DOCS[3:])
    lengths = [len(d) for d in DOCS[:3]] + [len(DOCS[3]), len(DOCS[4]) + padding]
    assert padding > 0 and sorted(seen) == sorted(lengths * layers)
    assert max(seen) < width


def test_document_attention_falls_back_to_sdpa_for_padded_and_cached_batches():
    prompts = torch.tensor([[0, 0, 5, 9, 4], [3, 7, 2, 8, 6]])
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    outputs = []
    for attn in ("sdpa", DOCUMENT_SDPA):
        model = tiny_model(attn=attn)
        outputs.append(model.generate(prompts, attention_mask=mask, max_new_tokens=6, do_sample=False, pad_token_id=0))
        full = model(prompts[1:], use_cache=True)
        step = model(torch.tensor([[4]]), past_key_values=full.past_key_values)
        outputs.append(step.logits)
    assert torch.equal(outputs[0], outputs[2])
    torch.testing.assert_close(outputs[1], outputs[3], atol=1e-6, rtol=1e-6)


# ----------------------------------------------------------------------------- narrowed head


def trainer_loss_and_grads(trainer_class, model, inputs, num_items):
    args = TrainingArguments(tempfile.mkdtemp(), use_cpu=True, report_to="none")
    trainer = trainer_class(model=model, args=args)
    model.zero_grad()
    loss, outputs = trainer.compute_loss(model, dict(inputs), return_outputs=True, num_items_in_batch=num_items)
    loss.backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    return loss.detach(), outputs.logits, grads


@pytest.mark.parametrize("variant", ["dense", "moe", "lora"])
@pytest.mark.parametrize("num_items", [None, 37])
def test_narrowed_head_gives_the_stock_trainers_loss_and_gradients(variant, num_items):
    model = tiny_model(use_moe=variant == "moe", num_experts=4, num_experts_per_tok=2).train()
    if variant == "lora":
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], lora_dropout=0.0))
    ids = torch.randint(3, 128, (3, 12), generator=torch.Generator().manual_seed(1))
    labels = ids.clone()
    labels[:, :5] = -100  # prompts
    labels[2, 9:] = -100  # padding
    inputs = {"input_ids": ids, "labels": labels, "attention_mask": torch.ones_like(ids)}
    num_items = None if num_items is None else torch.tensor(num_items)
    stock = trainer_loss_and_grads(Trainer, model, inputs, num_items)
    narrowed = trainer_loss_and_grads(SupervisedHeadTrainer, model, inputs, num_items)

    supervised = int((labels[:, 1:] != -100).sum())
    assert stock[1].shape == (3, 12, 128)
    assert narrowed[1].shape == (supervised, 128)  # the head ran on supervised positions only
    torch.testing.assert_close(narrowed[0], stock[0], atol=1e-6, rtol=1e-6)
    keep = torch.nn.functional.pad(labels[:, 1:] != -100, (0, 1), value=False)
    torch.testing.assert_close(narrowed[1], stock[1][keep], atol=1e-5, rtol=1e-5)
    assert narrowed[2].keys() == stock[2].keys() and stock[2]
    for name, grad in narrowed[2].items():
        torch.testing.assert_close(grad, stock[2][name], atol=1e-6, rtol=1e-5, msg=name)


def test_packed_pretraining_uses_document_attention_and_saves_a_plain_config(tmp_path):
    seen = []
    real_sdpa = torch.nn.functional.scaled_dot_product_attention

    def spy(query, key, *args, **kwargs):
        seen.append(key.shape[-2])
        return real_sdpa(query, key, *args, **kwargs)

    out = tmp_path / "pretrain"
    recipe = str(Path(__file__).resolve().parents[1] / "recipes" / "pretrain.yaml")
    args = [recipe, "--output_dir", str(out), "--max_steps", "1", "--max_length", "512"]
    with mock.patch.object(sdpa_attention.torch.nn.functional, "scaled_dot_product_attention", spy):
        assert main([*args, "--per_device_train_batch_size", "4", "--eval_files", "[]"]) == 0
    assert DOCUMENT_SDPA not in (out / "config.json").read_text()
    # 2 layers x 4 rows of 512, attended segment by segment (plain SDPA: one call per layer).
    assert sum(seen) == 2 * 4 * 512 and len(seen) > 2 * 4
