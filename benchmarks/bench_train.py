"""SFT training throughput, padded vs packed vs MiniMind's loop, through the real training entry point.

Every run is ``minimind_hf.cli.train.main(["recipes/sft.yaml", --key value ...])`` - the
code path of ``accelerate launch scripts/train.py recipes/sft.yaml`` (recipe parsing, data
loading and validation, ``build_sft_dataset``, ``pack``, ``CausalLMCollator``, a stock
``Trainer``), in this process, on a jsonl file of MiniMind SFT records generated here with a
seed: many short chats and a long tail (log-normal answer lengths, 70% single-turn, up to 4
turns, some with a system prompt; a few exceed ``--max-length`` and are truncated).

Same budget: each timed run is ONE EPOCH over the same records, from the same fresh model
(a ``preset_config`` saved with the shipped tokenizer), with the same ``max_length``, rows
per batch and optimiser. Both modes therefore train on exactly the same samples and the same
supervised tokens (the builder is identical; packing only arranges rows, and the collator's
per-document first-label mask hits the never-supervised ``<|im_start|>``). What differs is
how many steps and padded positions it takes: padded batches are right-padded to their
longest row (dynamic padding, the Trainer default); packed rows hold several chats
(best-fit decreasing) with position_ids restarting per chat and no cross-chat attention.

Figures per mode (median over ``--repeats`` runs, interleaved padded/packed/..., after one
short warm-up run of each mode): the time of the training loop (a Trainer callback marks its
start and every step end: data loading, collation, forward, backward, optimiser; dataset
building and model loading are outside) on the process CPU clock with one thread (the
default; Trainer's wall-clock ``train_runtime`` is recorded too), tokens/s (real, non-padding
tokens), supervised tokens/s (labels != -100), samples/s (chats), computed positions/s
(padding included, from Trainer's ``num_input_tokens_seen``), steps. ``grouped`` (padded +
``train_sampling_strategy: group_by_length``) is context. ``minimind`` is MiniMind's
``train_full_sft.py`` design written out in this file (every chat padded to ``max_length``,
logits at every position, AdamW; no foreign code) and ``separate`` runs every chat alone
(batch 1, gradients accumulated over ``--batch`` chats): the cost of the same tokens with no
padding and no packing. Targets on CPU: packed >= 1.4x padded and >= 2.5x minimind in
supervised tokens/s, and packed time per real token <= 1.10x separate's; when the first is
missed (or with ``--profile``) a torch.profiler breakdown per computed position goes into the JSON.

    python -m benchmarks.bench_train [--quick] [--records 256] [--max-length 512] [--batch 8]
"""

from __future__ import annotations

import json
import random
import shutil
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import common  # noqa: E402
from benchmarks.bench_data import WORDS  # noqa: E402

TARGET = 1.4  # packed vs padded (both through the training entry point)
TARGET_VS_MINIMIND = 2.5  # packed vs MiniMind's pad-to-max_length loop
TARGET_VS_SEPARATE = 1.10  # packed cost per real token at most 10% above each chat run alone
MODES = {
    "padded": "recipes/sft.yaml, rows right-padded to the batch's longest",
    "packed": "recipes/sft.yaml with packing (document attention, head on supervised positions)",
    "grouped": "padded + Trainer's train_sampling_strategy group_by_length (context)",
    "minimind": "MiniMind's train_full_sft.py design written here: every chat padded to max_length, "
    "logits at every position, AdamW (no foreign code)",
    "separate": "recipes/sft.yaml, one chat per forward pass (no padding, no packing), "
    "gradients accumulated over --batch chats: the per-real-token reference",
    "compiled": "packed + torch_compile: true (opt-in; compilation inside the timed epoch)",
}
WARM_STEPS = 3  # steps left out of the compiled-vs-eager step-time comparison (compilation, recompiles)
DEFAULT_MODES = ("padded", "packed", "grouped", "minimind", "separate")
RECIPES = {stage: common.REPO_ROOT / "recipes" / f"{stage}.yaml" for stage in ("sft", "pretrain")}
MODEL_SHAPE = dict(
    hidden_size=128, intermediate_size=384, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2
)


def parse_args(argv=None):
    parser = common.base_parser("train", __doc__)
    parser.add_argument(
        "--stage",
        default="sft",
        choices=list(RECIPES),
        help="sft: skewed chats; pretrain: skewed documents, none longer than a row (no truncation)",
    )
    parser.add_argument("--records", type=int, default=None, help="chats / documents (default 256; quick 48)")
    parser.add_argument("--max-length", type=int, default=None, help="row length (default 512; quick 256)")
    parser.add_argument("--batch", type=int, default=None, help="rows per step (default 8; quick 4)")
    parser.add_argument("--repeats", type=int, default=None, help="timed epochs per mode (default 2; quick 1)")
    parser.add_argument("--warmup-steps", type=int, default=None, help="steps of the warm-up run per mode (default 2)")
    parser.add_argument(
        "--modes",
        nargs="+",
        default=None,
        choices=list(MODES),
        help=f"default: {' '.join(DEFAULT_MODES)} (quick: without grouped); "
        + "; ".join(f"{k} = {v}" for k, v in MODES.items()),
    )
    parser.add_argument(
        "--preset", default="tiny", help="MiniMind preset of the fresh model (shape overridden unless --preset-shape)"
    )
    parser.add_argument("--preset-shape", action="store_true", help="keep the preset's own shape")
    parser.add_argument(
        "--profile", action="store_true", help="profile padded vs packed steps even when the target is met"
    )
    args = parser.parse_args(argv)
    args.modes = args.modes or [m for m in DEFAULT_MODES if not (args.quick and m == "grouped")]
    args.records = args.records or (48 if args.quick else 256)
    args.max_length = args.max_length or (256 if args.quick else 512)
    args.batch = args.batch or (4 if args.quick else 8)
    args.repeats = args.repeats or (1 if args.quick else 2)
    args.warmup_steps = args.warmup_steps if args.warmup_steps is not None else (1 if args.quick else 2)
    return args


# ----------------------------------------------------------------------------- data


def _words(rng: random.Random, mu: float, sigma: float, cap: int) -> str:
    n = max(1, min(cap, int(rng.lognormvariate(mu, sigma))))
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


def skewed_sft_records(n: int, seed: int = 0) -> list[dict]:
    """MiniMind SFT records with a realistic skew: most chats one short exchange, a long tail.

    With the shipped tokenizer: median ~130 tokens, p90 ~360, p99 ~900 (seed 0, 1000 records).
    """
    rng = random.Random(seed)
    records = []
    for _ in range(n):
        turns = []
        if rng.random() < 0.2:
            turns.append({"role": "system", "content": _words(rng, 2.0, 0.5, 40)})
        r = rng.random()
        for _ in range(1 if r < 0.7 else 2 if r < 0.9 else rng.randint(3, 4)):
            turns.append({"role": "user", "content": _words(rng, 2.2, 0.8, 200)})
            turns.append({"role": "assistant", "content": _words(rng, 2.8, 1.1, 600)})
        records.append({"conversations": turns})
    return records


def skewed_text_records(n: int, seed: int, max_words: int) -> list[dict]:
    """Pretraining documents: log-normal lengths (median ~90 words), capped so that none is
    truncated at the row length - both modes then train on exactly the same tokens."""
    rng = random.Random(seed)
    return [{"text": _words(rng, 4.5, 0.9, max_words)} for _ in range(n)]


def write_records(path: Path, args) -> str:
    records = (
        skewed_sft_records(args.records, args.seed)
        if args.stage == "sft"
        else skewed_text_records(args.records, args.seed, args.max_length // 4)
    )
    with open(path, "w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    return str(path)


def build_rows(path: str, tokenizer, stage: str, max_length: int):
    """The stage's own builder on the records: (rows, report, number of records); not packed."""
    from minimind_hf.data.sources import load_records
    from minimind_hf.data.text import SFTOptions, build_pretrain_dataset, build_sft_dataset

    records, report = load_records(path, stage)
    if stage == "sft":
        rows = build_sft_dataset(records, tokenizer, SFTOptions(max_length=max_length), report)
    else:
        rows = build_pretrain_dataset(records, tokenizer, max_length, packing=False, report=report)
    return rows, report, len(records)


def data_stats(path: str, tokenizer, stage: str, max_length: int, batch: int) -> dict:
    """What one epoch holds, with the same builders the stage uses (outside any timing)."""
    import numpy as np

    from minimind_hf.data.text import CausalLMCollator, pack

    built, report, records = build_rows(path, tokenizer, stage, max_length)
    lengths = np.asarray([len(ids) for ids in built["input_ids"]])
    supervised = int(sum(int((np.asarray(lab[1:]) != -100).sum()) for lab in built["labels"]))
    packed = pack(built, max_length)
    packed_rows = len(packed)
    collate = CausalLMCollator(pad_token_id=tokenizer.pad_token_id)

    def in_loss(dataset) -> int:
        """Labels the shifted loss counts after collation (the budget check: equal in both modes)."""
        return sum(
            int((collate([dataset[j] for j in range(i, min(i + batch, len(dataset)))])["labels"][:, 1:] != -100).sum())
            for i in range(0, len(dataset), batch)
        )

    return {
        "supervised_tokens_in_loss": {"padded": in_loss(built), "packed": in_loss(packed)},
        "records": records,
        "rows": len(built),
        "dropped": dict(report.dropped),
        "truncated": report.truncated,
        "tokens": int(lengths.sum()),
        "supervised_tokens": supervised,
        "tokens_per_chat": {
            p: int(np.percentile(lengths, q))
            for p, q in (("p10", 10), ("p50", 50), ("p90", 90), ("p99", 99), ("max", 100))
        }
        | {"mean": round(float(lengths.mean()), 1)},
        "padded_steps": -(-len(built) // batch),
        "packed_rows": packed_rows,
        "packed_steps": -(-packed_rows // batch),
        "packed_fill": round(float(lengths.sum()) / (packed_rows * max_length), 4),
    }


# ----------------------------------------------------------------------------- runs


def fresh_model_dir(folder: Path, args) -> dict:
    """A freshly initialised MiniMind + the shipped tokenizer: the SFT starting point."""
    from minimind_hf import preset_config
    from minimind_hf.tokenizer import load_tokenizer

    tokenizer = load_tokenizer()
    shape = {} if args.preset_shape else MODEL_SHAPE
    config = preset_config(
        args.preset,
        **shape,
        max_position_embeddings=max(1024, args.max_length),
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    return common.save_fresh_model(folder, config, tokenizer, args.seed, args.preset)


def run_sft(mode: str, model_dir: Path, data: str, output_dir: Path, args, max_steps: int = -1) -> dict:
    """One in-process run of the stage's recipe (sft or pretrain, from the fresh ``model_dir``);
    returns what Trainer, run_info and the step clock recorded."""
    with common.step_clock() as clock:
        run = common.run_recipe(
            RECIPES[args.stage],
            {
                "model_name_or_path": str(model_dir),
                "train_files": [data],
                "eval_files": [],
                "max_length": args.max_length,
                "packing": mode in ("packed", "compiled"),
                "train_sampling_strategy": "group_by_length" if mode == "grouped" else "random",
                "per_device_train_batch_size": 1 if mode == "separate" else args.batch,
                "gradient_accumulation_steps": args.batch if mode == "separate" else 1,
                "num_train_epochs": 1,
                "max_steps": max_steps,
                "activation_checkpointing": False,
                "torch_compile": mode == "compiled",
                "output_dir": str(output_dir),
                "logging_steps": 10_000,
                "disable_tqdm": True,
                "include_num_input_tokens_seen": "all",
                "seed": args.seed,
                "dataloader_num_workers": 0,
                **({"preset": None, "model_config": {}} if args.stage == "pretrain" else {}),  # start: model_dir
            },
        )
    final, info, loop = common.train_summary(run["state"]), run["run_info"], clock.steady(0)
    later = clock.steady(WARM_STEPS) if loop["steps"] > WARM_STEPS else None  # compilation left out
    return {
        "later_steps_cpu_s_per_step": later and later["cpu_seconds"] / later["steps"],
        "train_runtime_s": final["train_runtime"],
        "loop_wall_s": loop["seconds"],
        "loop_cpu_s": loop["cpu_seconds"],
        "steps": run["state"]["global_step"],
        "positions": final.get("num_input_tokens_seen"),
        "supervised_tokens": info["data"]["supervised_tokens"],
        "loss_first": info["train_loss_first"],
        "loss_last": info["train_loss_last"],
    }


def run_minimind(model_dir: Path, data: str, args, max_steps: int = -1) -> dict:
    """MiniMind's ``train_full_sft.py`` design, written out here: every chat right-padded to
    ``max_length`` (its SFTDataset), the model called without an attention mask (causal SDPA over
    the whole row; trailing padding cannot reach real tokens), logits at every position, the
    loss-masked mean cross-entropy, AdamW with the recipe's learning rate and weight decay, clipping
    at 1.0. Same records, labels (our builder's masks), model and rows per step."""
    import time

    import torch
    import torch.nn.functional as F
    from transformers import AutoModelForCausalLM

    from minimind_hf.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(model_dir)
    rows = build_rows(data, tokenizer, args.stage, args.max_length)[0]
    torch.manual_seed(args.seed)
    model = AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation="sdpa").train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.1)
    order = list(range(len(rows)))
    random.Random(args.seed).shuffle(order)
    batches = [order[i : i + args.batch] for i in range(0, len(order), args.batch)]
    batches = batches[:max_steps] if max_steps > 0 else batches
    losses, width = [], args.max_length
    wall, cpu = time.perf_counter(), time.process_time()
    for batch in batches:
        input_ids = torch.full((len(batch), width), tokenizer.pad_token_id, dtype=torch.long)
        labels = torch.full((len(batch), width), -100, dtype=torch.long)
        for row, index in enumerate(batch):
            ids, labs = rows[index]["input_ids"], rows[index]["labels"]
            input_ids[row, : len(ids)], labels[row, : len(labs)] = torch.tensor(ids), torch.tensor(labs)
        logits = model(input_ids=input_ids).logits
        loss = F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), labels[:, 1:].flatten(), ignore_index=-100)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {
        "train_runtime_s": wall,
        "loop_wall_s": wall,
        "loop_cpu_s": cpu,
        "steps": len(batches),
        "positions": sum(len(b) for b in batches) * width,
        "supervised_tokens": sum(int((torch.tensor(rows[i]["labels"][1:]) != -100).sum()) for b in batches for i in b),
        "loss_first": round(losses[0], 4),
        "loss_last": round(losses[-1], 4),
    }


def run_mode(mode: str, model_dir: Path, data: str, output_dir: Path, args, max_steps: int = -1) -> dict:
    if mode == "minimind":
        return run_minimind(model_dir, data, args, max_steps)
    return run_sft(mode, model_dir, data, output_dir, args, max_steps)


OP_CATEGORIES = (  # torch.profiler op name fragments -> where the time goes
    ("attention (sdpa)", ("scaled_dot_product", "flash_attention")),
    ("matmul (linear layers, lm_head)", ("addmm", "aten::mm", "aten::bmm", "matmul", "linear")),
    ("loss (log_softmax, nll)", ("log_softmax", "nll_loss", "cross_entropy")),
    ("embedding", ("embedding",)),
)


def profile_modes(model_dir: Path, data: str, args, max_batches: int = 12) -> dict:
    """Where a step's CPU time goes, per computed position, for padded vs packed batches.

    Same builders, packing and collator as the stage; forward + backward of the fresh model under
    torch.profiler over the first ``max_batches`` batches of each mode (shuffled as Trainer does).
    Used when the target is missed (or with --profile) to say whether packing's gain is lost in
    attention, mask building, loss or elsewhere.
    """
    import collections
    import random

    from torch.profiler import ProfilerActivity, profile
    from transformers import AutoModelForCausalLM

    from minimind_hf.data.text import CausalLMCollator, pack
    from minimind_hf.tokenizer import load_tokenizer
    from minimind_hf.training.attention import DOCUMENT_SDPA
    from minimind_hf.training.supervised_head import head_on_supervised_positions

    tokenizer = load_tokenizer(model_dir)
    rows = build_rows(data, tokenizer, args.stage, args.max_length)[0]
    collate = CausalLMCollator(pad_token_id=tokenizer.pad_token_id)
    model = AutoModelForCausalLM.from_pretrained(model_dir).train()

    def step(batch):  # what the stage's trainer does (minimind_hf.training.text)
        with head_on_supervised_positions(model, batch["labels"]) as loss_kwargs:
            model(**batch, **loss_kwargs).loss.backward()

    out = {}
    for mode, dataset in (("padded", rows), ("packed", pack(rows, args.max_length))):
        model.set_attn_implementation(DOCUMENT_SDPA if mode == "packed" else "sdpa")
        order = list(range(len(dataset)))
        random.Random(args.seed).shuffle(order)
        batches = [collate([dataset[j] for j in order[i : i + args.batch]]) for i in range(0, len(order), args.batch)][
            :max_batches
        ]
        step(batches[0])  # warm
        with common.quiet_stderr(), profile(activities=[ProfilerActivity.CPU]) as prof:
            for batch in batches:
                model.zero_grad(set_to_none=True)
                step(batch)
        positions = sum(b["input_ids"].numel() for b in batches)
        real = sum(int((b["input_ids"] != tokenizer.pad_token_id).sum()) for b in batches)
        spent = collections.Counter()
        for event in prof.key_averages():
            category = next(
                (name for name, keys in OP_CATEGORIES if any(k in event.key for k in keys)),
                "other (norms, rope, masks, elementwise, autograd)",
            )
            spent[category] += event.self_cpu_time_total
        out[mode] = {
            "batches": len(batches),
            "positions": positions,
            "real_tokens": real,
            "mean_row_width": round(positions / sum(b["input_ids"].shape[0] for b in batches), 1),
            "us_per_position": {k: round(v / positions, 2) for k, v in spent.most_common()},
            "us_per_real_token": round(sum(spent.values()) / real, 2),
        }
    return out


def explain_profile(prof: dict) -> str:
    a, b = prof["padded"], prof["packed"]
    parts = []
    for category in a["us_per_position"]:
        x, y = a["us_per_position"][category], b["us_per_position"].get(category, 0.0)
        parts.append(f"{category} {x} -> {y}")
    return (
        f"profile, CPU microseconds per computed position, padded -> packed: {'; '.join(parts)}. Per real token: "
        f"{a['us_per_real_token']} -> {b['us_per_real_token']} (mean row width {a['mean_row_width']} -> "
        f"{b['mean_row_width']}). Packing removes the padding positions; packed rows attend document by "
        "document (document_sdpa) and both modes run the output head on supervised positions only"
    )


def mode_figures(runs: list[dict], stats: dict, clock: str) -> dict:
    """Rates on the chosen clock: ``cpu`` = the training loop's process CPU time (one thread on a
    shared machine: leaves out waiting for a core), ``wall`` = Trainer's train_runtime."""
    key = "loop_cpu_s" if clock == "cpu" else "train_runtime_s"
    seconds = common.median([r[key] for r in runs])
    wall = common.median([r["train_runtime_s"] for r in runs])
    positions = runs[0]["positions"]
    return {
        "clock": clock,
        "seconds": [round(r[key], 3) for r in runs],
        "median_seconds": round(seconds, 3),
        "train_runtime_s": [round(r["train_runtime_s"], 3) for r in runs],
        "loop_cpu_s": [round(r["loop_cpu_s"], 3) for r in runs],
        "steps": runs[0]["steps"],
        "computed_positions": positions,
        "padding_fraction": round(1 - stats["tokens"] / positions, 4) if positions else None,
        "tokens_per_s": round(stats["tokens"] / seconds, 1),
        "supervised_tokens_per_s": round(stats["supervised_tokens"] / seconds, 1),
        "samples_per_s": round(stats["rows"] / seconds, 2),
        "positions_per_s": round(positions / seconds, 1) if positions else None,
        "step_time_s": round(seconds / runs[0]["steps"], 4),
        "supervised_tokens_per_wall_s": round(stats["supervised_tokens"] / wall, 1),
        "supervised_tokens_reported": runs[0]["supervised_tokens"],
        "loss_first_last": [runs[0]["loss_first"], runs[0]["loss_last"]],
    }


def record_figures(result, runs: dict, stats: dict, args) -> float | None:
    """Per-mode figures, the paired ratios and the target; returns packed/padded (or None)."""
    for mode, mode_runs in runs.items():
        result["figures"][mode] = mode_figures(mode_runs, stats, args.clock)
    key = "loop_cpu_s" if args.clock == "cpu" else "train_runtime_s"

    def paired(mode: str, base: str = "padded", clock: str = key) -> float:
        """Same supervised tokens in both: base_time / mode_time is the supervised tokens/s ratio."""
        return round(common.median([a[clock] / b[clock] for a, b in zip(runs[base], runs[mode])]), 4)

    ratio = None
    if "padded" in runs and "packed" in runs:
        ratio = paired("packed")
        result["figures"]["packed_vs_padded_supervised_tokens_per_s"] = ratio
        result["figures"]["packed_vs_padded_wall"] = paired("packed", clock="train_runtime_s")
        in_loss = stats["supervised_tokens_in_loss"]
        if in_loss["padded"] != in_loss["packed"]:
            result.note(f"padded and packed batches put different numbers of labels in the loss: {in_loss}")
        result.target(
            "packed_vs_padded",
            f"packed/padded supervised tokens/s (same epoch, {args.clock} clock, paired median)",
            TARGET,
            ratio,
        )
    if "packed" in runs and "minimind" in runs:
        vs_minimind = result["figures"]["packed_vs_minimind_supervised_tokens_per_s"] = paired("packed", "minimind")
        result.target(
            "packed_vs_minimind",
            f"packed / MiniMind-style pad-to-max_length loop, supervised tokens/s ({args.clock} clock, paired median)",
            TARGET_VS_MINIMIND,
            vs_minimind,
        )
    if "packed" in runs and "separate" in runs:
        cost = round(1 / paired("packed", "separate"), 4)
        result["figures"]["packed_cost_per_real_token_vs_separate"] = cost
        result.target(
            "packed_vs_separate",
            "packed CPU time per real token / the same chats run one per forward pass (unpadded)",
            TARGET_VS_SEPARATE,
            cost,
            higher_is_better=False,
        )
    if "compiled" in runs and "packed" in runs:
        result["figures"]["compiled_vs_packed_supervised_tokens_per_s"] = paired("compiled", "packed")
        per_step = [
            (a["later_steps_cpu_s_per_step"], b["later_steps_cpu_s_per_step"])
            for a, b in zip(runs["packed"], runs["compiled"])
        ]
        if all(a and b for a, b in per_step):
            result["figures"][f"compiled_vs_packed_step_time_after_{WARM_STEPS}_steps"] = round(
                common.median([a / b for a, b in per_step]), 4
            )
    if "grouped" in runs and "padded" in runs:
        result["figures"]["grouped_vs_padded_supervised_tokens_per_s"] = paired("grouped")
        if "packed" in runs:
            result["figures"]["packed_vs_grouped_supervised_tokens_per_s"] = paired("packed", "grouped")
    return ratio


@common.restores_globals
def main(argv=None) -> dict:
    args = parse_args(argv)
    result = common.start(
        args,
        "train",
        f"{args.stage} training throughput through minimind_hf.cli.train: padded vs packed vs MiniMind's loop",
        recipe=f"recipes/{args.stage}.yaml",
        budget="one epoch over the same records (same samples, same supervised tokens) per timed run",
    )
    import datasets

    from minimind_hf.tokenizer import load_tokenizer

    work = Path(tempfile.mkdtemp(prefix="bench_train_"))
    old_cache = datasets.config.HF_DATASETS_CACHE
    datasets.config.HF_DATASETS_CACHE = work / "hf_datasets"  # keep Arrow caches out of the user's cache
    try:
        with common.temporary_env(MINIMIND_HF_HOME=work / "home"):
            data = write_records(work / f"{args.stage}_skewed.jsonl", args)
            model_dir = work / "fresh_model"
            result["config"]["model"] = fresh_model_dir(model_dir, args)
            stats = data_stats(data, load_tokenizer(model_dir), args.stage, args.max_length, args.batch)
            result["figures"]["data"] = stats

            for mode in args.modes:  # warm-up: kernels, allocator, tokenizer and dataset caches
                run_mode(mode, model_dir, data, work / f"warmup_{mode}", args, max_steps=max(1, args.warmup_steps))
            runs = {mode: [] for mode in args.modes}
            for repeat in range(args.repeats):
                order = args.modes if repeat % 2 == 0 else args.modes[::-1]
                for mode in order:
                    runs[mode].append(run_mode(mode, model_dir, data, work / f"{mode}_{repeat}", args))
            ratio = record_figures(result, runs, stats, args)
            if ratio is not None and (ratio < TARGET or args.profile):
                result["figures"]["profile"] = prof = profile_modes(model_dir, data, args)
                result.note(explain_profile(prof))
    finally:
        datasets.config.HF_DATASETS_CACHE = old_cache
        shutil.rmtree(work, ignore_errors=True)

    figures = {mode: result["figures"][mode] for mode in runs}
    result.note(
        f"clock {args.clock}, torch threads {args.threads}; runs interleaved (padded, packed, packed, "
        "padded, ...) after one warm-up run per mode; absolute rates are context only on a shared machine"
    )
    rows = [
        {
            "mode": m,
            "steps": f["steps"],
            f"{args.clock} s": f["median_seconds"],
            "tokens/s": f["tokens_per_s"],
            "supervised/s": f["supervised_tokens_per_s"],
            "samples/s": f["samples_per_s"],
            "positions/s": f["positions_per_s"],
            "padding": f["padding_fraction"],
        }
        for m, f in figures.items()
    ]
    return common.finish(result, args, rows)


if __name__ == "__main__":
    main()
