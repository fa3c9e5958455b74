"""The output head applied only where a label is supervised.

A causal LM's head turns every position's hidden state into vocabulary logits, and the loss
then throws away the positions whose next token is not supervised (prompts, padding, the first
token of each packed document). With a 6,400-token vocabulary the head plus the loss is a third
of a small model's training step, and in SFT half the positions are unsupervised.
:class:`SupervisedHeadTrainer` narrows the head's input to the supervised positions (a forward
pre-hook on the output embeddings) and hands the loss the matching targets as ``shift_labels``,
which transformers' causal-LM loss takes instead of shifting ``labels`` itself. Loss and
gradients equal the stock Trainer's within float rounding; the model's own extras (the MoE
balance loss, gradient-accumulation scaling) run unchanged because the model still computes
the loss.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch.nn.functional as F
from transformers import Trainer
from transformers.loss.loss_utils import ForCausalLMLoss

IGNORE_INDEX = -100


def supports_narrowed_head(model) -> bool:
    """Only a model whose loss is transformers' causal-LM loss (which accepts pre-shifted
    ``shift_labels``) and that has a separate output head can be narrowed."""
    return getattr(model, "loss_function", None) is ForCausalLMLoss and model.get_output_embeddings() is not None


@contextmanager
def head_on_supervised_positions(model, labels):
    """While active, the head sees only positions whose next label is supervised: yields the
    keyword arguments (``shift_labels``) that make the model's loss match."""
    targets = labels[:, 1:]
    supervised = targets != IGNORE_INDEX
    keep = F.pad(supervised, (0, 1), value=False)  # position t predicts label t + 1
    handle = model.get_output_embeddings().register_forward_pre_hook(lambda _, args: (args[0][keep], *args[1:]))
    try:
        yield {"shift_labels": targets[supervised]}
    finally:
        handle.remove()


class SupervisedHeadTrainer(Trainer):
    """A stock Trainer whose model computes logits only at supervised positions (train and eval;
    the eval loop keeps no logits, see ``prediction_loss_only`` in the stage defaults)."""

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        unwrapped = self.accelerator.unwrap_model(model)
        labels = inputs.get("labels")
        if labels is None or not supports_narrowed_head(unwrapped):
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        with head_on_supervised_positions(unwrapped, labels) as loss_kwargs:
            return super().compute_loss(model, {**inputs, **loss_kwargs}, return_outputs, num_items_in_batch)
