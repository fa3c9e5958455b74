"""Markdown tables of the latest results, for docs/PERFORMANCE.md.

    python -m benchmarks.report [--results benchmarks/results]

Reads the JSON files the benchmarks wrote and prints one table per benchmark (and the
machine / load line of each), so the figures in the docs are copied, not retyped.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import common  # noqa: E402


def md(rows: list[dict]) -> str:
    if not rows:
        return "(no rows)"
    cols = list(rows[0])

    def fmt(v):
        if isinstance(v, float):
            return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.4g}"
        return "-" if v is None else str(v)

    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(r.get(c)) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def context(result: dict) -> str:
    m = result.get("machine", {})
    load = result.get("load_average") or {}
    if isinstance(load, dict):
        load = f"{load.get('start')} -> {load.get('end')}"
    return (
        f"_{m.get('cpu_model', m.get('processor'))}, {m.get('cpus_available')} CPUs, torch threads "
        f"{m.get('torch_threads', '-')}, load average {load}; torch {result['versions'].get('torch')}, "
        f"transformers {result['versions'].get('transformers')}; {result.get('started', '')}_"
    )


def targets(result: dict) -> str:
    rows = [
        {
            "target": t["name"],
            "metric": t["metric"],
            "threshold": t["threshold"],
            "measured": t["measured"],
            "met": {True: "yes", False: "**no**", None: "-"}[t["target_met"]],
        }
        for t in result.get("targets", [])
    ]
    return md(rows) if rows else ""


def train(r: dict) -> str:
    f = r["figures"]
    rows = [
        {
            "mode": m,
            "steps": f[m]["steps"],
            f"{f[m]['clock']} s": f[m]["median_seconds"],
            "tokens/s": f[m]["tokens_per_s"],
            "supervised tokens/s": f[m]["supervised_tokens_per_s"],
            "samples/s": f[m]["samples_per_s"],
            "positions/s": f[m]["positions_per_s"],
            "padding": f[m]["padding_fraction"],
        }
        for m in ("padded", "packed", "grouped")
        if m in f
    ]
    d = f["data"]
    extra = (
        f"\n\nData: {d['records']} chats, {d['tokens']} tokens ({d['supervised_tokens']} supervised), tokens per "
        f"chat {d['tokens_per_chat']}, {d['truncated']} truncated; packed into {d['packed_rows']} rows "
        f"(fill {d['packed_fill']}). Ratios: packed/padded {f.get('packed_vs_padded_supervised_tokens_per_s')} "
        f"(wall clock {f.get('packed_vs_padded_wall')}), grouped/padded "
        f"{f.get('grouped_vs_padded_supervised_tokens_per_s')}, packed/grouped "
        f"{f.get('packed_vs_grouped_supervised_tokens_per_s')}."
    )
    return md(rows) + extra


def model(r: dict) -> str:
    rows = []
    for shape, f in r["figures"].items():
        aa = f.get("aa_control_ours_copy_vs_ours") or {}
        rows.append(
            {
                "ours vs": f["oracle_class"],
                "hidden x layers": f"{f['hidden_size']} x {f['layers']}",
                "tokens/step": f["tokens_per_step"],
                "ours tok/s": f["ours_tokens_per_s"],
                "oracle tok/s": f["oracle_tokens_per_s"],
                "ratio": f["speed_ratio_ours_vs_oracle"],
                "IQR": f"{f['comparison']['ratio']['q1']}-{f['comparison']['ratio']['q3']}",
                "wall-clock ratio": f["comparison"]["ratio_wall"]["median"],
                "A/A": aa.get("median"),
            }
        )
    return md(rows)


def generate(r: dict) -> str:
    rows = []
    for shape, s in r["figures"].items():
        for batch, f in s["batches"].items():
            aa = f.get("aa_control_ours_copy_vs_ours") or {}
            rows.append(
                {
                    "ours vs": s["oracle_class"],
                    "batch": batch,
                    "ours tok/s": f["ours_tokens_per_s"],
                    "oracle tok/s": f["oracle_tokens_per_s"],
                    "ratio": f["tokens_per_s_ratio"],
                    "A/A": (aa.get("tokens_per_s") or {}).get("median"),
                    "ours TTFT ms": f["ours_ttft_ms"],
                    "oracle TTFT ms": f["oracle_ttft_ms"],
                    "TTFT ratio": f["ttft_ratio_oracle_over_ours"],
                    "A/A TTFT": (aa.get("ttft") or {}).get("median"),
                    "same tokens": f["outputs_identical"],
                }
            )
    return md(rows)


def memory(r: dict) -> str:
    rows = []
    for name, f in r["figures"].items():
        if not isinstance(f, dict):
            continue
        peak = f.get("peak_allocated_mib", f.get("peak_rss_mib"))
        rows.append(
            {
                "config": name,
                "model": f["model"],
                "params (M)": round(f["parameters"] / 1e6, 2),
                "batch x seq": f"{f['batch']} x {f['seq']}",
                "ckpt": f["gradient_checkpointing"],
                "before step MiB": f.get("rss_before_step_mib", f.get("allocated_before_step_mib")),
                "peak MiB": peak,
                "peak vs oracle": f.get("peak_vs_oracle"),
                "step increase MiB": f["step_peak_increase_mib"],
                "grads+Adam MiB": f["expected_states_mib"],
            }
        )
    return md(rows)


def data(r: dict) -> str:
    rows = [
        {
            "builder": k,
            "median s": v["median_s"],
            "records/s": v["records_per_s"],
            "vs naive": r["ratio_vs_naive"].get(k, 1.0),
            "records/CPU-s": v["records_per_cpu_s"],
        }
        for k, v in r["results"].items()
    ]
    return md(rows) + f"\n\nLabel mismatches vs naive: {r['verification']['mismatches']}."


def cuda(r: dict) -> str:
    if not r.get("measured", True):
        return f"Not measured: {r.get('reason')}."
    rows = [
        {
            "run": k,
            "attn": f["attn_implementation"],
            "compile": f["torch_compile"],
            "tokens/s": f["tokens_per_s"],
            "TFLOPS": f["achieved_tflops"],
            "MFU": f.get("mfu"),
            "MFU causal": f.get("mfu_causal"),
            "peak GiB": f.get("peak_allocated_gib"),
        }
        for k, f in r["figures"].items()
        if isinstance(f, dict) and "tokens_per_s" in f
    ]
    return md(rows)


def startup(r: dict) -> str:
    seconds = r["figures"]["seconds"]
    torch_import = seconds["import torch"]
    return md([{"case": k, "seconds": v, "vs import torch": round(v / torch_import, 2)} for k, v in seconds.items()])


RENDER = {
    "startup": startup,
    "data": data,
    "train": train,
    "model": model,
    "generate": generate,
    "memory": memory,
    "cuda": cuda,
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", default=str(common.RESULTS_DIR))
    args = parser.parse_args(argv)
    for name, render in RENDER.items():
        path = Path(args.results) / f"{name}.json"
        if not path.is_file():
            continue
        result = json.loads(path.read_text(encoding="utf-8"))
        print(f"### {name}\n")
        if "versions" in result and "machine" in result:
            print(context(result) + "\n")
        print(render(result) + "\n")
        if result.get("targets"):
            print(targets(result) + "\n")
        for note in result.get("notes", []):
            print(f"- {note}")
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
