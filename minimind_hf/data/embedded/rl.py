"""Embedded RL prompts whose answers a rule checks (MiniMind ``rlaif`` records + ``answer``).

``rl_train`` / ``rl_eval`` - sums, on the SFT quickstart's own split of single-digit sums
(``synthetic.split_problems("add1", seed)``): the training prompts ask training pairs, the
held-out prompts ask every held-out pair (never trained by SFT or RL) in every phrasing.
``recipes/grpo.yaml`` asks them with thinking on for half the rollouts (``thinking_ratio``):
the SFT quickstart only ever answered after the template's empty think block, so with
thinking on it must start its reply itself and gets few sums right (measured after the
quickstart chain: 0.84 held-out with thinking off, 0.08 with it on). Sampled replies are
sometimes right, so GRPO's group-normalised rewards have a signal (measured in 100 steps:
thinking 0.08 -> 0.25, plain 0.84 -> 0.72; thinking-only rollouts: 0.62 and 0.09).

``rl_larger_train`` / ``rl_larger_eval`` - "which is larger?" (``max1``: the larger of two
different digits), a skill the SFT quickstart never saw. Split over unordered pairs: a
held-out pair is unseen in both orders and every phrasing; pairs whose larger number is 1
are never held out. Much harder: the SFT model answers with the sum (0.02 held-out), and
160 GRPO steps moved the training reward only from 0.18 to 0.23 - a target for longer runs.

``reward_train`` / ``reward_eval`` - preference pairs for stage ``reward`` (MiniMind
``dpo.jsonl`` form): over the same sum split, the concise answer is chosen over the same
answer stuck in a loop ("7 7 7 7", what MiniMind's repetition shaping punishes), and over the
identity split "I am MiniMind" over "I am ChatGPT". Held-out pairs ask held-out problems
(sums in every phrasing).

Records::

    {"conversations": [{"role": "user", "content": "What is 3 + 4?"}, {"role": "assistant", "content": ""}],
     "answer": "7", "kind": "add1", "problem": "3 + 4"}

Train sets: ``per_kind`` records drawn evenly from the training problems in random
phrasings; eval sets: every held-out problem in every phrasing. Seeded, deterministic.
"""

from __future__ import annotations

import random
from pathlib import Path

from .arithmetic import IDENTITY_ANSWERS, OPS, QUESTION_TEMPLATES, WRONG_IDENTITY_ANSWERS, language, split_problems
from .files import write_jsonl

LARGER_TEMPLATES = (
    "Which is larger, {a} or {b}?",
    "Which number is bigger: {a} or {b}?",
    "{a} or {b}: which is greater?",
    "Pick the larger number: {a}, {b}.",
    "{a}和{b}哪个大？",
)
EMBEDDED_NAMES = ("rl_train", "rl_eval", "rl_larger_train", "rl_larger_eval", "reward_train", "reward_eval")


def split_pairs(seed: int = 0, held_out_fraction: float = 0.2) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(train, held_out) unordered digit pairs (a < b): disjoint, seeded, each sorted."""
    pairs = [(a, b) for a in range(10) for b in range(a + 1, 10)]
    rng = random.Random(f"rl-split:{seed}:max1")
    candidates = [p for p in pairs if max(p) > 1]
    rng.shuffle(candidates)
    held_out = set(candidates[: max(1, round(len(pairs) * held_out_fraction))])
    return sorted(p for p in pairs if p not in held_out), sorted(held_out)


def _record(question: str, answer: int, kind: str, problem: str) -> dict:
    return {
        "conversations": [{"role": "user", "content": question}, {"role": "assistant", "content": ""}],
        "answer": str(answer),
        "kind": kind,
        "problem": problem,
    }


def _sum_record(a: int, b: int, template: str) -> dict:
    sym, word, zh = OPS["+"]
    return _record(template.format(a=a, b=b, sym=sym, word=word, zh=zh), a + b, "add1", f"{a} + {b}")


def _larger_record(a: int, b: int, template: str) -> dict:
    return _record(template.format(a=a, b=b), max(a, b), "max1", f"max({a}, {b})")


def _problems(kind: str, split: str, seed: int, held_out_fraction: float) -> list[tuple[int, int]]:
    if kind == "add1":
        train, held_out = split_problems("add1", seed, held_out_fraction)
        return [p.args for p in (train if split == "train" else held_out)]
    train, held_out = split_pairs(seed, held_out_fraction)
    return [(a, b) for x, y in (train if split == "train" else held_out) for a, b in ((x, y), (y, x))]


def make_rl_records(
    split: str = "train", kind: str = "add1", per_kind: int = 1000, seed: int = 0, held_out_fraction: float = 0.2
) -> list[dict]:
    """RL records of one kind (``add1`` sums or ``max1`` "which is larger?")."""
    if split not in ("train", "held_out"):
        raise ValueError(f"split must be 'train' or 'held_out', got {split!r}")
    if kind not in ("add1", "max1"):
        raise ValueError(f"kind must be 'add1' or 'max1', got {kind!r}")
    build, templates = (_sum_record, QUESTION_TEMPLATES) if kind == "add1" else (_larger_record, LARGER_TEMPLATES)
    problems = _problems(kind, split, seed, held_out_fraction)
    if split == "held_out":
        return [build(a, b, t) for a, b in problems for t in templates]
    rng = random.Random(f"rl:{split}:{seed}:{kind}")
    records = []
    while len(records) < per_kind:  # every problem about equally often, reshuffled each pass
        rng.shuffle(problems)
        records += [build(a, b, rng.choice(templates)) for a, b in problems[: per_kind - len(records)]]
    return records


def make_preference_records(
    split: str = "train", per_kind: int = 300, seed: int = 0, held_out_fraction: float = 0.2
) -> list[dict]:
    """Reward-model pairs: concise vs looping sums, MiniMind vs another identity (see the module doc)."""
    if split not in ("train", "held_out"):
        raise ValueError(f"split must be 'train' or 'held_out', got {split!r}")
    rng = random.Random(f"reward:{split}:{seed}")
    part = 0 if split == "train" else 1
    sums = [p.args for p in split_problems("add1", seed, held_out_fraction)[part]]
    identity = [p.args[0] for p in split_problems("identity", seed, held_out_fraction)[part]]
    if split == "train":
        sums = [rng.choice(sums) for _ in range(per_kind)]
        identity = [rng.choice(identity) for _ in range(per_kind // 3)]
    records = []
    phrasings = (
        [(a, b, rng.choice(QUESTION_TEMPLATES)) for a, b in sums]
        if split == "train"
        else [(a, b, t) for a, b in sums for t in QUESTION_TEMPLATES]
    )  # held out: every phrasing
    for a, b, template in phrasings:
        question = _sum_record(a, b, template)["conversations"][:1]
        answer = str(a + b)
        records.append(
            {
                "chosen": question + [{"role": "assistant", "content": answer}],
                "rejected": question + [{"role": "assistant", "content": " ".join([answer] * rng.randint(3, 6))}],
                "kind": "add1_loop",
                "problem": f"{a} + {b}",
            }
        )
    for question in identity:
        lang = language(question)
        prompt = [{"role": "user", "content": question}]
        records.append(
            {
                "chosen": prompt + [{"role": "assistant", "content": IDENTITY_ANSWERS[lang]}],
                "rejected": prompt + [{"role": "assistant", "content": WRONG_IDENTITY_ANSWERS[lang]}],
                "kind": "identity",
                "problem": question,
            }
        )
    return records


def write_embedded_rl_datasets(
    out_dir: str | Path, seed: int = 0, per_kind: int = 1000, held_out_fraction: float = 0.2
) -> dict[str, Path]:
    """The EMBEDDED_NAMES jsonl files under out_dir; returns {name: path}."""
    out_dir = Path(out_dir)
    common = dict(per_kind=per_kind, seed=seed, held_out_fraction=held_out_fraction)
    contents = {
        "rl_train": make_rl_records("train", "add1", **common),
        "rl_eval": make_rl_records("held_out", "add1", **common),
        "rl_larger_train": make_rl_records("train", "max1", **common),
        "rl_larger_eval": make_rl_records("held_out", "max1", **common),
        "reward_train": make_preference_records("train", seed=seed, held_out_fraction=held_out_fraction),
        "reward_eval": make_preference_records("held_out", seed=seed, held_out_fraction=held_out_fraction),
    }
    return {name: write_jsonl(out_dir / f"{name}.jsonl", records) for name, records in contents.items()}
