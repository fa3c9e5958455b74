"""Multiple-choice log-likelihood scoring of C-Eval-format CSV questions.

The model "chooses" the option letter whose continuation has the highest log-probability.
The plain prompt and the tokenization follow lm-evaluation-harness exactly
(`harness.write_lm_eval_tasks` writes the equivalent task YAML), so both report the same accuracy.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .perplexity import model_context
from .scoring import pad_id, tail_logprobs

LETTERS = "ABCDEFGHIJ"


# ----------------------------------------------------------------------------- multiple choice: data


@dataclass
class Question:
    id: str
    subject: str
    question: str
    options: dict[str, str]  # letter -> option text, in order
    answer: str | None = None  # None where the split has no answers (C-Eval test)


def split_dir(data_dir: Path, split: str) -> Path:
    """Where a split's CSVs are: the official C-Eval download keeps them in `dev/`, `val/`,
    `test/` subfolders; a flat folder holds `{subject}_{split}.csv` directly."""
    nested = Path(data_dir) / split
    return nested if nested.is_dir() and any(nested.glob(f"*_{split}.csv")) else Path(data_dir)


def split_file(data_dir: Path, subject: str, split: str) -> Path:
    return split_dir(data_dir, split) / f"{subject}_{split}.csv"


def list_subjects(data_dir: str | Path, split: str) -> list[str]:
    suffix = f"_{split}.csv"
    return sorted(p.name[: -len(suffix)] for p in split_dir(Path(data_dir), split).glob(f"*{suffix}"))


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


def read_ceval_folder(
    data_dir: str | Path, split: str = "val", subjects: Sequence[str] | None = None
) -> dict[str, list[Question]]:
    """{subject: questions} from `{subject}_{split}.csv` files."""
    data_dir = Path(data_dir)
    available = list_subjects(data_dir, split)
    subjects = list(subjects) if subjects else available
    missing = [s for s in subjects if s not in available]
    if missing or not subjects:
        raise ValueError(f"{data_dir}: no {split} split for subject(s) {missing or '(any)'}; found {available}")
    return {s: read_questions(split_file(data_dir, s, split), s) for s in subjects}


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


def plain_prompt(
    question: Question, shots: Sequence[Question] = (), answer_cue: str = "Answer:", prefix: str = ""
) -> str:
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
    return tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=True, thinking=False, enable_thinking=False
    )


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
    return context_ids, whole[len(context_ids) :]


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
            "style": self.style,
            "shots": self.shots,
            "split": self.split,
            "questions": len(self.items),
            "answered": answered,
            "correct": correct,
            "acc": correct / answered if answered else None,  # over all questions (lm-eval group, weight_by_size)
            "acc_macro": sum(scored) / len(scored) if scored else None,  # mean of the subject accuracies
            "subjects": subjects,
        }


def score_multiple_choice(
    model,
    tokenizer,
    questions: dict[str, list[Question]],
    style: str = "plain",
    shots: dict[str, list[Question]] | None = None,
    num_shots: int = 0,
    answer_cue: str = "Answer:",
    max_length: int | None = None,
    batch_size: int = 8,
    split: str = "",
) -> MultipleChoiceResult:
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
                requests.append(((context_ids + continuation_ids)[-(max_length + 1) :], len(continuation_ids)))
                owners.append((question, letter))
    logprobs = tail_logprobs(
        model, [ids for ids, _ in requests], [n for _, n in requests], pad_id(tokenizer), batch_size
    )

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


def evaluate_ceval(
    model,
    tokenizer,
    data_dir: str | Path,
    split: str = "val",
    subjects: Sequence[str] | None = None,
    num_shots: int = 0,
    limit: int | None = None,
    **kwargs,
) -> MultipleChoiceResult:
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
            writer.writerow(
                [
                    item.id,
                    item.subject,
                    item.answer or "",
                    item.choice,
                    correct,
                    *[item.logprobs.get(x, "") for x in letters],
                ]
            )
    paths["json"].write_text(
        json.dumps([asdict(item) for item in result.items], ensure_ascii=False, indent=1), encoding="utf-8"
    )
    summary = {**result.summary(), "prompt_examples": result.prompts}
    paths["summary"].write_text(json.dumps(summary, ensure_ascii=False, indent=1), encoding="utf-8")
    return paths
