"""The lm-evaluation-harness bridge: task YAMLs equivalent to our plain multiple-choice prompt, and a run."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from .multiple_choice import bos_text, list_subjects, read_ceval_folder, read_questions, split_file


def _jinja_question(letters: Sequence[str]) -> str:
    options = "".join(f"\n{x}. {{{{{x}}}}}" for x in letters)
    return "{{question.strip()}}" + options


def write_lm_eval_tasks(
    data_dir: str | Path,
    out_dir: str | Path,
    tokenizer=None,
    split: str = "val",
    subjects: Sequence[str] | None = None,
    answer_cue: str = "Answer:",
    prefix: str = "minimind_mc",
) -> str:
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
            files["dev"] = read_questions(split_file(data_dir, subject, "dev"), subject)
        data_files = {}
        for name, rows in files.items():
            path = out_dir / f"{subject}_{name}.jsonl"
            with path.open("w", encoding="utf-8") as handle:
                for q in rows:
                    handle.write(
                        json.dumps(
                            {"id": q.id, "question": q.question, **q.options, "answer": q.answer or ""},
                            ensure_ascii=False,
                        )
                        + "\n"
                    )
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
    group = {
        "group": prefix,
        "task": tasks,
        "aggregate_metric_list": [{"metric": "acc", "aggregation": "mean", "weight_by_size": True}],
    }
    (out_dir / f"{prefix}.yaml").write_text(json.dumps(group, indent=1), encoding="utf-8")
    return prefix


def run_lm_eval(
    model_path: str | Path,
    task_dir: str | Path,
    tasks: Sequence[str],
    num_fewshot: int = 0,
    batch_size: int = 8,
    trust_remote_code: bool = True,
    device: str = "cpu",
    **kwargs,
) -> dict:
    """lm-eval's HF backend on our local tasks, in this process (so `minimind_hf` is imported and registered)."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    import minimind_hf  # noqa: F401  (lets the "hf" backend load MiniMind folders without remote code)

    model_args = f"pretrained={model_path},trust_remote_code={trust_remote_code}"
    return lm_eval.simple_evaluate(
        model="hf",
        model_args=model_args,
        tasks=list(tasks),
        num_fewshot=num_fewshot,
        batch_size=batch_size,
        device=device,
        task_manager=TaskManager(include_path=str(task_dir), include_defaults=False),
        **kwargs,
    )
