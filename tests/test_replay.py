"""Replay of pretraining text during SFT (replay_files / replay_ratio): exact row counts and
masks, the chats untouched, deterministic per data seed, and clear errors for misuse."""

import json
from pathlib import Path

import pytest

from minimind_hf.cli.train import main
from minimind_hf.tokenizer import load_tokenizer
from minimind_hf.training.data import text_datasets
from minimind_hf.training.recipe import parse

SFT = str(Path(__file__).resolve().parents[1] / "recipes" / "sft.yaml")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("replay")
    chats, texts = root / "chats.jsonl", root / "texts.jsonl"
    with open(chats, "w") as f:
        for i in range(30):
            turns = [{"role": "user", "content": f"what is {i} plus 1?"}, {"role": "assistant", "content": str(i + 1)}]
            f.write(json.dumps({"conversations": turns}) + "\n")
    with open(texts, "w") as f:
        for i in range(50):
            f.write(json.dumps({"text": f"document {i}: " + "some words " * (i % 7 + 1)}) + "\n")
    return str(chats), str(texts)


def datasets_for(files, *overrides):
    chats, texts = files
    inputs = parse(SFT, ["--train_files", chats, "--eval_files", "[]", *overrides])
    return text_datasets(inputs, load_tokenizer(), "sft")[0]


def rows(dataset) -> list[tuple]:
    return [(tuple(r["input_ids"]), tuple(r["labels"])) for r in dataset]


def test_replay_adds_the_ratio_of_documents_with_every_token_supervised(files):
    plain = rows(datasets_for(files))
    mixed = rows(datasets_for(files, "--replay_files", files[1], "--replay_ratio", "0.25"))
    assert len(plain) == 30 and len(mixed) == 40  # 10 / 40 = 0.25
    assert mixed[:30] == plain  # the chats are exactly what they were
    tokenizer = load_tokenizer()
    for input_ids, labels in mixed[30:]:
        assert labels == input_ids  # a document: loss on every token
        text = tokenizer.decode(input_ids, skip_special_tokens=True)
        assert text.startswith("document ")
        assert input_ids[0] == tokenizer.bos_token_id and input_ids[-1] == tokenizer.eos_token_id
    documents = {ids for ids, _ in mixed[30:]}
    assert len(documents) == 10  # drawn without repetition


def test_replay_is_deterministic_per_data_seed(files):
    replay = ["--replay_files", files[1], "--replay_ratio", "0.25"]
    first, again = rows(datasets_for(files, *replay)), rows(datasets_for(files, *replay))
    other = rows(datasets_for(files, *replay, "--data_seed_offset", "1"))
    assert first == again and first[30:] != other[30:]


def test_replay_with_packing_packs_chats_and_documents_together(files):
    packed = datasets_for(files, "--replay_files", files[1], "--replay_ratio", "0.25", "--packing", "true")
    lengths = [n for row in packed for n in row["seq_lengths"]]
    assert len(lengths) == 40 and all(len(row["input_ids"]) <= 64 for row in packed)


@pytest.mark.parametrize(
    "overrides, words",
    [
        (["--replay_ratio", "0.2"], "replay_ratio > 0 needs replay_files"),
        (["--replay_files", "embedded:pretrain_train", "--replay_ratio", "1.0"], "replay_ratio must be at least 0"),
        (["--replay_files", "nope.jsonl", "--replay_ratio", "0.2"], "replay_files: nope.jsonl: no such file"),
    ],
)
def test_replay_mistakes_exit_2_naming_the_key(files, overrides, words, capsys, tmp_path):
    code = main([SFT, "--model_name_or_path", str(tmp_path), "--train_files", files[0], *overrides])
    assert code == 2 and words in capsys.readouterr().err
