"""Where records come from: local files, globs, folders, Hub ids and ``embedded:`` sets, as mixtures.

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

import glob
import hashlib
import json
import os
import re
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np

from .embedded import EMBEDDED_PREFIX, embedded_path
from .readers import FILE_TYPES, READERS, guarded
from .report import DataError, DataSourceError, DataValidationError, InvalidRecord, ValidationReport
from .schema import KINDS, features, normalise

CACHE_VERSION = 2  # bump when normalisation changes so old Arrow caches are not reused


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


def resolve_sources(entries: list, seed: int) -> list:
    """Recipe data entries -> sources: `embedded:NAME` -> the built-in file (written on first use);
    `$VARS` and `~` expanded (recipes name data under a user-set folder: $MINIMIND_DATA/sft.jsonl)."""
    if isinstance(entries, (str, dict)):  # one source, not a sequence of characters / keys
        entries = [entries]
    resolved = []
    for entry in entries:
        path = entry.get("path") if isinstance(entry, dict) else entry
        if isinstance(path, str):
            if path.startswith(EMBEDDED_PREFIX):
                path = embedded_path(path, seed)
            else:
                path = os.path.expanduser(os.path.expandvars(path))
                if "$" in path:
                    raise DataSourceError(
                        f"data path {entry.get('path') if isinstance(entry, dict) else entry}: "
                        "environment variable not set"
                    )
            entry = {**entry, "path": path} if isinstance(entry, dict) else path
        resolved.append(DataSource(**entry) if isinstance(entry, dict) else entry)
    return resolved


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


def file_streams(source: DataSource, streaming: bool = False) -> tuple[list, list]:
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
        streams.append((file, lambda reader=reader, file=file: guarded(file, reader(file))))
        stat = os.stat(file)
        identity.append([os.path.abspath(file), stat.st_size, stat.st_mtime_ns])
    return streams, identity


def validated_records(
    name: str, records: Iterator, kind: str, skip_invalid: bool, report: ValidationReport, normaliser=None
) -> Iterator[dict]:
    """Normalised records (`normaliser(raw)`, default: the schema of `kind`), each bad one raised or counted."""
    entry = report.file(name)
    for location, raw in records:
        entry.read += 1
        try:
            record = normaliser(raw) if normaliser is not None else normalise(raw, kind)
        except InvalidRecord as bad:
            error = DataValidationError(location, bad.reason, bad.detail)
            if not skip_invalid:
                raise error from None
            report.skip(name, error)
            continue
        entry.kept += 1
        if kind in ("sft", "rl"):  # later stages (images, truncation, rewards) name records by where they came from
            record["location"] = location
        yield record


def iter_records(
    sources, kind: str | None = None, *, skip_invalid: bool = False, report: ValidationReport | None = None
) -> Iterator[dict]:
    """Canonical records, lazily, one file after another (weights are not applied).

    Pass a ``report`` to have it filled as records are read; Hub ids are opened in streaming mode.
    """
    sources = as_sources(sources)
    kind = _source_kind(sources, kind)
    report = report if report is not None else ValidationReport(kind)
    for source in sources:
        for name, records in file_streams(source, streaming=True)[0]:
            yield from validated_records(name, records(), kind, skip_invalid, report)


def _generate(streams, kind, skip_invalid, report, report_path):
    """``Dataset.from_generator`` body: stream, validate, normalise; save the report at the end."""
    for name, records in streams:
        yield from validated_records(name, records(), kind, skip_invalid, report)
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

    streams, identity = file_streams(source)
    key = json.dumps([CACHE_VERSION, kind, skip_invalid, identity])
    fingerprint = hashlib.sha256(key.encode()).hexdigest()[:32]
    cache_root = cache_dir or datasets.config.HF_DATASETS_CACHE
    report_path = os.path.join(cache_root, "minimind_hf_reports", f"{fingerprint}.json")
    report = ValidationReport(kind)
    schema = features(kind)
    try:
        dataset = datasets.Dataset.from_generator(
            _generate,
            features=schema,
            cache_dir=cache_dir,
            fingerprint=fingerprint,
            gen_kwargs=dict(
                streams=streams, kind=kind, skip_invalid=skip_invalid, report=report, report_path=report_path
            ),
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


def weighted_indices(n: int, weight: float, seed) -> np.ndarray:
    """Mixture sampling of ``n`` records: int(weight) whole copies plus a seeded sample of the fractional part."""
    whole = int(weight)
    extra = np.sort(np.random.default_rng(seed).choice(n, size=round((weight - whole) * n), replace=False))
    return np.concatenate([np.tile(np.arange(n), whole), extra]).astype(np.int64)


def _apply_weight(dataset, weight: float, seed) -> Any:
    return dataset if weight == 1.0 else dataset.select(weighted_indices(len(dataset), weight, seed))


def load_records(
    sources, kind: str | None = None, *, skip_invalid: bool = False, seed: int = 0, cache_dir: str | None = None
):
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
        report.mixture.append(
            {"source": source.path, "weight": source.weight, "records": len(dataset), "selected": len(sampled)}
        )
        parts.append(sampled)
    return (parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts)), report
