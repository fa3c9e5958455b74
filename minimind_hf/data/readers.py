"""File readers: each yields ``(location, raw record)`` for one file, lazily.

``location`` is ``FILE:LINE`` (JSON lines, 1-based), ``FILE:record N`` (a JSON list) or
``FILE:row N`` (parquet / csv; 0-based). A record a reader cannot parse comes as an
:class:`InvalidRecord` so the caller can raise or count it like any other bad record.
"""

from __future__ import annotations

import csv
import json
from typing import Any, Iterator

from .report import MALFORMED_JSON, DataError, DataSourceError, DataValidationError, InvalidRecord

FILE_TYPES = (".jsonl", ".json", ".parquet", ".csv")


def read_jsonl(path: str) -> Iterator[tuple[str, Any]]:
    with open(path, "rb") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():  # blank lines (a trailing newline) are not records
                continue
            try:
                yield f"{path}:{number}", json.loads(line)
            except json.JSONDecodeError as error:
                detail = f"malformed JSON ({error.msg} at column {error.colno})"
                yield f"{path}:{number}", InvalidRecord(MALFORMED_JSON, detail)
            except UnicodeDecodeError:
                yield f"{path}:{number}", InvalidRecord(MALFORMED_JSON, "malformed JSON (not valid UTF-8)")


def _read_json(path: str) -> Iterator[tuple[str, Any]]:
    with open(path, "rb") as f:
        is_list = f.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"[")  # skip a BOM too
    if not is_list:  # like `datasets`, accept JSON lines saved as .json
        yield from read_jsonl(path)
        return
    # One JSON document can only be parsed whole; use .jsonl for corpora that do not fit in memory.
    with open(path, "rb") as f:
        try:
            records = json.load(f)
        except json.JSONDecodeError as error:  # nothing in the file can be trusted: fatal even when skipping
            raise DataValidationError(
                f"{path}:{error.lineno}", MALFORMED_JSON, f"malformed JSON ({error.msg} at column {error.colno})"
            ) from None
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


READERS = {".jsonl": read_jsonl, ".json": _read_json, ".parquet": _read_parquet, ".csv": _read_csv}


def guarded(name: str, records: Iterator) -> Iterator:
    """Turn I/O and decoding failures of a whole file into one clear DataSourceError."""
    import pyarrow as pa

    try:
        yield from records
    except DataError:
        raise
    except (OSError, ValueError, pa.ArrowException) as error:
        raise DataSourceError(f"{name}: cannot read file ({type(error).__name__}: {error})") from error
