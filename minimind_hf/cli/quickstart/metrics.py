"""Each quickstart stage's own result on held-out data, read from its run or measured on its model.

`measure(name, folder, seed, limit)` returns ``{"metric", "value", "target", "met", "details",
"samples"}`` or, when a stage has no such number, ``{"metric", "value": None, "why"}``. The
metrics are the ones the stages and `scripts/eval.py` already compute (one implementation
each); the quickstart only gathers them. `limit` scores only the first N held-out prompts (smoke
runs); the card says how many were scored.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

from ...data.readers import read_jsonl
from ...utils import RUN_INFO_FILE

# The learning targets (docs: README "One command"); the card reports each as met or not.
TARGETS = {"sft": 0.9, "grpo": 0.10, "vlm_sft": 0.9}


def run_info(folder: Path) -> dict:
    return json.loads((Path(folder) / RUN_INFO_FILE).read_text())


def log_history(folder: Path) -> list[dict]:
    path = Path(folder) / "trainer_state.json"
    return json.loads(path.read_text()).get("log_history", []) if path.is_file() else []


def _load(folder: Path):
    from transformers import AutoTokenizer

    from ...utils import load_pretrained

    return load_pretrained(folder).eval(), AutoTokenizer.from_pretrained(folder)


def unigram_bpb(train_docs: list[str], eval_docs: list[str], tokenizer) -> float:
    """Bits per byte of the held-out text under a unigram model of the training tokens (add-one
    smoothing over the vocabulary): the bar a pretrained LM must clear to have learned context."""
    counts = Counter(t for doc in train_docs for t in tokenizer(doc, add_special_tokens=False)["input_ids"])
    total, vocab = sum(counts.values()), len(tokenizer)
    bits = -sum(
        math.log2((counts[t] + 1) / (total + vocab))
        for doc in eval_docs
        for t in tokenizer(doc, add_special_tokens=False)["input_ids"]
    )
    return bits / sum(len(doc.encode("utf-8")) for doc in eval_docs)


def _pretrain(folder: Path, seed: int, limit: int | None) -> dict:
    from ...data.embedded.corpus import pretrain_split
    from ...evaluation import perplexity

    model, tokenizer = _load(folder)
    train_docs, eval_docs = pretrain_split()
    bpb = perplexity(model, tokenizer, eval_docs, max_length=256).bpb
    baseline = unigram_bpb(train_docs, eval_docs, tokenizer)
    ids = tokenizer("def ", return_tensors="pt", add_special_tokens=False)["input_ids"]
    sample = tokenizer.decode(model.generate(ids, max_new_tokens=24, do_sample=False)[0])
    return {
        "metric": "held-out pydoc bits per byte (lower is better)",
        "value": bpb,
        "target": baseline,
        "met": bpb < baseline,
        "details": {"unigram_baseline_bpb": baseline},
        "samples": [{"prompt": "def ", "reply": sample}],
    }


def _chat_samples(model, tokenizer, records: list[dict], n: int = 3) -> list[dict]:
    from ...evaluation import greedy_replies

    prompts = [r["conversations"][:-1] for r in records[:n]]
    replies = greedy_replies(model, tokenizer, prompts, max_new_tokens=16)
    return [{"prompt": p[-1]["content"], "reply": reply} for p, reply in zip(prompts, replies)]


def _sft(folder: Path, seed: int, limit: int | None) -> dict:
    from ...data.embedded import embedded_path
    from ...evaluation import arithmetic_accuracy

    model, tokenizer = _load(folder)
    records = [record for _, record in read_jsonl(embedded_path("embedded:sft_basic_eval", seed))][:limit]
    accuracy = arithmetic_accuracy(model, tokenizer, records)["all"]
    return {
        "metric": "held-out single-digit sums, exact answer",
        "value": accuracy,
        "target": TARGETS["sft"],
        "met": accuracy >= TARGETS["sft"],
        "details": {"prompts": len(records)},
        "samples": _chat_samples(model, tokenizer, records),
    }


def _reward(folder: Path, seed: int, limit: int | None) -> dict:
    accuracy = run_info(folder).get("eval_accuracy")
    if accuracy is None:
        return {"metric": "held-out pairwise accuracy", "value": None, "why": "the run logged no eval_accuracy"}
    return {
        "metric": "held-out pairwise accuracy (chance 0.5)",
        "value": accuracy,
        "target": 0.5,
        "met": accuracy > 0.5,
        "details": {},
        "samples": [],
    }


def _grpo(folder: Path, seed: int, limit: int | None) -> dict:
    held = run_info(folder).get("held_out_accuracy")
    if not held:
        return {"metric": "held-out accuracy gain", "value": None, "why": "the run had no eval_files with answers"}
    gain = held["thinking"]["after"]["accuracy"] - held["thinking"]["before"]["accuracy"]
    details = {
        f"{mode}_{phase}": held[mode][phase]["accuracy"]
        for mode in ("thinking", "plain")
        for phase in ("before", "after")
    }
    return {
        "metric": "held-out sums with thinking on: accuracy after - before GRPO",
        "value": gain,
        "target": TARGETS["grpo"],
        "met": gain >= TARGETS["grpo"],
        "details": details,
        "samples": [],
    }


def _dpo(folder: Path, seed: int, limit: int | None) -> dict:
    accuracy = next(
        (h["eval_rewards/accuracies"] for h in reversed(log_history(folder)) if "eval_rewards/accuracies" in h), None
    )
    if accuracy is None:
        return {"metric": "held-out preference accuracy", "value": None, "why": "the run logged no eval rewards"}
    return {
        "metric": "held-out preference accuracy (chosen reward > rejected; chance 0.5)",
        "value": accuracy,
        "target": 0.5,
        "met": accuracy > 0.5,
        "details": {},
        "samples": [],
    }


def _tool_use(folder: Path, seed: int, limit: int | None, max_new_tokens: int = 64) -> dict:
    from ...data.embedded import embedded_path
    from ...data.rl import load_rl_records
    from ...evaluation.toolcall import greedy_generator, run_tool_episodes, score_episodes
    from ...tools import BUILTIN_TOOLS

    model, tokenizer = _load(folder)
    rows, _ = load_rl_records([embedded_path("embedded:tool_rl_eval", seed)])
    rows = list(rows)[:limit]
    prompts = [r["prompt"] for r in rows]
    generate = greedy_generator(model, tokenizer, max_new_tokens)
    episodes = run_tool_episodes(generate, prompts, dict(BUILTIN_TOOLS))
    scores = score_episodes(episodes, [r["answer"] for r in rows], [json.loads(r["expected_call"]) for r in rows])
    baseline = score_episodes(
        run_tool_episodes(generate, prompts, {}, max_turns=1), [r["answer"] for r in rows], [None] * len(rows)
    )["final_answer_accuracy"]
    details = {k: scores[k] for k in ("format_validity", "right_tool_rate", "argument_accuracy")} | {
        "prompts": len(rows)
    }
    samples = [
        {"prompt": p[-1]["content"], "reply": json.dumps(e.messages[len(p) :], ensure_ascii=False)}
        for p, e in zip(prompts[:2], episodes[:2])
    ]
    return {
        "metric": "held-out tool-use final-answer accuracy (no-tool baseline as target)",
        "value": scores["final_answer_accuracy"],
        "target": baseline,
        "met": scores["final_answer_accuracy"] > baseline,
        "details": details | {"no_tool_baseline": baseline},
        "samples": samples,
    }


def _agent(folder: Path, seed: int, limit: int | None) -> dict:
    tool_use = run_info(folder).get("held_out_tool_use")
    measured = _tool_use(folder, seed, limit)
    if tool_use:
        before = tool_use["before"]["final_answer_accuracy"]
        measured["details"]["before_agent_rl"] = before
        measured["target"], measured["met"] = before, measured["value"] > before
        measured["metric"] = "held-out tool-use final-answer accuracy (target: before agentic RL)"
    return measured


def _vlm_pretrain(folder: Path, seed: int, limit: int | None) -> dict:
    loss = run_info(folder).get("eval_loss")
    return (
        {"metric": "held-out caption loss", "value": loss, "target": None, "met": None, "details": {}, "samples": []}
        if loss is not None
        else {"metric": "held-out caption loss", "value": None, "why": "the run had no eval_files"}
    )


def _vlm_sft(folder: Path, seed: int, limit: int | None) -> dict:
    from transformers import AutoProcessor

    from ...data.embedded import embedded_path
    from ...evaluation.vision import vision_accuracy, vision_replies
    from ...utils import load_pretrained

    model, processor = load_pretrained(folder).eval(), AutoProcessor.from_pretrained(folder)
    records = [record for _, record in read_jsonl(embedded_path("embedded:vlm_sft_basic_eval", seed))][:limit]
    root = embedded_path("embedded:images", seed)
    accuracy = vision_accuracy(model, processor, records, root)
    kinds = sorted(k for k in accuracy if k != "all")
    replies = vision_replies(model, processor, records[:3], root, max_new_tokens=8)
    samples = [{"prompt": str(r["conversations"][-2]["content"]), "reply": reply} for r, reply in zip(records, replies)]
    return {
        "metric": f"held-out picture questions ({', '.join(kinds)}), exact answer",
        "value": accuracy["all"],
        "target": TARGETS["vlm_sft"],
        "met": accuracy["all"] >= TARGETS["vlm_sft"],
        "details": {k: accuracy[k] for k in kinds} | {"prompts": len(records)},
        "samples": samples,
    }


MEASURES = {
    "pretrain": _pretrain,
    "sft": _sft,
    "reward": _reward,
    "grpo": _grpo,
    "dpo": _dpo,
    "tool_sft": _tool_use,
    "agent": _agent,
    "vlm_pretrain": _vlm_pretrain,
    "vlm_sft": _vlm_sft,
}


def measure(name: str, folder: Path, seed: int, limit: int | None = None) -> dict:
    return MEASURES[name](Path(folder), seed, limit)
