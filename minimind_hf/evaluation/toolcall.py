"""The tool loop: generate, parse the `<tool_call>` blocks, run the tools, feed the results back.

:func:`run_tool_episodes` plays many conversations at once (greedy, batched per turn) and
records what happened in each :class:`Episode`; :func:`score_episodes` turns episodes into
the ``--task toolcall`` metrics. Replies are parsed by the same code the server uses
(``minimind_hf.parsing``), so a call the server would show as content counts as malformed here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ..parsing import parse_reply
from ..tokenizer import TOOL_CALL_END, TOOL_CALL_START
from ..tools.builtin import execute, tool_schema
from .answers import is_correct
from .generation import greedy_replies


@dataclass
class Episode:
    messages: list[dict]  # prompt + every turn played
    calls: list[dict] = field(default_factory=list)  # {"name", "arguments" (decoded or None), "result"}
    malformed: bool = False  # a reply held tool-call markup that does not parse (shown as content)
    final: str | None = None  # the first reply without a call; None when the turn budget ran out


def _decoded(arguments: str):
    try:
        value = json.loads(arguments)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


# generate(conversations, tool_schemas) -> one reply text per conversation
Generate = Callable[[list[list[dict]], list[dict]], list[str]]


def greedy_generator(
    model, tokenizer, max_new_tokens: int = 64, batch_size: int = 32, chat_template_kwargs: dict | None = None
) -> Generate:
    """Greedy, batched replies of a model to conversations rendered with the tools' schemas."""

    def generate(conversations: list[list[dict]], schemas: list[dict]) -> list[str]:
        kwargs = {**(chat_template_kwargs or {}), "tools": schemas or None}
        return greedy_replies(model, tokenizer, conversations, max_new_tokens, batch_size, kwargs)

    return generate


def run_tool_episodes(
    generate: Generate, prompts: Sequence[list[dict]], tools: dict[str, Callable[..., str]], max_turns: int = 3
) -> list[Episode]:
    """Play each prompt for up to `max_turns` replies of `generate`; tools run between them.

    A reply with well-formed calls gets them executed (each result a `tool` message, errors as
    'error: ...' text) and the model replies again; the first reply without a call is final.
    """
    schemas = [tool_schema(fn) for fn in tools.values()]
    episodes = [Episode(messages=[dict(m) for m in prompt]) for prompt in prompts]
    active = list(range(len(episodes)))
    for _ in range(max_turns):
        if not active:
            break
        replies = generate([episodes[i].messages for i in active], schemas)
        still = []
        for i, text in zip(active, replies):
            episode = episodes[i]
            reply = parse_reply(text, parse_tools=True)
            if not reply.tool_calls:
                episode.malformed |= TOOL_CALL_START in text or TOOL_CALL_END in text
                episode.final = reply.content
                episode.messages.append({"role": "assistant", "content": reply.content})
                continue
            episode.messages.append(
                {"role": "assistant", "content": reply.content, "tool_calls": [c.to_openai() for c in reply.tool_calls]}
            )
            for call in reply.tool_calls:
                result = execute(call.name, call.arguments, tools)
                episode.calls.append({"name": call.name, "arguments": _decoded(call.arguments), "result": result})
                episode.messages.append({"role": "tool", "name": call.name, "content": result})
            still.append(i)
        active = still
    return episodes


_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def same_arguments(got: dict | None, expected: dict) -> bool:
    """Argument dicts are equal: same keys, numbers compared as numbers ("45" == 45 == 45.0), text
    compared without surrounding space and case."""
    if got is None or set(got) != set(expected):
        return False
    for key, want in expected.items():
        value = got[key]
        if isinstance(want, (int, float)) and not isinstance(want, bool):
            if isinstance(value, bool) or not _NUMBER.fullmatch(str(value).strip()) or float(value) != float(want):
                return False
        elif str(value).strip().casefold() != str(want).strip().casefold():
            return False
    return True


def score_episodes(
    episodes: Sequence[Episode],
    answers: Sequence[str],
    expected_calls: Sequence[dict | None],
    kinds: Sequence[str] | None = None,
) -> dict:
    """The toolcall metrics, each a share of the prompts:

    - ``format_validity``: the model called a tool and every reply's tool-call markup parsed;
    - ``right_tool_rate``: its first call named the expected tool;
    - ``argument_accuracy``: its first call had the expected arguments (`same_arguments`);
    - ``final_answer_accuracy``: its final reply holds the reference answer (`is_correct`: the
      last integer for integer answers, the text otherwise).

    Prompts without an expected call count in ``final_answer_accuracy`` only. ``per_kind`` repeats
    the four numbers for each kind.
    """
    rows = []
    for episode, answer, expected in zip(episodes, answers, expected_calls, strict=True):
        first = episode.calls[0] if episode.calls else None
        row = {"final_answer_accuracy": episode.final is not None and is_correct(episode.final, str(answer))}
        if expected:
            row["format_validity"] = first is not None and not episode.malformed
            row["right_tool_rate"] = first is not None and first["name"] == expected["name"]
            row["argument_accuracy"] = row["right_tool_rate"] and same_arguments(
                first["arguments"], expected["arguments"]
            )
        rows.append(row)

    def shares(selected: list[dict]) -> dict:
        out = {}
        for metric in ("format_validity", "right_tool_rate", "argument_accuracy", "final_answer_accuracy"):
            values = [r[metric] for r in selected if metric in r]
            out[metric] = sum(values) / len(values) if values else None
        return out | {"total": len(selected)}

    kinds = list(kinds) if kinds is not None else [""] * len(rows)
    per_kind = {kind: shares([r for r, k in zip(rows, kinds) if k == kind]) for kind in sorted(set(kinds)) if kind}
    return shares(rows) | {"per_kind": per_kind}


def evaluate_toolcall(
    model,
    tokenizer,
    data: str = "embedded:tool_rl_eval",
    seed: int = 42,
    limit: int | None = None,
    max_new_tokens: int | None = None,
    batch_size: int = 8,
    thinking: bool = False,
    tools: Sequence[str] = ("builtin",),
    max_turns: int = 3,
) -> dict:
    """Held-out tool use in a real tool loop; ``tools=()`` is the no-tool baseline (one plain reply)."""
    from ..data.rl import load_answered_prompts
    from ..tools import resolve_tools

    rows = load_answered_prompts(data, seed, limit)
    resolved = resolve_tools(list(tools)) if tools else {}
    generate = greedy_generator(model, tokenizer, max_new_tokens or 64, batch_size, {"enable_thinking": thinking})
    episodes = run_tool_episodes(generate, [r["prompt"] for r in rows], resolved, max_turns=max_turns if tools else 1)
    expected = [json.loads(r["expected_call"]) if r["expected_call"] and tools else None for r in rows]
    result = score_episodes(episodes, [r["answer"] for r in rows], expected, [r["kind"] for r in rows])
    samples = [
        {"prompt": r["prompt"][-1]["content"], "transcript": e.messages[len(r["prompt"]) :]}
        for r, e in zip(rows[:3], episodes[:3])
    ]
    return {"data": data, "tools": sorted(resolved), **result, "samples": samples}
