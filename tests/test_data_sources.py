"""Loading, validating and normalising user data (minimind_hf.data: readers, schema, report, sources)."""

import json
from collections import Counter

import datasets
import pytest

from minimind_hf.data import (
    DataSource,
    DataSourceError,
    DataValidationError,
    ValidationReport,
    chat_messages,
    iter_records,
    load_records,
    schema,
)
from minimind_hf.data import report as R
from minimind_hf.data import sources as S


def msg(role, content, reasoning="", tool_calls="", name=""):
    return {"role": role, "content": content, "reasoning_content": reasoning, "tool_calls": tool_calls, "name": name}


def write_jsonl(path, records):
    """Records are dumped as JSON; plain strings are written verbatim (to make bad lines)."""
    path.write_text(
        "".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in records),
        encoding="utf-8",
    )
    return str(path)


def load(tmp_path, sources, kind, **kwargs):
    return load_records(sources, kind, cache_dir=str(tmp_path / "cache"), **kwargs)


def load_one(tmp_path, record, kind, name="data.jsonl"):
    dataset, report = load(tmp_path, write_jsonl(tmp_path / name, [record]), kind)
    assert len(dataset) == 1 and report.kept == 1
    row = dataset[0]
    if kind == "sft":  # every SFT record remembers where it came from
        assert row.pop("location") == f"{tmp_path / name}:1"
    return row


USER_ASSISTANT = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]
CANONICAL_SFT = {"messages": [msg("user", "Hi"), msg("assistant", "Hello!")], "tools": "", "images": "", "id": ""}
CALL = {"name": "add", "arguments": {"a": 1, "b": 2}}
CALL_JSON = json.dumps([CALL])


# --------------------------------------------------------------------------- canonical forms


def test_pretrain_text(tmp_path):
    assert load_one(tmp_path, {"text": "Once upon a time", "source": "x"}, "pretrain") == {"text": "Once upon a time"}


@pytest.mark.parametrize("key", ["conversations", "messages"])
def test_sft_conversations_and_messages(tmp_path, key):
    assert load_one(tmp_path, {key: USER_ASSISTANT}, "sft") == CANONICAL_SFT


def test_sharegpt_from_value_with_tool_call(tmp_path):
    record = {
        "conversations": [
            {"from": "system", "value": "Be brief."},
            {"from": "human", "value": "1+2?"},
            {"from": "function_call", "value": json.dumps(CALL)},
            {"from": "observation", "value": "3"},
            {"from": "gpt", "value": "3"},
        ],
        "tools": json.dumps([{"name": "add"}]),
    }
    assert load_one(tmp_path, record, "sft") == {
        "messages": [
            msg("system", "Be brief."),
            msg("user", "1+2?"),
            msg("assistant", "", tool_calls=CALL_JSON),
            msg("tool", "3"),
            msg("assistant", "3"),
        ],
        "tools": '[{"name": "add"}]',
        "images": "",
        "id": "",
    }


@pytest.mark.parametrize("tool_calls", [CALL_JSON, [CALL], CALL], ids=["json-string", "list", "object"])
def test_tool_calls_string_or_object(tmp_path, tool_calls):
    record = {
        "conversations": [
            {"role": "user", "content": "1+2?"},
            {"role": "assistant", "content": "", "tool_calls": tool_calls},
            {"role": "tool", "content": "3", "name": "add"},
            {"role": "assistant", "content": "3"},
        ]
    }
    assert load_one(tmp_path, record, "sft")["messages"] == [
        msg("user", "1+2?"),
        msg("assistant", "", tool_calls=CALL_JSON),
        msg("tool", "3", name="add"),
        msg("assistant", "3"),
    ]


@pytest.mark.parametrize(
    "assistant",
    [
        {"role": "assistant", "content": "It is 4.", "reasoning_content": "2+2=4"},
        {"role": "assistant", "content": "<think>\n2+2=4\n</think>\n\nIt is 4."},
    ],
    ids=["field", "think-tag"],
)
def test_reasoning_field_or_think_tag(tmp_path, assistant):
    record = {"conversations": [{"role": "user", "content": "2+2?"}, assistant]}
    assert load_one(tmp_path, record, "sft")["messages"][1] == msg("assistant", "It is 4.", reasoning="2+2=4")


def test_think_tag_only_split_when_leading_and_on_assistant(tmp_path):
    record = {
        "conversations": [
            {"role": "user", "content": "<think>x</think> literal"},
            {"role": "assistant", "content": "Answer <think>not reasoning</think>"},
        ]
    }
    messages = load_one(tmp_path, record, "sft")["messages"]
    assert messages == [
        msg("user", "<think>x</think> literal"),
        msg("assistant", "Answer <think>not reasoning</think>"),
    ]


@pytest.mark.parametrize("where", ["record-string", "record-list", "system-tools", "system-functions"])
def test_tools_field(tmp_path, where):
    tools = [{"type": "function", "function": {"name": "add"}}]
    system = {"role": "system", "content": "You can call tools."}
    record = {"conversations": [system, *USER_ASSISTANT]}
    if where == "record-string":
        record["tools"] = json.dumps(tools)
    elif where == "record-list":
        record["tools"] = tools
    else:  # MiniMind keeps them on the system message ("tools" now, "functions" before)
        system["tools" if where == "system-tools" else "functions"] = json.dumps(tools)
    out = load_one(tmp_path, record, "sft")
    assert out["tools"] == json.dumps(tools)
    assert out["messages"][0] == msg("system", "You can call tools.")


def test_record_level_system_prompt_is_prepended(tmp_path):
    record = {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello!"}], "system": "S"}
    assert load_one(tmp_path, record, "sft")["messages"] == [
        msg("system", "S"),
        msg("user", "Hi"),
        msg("assistant", "Hello!"),
    ]


def test_images_minimind_v_llava_minicpm(tmp_path):
    image_turns = [{"role": "user", "content": "<image>\nWhat is it?"}, {"role": "assistant", "content": "A cat."}]
    minimind_v = write_jsonl(tmp_path / "minimind_v.jsonl", [{"conversations": image_turns, "image": "a.jpg, b.jpg"}])
    llava = tmp_path / "llava.json"
    llava.write_text(
        json.dumps(
            [
                {
                    "id": "000000033471",
                    "image": "coco/1.jpg",
                    "conversations": [
                        {"from": "human", "value": "<image>\nWhat is it?"},
                        {"from": "gpt", "value": "A cat."},
                    ],
                }
            ]
        )
    )
    minicpm = tmp_path / "minicpm.json"
    minicpm.write_text(
        json.dumps(
            [
                {
                    "id": "0",
                    "image": {"<image_01>": "p/1.jpg", "<image_00>": "p/0.jpg"},
                    "conversations": [
                        {"role": "user", "content": "<image_00>\n<image_01>\nSame?"},
                        {"role": "assistant", "content": "No."},
                    ],
                }
            ]
        )
    )
    dataset, report = load(tmp_path, [minimind_v, str(llava), str(minicpm)], "sft")
    assert dataset["images"] == [
        '["a.jpg", "b.jpg"]',
        '["coco/1.jpg"]',
        '{"<image_01>": "p/1.jpg", "<image_00>": "p/0.jpg"}',
    ]
    assert dataset["id"] == ["", "000000033471", "0"]
    assert dataset[1]["messages"] == [msg("user", "<image>\nWhat is it?"), msg("assistant", "A cat.")]
    assert list(json.loads(dataset[2]["images"])) == ["<image_01>", "<image_00>"]  # mapping order kept
    assert report.read == report.kept == 3


DPO_PROMPT = [msg("user", "Q")]


def test_dpo_implicit_prompt(tmp_path):
    record = {
        "chosen": [
            {"role": "system", "content": "S"},
            {"role": "user", "content": "Q"},
            {"role": "assistant", "content": "good"},
        ],
        "rejected": [
            {"role": "system", "content": "S"},
            {"role": "user", "content": "Q"},
            {"role": "assistant", "content": "bad"},
        ],
    }
    assert load_one(tmp_path, record, "dpo") == {
        "prompt": [msg("system", "S"), msg("user", "Q")],
        "chosen": [msg("assistant", "good")],
        "rejected": [msg("assistant", "bad")],
    }


def test_dpo_implicit_prompt_multi_turn(tmp_path):
    history = [
        {"role": "user", "content": "A"},
        {"role": "assistant", "content": "B"},
        {"role": "user", "content": "Q"},
    ]
    record = {
        "chosen": [*history, {"role": "assistant", "content": "good"}],
        "rejected": [*history, {"role": "assistant", "content": "bad"}],
    }
    out = load_one(tmp_path, record, "dpo")
    assert out["prompt"] == [msg("user", "A"), msg("assistant", "B"), msg("user", "Q")]
    assert out["chosen"] == [msg("assistant", "good")] and out["rejected"] == [msg("assistant", "bad")]


@pytest.mark.parametrize(
    "record",
    [
        {"prompt": "Q", "chosen": "good", "rejected": "bad"},
        {
            "prompt": [{"role": "user", "content": "Q"}],
            "chosen": [{"role": "assistant", "content": "good"}],
            "rejected": [{"role": "assistant", "content": "bad"}],
        },
        # UltraFeedback style: a prompt string plus full conversations
        {
            "prompt": "Q",
            "chosen": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "good"}],
            "rejected": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "bad"}],
        },
    ],
    ids=["strings", "messages", "prompt-and-full-conversations"],
)
def test_dpo_explicit_prompt(tmp_path, record):
    assert load_one(tmp_path, record, "dpo") == {
        "prompt": DPO_PROMPT,
        "chosen": [msg("assistant", "good")],
        "rejected": [msg("assistant", "bad")],
    }


def test_canonical_schema_is_stable(tmp_path):
    dataset, _ = load(tmp_path, write_jsonl(tmp_path / "a.jsonl", [{"conversations": USER_ASSISTANT}]), "sft")
    assert dataset.features == schema.features("sft")
    assert dataset.features["messages"].feature.keys() == {"role", "content", "reasoning_content", "tool_calls", "name"}


def test_json_file_variants(tmp_path):
    bom_list = tmp_path / "list.json"
    bom_list.write_text(json.dumps([{"text": "a"}, {"text": "b"}]), encoding="utf-8-sig")
    lines = tmp_path / "lines.json"  # JSON lines saved as .json, as `datasets` accepts
    lines.write_text('{"text": "c"}\n{"text": "d"}\n')
    dataset, report = load(tmp_path, [str(bom_list), str(lines)], "pretrain")
    assert dataset["text"] == ["a", "b", "c", "d"] and report.kept == 4


def test_normalise_record_single():
    assert schema.normalise_record({"prompt": "Q", "chosen": "a", "rejected": "b"}, "dpo")["prompt"] == DPO_PROMPT
    with pytest.raises(DataValidationError, match="^<record>: missing field 'text'$"):
        schema.normalise_record({}, "pretrain")


def test_chat_messages_decodes_canonical_fields():
    messages = [
        msg("user", "Hi"),
        msg("assistant", "", reasoning="r", tool_calls=CALL_JSON),
        msg("tool", "3", name="add"),
    ]
    assert chat_messages(messages) == [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "", "reasoning_content": "r", "tool_calls": [CALL]},
        {"role": "tool", "content": "3", "name": "add"},
    ]


# --------------------------------------------------------------------------- validation

BAD_RECORDS = [
    ("pretrain", "not json", R.MALFORMED_JSON, "malformed JSON (Expecting value at column 1)"),
    ("pretrain", '{"text": "a" "b"}', R.MALFORMED_JSON, "malformed JSON (Expecting ',' delimiter at column 14)"),
    ("pretrain", [1, 2], R.NOT_AN_OBJECT, "record is not a JSON object (got list)"),
    ("pretrain", {"txt": "a"}, R.MISSING_FIELD, "missing field 'text'"),
    ("pretrain", {"text": 5}, R.WRONG_TYPE, "'text' must be a string, got number"),
    ("pretrain", {"text": "  "}, R.EMPTY_CONTENT, "empty 'text'"),
    ("sft", {"foo": 1}, R.MISSING_FIELD, "missing field 'conversations' (or 'messages')"),
    ("sft", {"conversations": "hi"}, R.WRONG_TYPE, "'conversations' must be a list, got string"),
    ("sft", {"conversations": [{"content": "hi"}]}, R.MISSING_FIELD, "missing field 'conversations[0].role'"),
    (
        "sft",
        {"conversations": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": 7}]},
        R.WRONG_TYPE,
        "'conversations[1].content' must be a string, got number",
    ),
    (
        "sft",
        {"conversations": [{"role": "user", "content": "hi"}, {"role": "bot", "content": "x"}]},
        R.UNKNOWN_ROLE,
        "unknown role 'bot' in 'conversations[1]'",
    ),
    (
        "sft",
        {"conversations": [{"from": "human", "value": "hi"}, {"from": "robot", "value": "x"}]},
        R.UNKNOWN_ROLE,
        "unknown role 'robot' in 'conversations[1]'",
    ),
    (
        "sft",
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": ""}]},
        R.EMPTY_CONTENT,
        "empty content in 'messages[1]' (assistant)",
    ),
    (
        "sft",
        {"conversations": [{"role": "user", "content": ""}, {"role": "assistant", "content": "x"}]},
        R.EMPTY_CONTENT,
        "empty content in 'conversations[0]' (user)",
    ),
    (
        "sft",
        {"conversations": [{"role": "user", "content": "hi"}]},
        R.NO_ASSISTANT_TURN,
        "'conversations' has no assistant turn",
    ),
    (
        "sft",
        {
            "conversations": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "", "tool_calls": "[{oops"},
            ]
        },
        R.MALFORMED_JSON,
        "'conversations[1].tool_calls' is not valid JSON (Expecting property name enclosed in double quotes)",
    ),
    (
        "sft",
        {"conversations": USER_ASSISTANT, "image": 3},
        R.WRONG_TYPE,
        "'image' must be a string, a list or an object, got number",
    ),
    (
        "dpo",
        {
            "chosen": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "a"}],
            "rejected": [{"role": "user", "content": "Q2"}, {"role": "assistant", "content": "b"}],
        },
        R.PROMPT_MISMATCH,
        "chosen and rejected prompts differ",
    ),
    ("dpo", {"prompt": "Q", "chosen": "", "rejected": "b"}, R.EMPTY_COMPLETION, "'chosen' is empty"),
    ("dpo", {"prompt": "Q", "chosen": "a", "rejected": []}, R.EMPTY_COMPLETION, "'rejected' is empty"),
    (
        "dpo",
        {
            "chosen": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "a"}],
            "rejected": [{"role": "user", "content": "Q"}],
        },
        R.EMPTY_COMPLETION,
        "'rejected' has no assistant reply",
    ),
    ("dpo", {"prompt": "Q", "chosen": "a"}, R.MISSING_FIELD, "missing field 'rejected'"),
    (
        "dpo",
        {
            "prompt": "Q",
            "chosen": [{"role": "user", "content": "other"}, {"role": "assistant", "content": "a"}],
            "rejected": "b",
        },
        R.PROMPT_MISMATCH,
        "'chosen' does not start with 'prompt'",
    ),
]
GOOD = {
    "pretrain": {"text": "fine"},
    "sft": {"conversations": USER_ASSISTANT},
    "dpo": {"prompt": "Q", "chosen": "a", "rejected": "b"},
}


@pytest.mark.parametrize(
    "kind,bad,reason,detail", BAD_RECORDS, ids=[f"{k}-{r}-{i}" for i, (k, _, r, _) in enumerate(BAD_RECORDS)]
)
def test_bad_record_jsonl(tmp_path, kind, bad, reason, detail):
    path = write_jsonl(tmp_path / "data.jsonl", [GOOD[kind], bad, GOOD[kind]])
    with pytest.raises(DataValidationError) as caught:
        load(tmp_path, path, kind)
    assert str(caught.value) == f"{path}:2: {detail}"
    assert (caught.value.location, caught.value.reason) == (f"{path}:2", reason)

    dataset, report = load(tmp_path, path, kind, skip_invalid=True)
    assert len(dataset) == 2
    assert report.files[path].skipped == Counter({reason: 1})
    assert report.files[path].examples == {reason: [f"{path}:2"]}
    assert (report.read, report.kept, report.skipped) == (3, 2, 1)


def test_bad_record_json_list_names_the_record(tmp_path):
    path = tmp_path / "data.json"
    path.write_text(json.dumps([GOOD["sft"], {"conversations": [{"role": "user", "content": "hi"}]}, GOOD["sft"]]))
    with pytest.raises(DataValidationError) as caught:
        load(tmp_path, str(path), "sft")
    assert str(caught.value) == f"{path}:record 1: 'conversations' has no assistant turn"
    dataset, report = load(tmp_path, str(path), "sft", skip_invalid=True)
    assert len(dataset) == 2 and report.skipped_by_reason == Counter({R.NO_ASSISTANT_TURN: 1})


def test_malformed_json_list_file_is_fatal_even_when_skipping(tmp_path):
    path = tmp_path / "data.json"
    path.write_text('[\n  {"text": "a"},\n  {"text": "b"\n]\n')
    for skip in (False, True):
        with pytest.raises(DataValidationError) as caught:
            load(tmp_path, str(path), "pretrain", skip_invalid=skip)
        assert str(caught.value) == f"{path}:4: malformed JSON (Expecting ',' delimiter at column 1)"


def test_skip_invalid_counts_per_reason_and_report_adds_up(tmp_path):
    ok = GOOD["sft"]
    first = write_jsonl(
        tmp_path / "a.jsonl",
        [
            ok,
            "{broken",
            ok,
            {"conversations": [{"role": "user", "content": "hi"}, {"role": "bot", "content": "x"}]},
            "",
            "[]",
            ok,
            "also broken",
        ],
    )
    second = write_jsonl(tmp_path / "b.jsonl", [{"messages": [{"role": "user", "content": "hi"}]}, ok])
    dataset, report = load(tmp_path, [first, second], "sft", skip_invalid=True)
    assert len(dataset) == 4
    assert report.skipped_by_reason == Counter(
        {R.MALFORMED_JSON: 2, R.UNKNOWN_ROLE: 1, R.NOT_AN_OBJECT: 1, R.NO_ASSISTANT_TURN: 1}
    )
    a, b = report.files[first], report.files[second]
    assert (a.read, a.kept, sum(a.skipped.values())) == (7, 3, 4)  # the blank line 5 is not a record
    assert (b.read, b.kept, sum(b.skipped.values())) == (2, 1, 1)
    assert a.examples[R.MALFORMED_JSON] == [f"{first}:2", f"{first}:8"]
    assert report.read == report.kept + report.skipped == 9
    summary = report.summary()
    assert "data report (sft): read 9, kept 4, skipped 5" in summary
    assert f"malformed JSON: 2 (e.g. {first}:2)" in summary
    assert f"no assistant turn: 1 (e.g. {second}:1)" in summary
    assert f"{first}: read 7, kept 3, skipped 4" in summary


def test_report_add_and_builder_fields():
    one, two = ValidationReport("sft"), ValidationReport("sft")
    one.file("a").read, one.file("a").kept = 3, 3
    two.file("a").read, two.file("a").kept = 2, 1
    two.skip("a", DataValidationError("a:9", R.EMPTY_CONTENT, "empty"))
    two.dropped["longer than max_length"] += 2
    two.truncated, two.supervised_tokens = 4, 1234
    one.add(two)
    assert (one.read, one.kept, one.skipped) == (5, 4, 1)
    assert one.dropped == Counter({"longer than max_length": 2}) and one.truncated == 4
    assert ValidationReport.from_dict(json.loads(json.dumps(one.to_dict()))) == one
    summary = one.summary()
    assert "longer than max_length: 2" in summary and "truncated: 4 records" in summary
    assert "supervised tokens: 1234" in summary and "empty content: 1 (e.g. a:9)" in summary


# --------------------------------------------------------------------------- files, globs, weights


def test_glob_expands_in_sorted_order(tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    for name in ("b.jsonl", "a.jsonl", "c.jsonl"):
        write_jsonl(folder / name, [{"text": f"{name}-{i}"} for i in range(2)])
    (folder / "notes.txt").write_text("ignored")
    dataset, report = load(tmp_path, str(folder / "*.jsonl"), "pretrain")
    assert dataset["text"] == ["a.jsonl-0", "a.jsonl-1", "b.jsonl-0", "b.jsonl-1", "c.jsonl-0", "c.jsonl-1"]
    assert list(report.files) == [str(folder / n) for n in ("a.jsonl", "b.jsonl", "c.jsonl")]
    from_dir, _ = load(tmp_path, str(folder), "pretrain")  # a directory means its supported files
    assert from_dir["text"] == dataset["text"]


def test_missing_inputs_are_named(tmp_path):
    pattern = str(tmp_path / "nothing" / "*.jsonl")
    with pytest.raises(DataSourceError) as caught:
        load(tmp_path, pattern, "pretrain")
    assert str(caught.value) == f"{pattern}: pattern matches no files"
    with pytest.raises(DataSourceError) as caught:
        load(tmp_path, str(tmp_path / "missing.jsonl"), "pretrain")
    assert str(caught.value) == f"{tmp_path / 'missing.jsonl'}: no such file"
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(DataSourceError, match=r"a.txt: unsupported file type"):
        load(tmp_path, str(tmp_path / "*.txt"), "pretrain")


def test_mixture_weights(tmp_path):
    a = write_jsonl(tmp_path / "a.jsonl", [{"text": f"a{i}"} for i in range(10)])
    b = write_jsonl(tmp_path / "b.jsonl", [{"text": f"b{i}"} for i in range(4)])
    mixture = [DataSource(a, weight=0.5), {"path": b, "weight": 2}]
    dataset, report = load(tmp_path, mixture, "pretrain", seed=1)
    texts = dataset["text"]
    a_part, b_part = [t for t in texts if t.startswith("a")], [t for t in texts if t.startswith("b")]
    assert len(a_part) == 5 and len(set(a_part)) == 5
    assert Counter(b_part) == Counter({f"b{i}": 2 for i in range(4)})
    assert load(tmp_path, mixture, "pretrain", seed=1)[0]["text"] == texts  # deterministic
    other_seeds = {tuple(load(tmp_path, mixture, "pretrain", seed=s)[0]["text"][:5]) for s in range(2, 6)}
    assert len(other_seeds | {tuple(a_part)}) > 1  # the seed picks the half
    assert report.mixture == [
        {"source": a, "weight": 0.5, "records": 10, "selected": 5},
        {"source": b, "weight": 2.0, "records": 4, "selected": 8},
    ]
    assert f"{a} x0.5: 10 -> 5 records" in report.summary()
    upsampled, _ = load(tmp_path, DataSource(b, weight=2.5), "pretrain")
    assert len(upsampled) == 10


def test_parquet_and_csv(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pylist(
        [
            {"conversations": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}], "id": 7},
            {"conversations": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": ""}], "id": 8},
        ]
    )
    parquet = str(tmp_path / "sft.parquet")
    pq.write_table(table, parquet)
    with pytest.raises(DataValidationError) as caught:
        load(tmp_path, parquet, "sft")
    assert str(caught.value) == f"{parquet}:row 1: empty content in 'conversations[1]' (assistant)"
    dataset, report = load(tmp_path, parquet, "sft", skip_invalid=True)
    assert {k: v for k, v in dataset[0].items() if k != "location"} == {
        **CANONICAL_SFT,
        "id": "7",
    } and report.skipped_by_reason == Counter({R.EMPTY_CONTENT: 1})

    csv_path = tmp_path / "prefs.csv"
    csv_path.write_text('prompt,chosen,rejected\nQ,good,"bad, with comma"\nQ,,bad\n', encoding="utf-8-sig")
    with pytest.raises(DataValidationError) as caught:
        load(tmp_path, str(csv_path), "dpo")
    assert str(caught.value) == f"{csv_path}:row 1: 'chosen' is empty"
    dataset, _ = load(tmp_path, str(csv_path), "dpo", skip_invalid=True)
    assert dataset[0] == {
        "prompt": DPO_PROMPT,
        "chosen": [msg("assistant", "good")],
        "rejected": [msg("assistant", "bad, with comma")],
    }


def test_offline_hub_id_gives_a_clear_error(tmp_path, monkeypatch):
    import huggingface_hub

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(DataSourceError) as caught:
        load(tmp_path, DataSource("someone/no-such-dataset", split="train"), "sft")
    message = str(caught.value)
    assert message.startswith(
        "someone/no-such-dataset: not a local file, directory or glob, and loading it as a "
        "Hugging Face Hub dataset (split 'train') failed:"
    )
    assert caught.value.__cause__ is None  # no chained traceback from deep inside datasets


def test_kind_override_and_mixed_kinds(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [GOOD["dpo"]])
    dataset, report = load_records([DataSource(path, kind="dpo")], cache_dir=str(tmp_path / "cache"))
    assert len(dataset) == 1 and report.kind == "dpo"
    with pytest.raises(ValueError, match="sources mix kinds"):
        load(tmp_path, [DataSource(path, kind="dpo"), path], "sft")
    with pytest.raises(ValueError, match="weight must be positive"):
        DataSource(path, weight=0)


# --------------------------------------------------------------------------- scale, laziness, caching


def test_build_streams_into_arrow_not_a_python_list(tmp_path, monkeypatch):
    for name in ("from_list", "from_dict", "from_pandas"):  # the in-memory constructors must not be used
        monkeypatch.setattr(datasets.Dataset, name, classmethod(lambda *a, **k: pytest.fail("materialised")))
    path = write_jsonl(tmp_path / "big.jsonl", [{"text": f"document {i}"} for i in range(3000)])
    dataset, report = load(tmp_path, path, "pretrain")
    assert isinstance(dataset, datasets.Dataset) and len(dataset) == 3000
    assert dataset.cache_files and dataset.cache_files[0]["filename"].endswith(".arrow")  # memory-mapped from disk
    assert dataset[2999] == {"text": "document 2999"} and report.kept == 3000


def test_iter_records_is_lazy(tmp_path):
    path = write_jsonl(tmp_path / "a.jsonl", [{"text": "first"}, "garbage", "more garbage"])
    records = iter_records(path, "pretrain")
    assert next(records) == {"text": "first"}
    with pytest.raises(DataValidationError, match=r"a.jsonl:2: malformed JSON"):
        next(records)
    report = ValidationReport()
    assert list(iter_records(path, "pretrain", skip_invalid=True, report=report)) == [{"text": "first"}]
    assert (report.read, report.kept, report.skipped) == (3, 1, 2)


def test_cached_build_keeps_its_report(tmp_path, monkeypatch):
    path = write_jsonl(tmp_path / "a.jsonl", [{"text": "x"}, "bad", {"text": "y"}])
    _, first = load(tmp_path, path, "pretrain", skip_invalid=True)

    calls = []
    real = S.validated_records
    monkeypatch.setattr(S, "validated_records", lambda *a, **k: calls.append(1) or real(*a, **k))
    dataset, cached = load(tmp_path, path, "pretrain", skip_invalid=True)
    assert calls == [] and cached.to_dict() == first.to_dict() and dataset["text"] == ["x", "y"]  # cache hit

    for report_file in (tmp_path / "cache" / "minimind_hf_reports").iterdir():
        report_file.unlink()  # a lost report is re-derived
    _, rederived = load(tmp_path, path, "pretrain", skip_invalid=True)
    assert calls == [1] and rederived.to_dict() == first.to_dict()

    write_jsonl(tmp_path / "a.jsonl", [{"text": "x"}, "bad", "bad", {"text": "y"}, {"text": "z"}])  # changed file
    dataset, changed = load(tmp_path, path, "pretrain", skip_invalid=True)
    assert dataset["text"] == ["x", "y", "z"] and (changed.read, changed.skipped) == (5, 2)


def test_all_records_skipped_gives_an_empty_dataset(tmp_path):
    path = write_jsonl(tmp_path / "a.jsonl", ["bad", "worse"])
    for _ in range(2):  # the second call is a cache hit
        dataset, report = load(tmp_path, path, "sft", skip_invalid=True)
        assert len(dataset) == 0 and dataset.features == schema.features("sft") and report.skipped == 2
