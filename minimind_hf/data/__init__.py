"""User data in, training examples out.

- :mod:`.readers` read files (jsonl, json, parquet, csv) record by record;
- :mod:`.schema` normalises every supported format into one canonical record per kind;
- :mod:`.report` holds the errors and the per-file report of kept / skipped records;
- :mod:`.sources` resolves paths, globs, Hub ids and ``embedded:`` sets into mixtures and
  loads them (Arrow cache or streaming);
- :mod:`.text` / :mod:`.vision` / :mod:`.rl` build the examples each stage trains on;
- :mod:`.embedded` generates the built-in data sets (no downloads).
"""

from .report import DataError, DataSourceError, DataValidationError, ValidationReport
from .schema import KINDS, chat_messages, features, normalise_record
from .sources import DataSource, as_sources, iter_records, load_records, resolve_sources

__all__ = [
    "KINDS",
    "DataError",
    "DataSource",
    "DataSourceError",
    "DataValidationError",
    "ValidationReport",
    "as_sources",
    "chat_messages",
    "features",
    "iter_records",
    "load_records",
    "normalise_record",
    "resolve_sources",
]
