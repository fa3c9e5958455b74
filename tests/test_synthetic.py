"""Synthetic embedded data sets (minimind_hf.data.embedded.arithmetic)."""

import json
import re

import pytest
import torch

from minimind_hf.data import load_records
from minimind_hf.data.embedded import arithmetic as S
from minimind_hf.evaluation import arithmetic_accuracy, greedy_replies
from minimind_hf.evaluation.answers import is_correct
from minimind_hf.tokenizer import load_tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer()


@pytest.fixture(scope="module")
def embedded(tmp_path_factory):
    """Small embedded sets, written once for the module."""
    out = tmp_path_factory.mktemp("embedded")
    return S.write_embedded_datasets(out, seed=0, per_kind=50, eval_per_kind=20)


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# ----------------------------------------------------------------------------- determinism


def test_same_seed_same_bytes_and_idempotent(tmp_path, embedded):
    again = S.write_embedded_datasets(tmp_path / "again", seed=0, per_kind=50, eval_per_kind=20)
    assert set(again) == set(S.EMBEDDED_NAMES)
    for name, path in embedded.items():
        assert again[name].read_bytes() == path.read_bytes(), name
        assert path.stat().st_size > 0
    # Rewriting in place leaves identical files untouched (load_records caches on the mtime).
    mtimes = {name: path.stat().st_mtime_ns for name, path in again.items()}
    S.write_embedded_datasets(tmp_path / "again", seed=0, per_kind=50, eval_per_kind=20)
    assert {name: path.stat().st_mtime_ns for name, path in again.items()} == mtimes


def test_different_seed_different_data(tmp_path, embedded):
    other = S.write_embedded_datasets(tmp_path, seed=1, per_kind=50, eval_per_kind=20)
    for name in embedded:
        assert other[name].read_bytes() != embedded[name].read_bytes(), name
    assert S.split_problems("add1", seed=0) != S.split_problems("add1", seed=1)


def test_no_global_random_state_is_used():
    import random

    random.seed(123)
    state = random.getstate()
    first = S.make_records("train", per_kind=5, seed=3)
    assert random.getstate() == state
    random.seed(999)
    assert S.make_records("train", per_kind=5, seed=3) == first


# ----------------------------------------------------------------------------- splits


@pytest.mark.parametrize("kind", S.KINDS)
def test_held_out_problems_never_in_training(kind):
    train, held_out = S.split_problems(kind, seed=0)
    assert train and held_out and not set(train) & set(held_out)
    train_records = S.make_records("train", kinds=[kind], per_kind=len(train), seed=0)
    held_records = S.make_records("held_out", kinds=[kind], per_kind=None, seed=0)
    # Records carry the problem they ask, not only a phrasing of it.
    train_problems = {r["problem"] for r in train_records}
    assert train_problems == {p.text for p in train}  # one pass covers every training problem once
    assert {r["problem"] for r in held_records} == {p.text for p in held_out}
    assert not train_problems & {r["problem"] for r in held_records}


@pytest.mark.parametrize("seed", range(5))
def test_every_held_out_answer_is_also_a_training_answer(seed):
    for kind in S.KINDS:
        train, held_out = S.split_problems(kind, seed=seed)
        assert {p.answer for p in held_out} <= {p.answer for p in train}, kind
    assert S.Problem("add1", (0, 0)) in S.split_problems("add1", seed=1)[0]  # the only sum of 0


def test_followups_only_use_training_facts():
    train_facts = set(S.split_problems("add1")[0]) | set(S.split_problems("sub1")[0])
    held_facts = set(S.split_problems("add1")[1]) | set(S.split_problems("sub1")[1])
    for part in S.split_problems("followup"):
        for problem in part:
            assert set(problem.facts) <= train_facts and not set(problem.facts) & held_facts


def test_identity_holds_out_questions_in_both_languages():
    _, held_out = S.split_problems("identity")
    assert {S.language(p.args[0]) for p in held_out} == {"en", "zh"}


# ----------------------------------------------------------------------------- answers

_OPERATION = re.compile(r"(\d+)\s*(\+|-|\*|plus|minus|times|加|减|乘以)\s*(\d+)")
_FOLLOW = re.compile(r"(plus|add|minus|subtract|加|减)\s*(\d+)")
_SIGN = {"+": 1, "plus": 1, "add": 1, "加": 1, "-": -1, "minus": -1, "subtract": -1, "减": -1}


def recompute(conversation):
    """Parse the questions back from the text and recompute the final answer."""
    a, op, b = _OPERATION.search(conversation[0]["content"]).groups()
    value = int(a) * int(b) if op in ("*", "times", "乘以") else int(a) + _SIGN[op] * int(b)
    if len(conversation) > 2:  # follow-up: the first answer is given, then one more step
        assert conversation[1]["content"] == str(value)
        word, c = _FOLLOW.search(conversation[2]["content"]).groups()
        value += _SIGN[word] * int(c)
    return value


def test_sft_answers_are_correct():
    records = S.make_records("train", per_kind=300) + S.make_records("held_out", per_kind=None)
    kinds = set()
    for record in records:
        conversation, kinds = record["conversations"], kinds | {record["kind"]}
        assert [m["role"] for m in conversation] == ["user", "assistant"] * (len(conversation) // 2)
        reply = conversation[-1]["content"]
        if record["kind"] == "identity":
            assert record["answer"] == "MiniMind" and "MiniMind" in reply
            assert S.language(conversation[0]["content"]) == S.language(reply)  # answers in the asker's language
        else:
            assert reply == record["answer"] == str(recompute(conversation)), record
            assert int(reply) >= 0
    assert kinds == set(S.KINDS)


def test_dpo_pairs_share_prompt_and_differ_in_correctness():
    for record in S.make_records("train", per_kind=100, format="dpo"):
        chosen, rejected = record["chosen"], record["rejected"]
        assert chosen[:-1] == rejected[:-1] and chosen[-1]["role"] == rejected[-1]["role"] == "assistant"
        assert is_correct(chosen[-1]["content"], record["answer"])
        assert not is_correct(rejected[-1]["content"], record["answer"])


def test_phrasings_vary():
    questions = {r["conversations"][0]["content"] for r in S.make_records("train", kinds=["add1"], per_kind=200)}
    assert any(q.isascii() for q in questions) and any(not q.isascii() for q in questions)
    templates = {re.sub(r"\d+", "N", q) for q in questions}
    assert len(templates) == len(S.QUESTION_TEMPLATES)


# ----------------------------------------------------------------------------- formats


def test_files_load_through_load_records(tmp_path, embedded):
    cache = str(tmp_path / "cache")
    for name, kind in [
        ("pretrain_train", "pretrain"),
        ("pretrain_eval", "pretrain"),
        ("sft_train", "sft"),
        ("sft_eval", "sft"),
        ("dpo_train", "dpo"),
        ("dpo_eval", "dpo"),
    ]:
        dataset, report = load_records(str(embedded[name]), kind, cache_dir=cache)
        assert report.skipped == 0 and len(dataset) == report.read == len(read_jsonl(embedded[name])) > 0
    sft, _ = load_records(str(embedded["sft_train"]), "sft", cache_dir=cache)
    assert sft[0]["messages"][-1]["role"] == "assistant"
    dpo, _ = load_records(str(embedded["dpo_train"]), "dpo", cache_dir=cache)
    assert dpo[0]["prompt"][0]["role"] == "user" and len(dpo[0]["chosen"]) == 1


def test_eval_files_hold_only_held_out_problems(embedded):
    held = {kind: {p.text for p in S.split_problems(kind)[1]} for kind in S.KINDS}
    for name in ("sft_eval", "dpo_eval"):
        for record in read_jsonl(embedded[name]):
            assert record["problem"] in held[record["kind"]]


# ----------------------------------------------------------------------------- evaluation


def test_is_correct():
    assert is_correct("7", "7") and is_correct("3 + 4 = 7", "7") and is_correct("The answer is 7.", "7")
    assert not is_correct("8", "7") and not is_correct("", "7") and not is_correct("seven", "7")
    assert not is_correct("1", "12")  # a reply cut off mid-number
    assert is_correct("I am MiniMind.", "MiniMind") and not is_correct("I am ChatGPT.", "MiniMind")


class ScriptedModel(torch.nn.Module):
    """Stands in for a causal LM: `generate` appends the reply a script gives for each prompt."""

    def __init__(self, tokenizer, reply_for):
        super().__init__()
        self.tokenizer, self.reply_for = tokenizer, reply_for
        self.device = torch.device("cpu")

    def generate(self, input_ids, attention_mask, max_new_tokens, **kwargs):
        assert (attention_mask[:, -1] == 1).all(), "prompts must be left-padded"
        rows = []
        for ids, mask in zip(input_ids, attention_mask):
            prompt = self.tokenizer.decode(ids[mask.bool()])
            assert prompt.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
            reply = self.tokenizer(self.reply_for(prompt), add_special_tokens=False)["input_ids"]
            rows.append((reply + [self.tokenizer.eos_token_id])[:max_new_tokens])
        width = max(map(len, rows))
        new = torch.tensor([row + [self.tokenizer.pad_token_id] * (width - len(row)) for row in rows])
        return torch.cat([input_ids, new], dim=1)


def test_arithmetic_accuracy_with_scripted_models(tokenizer):
    records = S.make_records("held_out", per_kind=10)
    answers = {}
    for record in records:
        prompt = tokenizer.apply_chat_template(record["conversations"][:-1], add_generation_prompt=True, tokenize=False)
        answers[prompt] = record["conversations"][-1]["content"]
    right = ScriptedModel(tokenizer, lambda prompt: answers[prompt])
    wrong = ScriptedModel(
        tokenizer, lambda prompt: "I am ChatGPT" if "MiniMind" in answers[prompt] else str(int(answers[prompt]) + 1)
    )
    expected_keys = set(S.KINDS) | {"all"}
    perfect = arithmetic_accuracy(right, tokenizer, records, batch_size=7)
    assert set(perfect) == expected_keys and all(v == 1.0 for v in perfect.values())
    zero = arithmetic_accuracy(wrong, tokenizer, records, batch_size=7)
    assert set(zero) == expected_keys and all(v == 0.0 for v in zero.values())
    assert arithmetic_accuracy(right, tokenizer, []) == {}


def test_arithmetic_accuracy_runs_a_real_model(tokenizer):
    from minimind_hf import MiniMindForCausalLM, preset_config

    torch.manual_seed(0)
    model = MiniMindForCausalLM(preset_config("tiny")).train()
    records = S.make_records("held_out", kinds=["add1", "followup"], per_kind=5)
    replies = greedy_replies(
        model, tokenizer, [r["conversations"][:-1] for r in records], max_new_tokens=4, batch_size=4
    )
    assert len(replies) == len(records) and all(isinstance(r, str) for r in replies)
    scores = arithmetic_accuracy(model, tokenizer, records, max_new_tokens=4, batch_size=4)
    assert set(scores) == {"add1", "followup", "all"} and all(0.0 <= v <= 1.0 for v in scores.values())
    assert model.training  # the helper restores the mode it found
