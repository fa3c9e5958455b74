"""White-box distillation (MiniMind's distillation stage): alpha * CE + (1 - alpha) * T^2 * KL.

TRL's GKDTrainer optimises a generalised JSD without the hard-label term, so MiniMind's
objective is a small Trainer subclass instead.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers import Trainer


def distillation_kl(student_logits, teacher_logits, labels, temperature: float, num_items_in_batch=None):
    """Forward KL(teacher || student) at supervised positions, temperature-softened.

    Positions are the shifted next-token predictions whose label is not -100, normalised
    like the CE loss (by `num_items_in_batch` under gradient accumulation).
    """
    vocab = min(student_logits.shape[-1], teacher_logits.shape[-1])
    student = student_logits[:, :-1, :vocab].float() / temperature
    teacher = teacher_logits[:, :-1, :vocab].float() / temperature
    mask = labels[:, 1:] != -100
    per_token = F.kl_div(
        F.log_softmax(student[mask], dim=-1), F.log_softmax(teacher[mask], dim=-1), log_target=True, reduction="none"
    ).sum(-1)
    denominator = num_items_in_batch if num_items_in_batch is not None else mask.sum().clamp(min=1)
    return per_token.sum() / torch.as_tensor(denominator, device=per_token.device, dtype=per_token.dtype)


class DistillationTrainer(Trainer):
    def __init__(self, *args, teacher, distill_args, **kwargs):
        super().__init__(*args, **kwargs)
        self.teacher = teacher.to(self.args.device)
        self.alpha = distill_args.distill_alpha
        self.temperature = distill_args.distill_temperature

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        kwargs = {} if num_items_in_batch is None else {"num_items_in_batch": num_items_in_batch}
        outputs = model(**inputs, **kwargs)
        with torch.no_grad():
            teacher_logits = self.teacher(**{k: v for k, v in inputs.items() if k != "labels"}).logits
        kl = distillation_kl(outputs.logits, teacher_logits, inputs["labels"], self.temperature, num_items_in_batch)
        loss = self.alpha * outputs.loss + (1 - self.alpha) * self.temperature**2 * kl
        if self.state.global_step % max(self.args.logging_steps, 1) == 0 and model.training:
            self._distill_kl = kl.detach().item()
        return (loss, outputs) if return_outputs else loss

    def log(self, logs, *args, **kwargs):
        if hasattr(self, "_distill_kl") and "loss" in logs:
            logs["distill_kl"] = self._distill_kl
        super().log(logs, *args, **kwargs)
