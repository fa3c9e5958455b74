"""Evaluation: perplexity / bits-per-byte, C-Eval multiple-choice scoring, lm-eval parity."""

import csv
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from helpers import randomize

from minimind_hf import MiniMindForCausalLM, evaluation, preset_config
from minimind_hf.tokenizer import load_tokenizer

REPO = Path(__file__).resolve().parents[1]
HEADER = ["id", "question", "A", "B", "C", "D", "answer"]


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer()


@pytest.fixture(scope="module")
def tiny():
    """A real MiniMind (vocab 6400) with random, non-trivial weights."""
    torch.manual_seed(0)
    return randomize(MiniMindForCausalLM(preset_config("tiny")), seed=0).eval()


@pytest.fixture(scope="module")
def sharp():
    """Random weights x3: sharper attention, so its answers on the parity set differ by question."""
    torch.manual_seed(0)
    model = randomize(MiniMindForCausalLM(preset_config("tiny")), seed=5).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" not in name:
                param.mul_(3.0)
    return model


@pytest.fixture(scope="module")
def model_dir(sharp, tokenizer, tmp_path_factory):
    """Our model folder, also made loadable as remote code (auto_map + model files), as an export is."""
    folder = tmp_path_factory.mktemp("model")
    sharp.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {
        "AutoConfig": "configuration_minimind.MiniMindConfig",
        "AutoModelForCausalLM": "modeling_minimind.MiniMindForCausalLM",
    }
    (folder / "config.json").write_text(json.dumps(config, indent=1))
    for name in ("compat.py", "configuration_minimind.py", "modeling_minimind.py"):
        shutil.copy(REPO / "minimind_hf" / "models" / name, folder / name)
    return folder


def write_csv(path: Path, rows, header=HEADER):
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def load_cli():
    from minimind_hf.cli import eval as eval_cli

    return eval_cli


# ----------------------------------------------------------------------------- perplexity / bits per byte


class TokenTableLM(torch.nn.Module):
    """Logits depend only on the current token (a bigram model): exact NLL is computable by hand,
    and no window size or stride can change it."""

    def __init__(self, embed: torch.Tensor, unembed: torch.Tensor):
        super().__init__()
        self.embed = torch.nn.Parameter(embed)
        self.unembed = torch.nn.Parameter(unembed)
        self.config = SimpleNamespace(max_position_embeddings=64)

    def forward(self, input_ids, attention_mask=None, **kwargs):
        return SimpleNamespace(logits=self.embed[input_ids] @ self.unembed)

    @torch.no_grad()
    def exact_nll(self, ids: list[int]) -> float:
        logprobs = torch.log_softmax(self.embed[ids[:-1]] @ self.unembed, dim=-1)
        return -float(logprobs.gather(1, torch.tensor(ids[1:])[:, None]).double().sum())


def test_bytes_are_utf8_bytes_not_characters(tokenizer):
    documents = ["aé世🙂", "ok"]  # 1 + 2 + 3 + 4 bytes, then 2
    uniform = TokenTableLM(torch.zeros(6400, 2), torch.zeros(2, 6400))
    result = evaluation.perplexity(uniform, tokenizer, documents, max_length=16)
    assert result.bytes == 12
    assert result.documents == 2


def test_uniform_model_has_ppl_vocab_and_known_bpb(tokenizer):
    """Equal logits over V tokens: every token costs ln V nats, so ppl = V and bpb = tokens * log2 V / bytes."""
    text = "Bits per byte compare models across tokenizers: 中文 and emoji 🙂 included."
    uniform = TokenTableLM(torch.zeros(6400, 2), torch.zeros(2, 6400))
    result = evaluation.perplexity(uniform, tokenizer, [text], max_length=16, stride=5)
    n_tokens = len(tokenizer(text, add_special_tokens=False)["input_ids"])
    assert result.tokens == n_tokens  # every text token scored once; the prepended bos is not
    assert result.nll == pytest.approx(n_tokens * math.log(6400), rel=1e-6)
    assert result.ppl == pytest.approx(6400, rel=1e-6)
    assert result.bpb == pytest.approx(n_tokens * math.log2(6400) / len(text.encode("utf-8")), rel=1e-6)


def test_sliding_windows_score_each_token_once_with_exact_nll(tokenizer):
    gen = torch.Generator().manual_seed(0)
    bigram = TokenTableLM(torch.randn(6400, 8, generator=gen), torch.randn(8, 6400, generator=gen))
    documents = ["The sliding window keeps context and scores only the new tokens of each window.", "短文本"]
    expected = sum(
        bigram.exact_nll([tokenizer.bos_token_id, *tokenizer(d, add_special_tokens=False)["input_ids"]])
        for d in documents
    )
    for max_length, stride in [(64, 32), (8, 3), (5, 4), (2, 1)]:
        result = evaluation.perplexity(bigram, tokenizer, documents, max_length=max_length, stride=stride, batch_size=3)
        assert result.nll == pytest.approx(expected, rel=1e-5), (max_length, stride)


def test_window_spans_cover_targets_once_with_enough_context():
    n, max_length, stride = 23, 8, 3
    spans = evaluation.window_spans(n, max_length, stride)
    targets = [t for begin, end, first in spans for t in range(first, end)]
    assert targets == list(range(1, n))
    for begin, end, first in spans:
        assert end - begin <= max_length
        for t in range(first, end):  # context of target t is tokens[begin:t]
            assert t - begin >= min(t, max_length - stride)
    assert evaluation.window_spans(1, 8, 3) == []  # a bos-only (empty) document has no targets
    for bad_stride in (0, 8, 9):  # stride == max_length would leave a window's first target without context
        with pytest.raises(ValueError, match="stride"):
            evaluation.window_spans(n, max_length, bad_stride)


def test_perplexity_matches_direct_loss_of_real_model(tiny, tokenizer):
    documents = [d[:600] for d in evaluation.read_documents("pydoc")[:2]]
    direct_nll, direct_tokens = 0.0, 0
    for text in documents:
        ids = torch.tensor([[tokenizer.bos_token_id, *tokenizer(text, add_special_tokens=False)["input_ids"]]])
        with torch.no_grad():
            loss = tiny(input_ids=ids, labels=ids).loss  # mean over the n-1 shifted targets
        direct_nll += float(loss) * (ids.shape[1] - 1)
        direct_tokens += ids.shape[1] - 1

    whole = evaluation.perplexity(tiny, tokenizer, documents, max_length=1024)  # each document fits one window
    assert whole.tokens == direct_tokens
    assert whole.nll == pytest.approx(direct_nll, rel=1e-4)
    assert whole.bytes == sum(len(d.encode("utf-8")) for d in documents)

    windowed = evaluation.perplexity(tiny, tokenizer, documents, max_length=32, stride=16)
    assert windowed.tokens == direct_tokens
    assert math.isfinite(windowed.ppl) and math.isfinite(windowed.bpb)
    assert 0.5 < windowed.ppl / whole.ppl < 2.0  # less context, similar quality for this model
    assert windowed.nll != pytest.approx(whole.nll, rel=1e-6)  # truncation did change the context


def test_read_documents_formats(tmp_path):
    (tmp_path / "a.txt").write_text("one document\n\nstill the same one", encoding="utf-8")
    (tmp_path / "b.jsonl").write_text('{"text": "first"}\n\n{"text": "second 世界"}\n', encoding="utf-8")
    (tmp_path / "bad.jsonl").write_text('{"text": "ok"}\n{"content": "no text"}\n', encoding="utf-8")
    assert evaluation.read_documents(tmp_path / "a.txt") == ["one document\n\nstill the same one"]
    assert evaluation.read_documents(tmp_path / "b.jsonl") == ["first", "second 世界"]
    with pytest.raises(ValueError, match=r"bad\.jsonl:2"):
        evaluation.read_documents(tmp_path / "bad.jsonl")
    assert len(evaluation.read_documents("pydoc")) > 5  # the embedded held-out split


# ----------------------------------------------------------------------------- multiple choice, known answers

HINTS = {"A": " return", "B": " import", "C": " class", "D": " lambda"}


class HintedLM(torch.nn.Module):
    """A real tiny MiniMind whose logits get +30 on the letter (" A" and "A") named by the most
    recent hint word in its input: it "knows" each question's hinted answer, wherever it sits."""

    def __init__(self, inner, tokenizer):
        super().__init__()
        self.inner, self.config = inner, inner.config
        self.hints, self.letters = [], []
        for letter, word in HINTS.items():
            (hint,) = tokenizer(word, add_special_tokens=False)["input_ids"]  # single tokens by choice
            self.hints.append(hint)
            self.letters.append(
                [tokenizer.convert_tokens_to_ids(t) for t in tokenizer.tokenize(" " + letter)[:1]]
                + [tokenizer.convert_tokens_to_ids(letter)]
            )

    def forward(self, input_ids, attention_mask=None, **kwargs):
        logits = self.inner(input_ids=input_ids, attention_mask=attention_mask).logits
        positions = torch.arange(input_ids.shape[1]).expand_as(input_ids)
        latest = torch.full_like(input_ids, -1)
        which = torch.full_like(input_ids, -1)
        for k, hint in enumerate(self.hints):
            seen = torch.where(input_ids == hint, positions, -1).cummax(dim=1).values
            which = torch.where(seen > latest, k, which)
            latest = torch.maximum(seen, latest)
        bias = torch.zeros_like(logits)
        for k, letter_ids in enumerate(self.letters):
            bias[..., letter_ids] += 30.0 * (which == k)[..., None]
        return SimpleNamespace(logits=logits + bias)


def hinted_row(qid, hinted, answer, topic):
    return [qid, f"Which {topic} fact holds? hint: {HINTS[hinted].strip()}", "one", "two", "three", "four", answer]


@pytest.fixture
def ceval_dir(tmp_path):
    """Two subjects; the model picks the hinted letter, the answer key agrees on 3/4 and 1/3 of the rows."""
    data = tmp_path / "ceval"
    data.mkdir()
    write_csv(
        data / "logic_val.csv",
        [
            hinted_row(1, "A", "A", "logic"),
            hinted_row(2, "B", "B", "logic"),
            hinted_row(3, "C", "C", "logic"),
            hinted_row(4, "D", "A", "logic"),
        ],
    )
    write_csv(
        data / "history_val.csv",
        [hinted_row(10, "B", "B", "history"), hinted_row(11, "C", "D", "history"), hinted_row(12, "D", "B", "history")],
    )
    for subject in ("logic", "history"):
        write_csv(
            data / f"{subject}_dev.csv", [hinted_row(f"d{i}", x, x, f"dev {subject} {i}") for i, x in enumerate("DCB")]
        )
    write_csv(data / "logic_test.csv", [r[:-1] for r in [hinted_row(7, "C", "", "logic")]], header=HEADER[:-1])
    return data


@pytest.mark.parametrize("style,shots", [("plain", 0), ("plain", 2), ("chat", 0), ("chat", 3)])
def test_scorer_accuracy_is_exact_on_known_answers(tiny, tokenizer, ceval_dir, style, shots):
    model = HintedLM(tiny, tokenizer)
    result = evaluation.evaluate_ceval(model, tokenizer, ceval_dir, split="val", num_shots=shots, style=style)
    assert [item.choice for item in result.items if item.subject == "logic"] == ["A", "B", "C", "D"]
    assert [item.choice for item in result.items if item.subject == "history"] == ["B", "C", "D"]
    subjects = result.per_subject()
    assert subjects["logic"] == {"questions": 4, "answered": 4, "correct": 3, "acc": 0.75}
    assert subjects["history"] == {"questions": 3, "answered": 3, "correct": 1, "acc": 1 / 3}
    summary = result.summary()
    assert summary["acc"] == 4 / 7
    assert summary["acc_macro"] == pytest.approx((0.75 + 1 / 3) / 2)
    (item,) = [i for i in result.items if i.id == "1"]  # hint A: the bias decides, by a wide margin
    assert set(item.logprobs) == set("ABCD") and item.logprobs["A"] > max(item.logprobs[x] for x in "BCD") + 20


def test_k_shot_prompts_hold_the_dev_examples(tokenizer, ceval_dir):
    questions = evaluation.read_ceval_folder(ceval_dir, "val")
    dev = evaluation.read_ceval_folder(ceval_dir, "dev")
    question, shots = questions["logic"][0], dev["logic"][:2]

    plain = evaluation.plain_prompt(question, shots, prefix=evaluation.bos_text(tokenizer))
    assert plain == (
        "<|im_start|>"
        "Which dev logic 0 fact holds? hint: lambda\nA. one\nB. two\nC. three\nD. four\nAnswer: D\n\n"
        "Which dev logic 1 fact holds? hint: class\nA. one\nB. two\nC. three\nD. four\nAnswer: C\n\n"
        "Which logic fact holds? hint: return\nA. one\nB. two\nC. three\nD. four\nAnswer:"
    )
    # The plain prompt starts with exactly one bos token: as in pretraining, and as lm-eval encodes it.
    context, continuation = evaluation.encode_pair(tokenizer, plain, " A")
    assert context[0] == tokenizer.bos_token_id and context[1] != tokenizer.bos_token_id
    assert tokenizer.convert_ids_to_tokens(continuation) == ["ĠA"]

    chat = evaluation.chat_prompt(tokenizer, question, shots)
    assert chat.count("<|im_start|>user\n") == 3
    assert "hint: lambda\nA. one\nB. two\nC. three\nD. four<|im_end|>" in chat
    assert "<|im_start|>assistant\n<think>\n\n</think>\n\nD<|im_end|>" in chat
    assert chat.endswith(
        "hint: return\nA. one\nB. two\nC. three\nD. four<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
    )
    with pytest.raises(ValueError, match="4 shots asked, the dev split has 3"):
        evaluation.evaluate_ceval(None, tokenizer, ceval_dir, num_shots=4, max_length=64)


def test_results_files_have_one_row_per_question(tiny, tokenizer, ceval_dir, tmp_path):
    result = evaluation.evaluate_ceval(HintedLM(tiny, tokenizer), tokenizer, ceval_dir, num_shots=1)
    paths = evaluation.write_results(result, tmp_path / "out")
    with paths["csv"].open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["id"], r["subject"], r["answer"], r["choice"], r["correct"]) for r in rows] == [  # subjects sorted
        ("10", "history", "B", "B", "1"),
        ("11", "history", "D", "C", "0"),
        ("12", "history", "B", "D", "0"),
        ("1", "logic", "A", "A", "1"),
        ("2", "logic", "B", "B", "1"),
        ("3", "logic", "C", "C", "1"),
        ("4", "logic", "A", "D", "0"),
    ]
    assert float(rows[0]["logprob_A"]) == pytest.approx(result.items[0].logprobs["A"])
    records = json.loads(paths["json"].read_text(encoding="utf-8"))
    assert [r["id"] for r in records] == ["10", "11", "12", "1", "2", "3", "4"]
    assert records[6] == {**records[6], "answer": "A", "choice": "D", "correct": False}
    summary = json.loads(paths["summary"].read_text(encoding="utf-8"))
    assert summary["acc"] == 4 / 7 and summary["subjects"]["logic"]["acc"] == 0.75 and summary["shots"] == 1
    assert "Answer: D\n\n" in summary["prompt_examples"]["logic"]  # the one dev shot


def test_test_split_without_answers_predicts_only(tiny, tokenizer, ceval_dir):
    result = evaluation.evaluate_ceval(HintedLM(tiny, tokenizer), tokenizer, ceval_dir, split="test")
    assert [(i.id, i.choice, i.answer, i.correct) for i in result.items] == [("7", "C", None, None)]
    assert result.summary()["acc"] is None


def test_malformed_csv_names_file_and_line(tmp_path):
    write_csv(tmp_path / "bad_val.csv", [[1, "q", "a", "b", "c", "d", "E"]])
    with pytest.raises(ValueError, match=r"bad_val\.csv:2: answer 'E'"):
        evaluation.read_ceval_folder(tmp_path, "val")
    with pytest.raises(ValueError, match="no dev split"):
        evaluation.read_ceval_folder(tmp_path, "dev")


# ----------------------------------------------------------------------------- CLI on model folders


def test_cli_ppl_and_ceval_on_minimind_and_stock_llama(model_dir, tokenizer, ceval_dir, tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    cli = load_cli()
    text_file = tmp_path / "docs.jsonl"
    text_file.write_text(json.dumps({"text": "Perplexity on a stock Llama folder, 中文."}) + "\n", encoding="utf-8")

    torch.manual_seed(0)
    llama = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=6400,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=1,
            bos_token_id=1,
            eos_token_id=2,
            pad_token_id=0,
        )
    ).eval()
    llama.save_pretrained(tmp_path / "llama")
    tokenizer.save_pretrained(tmp_path / "llama")
    summary = cli.main(
        [str(tmp_path / "llama"), "--task", "ppl", "--data", str(text_file), "--output", str(tmp_path / "p")]
    )
    ids = torch.tensor(
        [[1, *tokenizer("Perplexity on a stock Llama folder, 中文.", add_special_tokens=False)["input_ids"]]]
    )
    with torch.no_grad():
        loss = float(llama(input_ids=ids, labels=ids).loss)
    assert summary["ppl"] == pytest.approx(math.exp(loss), rel=1e-4)
    assert json.loads((tmp_path / "p" / "summary.json").read_text())["tokens"] == ids.shape[1] - 1

    summary = cli.main(
        [
            str(model_dir),
            "--task",
            "ceval",
            "--data",
            str(ceval_dir),
            "--shots",
            "2",
            "--style",
            "chat",
            "--output",
            str(tmp_path / "c"),
        ]
    )
    assert summary["questions"] == 7 and summary["shots"] == 2 and summary["style"] == "chat"
    assert (tmp_path / "c" / "results.csv").exists() and (tmp_path / "c" / "results.json").exists()
    with pytest.raises(SystemExit, match="needs --data"):
        cli.main([str(model_dir), "--task", "ceval"])


# ----------------------------------------------------------------------------- lm-evaluation-harness parity


@pytest.fixture(scope="module")
def parity_dir(tmp_path_factory):
    """Two subjects of arithmetic-like questions with mixed answers (none is 'always B')."""
    data = tmp_path_factory.mktemp("parity")
    gen = torch.Generator().manual_seed(1)
    for subject in ("algebra", "geography"):
        for split, n in (("dev", 2), ("val", 6)):
            rows = []
            for i in range(n):
                values = torch.randint(0, 100, (5,), generator=gen).tolist()
                rows.append(
                    [
                        f"{split}{i}",
                        f"In {subject}, what is {values[0]} minus 3? 结果",
                        *map(str, values[1:]),
                        "ABCD"[i % 4],
                    ]
                )
            write_csv(data / f"{subject}_{split}.csv", rows)
    return data


def _lm_eval_env(tmp_path):
    return {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_MODULES_CACHE": str(tmp_path / "modules"),
        "HF_DATASETS_CACHE": str(tmp_path / "datasets"),
        "TOKENIZERS_PARALLELISM": "false",
    }


@pytest.mark.slow  # a fresh Python importing torch, transformers and lm-eval
def test_lm_eval_cli_matches_our_scorer_on_exported_folder(model_dir, tokenizer, sharp, parity_dir, tmp_path):
    """`lm_eval --model hf --model_args pretrained=FOLDER,trust_remote_code=True` in a fresh process
    (minimind_hf not imported: the folder loads as remote code), 2-shot: same prompts, same
    log-likelihoods, same per-subject and overall accuracy as our plain scorer."""
    ours = evaluation.evaluate_ceval(sharp, tokenizer, parity_dir, num_shots=2, batch_size=5)
    # The comparison is not trivial: the choices differ, and no two options are near a tie.
    assert len({item.choice for item in ours.items}) > 1
    for item in ours.items:
        best, second = sorted(item.logprobs.values(), reverse=True)[:2]
        assert best - second > 1e-4

    group = evaluation.write_lm_eval_tasks(parity_dir, tmp_path / "tasks", tokenizer)
    lm_eval = Path(sys.executable).with_name("lm_eval")
    command = [
        str(lm_eval),
        "--model",
        "hf",
        "--model_args",
        f"pretrained={model_dir},trust_remote_code=True",
        "--tasks",
        group,
        "--include_path",
        str(tmp_path / "tasks"),
        "--num_fewshot",
        "2",
        "--batch_size",
        "4",
        "--device",
        "cpu",
        "--output_path",
        str(tmp_path / "out"),
        "--log_samples",
    ]
    run = subprocess.run(command, env=_lm_eval_env(tmp_path), capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert any((tmp_path / "modules").rglob("modeling_minimind.py"))  # it did load the remote code

    (results_file,) = (tmp_path / "out").rglob("results_*.json")
    results = json.loads(results_file.read_text())["results"]
    summary = ours.summary()
    assert results[group]["acc,none"] == pytest.approx(summary["acc"], abs=1e-12)
    by_key = {(item.subject, item.id): item for item in ours.items}
    for subject, row in summary["subjects"].items():
        assert results[f"{group}_{subject}"]["acc,none"] == pytest.approx(row["acc"], abs=1e-12)
        (samples_file,) = (tmp_path / "out").rglob(f"samples_{group}_{subject}_*.jsonl")
        samples = [json.loads(line) for line in samples_file.read_text(encoding="utf-8").splitlines()]
        assert len(samples) == 6
        for sample in samples:
            item = by_key[(subject, sample["doc"]["id"])]
            if sample["doc"]["id"] == "val0":  # our first prompt per subject is kept for inspection
                assert sample["arguments"]["gen_args_0"] == {"arg_0": ours.prompts[subject], "arg_1": " A"}
            theirs = [float(response[0][0]) for response in sample["resps"]]
            assert theirs == pytest.approx([item.logprobs[x] for x in "ABCD"], abs=1e-4)
            assert sample["acc"] == float(item.correct)


def test_eval_cli_lm_eval_task_runs_harness_in_process(model_dir, tokenizer, sharp, parity_dir, tmp_path):
    """`scripts/eval.py MODEL --task lm-eval`: the harness's Python API after `import minimind_hf`
    (no remote code needed), on task files written from the same CSV folder, zero-shot."""
    ours = evaluation.evaluate_ceval(sharp, tokenizer, parity_dir).summary()
    theirs = load_cli().main(
        [
            str(model_dir),
            "--task",
            "lm-eval",
            "--data",
            str(parity_dir),
            "--output",
            str(tmp_path / "lm"),
            "--batch-size",
            "4",
        ]
    )
    assert theirs["minimind_mc"]["acc,none"] == pytest.approx(ours["acc"], abs=1e-12)
    for subject, row in ours["subjects"].items():
        assert theirs[f"minimind_mc_{subject}"]["acc,none"] == pytest.approx(row["acc"], abs=1e-12)
    assert json.loads((tmp_path / "lm" / "summary.json").read_text()) == theirs
    assert (tmp_path / "lm" / "lm_eval_tasks" / "minimind_mc_algebra.yaml").exists()


def test_the_official_ceval_layout_with_split_folders_reads_the_same(ceval_dir, tmp_path):
    """The C-Eval download keeps `dev/*_dev.csv`, `val/*_val.csv`, `test/*_test.csv`."""
    official = tmp_path / "ceval-exam"
    for split in ("dev", "val", "test"):
        (official / split).mkdir(parents=True)
        for csv_file in ceval_dir.glob(f"*_{split}.csv"):
            (official / split / csv_file.name).write_bytes(csv_file.read_bytes())
    for split in ("dev", "val", "test"):
        assert evaluation.list_subjects(official, split) == evaluation.list_subjects(ceval_dir, split)
        assert evaluation.read_ceval_folder(official, split) == evaluation.read_ceval_folder(ceval_dir, split)
