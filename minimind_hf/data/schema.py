"""The canonical record of each kind and the normalisers that turn every supported input format into it.

* ``pretrain``: ``{"text": str}``
* ``sft``: ``{"messages": [MESSAGE, ...], "tools": str, "images": str, "id": str, "location": str}``
  (``location`` is ``FILE:LINE`` / ``FILE:record N``, for messages from later stages)
* ``dpo``: ``{"prompt": [MESSAGE, ...], "chosen": [MESSAGE, ...], "rejected": [MESSAGE, ...]}``
  (TRL's conversational preference format)

where MESSAGE is always ``{"role", "content", "reasoning_content", "tool_calls", "name"}``,
all strings: ``role`` is system/user/assistant/tool, absent fields are ``""`` and JSON
values (``tool_calls``, ``tools``, ``images``) are stored as JSON strings so every record
has the same Arrow schema. ``images`` is ``""``, a JSON list of paths (MiniMind-V
``"a.jpg,b.jpg"``, LLaVA / MiniCPM-V ``"path"``) or a JSON object ``{"<image_00>": path}``
in the original order (MiniCPM-V multi-image). :func:`chat_messages` turns canonical
messages back into what ``apply_chat_template`` expects.
"""

from __future__ import annotations

import json
import re
from typing import Any, Callable, Iterable

from .report import (
    EMPTY_COMPLETION,
    EMPTY_CONTENT,
    MALFORMED_JSON,
    MISSING_FIELD,
    NO_ASSISTANT_TURN,
    NOT_AN_OBJECT,
    PROMPT_MISMATCH,
    UNKNOWN_ROLE,
    WRONG_TYPE,
    DataValidationError,
    InvalidRecord,
)

KINDS = ("pretrain", "sft", "dpo")
ROLES = ("system", "user", "assistant", "tool")
# ShareGPT / LLaVA / LLaMA-Factory "from" values -> chat roles.
SHAREGPT_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "system": "system",
    "tool": "tool",
    "observation": "tool",
    "function_call": "assistant",
}

_JSON_TYPES = {
    str: "string",
    int: "number",
    float: "number",
    bool: "boolean",
    list: "list",
    dict: "object",
    type(None): "null",
}
_EXPECTED = {str: "a string", list: "a list", dict: "an object"}
_THINK = re.compile(r"\s*<think>(.*?)</think>\s*", re.S)


def json_type(value: Any) -> str:
    return _JSON_TYPES.get(type(value), type(value).__name__)


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _field(obj: dict, key: str, expected: type, where: str = "") -> Any:
    """``obj[key]`` checked for presence (null counts as absent) and type."""
    value = obj.get(key)
    if value is None:
        raise InvalidRecord(MISSING_FIELD, f"missing field '{where}{key}'")
    if not isinstance(value, expected):
        raise InvalidRecord(WRONG_TYPE, f"'{where}{key}' must be {_EXPECTED[expected]}, got {json_type(value)}")
    return value


def _optional_str(obj: dict, key: str, where: str) -> str:
    value = obj.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidRecord(WRONG_TYPE, f"'{where}.{key}' must be a string, got {json_type(value)}")
    return value


def _json_list(value: Any, where: str) -> str:
    """Tool calls / tool schemas given as a JSON string, an object or a list -> JSON list string."""
    if isinstance(value, str):
        if not value.strip():
            return ""
        try:
            value = json.loads(value)
        except json.JSONDecodeError as error:
            raise InvalidRecord(MALFORMED_JSON, f"'{where}' is not valid JSON ({error.msg})") from None
    if value is None:
        return ""
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise InvalidRecord(WRONG_TYPE, f"'{where}' must be a list of objects")
    return _dumps(value) if value else ""


def _message(raw: Any, where: str) -> dict:
    if not isinstance(raw, dict):
        raise InvalidRecord(WRONG_TYPE, f"'{where}' must be an object, got {json_type(raw)}")
    if "role" in raw:
        role = _field(raw, "role", str, f"{where}.")
        content_key, tool_calls = "content", raw.get("tool_calls")
        if role not in ROLES:
            raise InvalidRecord(UNKNOWN_ROLE, f"unknown role '{role}' in '{where}'")
    elif "from" in raw:
        speaker = _field(raw, "from", str, f"{where}.")
        content_key, tool_calls = "value", raw.get("tool_calls")
        if speaker not in SHAREGPT_ROLES:
            raise InvalidRecord(UNKNOWN_ROLE, f"unknown role '{speaker}' in '{where}'")
        role = SHAREGPT_ROLES[speaker]
        if speaker == "function_call":  # the value is the call itself, not text
            content_key, tool_calls = None, raw.get("value")
    else:
        raise InvalidRecord(MISSING_FIELD, f"missing field '{where}.role'")
    content = _optional_str(raw, content_key, where) if content_key else ""
    tool_calls = _json_list(tool_calls, f"{where}.tool_calls")
    reasoning = _optional_str(raw, "reasoning_content", where)
    if role == "assistant" and not reasoning:
        think = _THINK.match(content)  # MiniMind-3 / R1 data keep reasoning inline
        if think:
            reasoning, content = think.group(1).strip(), content[think.end() :]
    if not content.strip() and not (role == "assistant" and tool_calls):
        raise InvalidRecord(EMPTY_CONTENT, f"empty content in '{where}' ({role})")
    return {
        "role": role,
        "content": content,
        "reasoning_content": reasoning,
        "tool_calls": tool_calls,
        "name": _optional_str(raw, "name", where),
    }


def parse_messages(value: Any, where: str) -> list:
    if not isinstance(value, list):
        raise InvalidRecord(WRONG_TYPE, f"'{where}' must be a list, got {json_type(value)}")
    return [_message(item, f"{where}[{i}]") for i, item in enumerate(value)]


def _images(record: dict) -> str:
    key = "image" if record.get("image") is not None else "images"
    value = record.get(key)
    if value in (None, "", [], {}):
        return ""
    if isinstance(value, str):  # MiniMind-V: "a.jpg,b.jpg"; LLaVA / MiniCPM-V: "a.jpg"
        paths = [path.strip() for path in value.split(",")]
    elif isinstance(value, list):
        paths = value
    elif isinstance(value, dict):  # MiniCPM-V multi-image: placeholder -> path, order kept
        paths = {tag: path for tag, path in value.items() if path is not None}
    else:
        raise InvalidRecord(WRONG_TYPE, f"'{key}' must be a string, a list or an object, got {json_type(value)}")
    values = paths.values() if isinstance(paths, dict) else paths
    if not all(isinstance(path, str) and path for path in values):
        raise InvalidRecord(WRONG_TYPE, f"'{key}' must hold non-empty path strings")
    return _dumps(paths)


def _normalise_pretrain(record: dict) -> dict:
    text = _field(record, "text", str)
    if not text.strip():
        raise InvalidRecord(EMPTY_CONTENT, "empty 'text'")
    return {"text": text}


def _normalise_sft(record: dict) -> dict:
    key = "conversations" if record.get("conversations") is not None else "messages"
    if record.get(key) is None:
        raise InvalidRecord(MISSING_FIELD, "missing field 'conversations' (or 'messages')")
    turns = record[key]
    messages = parse_messages(turns, key)
    system = record.get("system")  # LLaMA-Factory ShareGPT keeps the system prompt on the record
    if system is not None:
        if not isinstance(system, str):
            raise InvalidRecord(WRONG_TYPE, f"'system' must be a string, got {json_type(system)}")
        if system.strip() and not (messages and messages[0]["role"] == "system"):
            messages.insert(
                0, {"role": "system", "content": system, "reasoning_content": "", "tool_calls": "", "name": ""}
            )
    if not any(m["role"] == "assistant" for m in messages):
        raise InvalidRecord(NO_ASSISTANT_TURN, f"'{key}' has no assistant turn")
    tools = _json_list(record.get("tools"), "tools")
    first = turns[0] if turns else {}
    if not tools and first.get("role", first.get("from")) == "system":
        # MiniMind puts the tool schemas on the system message ("tools"; older data "functions").
        for name in ("tools", "functions"):
            if first.get(name):
                tools = _json_list(first[name], f"{key}[0].{name}")
                break
    identifier = record.get("id")
    return {
        "messages": messages,
        "tools": tools,
        "images": _images(record),
        "id": "" if identifier is None else str(identifier),
    }


def _as_messages(value: Any, where: str, role: str) -> list:
    """A DPO field given as plain text (one ``role`` message) or as a message list."""
    if isinstance(value, str):
        if not value.strip():
            raise InvalidRecord(EMPTY_COMPLETION if role == "assistant" else EMPTY_CONTENT, f"'{where}' is empty")
        return [_message({"role": role, "content": value}, where)]
    if isinstance(value, list):
        if not value:
            raise InvalidRecord(EMPTY_COMPLETION if role == "assistant" else EMPTY_CONTENT, f"'{where}' is empty")
        return parse_messages(value, where)
    raise InvalidRecord(WRONG_TYPE, f"'{where}' must be a string or a list of messages, got {json_type(value)}")


def _split_completion(record: dict, key: str, prompt: list | None) -> tuple[list, list]:
    """Split a chosen/rejected conversation after its last user turn: (prompt part, completion)."""
    if record.get(key) is None:
        raise InvalidRecord(MISSING_FIELD, f"missing field '{key}'")
    messages = _as_messages(record[key], key, "assistant")
    cut = max((i + 1 for i, m in enumerate(messages) if m["role"] == "user"), default=0)
    head, completion = messages[:cut], messages[cut:]
    if prompt is not None and head and head != prompt:
        raise InvalidRecord(PROMPT_MISMATCH, f"'{key}' does not start with 'prompt'")
    if not any(m["role"] == "assistant" for m in completion):
        raise InvalidRecord(EMPTY_COMPLETION, f"'{key}' has no assistant reply")
    return head, completion


def _normalise_dpo(record: dict) -> dict:
    prompt = None
    if record.get("prompt") is not None:
        prompt = _as_messages(record["prompt"], "prompt", "user")
    chosen_prompt, chosen = _split_completion(record, "chosen", prompt)
    rejected_prompt, rejected = _split_completion(record, "rejected", prompt)
    if prompt is None:  # MiniMind dpo.jsonl: two full conversations sharing their prompt
        if chosen_prompt != rejected_prompt:
            raise InvalidRecord(PROMPT_MISMATCH, "chosen and rejected prompts differ")
        if not chosen_prompt:
            raise InvalidRecord(MISSING_FIELD, "missing field 'prompt' (and 'chosen' has no user turn)")
        prompt = chosen_prompt
    return {"prompt": prompt, "chosen": chosen, "rejected": rejected}


NORMALISERS: dict[str, Callable[[dict], dict]] = {
    "pretrain": _normalise_pretrain,
    "sft": _normalise_sft,
    "dpo": _normalise_dpo,
}


def normalise_record(record: Any, kind: str, location: str = "<record>") -> dict:
    """Canonical form of one raw record; raises DataValidationError naming ``location``."""
    try:
        out = normalise(record, kind)
    except InvalidRecord as bad:
        raise DataValidationError(location, bad.reason, bad.detail) from None
    if kind == "sft":
        out["location"] = location
    return out


def normalise(record: Any, kind: str) -> dict:
    if isinstance(record, InvalidRecord):  # a reader could not even parse it
        raise record
    if not isinstance(record, dict):
        raise InvalidRecord(NOT_AN_OBJECT, f"record is not a JSON object (got {json_type(record)})")
    return NORMALISERS[kind](record)


def chat_messages(messages: Iterable[dict]) -> list[dict]:
    """Canonical messages -> ``apply_chat_template`` messages (empty fields dropped, tool calls decoded)."""
    out = []
    for message in messages:
        item = {"role": message["role"], "content": message["content"]}
        if message.get("reasoning_content"):
            item["reasoning_content"] = message["reasoning_content"]
        if message.get("tool_calls"):
            item["tool_calls"] = json.loads(message["tool_calls"])
        if message.get("name"):
            item["name"] = message["name"]
        out.append(item)
    return out


def features(kind: str):
    """The Arrow schema of canonical records of ``kind`` (the same for every record)."""
    from datasets import Features, List, Value

    text = Value("string")
    message = List({name: text for name in ("role", "content", "reasoning_content", "tool_calls", "name")})
    return Features(
        {
            "pretrain": {"text": text},
            "sft": {"messages": message, "tools": text, "images": text, "id": text, "location": text},
            "dpo": {"prompt": message, "chosen": message, "rejected": message},
        }[kind]
    )
