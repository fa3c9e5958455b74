"""Evaluation: perplexity / bits-per-byte and multiple-choice log-likelihood scoring.

Works with any causal LM folder `AutoModelForCausalLM` can load (a MiniMind checkpoint,
an exported remote-code folder, a stock Llama / Qwen3 folder). Nothing here generates
text: every number comes from the log-probabilities the model assigns to given tokens.

- `perplexity(model, tokenizer, documents)`: each document is scored on its own, with the
  tokenizer's bos token (eos when it has none) prepended, so every text token is predicted;
  documents longer than `max_length` are scored with an overlapping sliding window in which
  only the tokens not seen by the previous window are counted (the HF perplexity guide).
- `score_multiple_choice(...)`: C-Eval-format CSV questions; the model "chooses" the option
  letter whose continuation has the highest log-probability. The plain prompt and the
  tokenization follow lm-evaluation-harness exactly (`write_lm_eval_tasks` writes the
  equivalent task YAML), so both report the same accuracy.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

DEFAULT_MAX_LENGTH_CAP = 2048  # default perplexity window at most (memory); also the context when a config has none
LETTERS = "ABCDEFGHIJ"


# ----------------------------------------------------------------------------- loading


def load_model_and_tokenizer(path: str | Path, trust_remote_code: bool = False, device: str = "cpu",
                             dtype: str = "auto"):
    """Model + tokenizer from one folder; `import minimind_hf` has registered our model types."""
    from transformers import AutoTokenizer

    import minimind_hf  # noqa: F401  (registers "minimind" with the Auto classes)
    from .utils import load_pretrained

    tokenizer = AutoTokenizer.from_pretrained(str(path), trust_remote_code=trust_remote_code)
    model = load_pretrained(path, trust_remote_code=trust_remote_code, dtype=dtype)
    return model.to(device).eval(), tokenizer


def _device(model) -> torch.device:
    return next(model.parameters()).device


def _pad_id(tokenizer) -> int:
    for token_id in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if token_id is not None:
            return token_id
    return 0


@torch.no_grad()
def tail_logprobs(model, sequences: Sequence[Sequence[int]], n_tail: Sequence[int], pad_id: int = 0,
                  batch_size: int = 8) -> list[torch.Tensor]:
    """For each sequence, log p(token[t] | tokens[:t]) of its last `n_tail` tokens (float32, on CPU).

    Perplexity windows and answer continuations are both scored at the end of a sequence.
    Sequences are batched by length and right-padded: with causal attention, padding after a
    sequence cannot change the logits of the tokens before it.
    """
    order = sorted(range(len(sequences)), key=lambda i: -len(sequences[i]))
    results: list[torch.Tensor | None] = [None] * len(sequences)
    device = _device(model)
    for start in range(0, len(order), batch_size):
        chunk = order[start: start + batch_size]
        width = len(sequences[chunk[0]])
        input_ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, i in enumerate(chunk):
            input_ids[row, : len(sequences[i])] = torch.tensor(sequences[i], dtype=torch.long)
            attention_mask[row, : len(sequences[i])] = 1
        logits = model(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device)).logits
        for row, i in enumerate(chunk):
            n, k = len(sequences[i]), n_tail[i]
            if not 0 <= k < n:
                raise ValueError(f"cannot score the last {k} tokens of a {n}-token sequence (the first is context)")
            targets = input_ids[row, n - k: n].to(logits.device)
            # cross_entropy = -log_softmax at the target; only the scored rows (large vocabularies).
            results[i] = -F.cross_entropy(logits[row, n - k - 1: n - 1].float(), targets, reduction="none").cpu()
    return results  # type: ignore[return-value]


# ----------------------------------------------------------------------------- perplexity


@dataclass
class PerplexityResult:
    documents: int
    tokens: int  # scored tokens: all text tokens, not the prepended bos
    bytes: int  # UTF-8 bytes of the documents
    nll: float  # summed negative log-likelihood, nats
    max_length: int
    stride: int

    @property
    def ppl(self) -> float:
        return math.exp(self.nll / self.tokens) if self.tokens else float("nan")

    @property
    def bpb(self) -> float:
        # Bits per byte does not depend on the tokenizer, so models with different vocabularies compare.
        return self.nll / math.log(2) / self.bytes if self.bytes else float("nan")

    def to_dict(self) -> dict:
        return {**asdict(self), "nll_per_token": self.nll / self.tokens if self.tokens else float("nan"),
                "ppl": self.ppl, "bpb": self.bpb}


def read_documents(source: str | Path) -> list[str]:
    """`pydoc` (the embedded held-out split), a .txt file (one document) or a .jsonl file ({"text": ...} per line)."""
    if str(source) == "pydoc":
        from .data.corpus import pretrain_split

        return pretrain_split()[1]
    path = Path(source)
    if path.suffix == ".jsonl":
        documents = []
        with path.open(encoding="utf-8") as handle:
            for line_number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as error:
                    raise ValueError(f"{path}:{line_number}: invalid JSON ({error.msg})") from None
                if not isinstance(record, dict) or not isinstance(record.get("text"), str):
                    raise ValueError(f"{path}:{line_number}: expected an object with a string 'text' field")
                documents.append(record["text"])
        return documents
    return [path.read_text(encoding="utf-8")]


def window_spans(n_tokens: int, max_length: int, stride: int) -> list[tuple[int, int, int]]:
    """(begin, end, first_target) windows covering targets 1..n-1, each target scored exactly once.

    A window is tokens[begin:end] (at most max_length) and scores targets first_target..end-1.
    The first window scores all it can; each next one moves its end by `stride` and scores only
    those new tokens, so every later target sees at least max_length - stride tokens of context.
    Unlike the HF guide's loop the last window is full length too (more context, same count).
    """
    if not 0 < stride < max_length:
        raise ValueError(f"stride must be in 1..max_length-1 (a window's first token is context only), "
                         f"got stride={stride}, max_length={max_length}")
    end = min(max_length, n_tokens)
    spans = [(0, end, 1)] if end > 1 else []  # position 0 is the bos: context, never a target
    while end < n_tokens:
        new_end = min(end + stride, n_tokens)
        spans.append((new_end - max_length, new_end, end))
        end = new_end
    return spans


def model_context(model) -> int:
    """The model's context length (lm-eval's default too), 2048 when the config does not say."""
    return getattr(model.config, "max_position_embeddings", None) or DEFAULT_MAX_LENGTH_CAP


def perplexity(model, tokenizer, documents: Sequence[str], max_length: int | None = None, stride: int | None = None,
               batch_size: int = 8) -> PerplexityResult:
    # Windows are full length on every long document, so the default caps memory at 2048 tokens.
    max_length = max_length or min(model_context(model), DEFAULT_MAX_LENGTH_CAP)
    stride = stride or max(1, max_length // 2)
    prefix = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    if prefix is None:
        raise ValueError("the tokenizer has neither a bos nor an eos token to start a document with")
    windows, n_scored = [], []  # a window scores its last end - first_target tokens
    for text in documents:
        ids = [prefix, *tokenizer(text, add_special_tokens=False)["input_ids"]]
        for begin, end, first_target in window_spans(len(ids), max_length, stride):
            windows.append(ids[begin:end])
            n_scored.append(end - first_target)
    logprobs = tail_logprobs(model, windows, n_scored, _pad_id(tokenizer), batch_size)
    nll = -sum(float(lp.double().sum()) for lp in logprobs)
    tokens = sum(n_scored)
    n_bytes = sum(len(text.encode("utf-8")) for text in documents)
    return PerplexityResult(len(documents), tokens, n_bytes, nll, max_length, stride)


# ----------------------------------------------------------------------------- multiple choice: data


@dataclass
class Question:
    id: str
    subject: str
    question: str
    options: dict[str, str]  # letter -> option text, in order
    answer: str | None = None  # None where the split has no answers (C-Eval test)


def _split_dir(data_dir: Path, split: str) -> Path:
    """Where a split's CSVs are: the official C-Eval download keeps them in `dev/`, `val/`,
    `test/` subfolders; a flat folder holds `{subject}_{split}.csv` directly."""
    nested = Path(data_dir) / split
    return nested if nested.is_dir() and any(nested.glob(f"*_{split}.csv")) else Path(data_dir)


def _split_file(data_dir: Path, subject: str, split: str) -> Path:
    return _split_dir(data_dir, split) / f"{subject}_{split}.csv"


def list_subjects(data_dir: str | Path, split: str) -> list[str]:
    suffix = f"_{split}.csv"
    return sorted(p.name[: -len(suffix)] for p in _split_dir(Path(data_dir), split).glob(f"*{suffix}"))


def read_questions(path: str | Path, subject: str) -> list[Question]:
    """One C-Eval CSV: id,question,A,B,C,D[,answer] (CMMLU's capitalised headers work too)."""
    path = Path(path)
    with path.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.reader(handle))
    if not rows:
        raise ValueError(f"{path}: empty file, expected a header id,question,A,B,C,D[,answer]")
    header = [name.strip().lower() for name in rows[0]]
    column = {name: i for i, name in enumerate(header)}
    letters = []
    for letter in LETTERS:  # option columns are A, B, C, ... up to the first missing one
        if letter.lower() not in column:
            break
        letters.append(letter)
    if "question" not in column or len(letters) < 2:
        raise ValueError(f"{path}: header {rows[0]} needs a 'question' column and option columns A, B, ...")
    questions = []
    for line_number, row in enumerate(rows[1:], 2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) < len(header):
            raise ValueError(f"{path}:{line_number}: {len(row)} fields, the header has {len(header)}")
        answer = row[column["answer"]].strip().upper() if "answer" in column else ""
        if answer and answer not in letters:
            raise ValueError(f"{path}:{line_number}: answer {answer!r} is not one of {', '.join(letters)}")
        questions.append(
            Question(
                id=row[column["id"]].strip() if "id" in column else str(line_number - 2),
                subject=subject,
                question=row[column["question"]],
                options={letter: row[column[letter.lower()]] for letter in letters},
                answer=answer or None,
            )
        )
    return questions


def read_ceval_folder(data_dir: str | Path, split: str = "val", subjects: Sequence[str] | None = None
                      ) -> dict[str, list[Question]]:
    """{subject: questions} from `{subject}_{split}.csv` files."""
    data_dir = Path(data_dir)
    available = list_subjects(data_dir, split)
    subjects = list(subjects) if subjects else available
    missing = [s for s in subjects if s not in available]
    if missing or not subjects:
        raise ValueError(f"{data_dir}: no {split} split for subject(s) {missing or '(any)'}; found {available}")
    return {s: read_questions(_split_file(data_dir, s, split), s) for s in subjects}


# ----------------------------------------------------------------------------- multiple choice: prompts


def format_question(question: Question) -> str:
    """Question and its lettered options; this exact text is `doc_to_text` (minus the cue) in the lm-eval YAML."""
    options = "".join(f"\n{letter}. {text}" for letter, text in question.options.items())
    return f"{question.question.strip()}{options}"


def bos_text(tokenizer) -> str:
    """The bos string to put in front of a plain prompt, or "" when the tokenizer adds bos itself / has none.

    MiniMind documents are trained as [bos, text, eos]; lm-eval encodes a context that starts
    with the bos string without adding special tokens, so both tokenize it the same way.
    """
    if tokenizer.bos_token is None:
        return ""
    adds_bos_itself = tokenizer("a")["input_ids"][:1] == [tokenizer.bos_token_id]
    return "" if adds_bos_itself else tokenizer.bos_token


def plain_prompt(question: Question, shots: Sequence[Question] = (), answer_cue: str = "Answer:", prefix: str = "") -> str:
    """prefix + "{shot}\\nAnswer: {letter}\\n\\n"... + "{question}\\nAnswer:" (lm-eval's layout)."""
    examples = "".join(f"{format_question(s)}\n{answer_cue} {s.answer}\n\n" for s in shots)
    return f"{prefix}{examples}{format_question(question)}\n{answer_cue}"


def chat_prompt(tokenizer, question: Question, shots: Sequence[Question] = ()) -> str:
    """The chat template with shots as earlier user/assistant turns, ending at the assistant's reply."""
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError("--style chat needs a tokenizer with a chat template; use --style plain")
    messages = []
    for shot in shots:
        messages += [{"role": "user", "content": format_question(shot)}, {"role": "assistant", "content": shot.answer}]
    messages.append({"role": "user", "content": format_question(question)})
    # Thinking off (MiniMind's `thinking`, Qwen3's `enable_thinking`): the reply starts with the letter.
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True,
                                         thinking=False, enable_thinking=False)


def encode(tokenizer, text: str) -> list[int]:
    """Tokenizer defaults, except no second bos when the text already starts with one (as lm-eval)."""
    starts_with_bos = tokenizer.bos_token is not None and text.startswith(tokenizer.bos_token)
    return tokenizer(text, add_special_tokens=not starts_with_bos)["input_ids"]


def encode_pair(tokenizer, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """lm-eval's split: trailing context spaces move to the continuation; encode the whole, cut at len(context)."""
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces:
        context, continuation = context[:-n_spaces], context[-n_spaces:] + continuation
    whole = encode(tokenizer, context + continuation)
    context_ids = encode(tokenizer, context)
    return context_ids, whole[len(context_ids):]


# ----------------------------------------------------------------------------- multiple choice: scoring


@dataclass
class ChoiceResult:
    id: str
    subject: str
    answer: str | None
    choice: str
    logprobs: dict[str, float]
    correct: bool | None  # None when the question has no answer


@dataclass
class MultipleChoiceResult:
    items: list[ChoiceResult]
    style: str
    shots: int
    split: str
    prompts: dict[str, str] = field(default_factory=dict, repr=False)  # first prompt per subject, for inspection

    def per_subject(self) -> dict[str, dict]:
        table: dict[str, dict] = {}
        for item in self.items:
            row = table.setdefault(item.subject, {"questions": 0, "answered": 0, "correct": 0})
            row["questions"] += 1
            if item.correct is not None:
                row["answered"] += 1
                row["correct"] += int(item.correct)
        for row in table.values():
            row["acc"] = row["correct"] / row["answered"] if row["answered"] else None
        return table

    def summary(self) -> dict:
        subjects = self.per_subject()
        answered = sum(r["answered"] for r in subjects.values())
        correct = sum(r["correct"] for r in subjects.values())
        scored = [r["acc"] for r in subjects.values() if r["acc"] is not None]
        return {
            "style": self.style, "shots": self.shots, "split": self.split,
            "questions": len(self.items), "answered": answered, "correct": correct,
            "acc": correct / answered if answered else None,  # over all questions (lm-eval group, weight_by_size)
            "acc_macro": sum(scored) / len(scored) if scored else None,  # mean of the subject accuracies
            "subjects": subjects,
        }


def score_multiple_choice(model, tokenizer, questions: dict[str, list[Question]], style: str = "plain",
                          shots: dict[str, list[Question]] | None = None, num_shots: int = 0,
                          answer_cue: str = "Answer:", max_length: int | None = None, batch_size: int = 8,
                          split: str = "") -> MultipleChoiceResult:
    """Pick, per question, the letter whose continuation is most likely (first one on ties, as numpy argmax).

    Plain: context = plain_prompt, continuation " A" / " B" / ... . Chat: context = chat_prompt,
    continuation "A" / "B" / ... . k-shot examples are the first `num_shots` dev questions.
    """
    if style not in ("plain", "chat"):
        raise ValueError(f"unknown prompt style {style!r}; use plain or chat")
    max_length = max_length or model_context(model)  # as lm-eval: prompts are only truncated past the context
    prefix = bos_text(tokenizer)
    requests, owners, prompts = [], [], {}
    for subject, subject_questions in questions.items():
        examples = (shots or {}).get(subject, [])[:num_shots]
        if len(examples) < num_shots:
            raise ValueError(f"subject {subject!r}: {num_shots} shots asked, the dev split has {len(examples)}")
        if any(e.answer is None for e in examples):
            raise ValueError(f"subject {subject!r}: a dev example has no answer")
        for question in subject_questions:
            if style == "plain":
                context, sep = plain_prompt(question, examples, answer_cue, prefix), " "
            else:
                context, sep = chat_prompt(tokenizer, question, examples), ""
            prompts.setdefault(subject, context)
            for letter in question.options:
                context_ids, continuation_ids = encode_pair(tokenizer, context, sep + letter)
                # Left-truncate like lm-eval: keep the last max_length + 1 tokens, feed all but the last.
                requests.append(((context_ids + continuation_ids)[-(max_length + 1):], len(continuation_ids)))
                owners.append((question, letter))
    logprobs = tail_logprobs(model, [ids for ids, _ in requests], [n for _, n in requests], _pad_id(tokenizer),
                             batch_size)

    per_question: dict[int, dict[str, float]] = {}
    for (question, letter), lp in zip(owners, logprobs):
        per_question.setdefault(id(question), {})[letter] = float(lp.double().sum())
    items = []
    for subject_questions in questions.values():
        for question in subject_questions:
            scores = per_question[id(question)]
            choice = max(scores, key=scores.get)  # dicts keep letter order, so the first maximum wins
            correct = None if question.answer is None else choice == question.answer
            items.append(ChoiceResult(question.id, question.subject, question.answer, choice, scores, correct))
    return MultipleChoiceResult(items, style, num_shots, split, prompts)


def evaluate_ceval(model, tokenizer, data_dir: str | Path, split: str = "val", subjects: Sequence[str] | None = None,
                   num_shots: int = 0, limit: int | None = None, **kwargs) -> MultipleChoiceResult:
    """Score a C-Eval folder's `split` (first `limit` questions per subject), shots from `{subject}_dev.csv`."""
    questions = {s: qs[:limit] for s, qs in read_ceval_folder(data_dir, split, subjects).items()}
    shots = read_ceval_folder(data_dir, "dev", list(questions)) if num_shots else None
    return score_multiple_choice(model, tokenizer, questions, shots=shots, num_shots=num_shots, split=split, **kwargs)


def write_results(result: MultipleChoiceResult, out_dir: str | Path) -> dict[str, Path]:
    """results.csv / results.json (one row per question) and summary.json."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    letters = list(dict.fromkeys(letter for item in result.items for letter in item.logprobs))
    paths = {"csv": out_dir / "results.csv", "json": out_dir / "results.json", "summary": out_dir / "summary.json"}
    with paths["csv"].open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "subject", "answer", "choice", "correct", *[f"logprob_{x}" for x in letters]])
        for item in result.items:
            correct = "" if item.correct is None else int(item.correct)
            writer.writerow([item.id, item.subject, item.answer or "", item.choice, correct,
                             *[item.logprobs.get(x, "") for x in letters]])
    paths["json"].write_text(json.dumps([asdict(item) for item in result.items], ensure_ascii=False, indent=1),
                             encoding="utf-8")
    summary = {**result.summary(), "prompt_examples": result.prompts}
    paths["summary"].write_text(json.dumps(summary, ensure_ascii=False, indent=1), encoding="utf-8")
    return paths


# ----------------------------------------------------------------------------- exact answers (generation)


def greedy_replies(model, tokenizer, prompts: Sequence[list[dict]], max_new_tokens: int, batch_size: int = 32,
                   chat_template_kwargs: dict | None = None) -> list[str]:
    """Greedy replies to chat prompts, batched with left padding (the template's bos included once)."""
    was_training = model.training
    model.eval()
    replies = []
    try:
        for start in range(0, len(prompts), batch_size):
            texts = [tokenizer.apply_chat_template(list(p), add_generation_prompt=True, tokenize=False,
                                                   **(chat_template_kwargs or {}))
                     for p in prompts[start: start + batch_size]]
            batch = tokenizer(texts, add_special_tokens=False, padding=True, padding_side="left",
                              return_tensors="pt").to(_device(model))
            with torch.no_grad():
                output = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False,
                                        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
            replies += tokenizer.batch_decode(output[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)
    finally:
        model.train(was_training)
    return replies


def exact_answer_accuracy(model, tokenizer, prompts: Sequence[list[dict]], answers: Sequence[str],
                          kinds: Sequence[str] | None = None, max_new_tokens: int = 16, batch_size: int = 32,
                          chat_template_kwargs: dict | None = None) -> dict:
    """Greedy replies to chat prompts (thinking off unless `chat_template_kwargs` turn it on, as
    GRPOConfig's do for rollouts), scored against reference answers.

    A reply is right when its answer part (after a `</think>`, if any) holds the answer: the
    last integer for integer answers, the text otherwise (`data.synthetic.is_correct`) - the
    same check as the `exact_answer` reward. Returns `{"accuracy", "correct", "total",
    "per_kind": {kind: {"accuracy", "correct", "total"}}}`.
    """
    from .data.synthetic import is_correct
    from .rewards import answer_part

    if len(prompts) != len(answers):
        raise ValueError(f"{len(prompts)} prompts but {len(answers)} answers")
    if not prompts:
        raise ValueError("no prompts with a reference answer to score")
    replies = greedy_replies(model, tokenizer, prompts, max_new_tokens, batch_size, chat_template_kwargs)
    kinds = list(kinds) if kinds is not None else [""] * len(prompts)
    counts: dict[str, list[int]] = {}
    for reply, answer, kind in zip(replies, answers, kinds):
        ok = int(is_correct(answer_part(reply), str(answer)))
        for key in ("", kind) if kind else ("",):
            counts.setdefault(key, [0, 0])
            counts[key][0] += ok
            counts[key][1] += 1
    correct, total = counts.pop("")
    return {"accuracy": correct / total, "correct": correct, "total": total,
            "per_kind": {k: {"accuracy": c / n, "correct": c, "total": n} for k, (c, n) in sorted(counts.items())}}


# ----------------------------------------------------------------------------- lm-evaluation-harness


def _jinja_question(letters: Sequence[str]) -> str:
    options = "".join(f"\n{x}. {{{{{x}}}}}" for x in letters)
    return "{{question.strip()}}" + options


def write_lm_eval_tasks(data_dir: str | Path, out_dir: str | Path, tokenizer=None, split: str = "val",
                        subjects: Sequence[str] | None = None, answer_cue: str = "Answer:",
                        prefix: str = "minimind_mc") -> str:
    """lm-eval task YAMLs (+ jsonl copies of the CSVs) equivalent to our plain prompt; returns the group name.

    One task per subject, `{prefix}_{subject}`, and a group `{prefix}` whose `acc` is weighted
    by size (= our overall `acc`). k-shot uses the first dev rows (`sampler: first_n`), as we do.
    Pass the model's tokenizer so the bos string goes in front like in our prompt (`description`).
    """
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    questions = read_ceval_folder(data_dir, split, subjects)
    has_dev = set(list_subjects(data_dir, "dev"))
    description = bos_text(tokenizer) if tokenizer is not None else ""
    tasks = []
    for subject, subject_questions in questions.items():
        if any(q.answer is None for q in subject_questions):
            raise ValueError(f"{subject}_{split}.csv: lm-eval needs an answer for every question (use a val split)")
        letters = list(subject_questions[0].options)
        files = {"test": subject_questions}
        if subject in has_dev:
            files["dev"] = read_questions(_split_file(data_dir, subject, "dev"), subject)
        data_files = {}
        for name, rows in files.items():
            path = out_dir / f"{subject}_{name}.jsonl"
            with path.open("w", encoding="utf-8") as handle:
                for q in rows:
                    handle.write(json.dumps({"id": q.id, "question": q.question, **q.options, "answer": q.answer or ""},
                                            ensure_ascii=False) + "\n")
            data_files[name] = str(path.resolve())
        task = f"{prefix}_{subject}"
        config = {
            "task": task,
            "dataset_path": "json",
            "dataset_kwargs": {"data_files": data_files},
            "test_split": "test",
            "output_type": "multiple_choice",
            "description": description,
            "doc_to_text": _jinja_question(letters) + "\n" + answer_cue,
            "doc_to_choice": letters,
            "doc_to_target": "{{" + json.dumps(letters) + ".index(answer)}}",
            "target_delimiter": " ",
            "fewshot_delimiter": "\n\n",
            "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True}],
        }
        if "dev" in data_files:
            config.update(fewshot_split="dev", fewshot_config={"sampler": "first_n"})
        # JSON is valid YAML, and json.dumps escapes the bos string and newlines unambiguously.
        (out_dir / f"{task}.yaml").write_text(json.dumps(config, ensure_ascii=False, indent=1), encoding="utf-8")
        tasks.append(task)
    group = {"group": prefix, "task": tasks,
             "aggregate_metric_list": [{"metric": "acc", "aggregation": "mean", "weight_by_size": True}]}
    (out_dir / f"{prefix}.yaml").write_text(json.dumps(group, indent=1), encoding="utf-8")
    return prefix


def run_lm_eval(model_path: str | Path, task_dir: str | Path, tasks: Sequence[str], num_fewshot: int = 0,
                batch_size: int = 8, trust_remote_code: bool = True, device: str = "cpu", **kwargs) -> dict:
    """lm-eval's HF backend on our local tasks, in this process (so `minimind_hf` is imported and registered)."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    import minimind_hf  # noqa: F401  (lets the "hf" backend load MiniMind folders without remote code)

    model_args = f"pretrained={model_path},trust_remote_code={trust_remote_code}"
    return lm_eval.simple_evaluate(
        model="hf", model_args=model_args, tasks=list(tasks), num_fewshot=num_fewshot, batch_size=batch_size,
        device=device, task_manager=TaskManager(include_path=str(task_dir), include_defaults=False), **kwargs,
    )

