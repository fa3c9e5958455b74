"""Exact-answer tasks: greedy replies to questions with a reference answer (sums, identity)."""

from __future__ import annotations

from collections.abc import Sequence

from .answers import answer_part, is_correct
from .generation import accuracy_by_kind, greedy_replies, reply_budget


def exact_answer_accuracy(
    model,
    tokenizer,
    prompts: Sequence[list[dict]],
    answers: Sequence[str],
    kinds: Sequence[str] | None = None,
    max_new_tokens: int = 16,
    batch_size: int = 32,
    chat_template_kwargs: dict | None = None,
) -> dict:
    """Greedy replies to chat prompts (thinking off unless `chat_template_kwargs` turn it on, as
    GRPOConfig's do for rollouts), scored against reference answers.

    A reply is right when its answer part (after a `</think>`, if any) holds the answer: the
    last integer for integer answers, the text otherwise (`answers.is_correct`) - the
    same check as the `exact_answer` reward. Returns `{"accuracy", "correct", "total",
    "per_kind": {kind: {"accuracy", "correct", "total"}}}`.
    """
    if len(prompts) != len(answers):
        raise ValueError(f"{len(prompts)} prompts but {len(answers)} answers")
    if not prompts:
        raise ValueError("no prompts with a reference answer to score")
    replies = greedy_replies(model, tokenizer, prompts, max_new_tokens, batch_size, chat_template_kwargs)
    kinds = list(kinds) if kinds is not None else [""] * len(prompts)
    counts: dict[str, list[int]] = {}
    for reply, answer, kind in zip(replies, answers, kinds):
        ok = int(is_correct(answer_part(reply), str(answer)))
        for key in ("", kind) if kind else ("",):
            counts.setdefault(key, [0, 0])
            counts[key][0] += ok
            counts[key][1] += 1
    correct, total = counts.pop("")
    return {
        "accuracy": correct / total,
        "correct": correct,
        "total": total,
        "per_kind": {k: {"accuracy": c / n, "correct": c, "total": n} for k, (c, n) in sorted(counts.items())},
    }


def arithmetic_accuracy(
    model, tokenizer, records: list[dict], max_new_tokens: int | None = None, batch_size: int = 32
) -> dict[str, float]:
    """Accuracy per ``kind`` (plus ``"all"``) of greedy replies to embedded SFT records' last question.

    The prompt is the record's conversation without its final assistant turn; the reply is
    scored against ``record["answer"]`` with :func:`is_correct`. Works for every kind of the
    embedded arithmetic sets (identity records check that the reply names MiniMind).
    ``max_new_tokens=None`` allows the longest reference reply plus two tokens.
    """
    if not records:
        return {}
    max_new_tokens = max_new_tokens or reply_budget(tokenizer, records)
    replies = greedy_replies(model, tokenizer, [r["conversations"][:-1] for r in records], max_new_tokens, batch_size)
    return accuracy_by_kind(
        [r["kind"] for r in records], [is_correct(reply, r["answer"]) for r, reply in zip(records, replies)]
    )


def evaluate_arithmetic(
    model,
    tokenizer,
    data: str = "embedded:rl_eval",
    seed: int = 42,
    limit: int | None = None,
    max_new_tokens: int | None = None,
    batch_size: int = 8,
    thinking: bool = False,
) -> dict:
    """Held-out exact-answer accuracy on RL prompts with answers (the `grpo` stage's before/after metric)."""
    from ..data.rl import load_answered_prompts

    rows = load_answered_prompts(data, seed, limit)
    result = exact_answer_accuracy(
        model,
        tokenizer,
        [r["prompt"] for r in rows],
        [r["answer"] for r in rows],
        [r["kind"] for r in rows],
        max_new_tokens or 16,
        batch_size,
        chat_template_kwargs={"enable_thinking": thinking},
    )
    return {"data": data, "thinking": thinking, **result}
