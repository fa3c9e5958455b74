"""What loading saw: the errors user data raises and the per-file report of kept / skipped records.

Reasons a record is rejected are the constants below; they key :class:`ValidationReport`'s
skip counters, so a user reads "missing field: 3 (e.g. data.jsonl:7)".
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import ClassVar

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


class InvalidRecord(Exception):
    """Raised by the normalisers and readers, which do not know where a record came from."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason, self.detail = reason, detail


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
        files = {
            name: {"read": f.read, "kept": f.kept, "skipped": dict(f.skipped), "examples": f.examples}
            for name, f in self.files.items()
        }
        return {
            "kind": self.kind,
            "files": files,
            "mixture": self.mixture,
            "dropped": dict(self.dropped),
            "truncated": self.truncated,
            "supervised_tokens": self.supervised_tokens,
        }

    @classmethod
    def from_dict(cls, data: dict) -> "ValidationReport":
        files = {
            name: FileReport(f["read"], f["kept"], Counter(f["skipped"]), f["examples"])
            for name, f in data["files"].items()
        }
        return cls(
            data["kind"], files, data["mixture"], Counter(data["dropped"]), data["truncated"], data["supervised_tokens"]
        )

    def nothing_usable(self, names: list[str]) -> "DataSourceError":
        """The error for inputs that yield no record: which files, what was read, why it was skipped."""
        where = ", ".join(names)
        if not self.read:
            return DataSourceError(f"{where}: no records (the file(s) are empty or hold only blank lines)")
        counts = self.skipped_by_reason + self.dropped
        reasons = "; ".join(f"{reason}: {count}" for reason, count in counts.most_common())
        return DataSourceError(f"{where}: none of the {self.read} record(s) read is usable (skipped - {reasons})")

    def summary(self) -> str:
        lines = [f"data report ({self.kind or 'records'}): read {self.read}, kept {self.kept}, skipped {self.skipped}"]
        lines += [
            f"  {name}: read {f.read}, kept {f.kept}, skipped {sum(f.skipped.values())}"
            for name, f in self.files.items()
        ]
        if self.skipped:
            lines.append("  skipped by reason:")
            for reason, count in self.skipped_by_reason.most_common():
                example = next(f.examples[reason][0] for f in self.files.values() if f.examples.get(reason))
                lines.append(f"    {reason}: {count} (e.g. {example})")
        if self.mixture:
            lines.append("  mixture:")
            lines += [
                f"    {m['source']} x{m['weight']:g}: {m['records']} -> {m['selected']} records" for m in self.mixture
            ]
        if self.dropped:
            lines.append("  dropped:")
            lines += [f"    {reason}: {count}" for reason, count in self.dropped.most_common()]
        if self.truncated:
            lines.append(f"  truncated: {self.truncated} records")
        if self.supervised_tokens:
            lines.append(f"  supervised tokens: {self.supervised_tokens}")
        return "\n".join(lines)
