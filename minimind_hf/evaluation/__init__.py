"""Evaluation: one module per task family behind one entry, :func:`evaluate`.

- ``ppl`` (:mod:`.perplexity`): perplexity / bits per byte, sliding window;
- ``ceval`` (:mod:`.multiple_choice`): C-Eval-format multiple choice by log-likelihood,
  the same prompt and tokenization as lm-evaluation-harness (:mod:`.harness`, ``lm-eval``);
- generation tasks, all on the one greedy loop of :mod:`.generation`: ``arithmetic``
  (:mod:`.arithmetic`, exact answers), ``toolcall`` (:mod:`.toolcall`, a real tool loop) and
  image questions (:mod:`.vision`); replies are checked by :mod:`.answers`.

Works with any causal LM folder ``AutoModelForCausalLM`` can load (a MiniMind checkpoint, an
exported remote-code folder, a stock Llama / Qwen3 folder).
"""

from __future__ import annotations

from pathlib import Path

from .arithmetic import arithmetic_accuracy, evaluate_arithmetic, exact_answer_accuracy
from .generation import greedy_replies
from .harness import run_lm_eval, write_lm_eval_tasks
from .multiple_choice import (
    LETTERS,
    Question,
    bos_text,
    chat_prompt,
    encode,
    encode_pair,
    evaluate_ceval,
    format_question,
    list_subjects,
    plain_prompt,
    read_ceval_folder,
    read_questions,
    score_multiple_choice,
    write_results,
)
from .perplexity import (
    DEFAULT_MAX_LENGTH_CAP,
    PerplexityResult,
    evaluate_perplexity,
    perplexity,
    read_documents,
    window_spans,
)
from .scoring import tail_logprobs
from .toolcall import evaluate_toolcall


def ceval_summary(model, tokenizer, data: str | Path, output: str | Path | None = None, **options) -> dict:
    """C-Eval accuracy (overall and per subject); with ``output`` the per-question results too."""
    result = evaluate_ceval(model, tokenizer, data, **options)
    if output:
        write_results(result, output)
    return result.summary()


TASKS = {
    "ppl": evaluate_perplexity,
    "ceval": ceval_summary,
    "arithmetic": evaluate_arithmetic,
    "toolcall": evaluate_toolcall,
}


def evaluate(model, tokenizer, task: str, **options) -> dict:
    """Run one task (a key of :data:`TASKS`) and return its JSON-ready summary. ``lm-eval`` loads
    the model itself from a folder: see :func:`harness.run_lm_eval`."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r} (expected one of {', '.join(TASKS)})")
    return TASKS[task](model, tokenizer, **options)


def load_model_and_tokenizer(
    path: str | Path, trust_remote_code: bool = False, device: str = "cpu", dtype: str = "auto"
):
    """Model + tokenizer from one folder; `import minimind_hf` has registered our model types."""
    from transformers import AutoTokenizer

    import minimind_hf  # noqa: F401  (registers "minimind" with the Auto classes)

    from ..utils import load_pretrained

    tokenizer = AutoTokenizer.from_pretrained(str(path), trust_remote_code=trust_remote_code)
    model = load_pretrained(path, trust_remote_code=trust_remote_code, dtype=dtype)
    return model.to(device).eval(), tokenizer


__all__ = [
    "DEFAULT_MAX_LENGTH_CAP",
    "LETTERS",
    "TASKS",
    "PerplexityResult",
    "Question",
    "arithmetic_accuracy",
    "bos_text",
    "ceval_summary",
    "chat_prompt",
    "encode",
    "encode_pair",
    "evaluate",
    "evaluate_arithmetic",
    "evaluate_ceval",
    "evaluate_perplexity",
    "evaluate_toolcall",
    "exact_answer_accuracy",
    "format_question",
    "greedy_replies",
    "list_subjects",
    "load_model_and_tokenizer",
    "plain_prompt",
    "perplexity",
    "read_ceval_folder",
    "read_documents",
    "read_questions",
    "run_lm_eval",
    "score_multiple_choice",
    "tail_logprobs",
    "window_spans",
    "write_lm_eval_tasks",
    "write_results",
]
