"""Start-up time of the training CLI: `--help`, a bad recipe, a bad value in the second pass.

Each case is a fresh ``python`` process (wall clock, median over ``--repeats``, cases
interleaved) running what a user types - ``scripts/train.py --help``, ``scripts/train.py
recipes/pretrain.yaml --train_files nope.jsonl`` - next to two references measured in the same
rounds: ``python -c pass`` (the interpreter alone) and ``python -c "import torch"`` (what any
program that trains pays before its first line). Targets: ``--help`` and a bad recipe (first
pass: our keys, files, starting folder) answer in under 2 s and faster than importing torch.
A mistake in a trainer argument (second pass) needs transformers' TrainingArguments, so it
costs the torch import: recorded as context.

    python -m benchmarks.bench_startup [--quick] [--repeats 5]
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import common  # noqa: E402

TARGET_SECONDS = 2.0
TRAIN = str(common.REPO_ROOT / "scripts" / "train.py")
PRETRAIN = str(common.REPO_ROOT / "recipes" / "pretrain.yaml")
CASES = {  # name -> (argv after the interpreter, expected exit code)
    "python -c pass": (["-c", "pass"], 0),
    "import torch": (["-c", "import torch"], 0),
    "train.py --help": ([TRAIN, "--help"], 0),
    "bad recipe (missing data file)": ([TRAIN, PRETRAIN, "--train_files", "nope.jsonl"], 2),
    "bad trainer value (second pass)": ([TRAIN, PRETRAIN, "--learning_rate", "fast"], 2),
}


def parse_args(argv=None):
    parser = common.base_parser("startup", __doc__)
    parser.add_argument("--repeats", type=int, default=None, help="rounds (default 5; quick 1)")
    args = parser.parse_args(argv)
    args.repeats = args.repeats or (1 if args.quick else 5)
    return args


def run_case(argv: list[str], expected: int, cwd: str) -> float:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, *argv], cwd=cwd, capture_output=True, text=True, timeout=300)
    seconds = time.perf_counter() - start
    if done.returncode != expected:
        raise RuntimeError(f"{argv}: exit {done.returncode}, expected {expected}: {done.stderr[-2000:]}")
    return seconds


@common.restores_globals
def main(argv=None) -> dict:
    args = parse_args(argv)
    result = common.start(args, "startup", "Start-up time of scripts/train.py (fresh processes, wall clock)")
    times = {name: [] for name in CASES}
    with tempfile.TemporaryDirectory() as cwd:  # no outputs/ here: the recipes' folders do not exist
        for name, (case, expected) in CASES.items():  # warm-up: the page cache, .pyc files
            run_case(case, expected, cwd)
        for repeat in range(args.repeats):
            order = list(CASES) if repeat % 2 == 0 else list(CASES)[::-1]
            for name in order:
                times[name].append(run_case(*CASES[name], cwd))
    medians = {name: round(common.median(values), 3) for name, values in times.items()}
    result["figures"] = {"seconds": medians, "all_seconds": times}
    torch_import = medians["import torch"]
    for name in ("train.py --help", "bad recipe (missing data file)"):
        result.target(f"{name}: seconds", f"{name}, wall seconds", TARGET_SECONDS, medians[name], False)
        result.target(f"{name}: vs import torch", f"{name} / import torch", 1.0, medians[name] / torch_import, False)
    result.note(
        "wall clock of whole processes, median of interleaved rounds; the second-pass case imports "
        "transformers' TrainingArguments (torch) by design"
    )
    rows = [{"case": name, "seconds": s, "vs import torch": round(s / torch_import, 2)} for name, s in medians.items()]
    return common.finish(result, args, rows)


if __name__ == "__main__":
    main()
