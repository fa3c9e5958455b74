"""Load, validate and normalise the text data users bring.

Every supported input format becomes one canonical record per kind (a later builder
tokenises these; nothing here knows about tokens):

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

Inputs: ``.jsonl`` (line by line), ``.json`` (a list of records, as MiniCPM-V / LLaVA
data, or JSON lines when the file does not start with ``[``), ``.parquet``, ``.csv``
(every cell is a string, so CSV suits pretrain text and string-form DPO), globs,
directories and Hugging Face Hub dataset ids. Bad records raise
:class:`DataValidationError` ``"FILE:LINE: what is wrong"`` (``FILE:record N`` for JSON
lists, ``FILE:row N`` for parquet / csv / hub; record and row numbers are 0-based indices,
line numbers 1-based), or with ``skip_invalid=True`` are skipped and counted per reason in
a :class:`ValidationReport`.

Caching: :func:`load_records` builds each source with ``Dataset.from_generator`` (an
on-disk, memory-mapped Arrow cache; records stream through one by one) under an explicit
fingerprint made of the file paths, sizes and mtimes, the kind, ``skip_invalid`` and
``CACHE_VERSION``. The generator saves the source's report to
``<cache>/minimind_hf_reports/<fingerprint>.json`` when it finishes, so a later cache hit
(the generator does not run) reads the report back instead of losing it; if that file is
missing the source is re-validated without rebuilding the Arrow data.
"""

from __future__ import annotations

import csv
import glob
import hashlib
import json
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Iterable, Iterator

import numpy as np

KINDS = ("pretrain", "sft", "dpo")
ROLES = ("system", "user", "assistant", "tool")
# ShareGPT / LLaVA / LLaMA-Factory "from" values -> chat roles.
SHAREGPT_ROLES = {
    "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
    "system": "system", "tool": "tool", "observation": "tool", "function_call": "assistant",
}
FILE_TYPES = (".jsonl", ".json", ".parquet", ".csv")
CACHE_VERSION = 2  # bump when normalisation changes so old Arrow caches are not reused

# Reasons a record is rejected; the keys of ValidationReport's skip counters.
MALFORMED_JSON = "malformed JSON"
NOT_AN_OBJECT = "not an object"
MISSING_FIELD = "missing field"
WRONG_TYPE = "wrong type"
UNKNOWN_ROLE = "unknown role"
EMPTY_CONTENT = "empty content"
NO_ASSISTANT_TURN = "no assistant turn"
PROMPT_MISMATCH = "prompt mismatch"
EMPTY_COMPLETION = "empty chosen/rejected"


class DataError(ValueError):
    """Base class of the errors this module raises about user data."""


class DataSourceError(DataError):
    """A source cannot be found or read (missing file, empty glob, unreachable hub id)."""


class DataValidationError(DataError):
    """A record is invalid; the message is ``LOCATION: what is wrong``."""

    def __init__(self, location: str, reason: str, detail: str):
        super().__init__(f"{location}: {detail}")
        self.location, self.reason, self.detail = location, reason, detail


class _Invalid(Exception):
    """Raised by the normalisers, which do not know where a record came from."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason, self.detail = reason, detail


# --------------------------------------------------------------------------- report


@dataclass
class FileReport:
    read: int = 0
    kept: int = 0
    skipped: Counter = field(default_factory=Counter)  # reason -> count
    examples: dict = field(default_factory=dict)  # reason -> first few locations


@dataclass
class ValidationReport:
    """What loading saw, per file; later stages add their own counts to the generic fields."""

    kind: str = ""
    files: dict = field(default_factory=dict)  # file name -> FileReport
    mixture: list = field(default_factory=list)  # {"source", "weight", "records", "selected"}
    dropped: Counter = field(default_factory=Counter)  # e.g. {"too long after truncation": 3}
    truncated: int = 0
    supervised_tokens: int = 0

    MAX_EXAMPLES: ClassVar[int] = 3

    def file(self, name: str) -> FileReport:
        return self.files.setdefault(name, FileReport())

    def skip(self, name: str, error: DataValidationError) -> None:
        entry = self.file(name)
        entry.skipped[error.reason] += 1
        examples = entry.examples.setdefault(error.reason, [])
        if len(examples) < self.MAX_EXAMPLES:
            examples.append(error.location)

    def skip_later(self, location: str, reason: str) -> bool:
        """A record the loader kept but a later stage (images, ...) found invalid: counted as a
        skip of its file with its FILE:LINE, like the loader's own skips. False when the
        location names no file of this report (then the caller counts it as dropped)."""
        name = location.rpartition(":")[0]
        entry = self.files.get(name)
        if entry is None:
            return False
        entry.kept -= 1
        self.skip(name, DataValidationError(location, reason, reason))
        return True

    @property
    def read(self) -> int:
        return sum(f.read for f in self.files.values())

    @property
    def kept(self) -> int:
        return sum(f.kept for f in self.files.values())

    @property
    def skipped(self) -> int:
        return sum(self.skipped_by_reason.values())

    @property
    def skipped_by_reason(self) -> Counter:
        return sum((f.skipped for f in self.files.values()), Counter())

    def add(self, other: "ValidationReport") -> "ValidationReport":
        """Merge ``other`` into this report (in place) and return it."""
        self.kind = self.kind or other.kind
        for name, theirs in other.files.items():
            mine = self.file(name)
            mine.read += theirs.read
            mine.kept += theirs.kept
            mine.skipped.update(theirs.skipped)
            for reason, locations in theirs.examples.items():
                kept = mine.examples.setdefault(reason, [])
                kept.extend(locations[: self.MAX_EXAMPLES - len(kept)])
        self.mixture.extend(other.mixture)
        self.dropped.update(other.dropped)
        self.truncated += other.truncated
        self.supervised_tokens += other.supervised_tokens
        return self

    __iadd__ = add

    def to_dict(self) -> dict:
        files = {name: {"read": f.read, "kept": f.kept, "skipped": dict(f.skipped), "examples": f.examples}
                 for name, f in self.files.items()}
        return {"kind": self.kind, "files": files, "mixture": self.mixture, "dropped": dict(self.dropped),
                "truncated": self.truncated, "supervised_tokens": self.supervised_tokens}

    @classmethod
    def from_dict(cls, data: dict) -> "ValidationReport":
        files = {name: FileReport(f["read"], f["kept"], Counter(f["skipped"]), f["examples"])
                 for name, f in data["files"].items()}
        return cls(data["kind"], files, data["mixture"], Counter(data["dropped"]),
                   data["truncated"], data["supervised_tokens"])

    def nothing_usable(self, names: list[str]) -> "DataSourceError":
        """The error for inputs that yield no record: which files, what was read, why it was skipped."""
        where = ", ".join(names)
        if not self.read:
            return DataSourceError(f"{where}: no records (the file(s) are empty or hold only blank lines)")
        counts = self.skipped_by_reason + self.dropped
        reasons = "; ".join(f"{reason}: {count}" for reason, count in counts.most_common())
        return DataSourceError(f"{where}: none of the {self.read} record(s) read is usable (skipped - {reasons})")

    def summary(self) -> str:
        lines = [f"data report ({self.kind or 'records'}): read {self.read}, kept {self.kept}, "
                 f"skipped {self.skipped}"]
        lines += [f"  {name}: read {f.read}, kept {f.kept}, skipped {sum(f.skipped.values())}"
                  for name, f in self.files.items()]
        if self.skipped:
            lines.append("  skipped by reason:")
            for reason, count in self.skipped_by_reason.most_common():
                example = next(f.examples[reason][0] for f in self.files.values() if f.examples.get(reason))
                lines.append(f"    {reason}: {count} (e.g. {example})")
        if self.mixture:
            lines.append("  mixture:")
            lines += [f"    {m['source']} x{m['weight']:g}: {m['records']} -> {m['selected']} records"
                      for m in self.mixture]
        if self.dropped:
            lines.append("  dropped:")
            lines += [f"    {reason}: {count}" for reason, count in self.dropped.most_common()]
        if self.truncated:
            lines.append(f"  truncated: {self.truncated} records")
        if self.supervised_tokens:
            lines.append(f"  supervised tokens: {self.supervised_tokens}")
        return "\n".join(lines)


# --------------------------------------------------------------------------- normalisers

_JSON_TYPES = {str: "string", int: "number", float: "number", bool: "boolean", list: "list",
               dict: "object", type(None): "null"}
_EXPECTED = {str: "a string", list: "a list", dict: "an object"}
_THINK = re.compile(r"\s*<think>(.*?)</think>\s*", re.S)


def _json_type(value: Any) -> str:
    return _JSON_TYPES.get(type(value), type(value).__name__)


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _field(obj: dict, key: str, expected: type, where: str = "") -> Any:
    """``obj[key]`` checked for presence (null counts as absent) and type."""
    value = obj.get(key)
    if value is None:
        raise _Invalid(MISSING_FIELD, f"missing field '{where}{key}'")
    if not isinstance(value, expected):
        raise _Invalid(WRONG_TYPE, f"'{where}{key}' must be {_EXPECTED[expected]}, got {_json_type(value)}")
    return value


def _optional_str(obj: dict, key: str, where: str) -> str:
    value = obj.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _Invalid(WRONG_TYPE, f"'{where}.{key}' must be a string, got {_json_type(value)}")
    return value


def _json_list(value: Any, where: str) -> str:
    """Tool calls / tool schemas given as a JSON string, an object or a list -> JSON list string."""
    if isinstance(value, str):
        if not value.strip():
            return ""
        try:
            value = json.loads(value)
        except json.JSONDecodeError as error:
            raise _Invalid(MALFORMED_JSON, f"'{where}' is not valid JSON ({error.msg})") from None
    if value is None:
        return ""
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise _Invalid(WRONG_TYPE, f"'{where}' must be a list of objects")
    return _dumps(value) if value else ""


def _message(raw: Any, where: str) -> dict:
    if not isinstance(raw, dict):
        raise _Invalid(WRONG_TYPE, f"'{where}' must be an object, got {_json_type(raw)}")
    if "role" in raw:
        role = _field(raw, "role", str, f"{where}.")
        content_key, tool_calls = "content", raw.get("tool_calls")
        if role not in ROLES:
            raise _Invalid(UNKNOWN_ROLE, f"unknown role '{role}' in '{where}'")
    elif "from" in raw:
        speaker = _field(raw, "from", str, f"{where}.")
        content_key, tool_calls = "value", raw.get("tool_calls")
        if speaker not in SHAREGPT_ROLES:
            raise _Invalid(UNKNOWN_ROLE, f"unknown role '{speaker}' in '{where}'")
        role = SHAREGPT_ROLES[speaker]
        if speaker == "function_call":  # the value is the call itself, not text
            content_key, tool_calls = None, raw.get("value")
    else:
        raise _Invalid(MISSING_FIELD, f"missing field '{where}.role'")
    content = _optional_str(raw, content_key, where) if content_key else ""
    tool_calls = _json_list(tool_calls, f"{where}.tool_calls")
    reasoning = _optional_str(raw, "reasoning_content", where)
    if role == "assistant" and not reasoning:
        think = _THINK.match(content)  # MiniMind-3 / R1 data keep reasoning inline
        if think:
            reasoning, content = think.group(1).strip(), content[think.end():]
    if not content.strip() and not (role == "assistant" and tool_calls):
        raise _Invalid(EMPTY_CONTENT, f"empty content in '{where}' ({role})")
    return {"role": role, "content": content, "reasoning_content": reasoning,
            "tool_calls": tool_calls, "name": _optional_str(raw, "name", where)}


def _messages(value: Any, where: str) -> list:
    if not isinstance(value, list):
        raise _Invalid(WRONG_TYPE, f"'{where}' must be a list, got {_json_type(value)}")
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
        raise _Invalid(WRONG_TYPE, f"'{key}' must be a string, a list or an object, got {_json_type(value)}")
    values = paths.values() if isinstance(paths, dict) else paths
    if not all(isinstance(path, str) and path for path in values):
        raise _Invalid(WRONG_TYPE, f"'{key}' must hold non-empty path strings")
    return _dumps(paths)


def _normalise_pretrain(record: dict) -> dict:
    text = _field(record, "text", str)
    if not text.strip():
        raise _Invalid(EMPTY_CONTENT, "empty 'text'")
    return {"text": text}


def _normalise_sft(record: dict) -> dict:
    key = "conversations" if record.get("conversations") is not None else "messages"
    if record.get(key) is None:
        raise _Invalid(MISSING_FIELD, "missing field 'conversations' (or 'messages')")
    turns = record[key]
    messages = _messages(turns, key)
    system = record.get("system")  # LLaMA-Factory ShareGPT keeps the system prompt on the record
    if system is not None:
        if not isinstance(system, str):
            raise _Invalid(WRONG_TYPE, f"'system' must be a string, got {_json_type(system)}")
        if system.strip() and not (messages and messages[0]["role"] == "system"):
            messages.insert(0, {"role": "system", "content": system, "reasoning_content": "",
                                "tool_calls": "", "name": ""})
    if not any(m["role"] == "assistant" for m in messages):
        raise _Invalid(NO_ASSISTANT_TURN, f"'{key}' has no assistant turn")
    tools = _json_list(record.get("tools"), "tools")
    first = turns[0] if turns else {}
    if not tools and first.get("role", first.get("from")) == "system":
        # MiniMind puts the tool schemas on the system message ("tools"; older data "functions").
        for name in ("tools", "functions"):
            if first.get(name):
                tools = _json_list(first[name], f"{key}[0].{name}")
                break
    identifier = record.get("id")
    return {"messages": messages, "tools": tools, "images": _images(record),
            "id": "" if identifier is None else str(identifier)}


def _as_messages(value: Any, where: str, role: str) -> list:
    """A DPO field given as plain text (one ``role`` message) or as a message list."""
    if isinstance(value, str):
        if not value.strip():
            raise _Invalid(EMPTY_COMPLETION if role == "assistant" else EMPTY_CONTENT, f"'{where}' is empty")
        return [_message({"role": role, "content": value}, where)]
    if isinstance(value, list):
        if not value:
            raise _Invalid(EMPTY_COMPLETION if role == "assistant" else EMPTY_CONTENT, f"'{where}' is empty")
        return _messages(value, where)
    raise _Invalid(WRONG_TYPE, f"'{where}' must be a string or a list of messages, got {_json_type(value)}")


def _split_completion(record: dict, key: str, prompt: list | None) -> tuple[list, list]:
    """Split a chosen/rejected conversation after its last user turn: (prompt part, completion)."""
    if record.get(key) is None:
        raise _Invalid(MISSING_FIELD, f"missing field '{key}'")
    messages = _as_messages(record[key], key, "assistant")
    cut = max((i + 1 for i, m in enumerate(messages) if m["role"] == "user"), default=0)
    head, completion = messages[:cut], messages[cut:]
    if prompt is not None and head and head != prompt:
        raise _Invalid(PROMPT_MISMATCH, f"'{key}' does not start with 'prompt'")
    if not any(m["role"] == "assistant" for m in completion):
        raise _Invalid(EMPTY_COMPLETION, f"'{key}' has no assistant reply")
    return head, completion


def _normalise_dpo(record: dict) -> dict:
    prompt = None
    if record.get("prompt") is not None:
        prompt = _as_messages(record["prompt"], "prompt", "user")
    chosen_prompt, chosen = _split_completion(record, "chosen", prompt)
    rejected_prompt, rejected = _split_completion(record, "rejected", prompt)
    if prompt is None:  # MiniMind dpo.jsonl: two full conversations sharing their prompt
        if chosen_prompt != rejected_prompt:
            raise _Invalid(PROMPT_MISMATCH, "chosen and rejected prompts differ")
        if not chosen_prompt:
            raise _Invalid(MISSING_FIELD, "missing field 'prompt' (and 'chosen' has no user turn)")
        prompt = chosen_prompt
    return {"prompt": prompt, "chosen": chosen, "rejected": rejected}


NORMALISERS: dict[str, Callable[[dict], dict]] = {
    "pretrain": _normalise_pretrain, "sft": _normalise_sft, "dpo": _normalise_dpo,
}


def normalise_record(record: Any, kind: str, location: str = "<record>") -> dict:
    """Canonical form of one raw record; raises DataValidationError naming ``location``."""
    try:
        out = _normalise(record, kind)
    except _Invalid as bad:
        raise DataValidationError(location, bad.reason, bad.detail) from None
    if kind == "sft":
        out["location"] = location
    return out


def _normalise(record: Any, kind: str) -> dict:
    if isinstance(record, _Invalid):  # a reader could not even parse it
        raise record
    if not isinstance(record, dict):
        raise _Invalid(NOT_AN_OBJECT, f"record is not a JSON object (got {_json_type(record)})")
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
    return Features({
        "pretrain": {"text": text},
        "sft": {"messages": message, "tools": text, "images": text, "id": text, "location": text},
        "dpo": {"prompt": message, "chosen": message, "rejected": message},
    }[kind])


# --------------------------------------------------------------------------- readers
# Each reader yields (location, raw record); a record it cannot parse comes as an _Invalid.


def _read_jsonl(path: str) -> Iterator[tuple[str, Any]]:
    with open(path, "rb") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():  # blank lines (a trailing newline) are not records
                continue
            try:
                yield f"{path}:{number}", json.loads(line)
            except json.JSONDecodeError as error:
                detail = f"malformed JSON ({error.msg} at column {error.colno})"
                yield f"{path}:{number}", _Invalid(MALFORMED_JSON, detail)
            except UnicodeDecodeError:
                yield f"{path}:{number}", _Invalid(MALFORMED_JSON, "malformed JSON (not valid UTF-8)")


def _read_json(path: str) -> Iterator[tuple[str, Any]]:
    with open(path, "rb") as f:
        is_list = f.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"[")  # skip a BOM too
    if not is_list:  # like `datasets`, accept JSON lines saved as .json
        yield from _read_jsonl(path)
        return
    # One JSON document can only be parsed whole; use .jsonl for corpora that do not fit in memory.
    with open(path, "rb") as f:
        try:
            records = json.load(f)
        except json.JSONDecodeError as error:  # nothing in the file can be trusted: fatal even when skipping
            raise DataValidationError(f"{path}:{error.lineno}", MALFORMED_JSON,
                                      f"malformed JSON ({error.msg} at column {error.colno})") from None
    for index, record in enumerate(records):
        yield f"{path}:record {index}", record


def _read_parquet(path: str) -> Iterator[tuple[str, Any]]:
    import pyarrow.parquet as pq

    index = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=1024):
        for record in batch.to_pylist():
            yield f"{path}:row {index}", record
            index += 1


def _read_csv(path: str) -> Iterator[tuple[str, Any]]:
    csv.field_size_limit(2**31 - 1)  # pretraining documents easily exceed the 128 KiB default
    with open(path, newline="", encoding="utf-8-sig") as f:  # utf-8-sig: spreadsheets write a BOM
        reader = csv.DictReader(f)
        try:
            for index, record in enumerate(reader):
                yield f"{path}:row {index}", record
        except csv.Error as error:
            raise DataValidationError(f"{path}:{reader.line_num}", MALFORMED_JSON, f"malformed CSV ({error})") from None


READERS = {".jsonl": _read_jsonl, ".json": _read_json, ".parquet": _read_parquet, ".csv": _read_csv}


def _guarded(name: str, records: Iterator) -> Iterator:
    """Turn I/O and decoding failures of a whole file into one clear DataSourceError."""
    import pyarrow as pa

    try:
        yield from records
    except DataError:
        raise
    except (OSError, ValueError, pa.ArrowException) as error:
        raise DataSourceError(f"{name}: cannot read file ({type(error).__name__}: {error})") from error


# --------------------------------------------------------------------------- sources


@dataclass
class DataSource:
    """One entry of a data mixture.

    ``path`` is a file, a glob, a directory or a Hub dataset id (then ``split`` applies).
    ``weight`` samples the source after loading: 0.5 keeps a seeded half, 2.0 repeats it twice,
    2.5 twice plus a seeded half. ``kind`` overrides the kind given to :func:`load_records`.
    """

    path: str
    weight: float = 1.0
    split: str = "train"
    kind: str | None = None

    def __post_init__(self):
        self.path = os.fspath(self.path)
        self.weight = float(self.weight)
        if not self.weight > 0:
            raise ValueError(f"{self.path}: weight must be positive, got {self.weight}")
        if self.kind is not None and self.kind not in KINDS:
            raise ValueError(f"{self.path}: unknown kind {self.kind!r} (expected one of {', '.join(KINDS)})")


def as_sources(sources) -> list[DataSource]:
    """Accept one source or a list; each a DataSource, a path string or a dict (from a recipe)."""
    if isinstance(sources, (str, os.PathLike, dict, DataSource)):
        sources = [sources]
    out = []
    for source in sources:
        if isinstance(source, dict):
            source = DataSource(**source)
        elif not isinstance(source, DataSource):
            source = DataSource(source)
        out.append(source)
    if not out:
        raise DataSourceError("no data sources given")
    return out


def _source_kind(sources: list[DataSource], kind: str | None) -> str:
    kinds = {source.kind or kind for source in sources}
    if None in kinds:
        raise ValueError(f"no kind given (expected one of {', '.join(KINDS)})")
    if len(kinds) > 1:
        raise ValueError(f"sources mix kinds {sorted(kinds)}; load each kind separately")
    (kind,) = kinds
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r} (expected one of {', '.join(KINDS)})")
    return kind


def local_files(source: DataSource) -> list[str] | None:
    """Files a source names, in sorted order; None when it is a Hub dataset id."""
    path = os.path.expanduser(source.path)
    if any(char in path for char in "*?["):
        files = sorted(f for f in glob.glob(path, recursive=True) if os.path.isfile(f))
        if not files:
            raise DataSourceError(f"{source.path}: pattern matches no files")
    elif os.path.isdir(path):
        files = sorted(f for f in glob.glob(os.path.join(path, "*")) if f.endswith(FILE_TYPES))
        if not files:
            raise DataSourceError(f"{source.path}: directory holds no {', '.join(FILE_TYPES)} files")
    elif os.path.isfile(path):
        files = [path]
    elif path.endswith(FILE_TYPES) or not re.fullmatch(r"[\w-][\w.-]*(/[\w.-]+)?", path):
        raise DataSourceError(f"{source.path}: no such file")
    else:
        return None
    for file in files:
        if not file.endswith(FILE_TYPES):
            raise DataSourceError(f"{file}: unsupported file type (expected {', '.join(FILE_TYPES)})")
    return files


def _open_hub(source: DataSource, streaming: bool = False):
    import datasets

    try:
        return datasets.load_dataset(source.path, split=source.split, streaming=streaming)
    except Exception as error:  # offline, unknown id, missing split ...: one clear message
        raise DataSourceError(
            f"{source.path}: not a local file, directory or glob, and loading it as a Hugging Face Hub "
            f"dataset (split {source.split!r}) failed: {type(error).__name__}: {error}"
        ) from None


def _streams(source: DataSource, streaming: bool = False) -> tuple[list, list]:
    """(name, records-iterator factory) per file of a source, plus what identifies their content."""
    files = local_files(source)
    if files is None:
        hub = _open_hub(source, streaming)
        name = f"{source.path}[{source.split}]"
        rows = lambda: ((f"{name}:row {i}", row) for i, row in enumerate(hub))  # noqa: E731
        return [(name, rows)], [[name, getattr(hub, "_fingerprint", "")]]
    streams, identity = [], []
    for file in files:
        reader = READERS[os.path.splitext(file)[1]]
        streams.append((file, lambda reader=reader, file=file: _guarded(file, reader(file))))
        stat = os.stat(file)
        identity.append([os.path.abspath(file), stat.st_size, stat.st_mtime_ns])
    return streams, identity


def _validated(name: str, records: Iterator, kind: str, skip_invalid: bool, report: ValidationReport,
               normalise=None) -> Iterator[dict]:
    """Normalised records (`normalise(raw)`, default: by `kind`), each bad one raised or counted."""
    entry = report.file(name)
    for location, raw in records:
        entry.read += 1
        try:
            record = normalise(raw) if normalise is not None else _normalise(raw, kind)
        except _Invalid as bad:
            error = DataValidationError(location, bad.reason, bad.detail)
            if not skip_invalid:
                raise error from None
            report.skip(name, error)
            continue
        entry.kept += 1
        if kind in ("sft", "rl"):  # later stages (images, truncation, rewards) name records by where they came from
            record["location"] = location
        yield record


def iter_records(sources, kind: str | None = None, *, skip_invalid: bool = False,
                 report: ValidationReport | None = None) -> Iterator[dict]:
    """Canonical records, lazily, one file after another (weights are not applied).

    Pass a ``report`` to have it filled as records are read; Hub ids are opened in streaming mode.
    """
    sources = as_sources(sources)
    kind = _source_kind(sources, kind)
    report = report if report is not None else ValidationReport(kind)
    for source in sources:
        for name, records in _streams(source, streaming=True)[0]:
            yield from _validated(name, records(), kind, skip_invalid, report)


def _generate(streams, kind, skip_invalid, report, report_path):
    """``Dataset.from_generator`` body: stream, validate, normalise; save the report at the end."""
    for name, records in streams:
        yield from _validated(name, records(), kind, skip_invalid, report)
    os.makedirs(os.path.dirname(report_path), exist_ok=True)
    with open(report_path + ".tmp", "w", encoding="utf-8") as f:
        json.dump(report.to_dict(), f)
    os.replace(report_path + ".tmp", report_path)  # atomic: another rank may be reading it


def _reraise_data_error(error: BaseException) -> None:
    """`datasets` wraps generator exceptions; surface ours as they were raised."""
    cause = error
    while cause is not None:
        if isinstance(cause, DataError):
            raise cause.with_traceback(None) from None
        cause = cause.__cause__ or cause.__context__


def _load_source(source: DataSource, kind: str, skip_invalid: bool, cache_dir: str | None):
    import datasets

    streams, identity = _streams(source)
    key = json.dumps([CACHE_VERSION, kind, skip_invalid, identity])
    fingerprint = hashlib.sha256(key.encode()).hexdigest()[:32]
    cache_root = cache_dir or datasets.config.HF_DATASETS_CACHE
    report_path = os.path.join(cache_root, "minimind_hf_reports", f"{fingerprint}.json")
    report = ValidationReport(kind)
    schema = features(kind)
    try:
        dataset = datasets.Dataset.from_generator(
            _generate, features=schema, cache_dir=cache_dir, fingerprint=fingerprint,
            gen_kwargs=dict(streams=streams, kind=kind, skip_invalid=skip_invalid,
                            report=report, report_path=report_path),
        )
    except datasets.exceptions.DatasetGenerationError as error:
        _reraise_data_error(error)
        raise
    except ValueError as error:
        if "corresponds to no data" not in str(error):  # `datasets` cannot build an empty split
            raise
        dataset = None
    if not report.files:  # cache hit: the generator did not run, read the report it saved
        if os.path.exists(report_path):
            with open(report_path, encoding="utf-8") as f:
                report = ValidationReport.from_dict(json.load(f))
        else:
            for _ in _generate(streams, kind, skip_invalid, report, report_path):
                pass
    if dataset is None:
        if report.kept:
            raise DataSourceError(f"{source.path}: cached data is missing; delete {cache_root} and retry")
        dataset = datasets.Dataset.from_dict({name: [] for name in schema}, features=schema)
    return dataset, report


def _apply_weight(dataset, weight: float, seed) -> Any:
    """Repeat the source int(weight) times, plus a seeded sample of the fractional part."""
    if weight == 1.0:
        return dataset
    n = len(dataset)
    whole = int(weight)
    rng = np.random.default_rng(seed)
    extra = np.sort(rng.choice(n, size=round((weight - whole) * n), replace=False))
    return dataset.select(np.concatenate([np.tile(np.arange(n), whole), extra]).astype(np.int64))


def load_records(sources, kind: str | None = None, *, skip_invalid: bool = False, seed: int = 0,
                 cache_dir: str | None = None):
    """Load, validate and normalise ``sources`` into one Arrow-backed ``datasets.Dataset``.

    Returns ``(dataset, report)``. Each source is built with ``Dataset.from_generator`` (records
    stream from disk into a memory-mapped Arrow cache, never into a Python list), then sampled
    by its weight (deterministic for a given ``seed``); the sources are concatenated in order.
    """
    import datasets

    sources = as_sources(sources)
    kind = _source_kind(sources, kind)
    report = ValidationReport(kind)
    parts = []
    for index, source in enumerate(sources):
        dataset, source_report = _load_source(source, kind, skip_invalid, cache_dir)
        report.add(source_report)
        sampled = _apply_weight(dataset, source.weight, seed=[seed, index])
        report.mixture.append({"source": source.path, "weight": source.weight,
                               "records": len(dataset), "selected": len(sampled)})
        parts.append(sampled)
    return (parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts)), report
