"""RL prompt data for the `grpo` stage: load, validate, normalise.

Two input formats, one canonical record ``{"prompt": [MESSAGE, ...], "answer": str,
"kind": str, "expected_call": str, "location": str}`` (MESSAGE = ``{"role", "content"}``,
TRL's conversational prompt; ``answer`` is ``""`` when the record has none;
``expected_call`` is the tool call a tool-use prompt needs, ``{"name", "arguments"}`` as a
JSON string, or ``""``; ``location`` is ``FILE:LINE``):

* MiniMind ``rlaif`` jsonl: SFT conversations whose last assistant turn is empty
  (``{"conversations": [{"role": "user", ...}, {"role": "assistant", "content": ""}]}``);
  a conversation that ends with a filled assistant turn gives its prompt (everything up
  to its last user turn), so SFT files with an ``answer`` field work too;
* prompt / answer jsonl: ``{"prompt": "text" | [messages], "answer": "7"}`` (numbers are
  accepted and stored as strings; the recipe's ``answer_column`` names another field).

Files are read with the same readers as every other kind (jsonl, json, parquet, csv,
globs, folders; `data.sources`), bad records raise ``FILE:LINE: what is wrong`` or, with
``skip_invalid``, are skipped and counted per reason in the run's ValidationReport, and
``{path, weight}`` mixtures sample as elsewhere. Prompt sets are small, so the records are
collected in memory (no Arrow cache of their own).
"""

from __future__ import annotations

from typing import Any

from .report import EMPTY_CONTENT, MISSING_FIELD, WRONG_TYPE, InvalidRecord, ValidationReport
from .schema import json_type, parse_messages
from .sources import as_sources, file_streams, validated_records, weighted_indices

KIND = "rl"
NO_PROMPT = "no user turn"
TRAILING_REPLY_ROLES = ("assistant", "gpt")


def _prompt_messages(messages: list[dict], where: str) -> list[dict]:
    """Canonical messages up to the last user turn, as `{"role", "content"}` (TRL's prompt format)."""
    cut = max((i + 1 for i, m in enumerate(messages) if m["role"] == "user"), default=0)
    if cut == 0:
        raise InvalidRecord(NO_PROMPT, f"'{where}' has no user turn to use as the prompt")
    return [{"role": m["role"], "content": m["content"]} for m in messages[:cut]]


def _without_empty_reply(turns: list) -> list:
    """MiniMind rlaif: the final assistant turn is a placeholder with empty content."""
    if turns and isinstance(turns[-1], dict):
        last = turns[-1]
        role = last.get("role", last.get("from"))
        content = last.get("content", last.get("value"))
        if role in TRAILING_REPLY_ROLES and (content is None or (isinstance(content, str) and not content.strip())):
            return turns[:-1]
    return turns


def _answer(record: dict, field: str) -> str:
    value = record.get(field)
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise InvalidRecord(WRONG_TYPE, f"'{field}' must be a string or a number, got {json_type(value)}")
    return str(value).strip()


def normalise_rl(record: Any, answer_field: str = "answer") -> dict:
    if isinstance(record, InvalidRecord):
        raise record
    if not isinstance(record, dict):
        raise InvalidRecord("not an object", f"record is not a JSON object (got {json_type(record)})")
    key = next((k for k in ("conversations", "messages") if record.get(k) is not None), None)
    if key is not None:
        turns = record[key]
        if not isinstance(turns, list):
            raise InvalidRecord(WRONG_TYPE, f"'{key}' must be a list, got {json_type(turns)}")
        prompt = _prompt_messages(parse_messages(_without_empty_reply(turns), key), key)
    elif record.get("prompt") is not None:
        value = record["prompt"]
        if isinstance(value, str):
            if not value.strip():
                raise InvalidRecord(EMPTY_CONTENT, "'prompt' is empty")
            prompt = [{"role": "user", "content": value}]
        elif isinstance(value, list):
            prompt = _prompt_messages(parse_messages(value, "prompt"), "prompt")
        else:
            raise InvalidRecord(WRONG_TYPE, f"'prompt' must be a string or a list of messages, got {json_type(value)}")
    else:
        raise InvalidRecord(MISSING_FIELD, "missing field 'conversations' (MiniMind rlaif) or 'prompt' (prompt/answer)")
    kind = record.get("kind")
    return {
        "prompt": prompt,
        "answer": _answer(record, answer_field),
        "kind": kind if isinstance(kind, str) else "",
        "expected_call": _expected_call(record),
    }


def _expected_call(record: dict) -> str:
    import json

    call = record.get("expected_call")
    if call is None or call == "":
        return ""
    if isinstance(call, str):
        try:
            call = json.loads(call)
        except json.JSONDecodeError:
            raise InvalidRecord(WRONG_TYPE, "'expected_call' is not valid JSON") from None
    if (
        not isinstance(call, dict)
        or not isinstance(call.get("name"), str)
        or not isinstance(call.get("arguments", {}), dict)
    ):
        raise InvalidRecord(WRONG_TYPE, '\'expected_call\' must be {"name": str, "arguments": {...}}')
    return json.dumps({"name": call["name"], "arguments": call.get("arguments", {})}, ensure_ascii=False)


def load_rl_records(sources, *, skip_invalid: bool = False, seed: int = 0, answer_field: str = "answer"):
    """(datasets.Dataset of canonical RL records, ValidationReport) for one split; the reference
    answer is read from each record's `answer_field`."""
    import datasets

    report = ValidationReport(KIND)
    rows: list[dict] = []
    for index, source in enumerate(as_sources(sources)):
        part = []
        for name, records in file_streams(source, streaming=True)[0]:
            part.extend(
                validated_records(
                    name, records(), KIND, skip_invalid, report, normaliser=lambda raw: normalise_rl(raw, answer_field)
                )
            )
        selected = weighted_indices(len(part), source.weight, seed=[seed, index])
        report.mixture.append(
            {"source": source.path, "weight": source.weight, "records": len(part), "selected": len(selected)}
        )
        rows += [part[i] for i in selected]
    if not rows:
        raise report.nothing_usable([str(getattr(s, "path", s)) for s in as_sources(sources)])
    features = datasets.Features(
        {
            "prompt": datasets.List({"role": datasets.Value("string"), "content": datasets.Value("string")}),
            "answer": datasets.Value("string"),
            "kind": datasets.Value("string"),
            "expected_call": datasets.Value("string"),
            "location": datasets.Value("string"),
        }
    )
    return datasets.Dataset.from_list(rows, features=features), report


def load_answered_prompts(data: str, seed: int, limit: int | None = None) -> list[dict]:
    """The first `limit` RL records of `data` (a file or `embedded:NAME`) that have a reference answer."""
    from .report import DataSourceError
    from .sources import resolve_sources

    records, _ = load_rl_records(resolve_sources([data], seed))
    rows = [row for row in records if row["answer"]][:limit]
    if not rows:
        raise DataSourceError(f"{data}: no record has an 'answer' to check")
    return rows
