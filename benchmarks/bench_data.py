"""SFT data building speed: our `datasets.map` builder vs MiniMind's per-record Python loop.

Both sides turn the same jsonl file of chats into ``input_ids`` / ``labels`` (-100 except the
assistant answers and their ``<|im_end|>``) with the same shipped tokenizer and chat template:

* ours: ``load_records`` (validate + normalise into an Arrow cache) + ``build_sft_dataset``
  (batched ``Dataset.map``: render with ``{% generation %}`` spans, batch-tokenise with offsets,
  mask), for each ``--num-proc`` value;
* naive: what the original MiniMind ``SFTDataset`` does per record - ``json.loads``,
  ``apply_chat_template(tokenize=False)``, ``tokenizer(text)``, then a scan of the token list
  for the ``<|im_start|>assistant\\n`` header and the next ``<|im_end|>``. Our template renders
  an unsupervised empty think block after the header of answers without reasoning, so the scan
  skips it: both sides implement the same masking, and the run asserts they produce identical
  rows (the mismatch count is in the JSON).

Caching: every timed run of our builder gets a fresh temporary ``cache_dir`` (deleted after
the run, outside the timing), so neither the Arrow cache of ``load_records`` nor the cache
file of ``map`` can be reused: every run validates, renders and tokenises from scratch.

Runs are interleaved (naive, ours x num_proc, naive, ...) after one warm-up of each on a small
subset; the median of ``--repeats`` runs is reported. Records are generated deterministically
(``--seed``): multi-turn chats with skewed (log-normal) lengths, some with a system prompt, a
tool call + tool response, or reasoning.

    python benchmarks/bench_data.py [--records 2000] [--num-proc 1 2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # `python benchmarks/bench_data.py`: the repository root is not on the path
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import common  # noqa: E402

DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results" / "data.json"

WORDS = (
    "the a model data token train learn small fast answer question value number list string file "
    "python function return loop class object error memory speed result example simple because "
    "however therefore first second finally check compute add multiply divide shape colour red "
    "blue green square circle triangle 你好 模型 数据 训练 问题 答案 简单 快速 因为 所以"
).split()
TOOL = {
    "type": "function",
    "function": {
        "name": "calculate",
        "description": "Evaluate an arithmetic expression",
        "parameters": {"type": "object", "properties": {"expression": {"type": "string"}}, "required": ["expression"]},
    },
}


# ----------------------------------------------------------------------------- records


def _text(rng: random.Random, mu: float) -> str:
    """A log-normal number of words: most contents are short, a few are very long."""
    n = max(1, min(800, int(rng.lognormvariate(mu, 1.0))))
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


def generate_records(n: int, seed: int = 0) -> list[dict]:
    """Deterministic MiniMind-format SFT records (tools on the system message, reasoning inline)."""
    rng = random.Random(seed)
    records = []
    for _ in range(n):
        turns = []
        tools = rng.random() < 0.1
        if tools or rng.random() < 0.25:
            system = {"role": "system", "content": _text(rng, 2.0)}
            if tools:
                system["tools"] = [TOOL]
            turns.append(system)
        if tools:
            a, b = rng.randint(1, 99), rng.randint(1, 99)
            turns += [
                {"role": "user", "content": f"What is {a} times {b}? " + _text(rng, 1.5)},
                {
                    "role": "assistant",
                    "content": "",
                    "tool_calls": [{"name": "calculate", "arguments": {"expression": f"{a}*{b}"}}],
                },
                {"role": "tool", "content": str(a * b)},
                {"role": "assistant", "content": f"It is {a * b}. " + _text(rng, 2.0)},
            ]
        for _ in range(min(6, 1 + int(rng.expovariate(0.8)))):
            answer = _text(rng, 3.5)
            if rng.random() < 0.2:
                answer = f"<think>\n{_text(rng, 3.0)}\n</think>\n\n{answer}"
            turns += [{"role": "user", "content": _text(rng, 2.5)}, {"role": "assistant", "content": answer}]
        records.append({"conversations": turns})
    return records


def write_jsonl(records: list[dict], path: Path) -> str:
    with open(path, "w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    return str(path)


# ----------------------------------------------------------------------------- the two builders


class Timer:
    """Wall seconds, and CPU seconds of this process plus its finished children (map workers)."""

    @staticmethod
    def _cpu() -> float:
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return time.process_time() + children.ru_utime + children.ru_stime

    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), self._cpu()
        return self

    def __exit__(self, *exc):
        self.wall, self.cpu = time.perf_counter() - self.wall, self._cpu() - self.cpu


def build_ours(path: str, tokenizer, max_length: int, num_proc: int):
    """Our pipeline, from the jsonl file, with a fresh cache. Returns (rows, report, Timer)."""
    from minimind_hf.data.sources import load_records
    from minimind_hf.data.text import SFTOptions, build_sft_dataset

    cache = tempfile.mkdtemp(prefix="bench_data_cache_")
    try:
        with Timer() as timer:
            records, report = load_records(path, "sft", cache_dir=cache)
            built = build_sft_dataset(
                records,
                tokenizer,
                SFTOptions(max_length=max_length),
                report,
                num_proc=num_proc if num_proc > 1 else None,
            )
        rows = built.to_dict()  # outside the timing: for the comparison only
        return list(zip(rows["input_ids"], rows["labels"])), report, timer
    finally:
        shutil.rmtree(cache, ignore_errors=True)


class NaiveBuilder:
    """MiniMind's SFTDataset masking, one record at a time in Python."""

    def __init__(self, tokenizer, max_length: int):
        from minimind_hf.data.text import EMPTY_THINK, has_generation_markers

        self.tokenizer, self.max_length = tokenizer, max_length
        self.header = tokenizer("<|im_start|>assistant\n", add_special_tokens=False).input_ids
        self.eos = tokenizer.eos_token_id
        # Templates with generation markers keep the empty think block out of the answer.
        self.skip = (
            tokenizer(EMPTY_THINK, add_special_tokens=False).input_ids if has_generation_markers(tokenizer) else []
        )

    def labels(self, ids: list[int]) -> list[int]:
        header, skip = self.header, self.skip
        labels = [-100] * len(ids)
        i = 0
        while i < len(ids):
            if ids[i : i + len(header)] == header:
                start = i + len(header)
                window = ids[start : start + len(skip)]
                if skip and window == skip[: len(window)]:  # a prefix of it when truncation cut it
                    start += len(window)
                end = start
                while end < len(ids) and ids[end] != self.eos:
                    end += 1
                stop = min(end + 1, len(ids))
                labels[start:stop] = ids[start:stop]
                i = stop
            else:
                i += 1
        return labels

    def __call__(self, path: str):
        """Returns (rows, Timer)."""
        rows = []
        with Timer() as timer, open(path, encoding="utf-8") as f:
            for line in f:
                conversation = json.loads(line)["conversations"]
                tools = conversation[0].get("tools") if conversation and conversation[0]["role"] == "system" else None
                messages = [{k: v for k, v in m.items() if k != "tools"} for m in conversation]
                text = self.tokenizer.apply_chat_template(messages, tools=tools, tokenize=False)
                ids = self.tokenizer(text).input_ids[: self.max_length]
                labels = self.labels(ids)
                if any(label != -100 for label in labels):  # as ours: nothing to learn -> dropped
                    rows.append((ids, labels))
        return rows, timer


def mismatches(ours: list, naive: list) -> int:
    """Rows that differ (input_ids or labels), plus any difference in the number of rows."""
    return sum(a != b for a, b in zip(ours, naive)) + abs(len(ours) - len(naive))


# ----------------------------------------------------------------------------- reporting


PACKAGES = ("minimind-hf", "transformers", "datasets", "tokenizers", "trl", "torch", "numpy", "jinja2")


def _machine() -> dict:
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "cpus_available": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "tokenizers_parallelism": os.environ.get("TOKENIZERS_PARALLELISM"),
    }


def _stats(timers: list, n: int) -> dict:
    wall, cpu = [t.wall for t in timers], [t.cpu for t in timers]
    return {
        "wall_s": [round(t, 4) for t in wall],
        "median_s": round(statistics.median(wall), 4),
        "records_per_s": round(n / statistics.median(wall), 1),
        "cpu_s": [round(t, 4) for t in cpu],
        "median_cpu_s": round(statistics.median(cpu), 4),
        "records_per_cpu_s": round(n / statistics.median(cpu), 1),
    }


def _table(results: dict) -> str:
    lines = [f"{'builder':<20}{'median s':>10}{'records/s':>11}{'vs naive':>10}{'cpu s':>9}{'records/cpu-s':>15}"]
    naive = results["naive"]
    for name, r in results.items():
        lines.append(
            f"{name:<20}{r['median_s']:>10.3f}{r['records_per_s']:>11.1f}"
            f"{r['records_per_s'] / naive['records_per_s']:>9.2f}x{r['median_cpu_s']:>9.3f}"
            f"{r['records_per_cpu_s']:>15.1f}"
        )
    return "\n".join(lines)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=2000, help="number of generated SFT records")
    parser.add_argument("--num-proc", type=int, nargs="+", default=[1, 2], help="num_proc values for our builder")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per builder (median reported)")
    parser.add_argument("--warmup-records", type=int, default=100, help="records in the warm-up run (0: none)")
    parser.add_argument("--max-length", type=int, default=1024)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default=str(DEFAULT_OUTPUT), help="JSON result file")
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    import datasets

    from minimind_hf.tokenizer import load_tokenizer

    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    tokenizer = load_tokenizer()
    naive = NaiveBuilder(tokenizer, args.max_length)
    work = Path(tempfile.mkdtemp(prefix="bench_data_"))
    try:
        records = generate_records(args.records, args.seed)
        path = write_jsonl(records, work / "sft.jsonl")
        warm = write_jsonl(records[: args.warmup_records], work / "warmup.jsonl") if args.warmup_records else None

        builders = {"naive": lambda: naive(path)}
        for num_proc in args.num_proc:
            builders[f"ours_num_proc_{num_proc}"] = lambda num_proc=num_proc: build_ours(
                path, tokenizer, args.max_length, num_proc
            )
        if warm:
            naive(warm)
            for num_proc in args.num_proc:
                build_ours(warm, tokenizer, args.max_length, num_proc)

        times = {name: [] for name in builders}
        outputs, reports = {}, {}
        for _ in range(args.repeats):  # interleaved: drifting machine load hits every builder alike
            for name, run in builders.items():
                result = run()
                rows, timer = result[0], result[-1]
                times[name].append(timer)
                outputs.setdefault(name, rows)
                if len(result) == 3:
                    reports.setdefault(name, result[1])

        reference = outputs["naive"]
        counts = {name: mismatches(rows, reference) for name, rows in outputs.items() if name != "naive"}
        report = next(iter(reports.values()))
        lengths = sorted(len(ids) for ids, _ in reference)
        results = {name: _stats(t, args.records) for name, t in times.items()}
        naive_rate = results["naive"]["records_per_s"]
        summary = {
            "benchmark": "sft data building: minimind_hf load_records + build_sft_dataset vs naive per-record loop",
            "machine": _machine(),
            "versions": common.versions(PACKAGES, cuda_runtime=False),
            "config": {
                "records": args.records,
                "num_proc": args.num_proc,
                "repeats": args.repeats,
                "warmup_records": args.warmup_records,
                "max_length": args.max_length,
                "seed": args.seed,
                "tokenizer": "minimind_hf shipped tokenizer (chat template with generation markers)",
                "cache": "fresh temporary cache_dir per run of our builder, deleted after it (no cache reuse)",
                "timed": "ours: load_records + build_sft_dataset from the jsonl file; "
                "naive: read + json.loads + apply_chat_template + tokenizer + token scan, per record",
            },
            "data": {
                "rows_kept": len(reference),
                "dropped": dict(report.dropped),
                "truncated": report.truncated,
                "supervised_tokens": report.supervised_tokens,
                "tokens_total": sum(lengths),
                "tokens_per_row": {
                    "median": lengths[len(lengths) // 2] if lengths else 0,
                    "mean": round(sum(lengths) / max(1, len(lengths)), 1),
                    "max": lengths[-1] if lengths else 0,
                },
            },
            "results": results,
            "ratio_vs_naive": {
                name: round(r["records_per_s"] / naive_rate, 3) for name, r in results.items() if name != "naive"
            },
            "cpu_ratio_vs_naive": {
                name: round(r["records_per_cpu_s"] / results["naive"]["records_per_cpu_s"], 3)
                for name, r in results.items()
                if name != "naive"
            },
            "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
            "verification": {
                "mismatches": sum(counts.values()),
                "mismatches_by_builder": counts,
                "rows_compared": len(reference),
            },
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)

    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"SFT data building, {args.records} records, median of {args.repeats} (records/s):")
    print(_table(results))
    print(f"label mismatches vs naive: {summary['verification']['mismatches']} over {len(reference)} rows")
    print(f"wrote {output}")
    assert summary["verification"]["mismatches"] == 0, f"builders disagree: {counts}"
    return summary


if __name__ == "__main__":
    main()
