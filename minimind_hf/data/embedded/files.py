"""Writing the embedded sets: atomic, and untouched when the bytes are the same.

Keeping an unchanged file's mtime matters: ``load_records`` keys its Arrow cache on it.
Several ranks may write at once, so each writes its own temporary file and renames it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path


def write_if_changed(path: str | Path, data: bytes) -> bool:
    """Atomic write (a reader never sees half a file), skipped when the file already holds these bytes."""
    path = Path(path)
    if path.exists() and path.read_bytes() == data:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # per process: ranks may write at once
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return True


def write_jsonl(path: str | Path, records: list[dict]) -> Path:
    """Records as JSON lines."""
    write_if_changed(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8"))
    return Path(path)


def write_json_list(path: str | Path, records: list[dict]) -> Path:
    """A JSON list, one record per line (readable diffs)."""
    body = ",\n".join(json.dumps(r, ensure_ascii=False) for r in records)
    write_if_changed(path, f"[\n{body}\n]\n".encode("utf-8"))
    return Path(path)
