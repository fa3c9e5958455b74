"""A stage's data: the recipe's train_files / eval_files read, validated and built into examples."""

from __future__ import annotations

from ..data.report import DataSourceError, ValidationReport
from ..data.sources import features, iter_records, load_records, resolve_sources
from ..data.text import SFTOptions, build_dpo_dataset, build_pretrain_dataset, build_sft_dataset, pack
from ..utils import print_main
from .args import DataArguments, RecipeError, StageInputs


def load_split(data_args: DataArguments, files: list, kind: str, seed: int):
    """(records, report) of one split (None when no files are named): an Arrow dataset, or a stream."""
    if not files:
        return None, ValidationReport(kind)
    sources = resolve_sources(files, seed)
    if data_args.streaming:
        dataset, report = stream_split(data_args, sources, kind)
        _require_a_record(sources, kind, data_args.skip_invalid)
        return dataset, report
    dataset, report = load_records(sources, kind, skip_invalid=data_args.skip_invalid, seed=seed)
    if len(dataset) == 0:
        raise report.nothing_usable([str(getattr(s, "path", s)) for s in sources])
    return dataset, report


def _require_a_record(sources: list, kind: str, skip_invalid: bool) -> None:
    """A stream must yield at least one record: read until the first one (cheap), else say why."""
    probe = ValidationReport(kind)
    if next(iter_records(sources, kind, skip_invalid=skip_invalid, report=probe), None) is None:
        raise probe.nothing_usable([str(getattr(s, "path", s)) for s in sources])


def stream_split(data_args: DataArguments, sources: list, kind: str):
    """Records read, validated and normalised on the fly (corpora larger than the disk
    budget for an Arrow cache). The report fills as training reads; mixture weights do not
    apply (there is no length to sample from)."""
    import datasets

    report = ValidationReport(kind)
    if any(getattr(s, "weight", 1.0) != 1.0 for s in sources):
        raise RecipeError("mixture weights need a materialised data set: remove `weight` or set streaming: false")
    dataset = datasets.IterableDataset.from_generator(
        _stream,
        features=features(kind),  # known columns, so builders can drop them
        gen_kwargs={"sources": sources, "kind": kind, "skip_invalid": data_args.skip_invalid, "report": report},
    )
    return dataset, report


def _stream(sources, kind, skip_invalid, report):
    # Trainer restarts the stream for every pass over it; the report describes the data once,
    # so only the first pass counts (later passes would double every read / skip count).
    counting = report if not report.files else ValidationReport(kind)
    yield from iter_records(sources, kind, skip_invalid=skip_invalid, report=counting)


def sft_options(data_args: DataArguments, seed: int, options_class=SFTOptions, **extra):
    """The chat-example options the recipe sets (SFTOptions, or VisionOptions with `extra`)."""
    return options_class(
        max_length=data_args.max_length,
        last_turn_only=data_args.last_turn_only,
        system_prompt_ratio=data_args.system_prompt_ratio,
        empty_think_keep_ratio=data_args.empty_think_keep_ratio,
        seed=seed,
        **extra,
    )


def load_splits(inputs: StageInputs, kind: str, build, needs: str = "train_files"):
    """(train, eval, report) with `build(records, report)` applied to each split that exists; eval
    may be None. The training split's report is the run's; it is printed here."""
    data_args = inputs.data_args
    if not data_args.train_files:
        raise RecipeError(f"stage {inputs.stage!r} needs {needs}")
    splits, report = [], None
    for files in (data_args.train_files, data_args.eval_files):
        records, split_report = load_split(data_args, files, kind, inputs.data_seed)
        if records is not None:
            records = build(records, split_report)
            if not data_args.streaming and len(records) == 0:
                if split_report.skipped:  # e.g. every image unreadable: the reasons are skips
                    raise split_report.nothing_usable([str(f) for f in files])
                dropped = "; ".join(f"{reason}: {count}" for reason, count in split_report.dropped.most_common())
                raise DataSourceError(
                    f"{', '.join(map(str, files))}: no example is left after tokenisation"
                    + (f" (dropped - {dropped})" if dropped else "")
                    + f"; max_length is {data_args.max_length}"
                )
        splits.append(records)
        report = split_report if report is None else report
    if data_args.streaming:
        print_main("streaming: records are validated as training reads them; the report is in run_info.json")
    else:
        print_main(report.summary())
    return splits[0], splits[1], report


def text_datasets(inputs: StageInputs, tokenizer, kind: str):
    """Token-level examples for pretrain (documents) or the chat stages (masked conversations,
    plus replayed documents when the recipe asks)."""
    data_args = inputs.data_args

    def build(records, report):
        if kind == "pretrain":
            return build_pretrain_dataset(
                records, tokenizer, data_args.max_length, data_args.packing, report, data_args.num_proc
            )
        options = sft_options(data_args, inputs.data_seed)
        return build_sft_dataset(records, tokenizer, options, report, data_args.num_proc)

    train, evaluation, report = load_splits(inputs, kind, build)
    if kind == "pretrain":
        return train, evaluation, report
    if data_args.replay_ratio > 0:
        train = with_replay(train, inputs, tokenizer)
    if data_args.packing:
        train = pack(train, data_args.max_length)
        evaluation = pack(evaluation, data_args.max_length) if evaluation is not None else None
    return train, evaluation, report


def with_replay(chats, inputs: StageInputs, tokenizer):
    """The chat rows plus replayed pretraining documents (truncated to max_length, loss on every
    token) making up ``replay_ratio`` of the rows, drawn with the data seed (MiniMind mixes
    pretraining text into SFT data so the model keeps its language)."""
    import datasets

    data_args = inputs.data_args
    records, report = load_split(data_args, data_args.replay_files, "pretrain", inputs.data_seed)
    documents = build_pretrain_dataset(records, tokenizer, data_args.max_length, False, report, data_args.num_proc)
    wanted = round(len(chats) * data_args.replay_ratio / (1 - data_args.replay_ratio))
    documents = documents.shuffle(seed=inputs.data_seed).select(range(min(wanted, len(documents))))
    print_main(
        f"replay: {len(documents)} documents from {', '.join(map(str, data_args.replay_files))} among "
        f"{len(chats)} chats ({len(documents) / (len(documents) + len(chats)):.0%} of the rows"
        + (f"; {wanted} wanted, the files hold {len(documents)})" if len(documents) < wanted else ")")
    )
    return datasets.concatenate_datasets([chats, documents.cast(chats.features)])


def preference_datasets(inputs: StageInputs):
    """TRL's conversational preference pairs (dpo and reward stages)."""
    return load_splits(
        inputs,
        "dpo",
        lambda records, report: build_dpo_dataset(records),
        needs="train_files (preference pairs: chosen / rejected)",
    )


def load_rl_split(data_args: DataArguments, files: list, seed: int, answer_field: str = "answer"):
    from ..data.rl import load_rl_records

    if not files:
        return None, None
    return load_rl_records(
        resolve_sources(files, seed), skip_invalid=data_args.skip_invalid, seed=seed, answer_field=answer_field
    )
