"""Deterministic synthetic SFT / DPO sets whose answers can be checked.

The quickstart recipes and the end-to-end "it learns" tests train on these (no network).

Problems. A *problem* is the thing a record asks, independent of its wording:
``Problem("add1", (3, 4))`` is "3 + 4", ``Problem("followup", (3, 4, "+", 2))`` is
"3 + 4, then plus 2", ``Problem("identity", ("Who are you?",))`` is one identity question.
Train / held-out splits are made over problems, never over texts, so a held-out
question is unseen in every phrasing. Each problem also lists the single-step *facts* it
relies on (a follow-up "3 + 4, plus 2" uses the facts add1(3, 4) and add1(7, 2)); a
training follow-up only uses training facts, so multi-turn data cannot leak a held-out
``add1`` pair either.

Kinds (roughly by difficulty): ``identity``, ``add1`` (a + b, digits 0-9), ``sub1``
(a - b, digits, a >= b), ``mul1`` (a * b, digits), ``add2`` (two-digit a + b) and
``followup`` (a two-turn conversation: an add1 question, then "And plus/minus c?").

Records (one JSON object per line) are MiniMind SFT records plus metadata::

    {"conversations": [{"role": "user", "content": "What is 3 + 4?"},
                       {"role": "assistant", "content": "7"}],
     "kind": "add1", "problem": "3 + 4", "answer": "7"}

``answer`` is always a string: the integer result for arithmetic, the name ``MiniMind``
for identity questions (see :func:`is_correct`). DPO records are MiniMind ``dpo.jsonl``
pairs ``{"chosen": [...], "rejected": [...]}`` sharing the prompt, with the same metadata.
Everything is seeded with private ``random.Random`` instances: same seed, same bytes.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from .corpus import pretrain_split
from .files import write_jsonl
from .sampling import even_stream

ARITHMETIC_KINDS = ("add1", "sub1", "mul1", "add2")
KINDS = ("identity", *ARITHMETIC_KINDS, "followup")
NAME = "MiniMind"

# ----------------------------------------------------------------------------- phrasings

# op -> (symbol, English word, Chinese word)
OPS = {"+": ("+", "plus", "加"), "-": ("-", "minus", "减"), "*": ("*", "times", "乘以")}
KIND_OPS = {"add1": "+", "sub1": "-", "mul1": "*", "add2": "+"}

QUESTION_TEMPLATES = (
    "What is {a} {sym} {b}?",
    "What is {a} {word} {b}?",
    "Calculate {a} {sym} {b}.",
    "{a} {sym} {b} = ?",
    "Please compute {a} {word} {b}.",
    "{a}{zh}{b}等于多少？",
    "计算{a}{sym}{b}。",
)
FOLLOWUP_TEMPLATES = {
    "+": ("And plus {c}?", "Now add {c}.", "再加{c}呢？"),
    "-": ("And minus {c}?", "Now subtract {c}.", "再减{c}呢？"),
}

IDENTITY_QUESTIONS = {
    "en": (
        "Who are you?",
        "What is your name?",
        "Introduce yourself.",
        "What should I call you?",
        "Tell me about yourself.",
        "Which model are you?",
    ),
    "zh": ("你是谁？", "你叫什么名字？", "介绍一下你自己。", "请问你是哪个模型？"),
}
IDENTITY_ANSWERS = {
    # Short: Chinese costs ~3 byte-level tokens per character with the pydoc-trained BPE.
    "en": f"I am {NAME}, a small language model.",
    "zh": f"我是{NAME}。",
}
# Preference data teaches the model not to claim someone else's identity.
WRONG_IDENTITY_ANSWERS = {
    "en": "I am ChatGPT, a large language model.",
    "zh": "我是ChatGPT。",
}


# ----------------------------------------------------------------------------- problems


@dataclass(frozen=True, order=True)
class Problem:
    kind: str
    args: tuple

    @property
    def answer(self) -> str:
        if self.kind == "identity":
            return NAME
        if self.kind == "followup":
            a, b, op, c = self.args
            return str(_apply(op, a + b, c))
        a, b = self.args
        return str(_apply(KIND_OPS[self.kind], a, b))

    @property
    def text(self) -> str:
        """A readable, uniform-typed name of the problem (stored as ``"problem"`` in records)."""
        if self.kind == "identity":
            return self.args[0]
        if self.kind == "followup":
            a, b, op, c = self.args
            return f"({a} + {b}) {op} {c}"
        a, b = self.args
        return f"{a} {KIND_OPS[self.kind]} {b}"

    @property
    def facts(self) -> tuple["Problem", ...]:
        """The single-step problems this one is made of (itself, for single-step kinds)."""
        if self.kind != "followup":
            return (self,)
        a, b, op, c = self.args
        return (Problem("add1", (a, b)), Problem("add1" if op == "+" else "sub1", (a + b, c)))


def _apply(op: str, a: int, b: int) -> int:
    return a + b if op == "+" else a - b if op == "-" else a * b


def language(question: str) -> str:
    return "en" if question.isascii() else "zh"


def all_problems(kind: str) -> list[Problem]:
    """Every problem of a single-step kind, in a fixed order."""
    digits = range(10)
    if kind in ("add1", "mul1"):
        return [Problem(kind, (a, b)) for a in digits for b in digits]
    if kind == "sub1":
        return [Problem(kind, (a, b)) for a in digits for b in digits if a >= b]
    if kind == "add2":
        return [Problem(kind, (a, b)) for a in range(10, 100) for b in range(10, 100)]
    if kind == "identity":
        return [Problem(kind, (q,)) for lang in ("en", "zh") for q in IDENTITY_QUESTIONS[lang]]
    raise ValueError(f"unknown kind {kind!r}; choose one of {', '.join(KINDS)}")


def _followups() -> list[Problem]:
    # Intermediate results stay single-digit so the second step is an add1 / sub1 fact too.
    out = []
    for a in range(10):
        for b in range(10 - a):
            out += [Problem("followup", (a, b, "+", c)) for c in range(10)]
            out += [Problem("followup", (a, b, "-", c)) for c in range(a + b + 1)]
    return out


def _split(problems: list[Problem], held_out_fraction: float, rng: random.Random) -> tuple[list, list]:
    """Hold out a random share of problems, but never the last one with a given answer:
    no model can be expected to produce a number it never saw as an answer (0 = 0 + 0 only)."""
    shuffled = problems[:]
    rng.shuffle(shuffled)
    n = max(1, round(len(shuffled) * held_out_fraction))
    left = Counter(p.answer for p in shuffled)
    held_out = []
    for problem in shuffled:
        if len(held_out) == n:
            break
        if left[problem.answer] > 1:
            left[problem.answer] -= 1
            held_out.append(problem)
    chosen = set(held_out)
    return sorted(p for p in problems if p not in chosen), sorted(held_out)


def split_problems(kind: str, seed: int = 0, held_out_fraction: float = 0.2) -> tuple[list[Problem], list[Problem]]:
    """(train, held_out) problems of one kind: disjoint, seeded, each sorted."""
    rng = random.Random(f"split:{seed}:{kind}")  # one stream per kind: adding kinds changes nothing else
    if kind == "identity":  # hold out whole questions, in both languages
        parts = [
            _split([p for p in all_problems(kind) if language(p.args[0]) == lang], held_out_fraction, rng)
            for lang in ("en", "zh")
        ]
        return sorted(parts[0][0] + parts[1][0]), sorted(parts[0][1] + parts[1][1])
    if kind == "followup":
        # Only follow-ups whose every fact is a training fact; held out = unseen combinations of them.
        train_facts = {p for k in ("add1", "sub1") for p in split_problems(k, seed, held_out_fraction)[0]}
        usable = [p for p in _followups() if set(p.facts) <= train_facts]
        return _split(usable, held_out_fraction, rng)
    return _split(all_problems(kind), held_out_fraction, rng)


# ----------------------------------------------------------------------------- records


def _ask(problem: Problem, rng: random.Random) -> list[dict]:
    """The conversation of a problem, in a random phrasing, without the final answer."""
    if problem.kind == "identity":
        return [{"role": "user", "content": problem.args[0]}]
    if problem.kind == "followup":
        a, b, op, c = problem.args
        first = _ask(Problem("add1", (a, b)), rng)
        follow = rng.choice(FOLLOWUP_TEMPLATES[op]).format(c=c)
        return first + [{"role": "assistant", "content": str(a + b)}, {"role": "user", "content": follow}]
    a, b = problem.args
    sym, word, zh = OPS[KIND_OPS[problem.kind]]
    question = rng.choice(QUESTION_TEMPLATES).format(a=a, b=b, sym=sym, word=word, zh=zh)
    return [{"role": "user", "content": question}]


def _reply(problem: Problem) -> str:
    if problem.kind == "identity":
        return IDENTITY_ANSWERS[language(problem.args[0])]
    return problem.answer  # just the number: the shortest thing a tiny model can learn


def _wrong_reply(problem: Problem, rng: random.Random) -> str:
    if problem.kind == "identity":
        return WRONG_IDENTITY_ANSWERS[language(problem.args[0])]
    answer = int(problem.answer)
    delta = rng.choice((-2, -1, 1, 2))
    return str(answer + delta if answer + delta >= 0 else answer - delta)  # near miss, never negative


def _meta(problem: Problem) -> dict:
    return {"kind": problem.kind, "problem": problem.text, "answer": problem.answer}


def sft_record(problem: Problem, rng: random.Random) -> dict:
    prompt = _ask(problem, rng)
    return {"conversations": prompt + [{"role": "assistant", "content": _reply(problem)}], **_meta(problem)}


def dpo_record(problem: Problem, rng: random.Random) -> dict:
    prompt = _ask(problem, rng)
    chosen = prompt + [{"role": "assistant", "content": _reply(problem)}]
    rejected = prompt + [{"role": "assistant", "content": _wrong_reply(problem, rng)}]
    return {"chosen": chosen, "rejected": rejected, **_meta(problem)}


def make_records(
    split: str = "train",
    kinds=KINDS,
    per_kind: int | None = 1000,
    seed: int = 0,
    format: str = "sft",
    held_out_fraction: float = 0.2,
) -> list[dict]:
    """Records of the given kinds, kind after kind.

    ``split="train"``: ``per_kind`` records drawn from the training problems (each problem
    about equally often, each time in a random phrasing). ``split="held_out"``: every
    held-out problem once (at most ``per_kind``; None = all), in a random phrasing.
    ``format`` is ``"sft"`` or ``"dpo"``.
    """
    if split not in ("train", "held_out"):
        raise ValueError(f"split must be 'train' or 'held_out', got {split!r}")
    build = {"sft": sft_record, "dpo": dpo_record}[format]
    records = []
    for kind in kinds:
        train, held_out = split_problems(kind, seed, held_out_fraction)
        rng = random.Random(f"{format}:{split}:{seed}:{kind}")
        if split == "train":
            problems = even_stream(train, per_kind, rng)
        else:
            problems = held_out[:]
            rng.shuffle(problems)
            problems = problems[:per_kind]
        records += [build(problem, rng) for problem in problems]
    return records


# The files write_embedded_datasets writes (recipes name them `embedded:NAME`).
EMBEDDED_NAMES = (
    "pretrain_train",
    "pretrain_eval",
    "sft_train",
    "sft_eval",
    "sft_basic_train",
    "sft_basic_eval",
    "dpo_train",
    "dpo_eval",
)
# The quickstart SFT set: what a tiny model learns in a few CPU minutes (measured: held-out
# single-digit sums >= 95% after 600 steps; mixing in more kinds needs proportionally more).
BASIC_KINDS = ("add1",)


def write_embedded_datasets(
    out_dir: str | Path,
    seed: int = 0,
    kinds=KINDS,
    per_kind: int = 1000,
    eval_per_kind: int | None = 100,
    held_out_fraction: float = 0.2,
    pretrain_held_out_fraction: float = 0.05,
) -> dict[str, Path]:
    """Write the quickstart data sets; returns ``{name: path}``.

    ``pretrain_train`` / ``pretrain_eval`` (pydoc corpus, ``{"text"}``), ``sft_train`` /
    ``sft_eval`` and ``dpo_train`` / ``dpo_eval`` (synthetic; eval = held-out problems).
    Deterministic and idempotent: the same arguments give the same bytes.
    """
    out_dir = Path(out_dir)
    train_docs, eval_docs = pretrain_split(pretrain_held_out_fraction, seed=seed)
    common = dict(kinds=kinds, seed=seed, held_out_fraction=held_out_fraction)
    contents = {
        "pretrain_train": [{"text": t} for t in train_docs],
        "pretrain_eval": [{"text": t} for t in eval_docs],
        "sft_train": make_records("train", per_kind=per_kind, format="sft", **common),
        "sft_eval": make_records("held_out", per_kind=eval_per_kind, format="sft", **common),
        "sft_basic_train": make_records("train", per_kind=per_kind, format="sft", **{**common, "kinds": BASIC_KINDS}),
        "sft_basic_eval": make_records(
            "held_out", per_kind=eval_per_kind, format="sft", **{**common, "kinds": BASIC_KINDS}
        ),
        "dpo_train": make_records("train", per_kind=per_kind, format="dpo", **common),
        "dpo_eval": make_records("held_out", per_kind=eval_per_kind, format="dpo", **common),
    }
    return {name: write_jsonl(out_dir / f"{name}.jsonl", records) for name, records in contents.items()}
