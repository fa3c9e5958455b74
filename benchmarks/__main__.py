"""Run the benchmark suite: ``python -m benchmarks [--quick] [--only NAME ...] [--out DIR]``.

Each benchmark is a module ``benchmarks/bench_<name>.py`` whose ``main(argv)`` writes
``<out>/<name>.json`` and returns it. They run one after the other in this process (imports
are paid once); a benchmark that fails is reported and the others still run (exit code 1).
At the end a summary table lists every target, its measured value and whether it was met,
and ``<out>/summary.json`` indexes the run.

    python -m benchmarks                    # default sizes: 10-15 minutes on 2 CPU cores
    python -m benchmarks --quick            # toy sizes, about a minute: checks that everything runs; its
                                            # ratios are not meaningful (targets are judged at default sizes)
    python -m benchmarks --only train model # a subset
    python -m benchmarks.bench_train --help # one benchmark, all of its options
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
import traceback
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import common  # noqa: E402

# In the order they run. bench_data and bench_server have their own options (--output FILE, no --quick):
# the runner translates. A module that is not there (bench_server is optional) is skipped.
BENCHMARKS = ("startup", "data", "train", "grpo", "model", "generate", "gguf", "memory", "server", "cuda")
OWN_OPTIONS = {  # name -> (arguments for --quick)
    "data": ["--records", "60", "--repeats", "1", "--warmup-records", "10", "--num-proc", "1"],
    "server": ["--requests", "4", "--max-tokens", "8"],
}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="toy sizes for every benchmark (smoke run)")
    parser.add_argument(
        "--only", nargs="+", choices=BENCHMARKS, metavar="NAME", help=f"run only these ({', '.join(BENCHMARKS)})"
    )
    parser.add_argument("--out", default=str(common.RESULTS_DIR), help="folder for the JSON results")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads for every benchmark (default 1)")
    return parser.parse_args(argv)


def benchmark_argv(name: str, args) -> list[str]:
    out = Path(args.out)
    if name in OWN_OPTIONS:
        return ["--output", str(out / f"{name}.json")] + (OWN_OPTIONS[name] if args.quick else [])
    argv = ["--out", str(out)] + (["--quick"] if args.quick else [])
    if args.threads is not None:
        argv += ["--threads", str(args.threads)]
    return argv


def summary_rows(name: str, result: dict | None, error: str | None) -> list[dict]:
    if error:
        return [{"benchmark": name, "target": "-", "measured": None, "threshold": None, "met": f"ERROR: {error}"}]
    if result.get("measured") is False:
        return [
            {
                "benchmark": name,
                "target": "-",
                "measured": None,
                "threshold": None,
                "met": f"not measured: {result.get('reason')}",
            }
        ]
    if name == "data":  # no target: report the builder ratios
        return [
            {"benchmark": name, "target": f"{k} vs naive records/s", "measured": v, "threshold": None, "met": "-"}
            for k, v in result.get("ratio_vs_naive", {}).items()
        ]
    if name == "server" and isinstance(result.get("results"), dict):  # its own format: report the failures
        failed = result["results"].get("failed")
        return [
            {
                "benchmark": name,
                "target": "failed requests",
                "measured": failed,
                "threshold": "== 0",
                "met": "-" if failed is None else ("yes" if failed == 0 else "NO"),
            }
        ]
    if not result.get("targets"):
        return [{"benchmark": name, "target": "(no target)", "measured": None, "threshold": None, "met": "-"}]
    return [
        {
            "benchmark": name,
            "target": t["name"],
            "measured": t["measured"],
            "threshold": (">= " if t["higher_is_better"] else "<= ") + str(t["threshold"]),
            "met": {True: "yes", False: "NO", None: "-"}[t["target_met"]],
        }
        for t in result["targets"]
    ]


def main(argv=None) -> int:
    args = parse_args(argv)
    names = [
        n
        for n in BENCHMARKS
        if (not args.only or n in args.only) and (Path(__file__).with_name(f"bench_{n}.py")).is_file()
    ]
    Path(args.out).mkdir(parents=True, exist_ok=True)
    rows, index, failed = [], {}, False
    for name in names:
        print(f"\n=== {name} ===", flush=True)
        start, result, error = time.perf_counter(), None, None
        try:
            module = importlib.import_module(f"benchmarks.bench_{name}")
            result = module.main(benchmark_argv(name, args))
        except Exception as exc:  # keep going: one broken benchmark must not hide the others
            traceback.print_exc()
            error, failed = f"{type(exc).__name__}: {exc}".splitlines()[0][:200], True
        seconds = round(time.perf_counter() - start, 1)
        index[name] = {
            "seconds": seconds,
            "error": error,
            "file": str(Path(args.out) / f"{name}.json"),
            "target_met": None if result is None else result.get("target_met"),
            "measured": None if result is None else result.get("measured", True),
        }
        rows += summary_rows(name, result, error)

    summary = {
        "quick": args.quick,
        "benchmarks": index,
        "machine": common.machine(),
        "note": "toy sizes: targets are judged at default sizes only" if args.quick else None,
        "load_average_end": common.load_average(),
    }
    (Path(args.out) / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    print("\n=== summary ===")
    print(common.table(rows, ["benchmark", "target", "measured", "threshold", "met"]))
    print("seconds: " + ", ".join(f"{n} {v['seconds']}" for n, v in index.items()))
    print(
        f"load average now {common.load_average()} on {common.machine()['cpus_available']} CPUs "
        "(ratios are interleaved in-process; absolute figures depend on the load)"
    )
    if args.quick:
        print("--quick: toy sizes; these ratios only show that everything runs (targets are judged at default sizes)")
    print(f"results in {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
