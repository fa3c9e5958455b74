"""Tool use: the built-in tools against their documented behaviour, the tool loop on scripted
model outputs (well-formed, malformed, wrong), the metrics, the embedded data and the template."""

import datetime
import json
import random
from pathlib import Path

import pytest

from minimind_hf.evaluation.toolcall import run_tool_episodes, same_arguments, score_episodes
from minimind_hf.tools import BUILTIN_TOOLS, ToolError, execute, resolve_tools
from minimind_hf.tools.builtin import add_days, calculator, convert_units, lookup_capital

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(ROOT / "minimind_hf" / "assets" / "tokenizer")


# ----------------------------------------------------------------------------- the tools


def test_calculator_is_exact_integer_arithmetic():
    rng = random.Random(0)
    for _ in range(200):
        a, b = rng.randint(-999, 999), rng.randint(1, 999)
        assert calculator(f"{a} * {b}") == str(a * b)
        assert calculator(f"{a} + {b}") == str(a + b)
        assert calculator(f"({a} - {b}) * 2") == str((a - b) * 2)
    assert calculator("7 / 2") == "3.5" and calculator("1 / 3") == "0.3333" and calculator("2 ** 10") == "1024"
    assert calculator("12 × 3") == "36"


@pytest.mark.parametrize(
    "expression, message",
    [
        ("__import__('os').system('true')", "only numbers"),
        ("x + 1", "only numbers"),
        ("1 / 0", "division by zero"),
        ("9 ** 999", "exponent"),
        ("1 +", "cannot parse"),
        ("", "1 to 200"),
        ("1" * 201, "1 to 200"),
    ],
)
def test_calculator_refuses_anything_but_arithmetic(expression, message):
    with pytest.raises(ToolError, match=message):
        calculator(expression)


def test_convert_units_documented_factors():
    # International yard and pound (1959): 1 mile = 1609.344 m, 1 lb = 0.45359237 kg, 1 inch = 2.54 cm.
    assert convert_units(10, "mile", "km") == "16.09" and convert_units(1, "inch", "cm") == "2.54"
    assert convert_units(100, "lb", "kg") == "45.36" and convert_units(1, "km", "m") == "1000"
    assert convert_units(100, "celsius", "fahrenheit") == "212" and convert_units(-40, "fahrenheit", "celsius") == "-40"
    assert convert_units(0, "celsius", "kelvin") == "273.15" and convert_units("3", "KG", "g") == "3000"
    for args, message in (
        ((1, "km", "kg"), "different kinds"),
        ((1, "parsec", "m"), "unknown unit"),
        (("many", "m", "km"), "must be a number"),
        ((True, "m", "km"), "must be a number"),
    ):
        with pytest.raises(ToolError, match=message):
            convert_units(*args)


def test_add_days_is_the_calendar():
    assert add_days("2024-02-28", 1) == "2024-02-29"  # leap year
    assert add_days("2023-02-28", 1) == "2023-03-01"
    assert add_days("2023-12-31", 1) == "2024-01-01" and add_days("2024-01-01", -1) == "2023-12-31"
    assert add_days("2024-03-10", "45") == (datetime.date(2024, 3, 10) + datetime.timedelta(days=45)).isoformat()
    for args, message in (
        (("10/03/2024", 1), "YYYY-MM-DD"),
        (("2024-01-01", 1.5), "whole number"),
        (("9999-12-31", 1), "out of range"),
    ):
        with pytest.raises(ToolError, match=message):
            add_days(*args)


def test_lookup_capital():
    assert lookup_capital("peru ") == "Lima" and lookup_capital("South Korea") == "Seoul"
    with pytest.raises(ToolError, match="no country named 'Atlantis'"):
        lookup_capital("Atlantis")


def test_execute_reports_failures_to_the_model():
    tools = BUILTIN_TOOLS
    assert execute("calculator", '{"expression": "2 + 3"}', tools) == "5"
    assert execute("calculator", {"expression": "2 + 3"}, tools) == "5"
    assert execute("search", "{}", tools).startswith("error: unknown tool 'search'")
    assert execute("calculator", '{"expression": ', tools) == "error: arguments are not valid JSON"
    assert execute("calculator", "[1]", tools) == "error: arguments must be a JSON object"
    assert execute("calculator", '{"expr": "1"}', tools).startswith("error: bad arguments for calculator")
    assert execute("calculator", '{"expression": "1 / 0"}', tools) == "error: division by zero"


def test_resolve_tools_names():
    assert list(resolve_tools(["builtin"])) == ["calculator", "convert_units", "add_days", "lookup_capital"]
    assert list(resolve_tools(["add_days", "test_tools:shout"])) == ["add_days", "shout"]
    for names, message in ((["web_search"], "unknown tool 'web_search'"), (["test_tools:nothing"], "no attribute")):
        with pytest.raises(ValueError, match=message):
            resolve_tools(names)


def shout(text: str) -> str:
    """Upper-case a text.

    Args:
        text: what to shout
    """
    return text.upper()


# ----------------------------------------------------------------------------- the loop, on scripted replies

QUESTION = [{"role": "user", "content": "What is 347 * 29?"}]
CALL = '<tool_call>\n{"name": "calculator", "arguments": {"expression": "347 * 29"}}\n</tool_call>'


def scripted(*turns):
    """A `generate` that replies turn by turn from `turns` (one list of replies per turn) and
    records what it was shown."""
    seen = []

    def generate(conversations, schemas):
        seen.append(([list(c) for c in conversations], schemas))
        return list(turns[len(seen) - 1])

    return generate, seen


def test_loop_executes_the_call_and_feeds_the_result_back(tokenizer):
    generate, seen = scripted([CALL], ["347 * 29 = 10063."])
    [episode] = run_tool_episodes(generate, [QUESTION], BUILTIN_TOOLS)
    assert episode.final == "347 * 29 = 10063." and not episode.malformed
    assert episode.calls == [{"name": "calculator", "arguments": {"expression": "347 * 29"}, "result": "10063"}]
    # The second turn saw the call as an assistant message and the result as a tool message ...
    second = seen[1][0][0]
    assert [m["role"] for m in second] == ["user", "assistant", "tool"]
    assert second[1]["tool_calls"][0]["function"] == {"name": "calculator", "arguments": '{"expression": "347 * 29"}'}
    assert second[2] == {"role": "tool", "name": "calculator", "content": "10063"}
    assert [s["function"]["name"] for s in seen[0][1]] == list(BUILTIN_TOOLS)
    # ... which the template renders back exactly as the model wrote it, result in a tool_response.
    text = tokenizer.apply_chat_template(second, tools=seen[1][1], add_generation_prompt=True, tokenize=False)
    assert text.endswith(
        "<|im_start|>assistant\n<think>\n\n</think>\n\n" + CALL + "<|im_end|>\n<|im_start|>user\n"
        "<tool_response>\n10063\n</tool_response><|im_end|>\n<|im_start|>assistant\n"
        "<think>\n\n</think>\n\n"
    )
    scores = score_episodes([episode], ["10063"], [{"name": "calculator", "arguments": {"expression": "347 * 29"}}])
    assert {
        k: scores[k] for k in ("format_validity", "right_tool_rate", "argument_accuracy", "final_answer_accuracy")
    } == dict.fromkeys(("format_validity", "right_tool_rate", "argument_accuracy", "final_answer_accuracy"), 1.0)


@pytest.mark.parametrize(
    "reply",
    [
        '<tool_call>\n{"name": "calculator", "arguments": {"expression": "347 * 29"}\n</tool_call>',  # bad JSON
        '<tool_call>\n{"name": "calculator", "arguments": {"expression": "347 * 29"}}',  # unterminated (length cut)
        CALL + "\n</tool_call>",  # unbalanced closing tag
        '<tool_call>\n{"arguments": {}}\n</tool_call>',  # no name
    ],
)
def test_malformed_call_is_final_content_and_counts_as_invalid(reply):
    generate, seen = scripted([reply])
    [episode] = run_tool_episodes(generate, [QUESTION], BUILTIN_TOOLS)
    assert len(seen) == 1 and episode.calls == [] and episode.malformed and episode.final == reply
    scores = score_episodes([episode], ["10063"], [{"name": "calculator", "arguments": {"expression": "347 * 29"}}])
    assert scores["format_validity"] == scores["right_tool_rate"] == scores["final_answer_accuracy"] == 0.0


def test_metrics_separate_tool_choice_arguments_and_answer():
    prompts = [QUESTION] * 5
    replies = [
        CALL,  # right
        '<tool_call>\n{"name": "calculator", "arguments": {"expression": "347 * 28"}}\n</tool_call>',  # wrong args
        '<tool_call>\n{"name": "add_days", "arguments": {"date": "2024-01-01", "days": 1}}\n</tool_call>',  # wrong tool
        "It is 10063.",  # no call, right answer
        CALL,  # right call, wrong copy
    ]
    finals = ["347 * 29 = 10063.", "347 * 28 = 9716.", "2024-01-02", "10062."]
    generate, seen = scripted(replies, finals)
    episodes = run_tool_episodes(generate, prompts, BUILTIN_TOOLS)
    assert [len(c) for c in seen[1][0]] == [3, 3, 3, 3]  # the reply without a call was not asked again
    assert [e.final for e in episodes] == [
        "347 * 29 = 10063.",
        "347 * 28 = 9716.",
        "2024-01-02",
        "It is 10063.",
        "10062.",
    ]
    expected = {"name": "calculator", "arguments": {"expression": "347 * 29"}}
    scores = score_episodes(episodes, ["10063"] * 5, [expected] * 5, ["calculator"] * 5)
    assert scores["format_validity"] == 4 / 5 and scores["right_tool_rate"] == 3 / 5
    assert scores["argument_accuracy"] == 2 / 5 and scores["final_answer_accuracy"] == 2 / 5
    assert scores["per_kind"]["calculator"]["argument_accuracy"] == 2 / 5 and scores["total"] == 5


def test_turn_budget_and_tool_errors():
    loop_call = '<tool_call>\n{"name": "lookup_capital", "arguments": {"country": "Atlantis"}}\n</tool_call>'
    generate, seen = scripted([loop_call], [loop_call])
    [episode] = run_tool_episodes(generate, [QUESTION], BUILTIN_TOOLS, max_turns=2)
    assert episode.final is None and len(episode.calls) == 2
    assert episode.messages[2]["content"] == "error: no country named 'Atlantis' in the table"
    assert score_episodes([episode], ["x"], [None])["final_answer_accuracy"] == 0.0


def test_no_tools_baseline_renders_no_tool_block(tokenizer):
    generate, seen = scripted(["10063"])
    [episode] = run_tool_episodes(generate, [QUESTION], {}, max_turns=1)
    assert seen[0][1] == [] and episode.final == "10063"
    assert "<tools>" not in tokenizer.apply_chat_template(
        QUESTION, tools=None, add_generation_prompt=True, tokenize=False
    )


def test_same_arguments():
    assert same_arguments({"days": "45", "date": " 2024-01-01"}, {"date": "2024-01-01", "days": 45})
    assert same_arguments(
        {"value": 12.0, "from_unit": "KM", "to_unit": "mile"}, {"value": 12, "from_unit": "km", "to_unit": "mile"}
    )
    assert not same_arguments({"days": 46, "date": "2024-01-01"}, {"date": "2024-01-01", "days": 45})
    assert not same_arguments({"days": True, "date": "2024-01-01"}, {"date": "2024-01-01", "days": 1})
    assert not same_arguments({"date": "2024-01-01"}, {"date": "2024-01-01", "days": 45})
    assert not same_arguments(None, {"x": 1})


# ----------------------------------------------------------------------------- data and template


def test_embedded_tool_data_is_consistent_and_split():
    from minimind_hf.data.embedded.tools import make_split, tool_schemas

    train, train_prompts = make_split("train", seed=3, per_kind=200, eval_per_kind=30)
    held, held_prompts = make_split("held_out", seed=3, per_kind=200, eval_per_kind=30)
    assert make_split("train", seed=3, per_kind=200, eval_per_kind=30)[0] == train  # deterministic
    schemas = tool_schemas()
    for record, prompt in zip(train + held, train_prompts + held_prompts):
        user, call, tool, reply = record["conversations"]
        function = call["tool_calls"][0]["function"]
        assert function == record["expected_call"] and tool["name"] == function["name"] == record["kind"]
        assert tool["content"] == BUILTIN_TOOLS[function["name"]](**function["arguments"]) == record["answer"]
        assert record["answer"] in reply["content"] and record["tools"] == schemas
        assert prompt["conversations"] == [user, {"role": "assistant", "content": ""}]
    key = lambda r: json.dumps(r["expected_call"], sort_keys=True)  # noqa: E731
    assert not {key(r) for r in train} & {key(r) for r in held}
    countries = lambda rs: {r["expected_call"]["arguments"]["country"] for r in rs if r["kind"] == "lookup_capital"}  # noqa: E731
    assert countries(held) and not countries(train) & countries(held)
    assert {r["kind"] for r in held} == set(BUILTIN_TOOLS)


def test_tool_sft_records_train_only_the_calls_and_replies(tokenizer, tmp_path):
    from minimind_hf.data.embedded.files import write_jsonl
    from minimind_hf.data.embedded.tools import make_split
    from minimind_hf.data.sources import load_records
    from minimind_hf.data.text import SFTOptions, build_sft_dataset

    records = make_split("held_out", seed=0, per_kind=10, eval_per_kind=2)[0]
    dataset, _ = load_records(
        str(write_jsonl(tmp_path / "tools.jsonl", records)), "sft", cache_dir=str(tmp_path / "cache")
    )
    rows = build_sft_dataset(dataset, tokenizer, SFTOptions(max_length=1024))
    for row, record in zip(rows, records):
        supervised = tokenizer.decode([t for t, label in zip(row["input_ids"], row["labels"]) if label != -100])
        call = json.dumps(record["expected_call"], ensure_ascii=False)
        assert (
            supervised
            == f"<tool_call>\n{call}\n</tool_call><|im_end|>{record['conversations'][-1]['content']}<|im_end|>"
        )


def test_template_is_prefix_preserving_for_tool_loops(tokenizer):
    """TRL's tool loop needs it (its own check), and so does our multi-turn loop: every turn renders
    as the prefix of the longer conversation."""
    from trl.chat_template_utils import is_chat_template_prefix_preserving

    from minimind_hf.data.embedded.tools import make_split

    assert is_chat_template_prefix_preserving(tokenizer)
    record = make_split("held_out", seed=0, per_kind=10, eval_per_kind=2)[0][0]
    messages = record["conversations"]
    for cut in (1, 3):  # after the question, after the tool result: the prompts the loop renders
        prompt = tokenizer.apply_chat_template(
            messages[:cut], tools=record["tools"], add_generation_prompt=True, tokenize=False
        )
        assert tokenizer.apply_chat_template(messages, tools=record["tools"], tokenize=False).startswith(prompt)


# ----------------------------------------------------------------------------- agentic RL pieces


def test_response_template_parses_what_our_template_writes(tokenizer):
    """transformers' parse_response (TRL's tool loop) with our RESPONSE_TEMPLATE reads back the calls
    the chat template renders, and leaves broken markup as content (TRL's fallback)."""
    from trl.chat_template_utils import parse_response

    from minimind_hf.tokenizer import RESPONSE_TEMPLATE

    tokenizer = tokenizer.__class__.from_pretrained(ROOT / "minimind_hf" / "assets" / "tokenizer")
    tokenizer.response_template = RESPONSE_TEMPLATE
    calls = [
        {"type": "function", "function": {"name": "add_days", "arguments": {"date": "2024-03-10", "days": -45}}},
        {"type": "function", "function": {"name": "lookup_capital", "arguments": {"country": "Peru"}}},
    ]
    prefix = tokenizer.apply_chat_template(QUESTION, add_generation_prompt=True, tokenize=True, return_dict=False)
    full = tokenizer.apply_chat_template(
        QUESTION + [{"role": "assistant", "content": "Let me check.", "tool_calls": calls}],
        tokenize=True,
        return_dict=False,
    )
    assert full[: len(prefix)] == prefix
    parsed = parse_response(tokenizer, full[len(prefix) :], prefix=prefix)
    assert parsed["tool_calls"] == calls and parsed["content"] == "Let me check."
    broken = tokenizer('<tool_call>\n{"name": "x", "arguments": {\n</tool_call><|im_end|>', add_special_tokens=False)
    parsed = parse_response(tokenizer, broken["input_ids"], prefix=prefix)
    assert "tool_calls" not in parsed and "<tool_call>" in parsed["content"]


def test_tool_rewards():
    from minimind_hf.training.rewards import ToolCallMatch, ToolFormat

    good = [
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"type": "function", "function": {"name": "calculator", "arguments": {"expression": "347 * 29"}}}
            ],
        },
        {"role": "tool", "name": "calculator", "content": "10063"},
        {"role": "assistant", "content": "10063."},
    ]
    other_args = [
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"type": "function", "function": {"name": "calculator", "arguments": '{"expression": "347 * 2"}'}}
            ],
        }
    ]
    broken = [{"role": "assistant", "content": '<tool_call>\n{"name": "calculator"'}]
    plain = [{"role": "assistant", "content": "10063"}]
    assert ToolFormat(0.5)(None, [good, other_args, broken, plain, "</tool_call>"]) == [0.5, 0.5, -0.5, 0.0, -0.5]
    expected = json.dumps({"name": "calculator", "arguments": {"expression": "347 * 29"}})
    scores = ToolCallMatch()(None, [good, other_args, broken, plain, good], expected_call=[expected] * 4 + [""])
    assert scores == [1.0, 0.5, 0.0, 0.0, None]
    with pytest.raises(KeyError, match="expected_call"):
        ToolCallMatch()(None, [good], answer=["1"])
