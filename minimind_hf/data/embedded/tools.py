"""Embedded tool-use data: questions whose answer needs one of the built-in tools.

Every question is answered by calling exactly one tool of ``tools/builtin.py`` (calculator,
convert_units, add_days, lookup_capital) with arguments read off the question, then
copying the tool's result into the reply. Results are computed by the real tools, so the
data can never disagree with what the tool loop returns. A tiny model cannot know the
answers itself (three-digit products, dates 400 days away, capitals of held-out countries):
the held-out final-answer accuracy without tools is the baseline the tool-using model beats.

Splits are over problems, never over texts: held-out expressions, conversions and dates
never appear in training (in any phrasing), and held-out countries are never asked about
in training at all.

Every record offers all four tools (their schemas as transformers derives them, in a fixed
order) - what `scripts/chat.py --tools builtin`, `--task toolcall` and TRL's tool loop show.

``tool_sft_train`` / ``tool_sft_eval``: SFT conversations (MiniMind's tool-call form)::

    {"conversations": [{"role": "user", "content": "What is 347 * 29?"},
                       {"role": "assistant", "content": "", "tool_calls": [{"type": "function",
                        "function": {"name": "calculator", "arguments": {"expression": "347 * 29"}}}]},
                       {"role": "tool", "name": "calculator", "content": "10063"},
                       {"role": "assistant", "content": "347 * 29 = 10063."}],
     "tools": [...], "answer": "10063", "kind": "calculator",
     "expected_call": {"name": "calculator", "arguments": {"expression": "347 * 29"}}}

``tool_rl_train`` / ``tool_rl_eval``: the same questions as prompts (rlaif form: the
conversation ends with an empty assistant turn) with ``answer`` and ``expected_call``, for
the agentic ``grpo`` stage and ``scripts/eval.py --task toolcall``.
"""

from __future__ import annotations

import datetime
import random
from pathlib import Path

from ...tools.builtin import BUILTIN_TOOLS, CAPITALS, tool_schema
from .files import write_jsonl

EMBEDDED_NAMES = ("tool_sft_train", "tool_sft_eval", "tool_rl_train", "tool_rl_eval")
KINDS = tuple(BUILTIN_TOOLS)

CALC_TEMPLATES = (
    "What is {expr}?",
    "Calculate {expr}.",
    "Please compute {expr}.",
    "{expr} = ?",
    "计算{expr}。",
    "{expr}等于多少？",
)
CALC_REPLIES = {"en": "{expr} = {result}.", "zh": "{expr} 等于 {result}。"}

# unit -> how questions name it
UNIT_NAMES = {
    "km": "kilometers",
    "mile": "miles",
    "m": "meters",
    "foot": "feet",
    "cm": "centimeters",
    "inch": "inches",
    "kg": "kilograms",
    "lb": "pounds",
    "g": "grams",
    "ounce": "ounces",
    "celsius": "degrees Celsius",
    "fahrenheit": "degrees Fahrenheit",
}
CONVERSIONS = (
    ("km", "mile"),
    ("mile", "km"),
    ("m", "foot"),
    ("foot", "m"),
    ("inch", "cm"),
    ("cm", "inch"),
    ("kg", "lb"),
    ("lb", "kg"),
    ("ounce", "g"),
    ("celsius", "fahrenheit"),
    ("fahrenheit", "celsius"),
)
CONVERT_TEMPLATES = (
    "Convert {value} {source} to {target}.",
    "How many {target} are {value} {source}?",
    "What is {value} {source} in {target}?",
)
CONVERT_REPLY = "{value} {source} is {result} {target}."

DATE_TEMPLATES = {
    "after": (
        "What date is {n} days after {date}?",
        "Which day comes {n} days after {date}?",
        "{date}之后{n}天是哪一天？",
    ),
    "before": ("What date was {n} days before {date}?", "{date}之前{n}天是哪一天？"),
}
DATE_REPLIES = {
    "after": {"en": "{n} days after {date} is {result}.", "zh": "{date}之后{n}天是{result}。"},
    "before": {"en": "{n} days before {date} was {result}.", "zh": "{date}之前{n}天是{result}。"},
}

CAPITAL_TEMPLATES = (
    "What is the capital of {country}?",
    "Which city is the capital of {country}?",
    "Name the capital of {country}.",
)
CAPITAL_REPLY = "The capital of {country} is {result}."


def _language(text: str) -> str:
    return "zh" if any("\u4e00" <= ch <= "\u9fff" for ch in text) else "en"


def tool_schemas() -> list[dict]:
    return [tool_schema(fn) for fn in BUILTIN_TOOLS.values()]


# ----------------------------------------------------------------------------- problems
# A problem is (kind, arguments of the expected call, extra wording fields); its texts vary.


def _calculator_problem(rng: random.Random):
    op = rng.choice("+-*")
    a, b = rng.randint(100, 999), rng.randint(10, 999) if op != "*" else rng.randint(11, 99)
    return {"expression": f"{a} {op} {b}"}, {}


def _convert_problem(rng: random.Random):
    source, target = rng.choice(CONVERSIONS)
    return {"value": rng.randint(2, 500), "from_unit": source, "to_unit": target}, {}


def _date_problem(rng: random.Random):
    start = datetime.date(2000, 1, 1) + datetime.timedelta(days=rng.randint(0, 365 * 30))
    direction = rng.choice(("after", "after", "before"))
    n = rng.randint(2, 400)
    return {"date": start.isoformat(), "days": n if direction == "after" else -n}, {"direction": direction, "n": n}


_PROBLEMS = {"calculator": _calculator_problem, "convert_units": _convert_problem, "add_days": _date_problem}


def _key(kind: str, arguments: dict) -> tuple:
    return (kind, *sorted(arguments.items()))


def split_problems(kind: str, seed: int, n_train: int, n_held_out: int) -> tuple[list, list]:
    """(train, held_out) problems of one kind, disjoint (held-out ones are drawn first)."""
    rng = random.Random(f"tool-split:{seed}:{kind}")
    if kind == "lookup_capital":
        countries = sorted(CAPITALS)
        rng.shuffle(countries)
        cut = max(1, len(countries) // 5)
        as_problems = lambda names: [({"country": c}, {}) for c in sorted(names)]  # noqa: E731
        return as_problems(countries[cut:]), as_problems(countries[:cut])
    seen, parts = set(), []
    for size in (n_held_out, n_train):
        part = []
        while len(part) < size:
            arguments, extra = _PROBLEMS[kind](rng)
            if _key(kind, arguments) not in seen:
                seen.add(_key(kind, arguments))
                part.append((arguments, extra))
        parts.append(part)
    return parts[1], parts[0]


def _question_and_reply(kind: str, arguments: dict, extra: dict, result: str, rng: random.Random) -> tuple[str, str]:
    if kind == "calculator":
        question = rng.choice(CALC_TEMPLATES).format(expr=arguments["expression"])
        return question, CALC_REPLIES[_language(question)].format(expr=arguments["expression"], result=result)
    if kind == "convert_units":
        words = {
            "value": arguments["value"],
            "source": UNIT_NAMES[arguments["from_unit"]],
            "target": UNIT_NAMES[arguments["to_unit"]],
        }
        return rng.choice(CONVERT_TEMPLATES).format(**words), CONVERT_REPLY.format(**words, result=result)
    if kind == "add_days":
        words = {"date": arguments["date"], "n": extra["n"]}
        question = rng.choice(DATE_TEMPLATES[extra["direction"]]).format(**words)
        return question, DATE_REPLIES[extra["direction"]][_language(question)].format(**words, result=result)
    question = rng.choice(CAPITAL_TEMPLATES).format(country=arguments["country"])
    return question, CAPITAL_REPLY.format(country=arguments["country"], result=result)


def make_records(kind: str, arguments: dict, extra: dict, rng: random.Random, tools: list[dict]) -> tuple[dict, dict]:
    """(SFT record, RL prompt record) of one problem, in one random phrasing."""
    result = BUILTIN_TOOLS[kind](**arguments)
    question, reply = _question_and_reply(kind, arguments, extra, result, rng)
    call = {"name": kind, "arguments": arguments}
    meta = {"answer": result, "kind": kind, "expected_call": call}
    user = {"role": "user", "content": question}
    sft = {
        "conversations": [
            user,
            {"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function": call}]},
            {"role": "tool", "name": kind, "content": result},
            {"role": "assistant", "content": reply},
        ],
        "tools": tools,
        **meta,
    }
    prompt = {"conversations": [user, {"role": "assistant", "content": ""}], "tools": tools, **meta}
    return sft, prompt


def make_split(
    split: str, seed: int = 0, per_kind: int = 600, eval_per_kind: int = 40
) -> tuple[list[dict], list[dict]]:
    """(SFT records, RL prompt records) of one split, kind after kind."""
    if split not in ("train", "held_out"):
        raise ValueError(f"split must be 'train' or 'held_out', got {split!r}")
    tools = tool_schemas()
    sft, prompts = [], []
    for kind in KINDS:
        train, held_out = split_problems(kind, seed, per_kind, eval_per_kind)
        problems = train if split == "train" else held_out
        rng = random.Random(f"tool:{split}:{seed}:{kind}")
        if kind == "lookup_capital":  # few countries: each is asked several times, in random phrasings
            problems = [problems[i % len(problems)] for i in range(per_kind if split == "train" else 3 * len(problems))]
        for arguments, extra in problems:
            record, prompt = make_records(kind, arguments, extra, rng, tools)
            sft.append(record)
            prompts.append(prompt)
    return sft, prompts


def write_embedded_tool_datasets(
    out_dir: str | Path, seed: int = 0, per_kind: int = 600, eval_per_kind: int = 40
) -> dict[str, Path]:
    """The EMBEDDED_NAMES jsonl files under out_dir; returns {name: path}."""
    out_dir = Path(out_dir)
    train_sft, train_prompts = make_split("train", seed, per_kind, eval_per_kind)
    eval_sft, eval_prompts = make_split("held_out", seed, per_kind, eval_per_kind)
    contents = {
        "tool_sft_train": train_sft,
        "tool_sft_eval": eval_sft,
        "tool_rl_train": train_prompts,
        "tool_rl_eval": eval_prompts,
    }
    return {name: write_jsonl(out_dir / f"{name}.jsonl", records) for name, records in contents.items()}
