"""What every benchmark shares: the machine record, the JSON result, interleaved timing,
oracle models with identical weights, and the summary table.

A result file (``benchmarks/results/<name>.json``) always has::

    benchmark, description, measured, reason (when not measured), machine, versions, config,
    figures, targets [{name, metric, threshold, measured, target_met}], target_met, notes,
    load_average {start, end}, started, duration_s

``target_met`` is true when every target is met, false when one is missed, and null when
nothing was measured. Ratios are always taken from interleaved runs in the same process;
absolute figures are context only (the machine may be shared: see ``load_average``).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import itertools
import json
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

RESULTS_DIR = Path(__file__).resolve().parent / "results"
REPO_ROOT = Path(__file__).resolve().parent.parent

if str(REPO_ROOT) not in sys.path:  # `python benchmarks/bench_x.py` without an installed package
    sys.path.insert(0, str(REPO_ROOT))


# ----------------------------------------------------------------------------- machine


def load_average() -> list[float] | None:
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cuda_devices() -> list[dict]:
    import torch

    if not torch.cuda.is_available():
        return []
    out = []
    for i in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(i)
        out.append(
            {
                "index": i,
                "name": props.name,
                "capability": f"{props.major}.{props.minor}",
                "memory_gib": round(props.total_memory / 2**30, 1),
                "multiprocessors": props.multi_processor_count,
            }
        )
    return out


def machine() -> dict:
    import torch

    info = {
        "platform": platform.platform(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_available": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average": load_average(),
        "cuda": cuda_devices() or None,
    }
    try:
        import psutil

        info["memory_gib"] = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        pass
    return info


PACKAGES = ("minimind-hf", "torch", "transformers", "datasets", "trl", "accelerate", "tokenizers", "flash-attn")


def versions(packages: tuple[str, ...] = PACKAGES, cuda_runtime: bool = True) -> dict:
    """Python and each of ``packages`` (None when not installed), in that order; then torch's
    CUDA runtime unless ``cuda_runtime`` is false (that one imports torch)."""
    import importlib.metadata as metadata

    out = {"python": platform.python_version()}
    for name in packages:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    if cuda_runtime:
        import torch

        out["cuda_runtime"] = torch.version.cuda
    return out


def quiet_libraries() -> None:
    """No progress bars or info chatter: the summary table is the output."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    import datasets
    import transformers

    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


# ----------------------------------------------------------------------------- arguments + result


def base_parser(name: str, doc: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"python -m benchmarks.bench_{name}", description=doc.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="toy sizes (seconds): for smoke tests")
    parser.add_argument("--out", default=str(RESULTS_DIR), help="folder for <name>.json (default benchmarks/results)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--clock",
        default="auto",
        choices=["auto", "cpu", "wall"],
        help="what ratios are computed from: process CPU time or wall time (auto: cpu with one "
        "CPU thread and no CUDA, else wall); both are recorded",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (default 1: on a shared machine OpenMP threads that wait for a busy "
        "core make timings erratic; 0 = torch's default)",
    )
    return parser


def round_options(
    parser: argparse.ArgumentParser, repeats: tuple[int, int], min_sample: tuple[float, float], warmup: tuple[int, int]
) -> Callable[[argparse.Namespace], argparse.Namespace]:
    """``--repeats``, ``--min-sample`` and ``--warmup`` of an ``interleaved`` timing, each given as
    (default, default with ``--quick``). Returns what fills in the defaults of parsed arguments."""

    def hint(default, quick) -> str:
        return f"(default {default})" if default == quick else f"(default {default}; quick {quick})"

    parser.add_argument("--repeats", type=int, default=None, help=f"timed rounds {hint(*repeats)}")
    parser.add_argument(
        "--min-sample",
        type=float,
        default=None,
        help=f"seconds of back-to-back calls per timed sample {hint(*min_sample)}",
    )
    parser.add_argument("--warmup", type=int, default=None, help=f"discarded rounds {hint(*warmup)}")

    def resolve(args: argparse.Namespace) -> argparse.Namespace:
        pick = 1 if args.quick else 0
        args.repeats = args.repeats or repeats[pick]
        args.min_sample = args.min_sample if args.min_sample is not None else min_sample[pick]
        args.warmup = args.warmup if args.warmup is not None else warmup[pick]
        return args

    return resolve


def restores_globals(main: Callable) -> Callable:
    """Decorate a benchmark's ``main``: whatever ``setup`` changed process-wide (torch threads,
    library verbosity and progress bars, environment) is put back when it returns, so calling
    a benchmark from tests or another program leaves that program as it was."""
    import functools

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        import datasets
        import torch
        import transformers

        env = {k: os.environ.get(k) for k in ("TOKENIZERS_PARALLELISM", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")}
        state = (
            torch.get_num_threads(),
            transformers.logging.get_verbosity(),
            transformers.utils.logging.is_progress_bar_enabled(),
            datasets.logging.get_verbosity(),
            datasets.is_progress_bar_enabled(),
        )
        try:
            return main(*args, **kwargs)
        finally:
            threads, tf_level, tf_bars, ds_level, ds_bars = state
            torch.set_num_threads(threads)
            transformers.logging.set_verbosity(tf_level)
            (
                transformers.utils.logging.enable_progress_bar
                if tf_bars
                else transformers.utils.logging.disable_progress_bar
            )()
            datasets.logging.set_verbosity(ds_level)
            (datasets.enable_progress_bars if ds_bars else datasets.disable_progress_bars)()
            for key, value in env.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

    return wrapper


def setup(args) -> None:
    """Quiet libraries, set the CPU thread count (recorded in the result's machine record)."""
    import torch

    quiet_libraries()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if args.clock == "auto":
        args.clock = "cpu" if torch.get_num_threads() == 1 and not torch.cuda.is_available() else "wall"


class Result(dict):
    """The JSON result of one benchmark, filled as it runs and written by `write`."""

    def __init__(self, name: str, description: str, config: dict):
        super().__init__(
            benchmark=name,
            description=description,
            measured=True,
            machine=machine(),
            versions=versions(),
            config=config,
            figures={},
            targets=[],
            target_met=None,
            notes=[],
            load_average={"start": load_average(), "end": None},
            started=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            duration_s=None,
        )
        self._t0 = time.perf_counter()

    def not_measured(self, reason: str) -> "Result":
        self["measured"] = False
        self["reason"] = reason
        return self

    def target(self, name: str, metric: str, threshold: float, measured: float | None, higher_is_better: bool = True):
        met = None if measured is None else (measured >= threshold if higher_is_better else measured <= threshold)
        self["targets"].append(
            {
                "name": name,
                "metric": metric,
                "threshold": threshold,
                "measured": None if measured is None else round(measured, 4),
                "higher_is_better": higher_is_better,
                "target_met": met,
            }
        )
        return met

    def note(self, text: str) -> None:
        self["notes"].append(text)

    def write(self, out_dir: str | Path) -> Path:
        checks = [t["target_met"] for t in self["targets"] if t["target_met"] is not None]
        self["target_met"] = all(checks) if checks and self["measured"] else None
        self["load_average"]["end"] = load_average()
        self["duration_s"] = round(time.perf_counter() - self._t0, 1)
        path = Path(out_dir) / f"{self['benchmark']}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self, indent=2, ensure_ascii=False, default=_json_default) + "\n", encoding="utf-8")
        return path

    def summary(self) -> str:
        head = f"[{self['benchmark']}] {self['description']}"
        if not self["measured"]:
            return f"{head}\n  not measured: {self.get('reason')}"
        lines = [head]
        for t in self["targets"]:
            verdict = {True: "MET", False: "MISSED", None: "n/a"}[t["target_met"]]
            sign = ">=" if t["higher_is_better"] else "<="
            lines.append(
                f"  target {t['name']}: {t['metric']} {sign} {t['threshold']} -> measured {t['measured']} [{verdict}]"
            )
        lines.append(f"  load average start {self['load_average']['start']} end {self['load_average']['end']}")
        return "\n".join(lines)


def _json_default(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


def table(rows: list[dict], columns: list[str] | None = None) -> str:
    """A plain fixed-width table of dict rows (floats to 3-4 significant figures)."""
    if not rows:
        return ""
    columns = columns or list(rows[0])

    def fmt(v):
        if isinstance(v, float):
            return f"{v:.4g}" if abs(v) < 1000 else f"{v:,.0f}"
        return "-" if v is None else str(v)

    cells = [[fmt(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.rjust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(v.rjust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


def options(args) -> dict:
    """Every command-line option but ``--out``: what a result records as its ``config``."""
    return {k: v for k, v in vars(args).items() if k != "out"}


def start(args, name: str, description: str, **config) -> Result:
    """``setup(args)``, then the benchmark's Result, its ``config`` = ``options(args)`` (taken after
    setup, so ``--clock auto`` is recorded as resolved) followed by ``config``."""
    setup(args)
    return Result(name, description, {**options(args), **config})


def finish(result: Result, args, rows: list[dict] | None = None) -> Result:
    """The end of every benchmark's ``main``: write the result into ``args.out``, print the table of
    ``rows`` (when given), the summary and the file written; returns ``result``."""
    path = result.write(args.out)
    if rows is not None:
        print(table(rows))
    print(result.summary())
    print(f"wrote {path}")
    return result


# ----------------------------------------------------------------------------- timing


def median(values: list[float]) -> float:
    return statistics.median(values)


def sync() -> None:
    import torch

    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def timed(fn: Callable[[], object], inner: int = 1) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) per call of ``fn``, averaged over ``inner`` calls."""
    sync()
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(inner):
        fn()
    sync()
    return (time.perf_counter() - wall) / inner, (time.process_time() - cpu) / inner


class Timings(dict):
    """name -> seconds per call on the chosen clock, one entry per round; ``wall`` and ``cpu``
    hold both clocks; ``calls_per_sample`` calls were timed together."""

    clock = "wall"
    calls_per_sample = 1

    def __init__(self, names, clock):
        super().__init__({name: [] for name in names})
        self.clock = clock
        self.wall = {name: [] for name in names}
        self.cpu = {name: [] for name in names}


def cycle(fns: list[Callable[[], object]]) -> Callable[[], object]:
    """One callable that runs ``fns`` in turn, call after call (several copies of a model)."""
    it = itertools.cycle(fns)
    return lambda: next(it)()


def interleaved(
    runs: dict[str, Callable[[], object]],
    repeats: int,
    warmup: int = 1,
    min_sample_s: float = 0.0,
    clock: str = "wall",
    calls_multiple: int = 1,
) -> Timings:
    """Seconds per call of each run, interleaved so drifting load hits all alike.

    Every round runs all candidates once; the order alternates between rounds (A B, B A, ...)
    so neither side always runs right after the other. ``warmup`` rounds (at least one) are
    discarded; the last one also calibrates how many back-to-back calls make one sample of at
    least ``min_sample_s`` (the same count for every candidate), so that a call shorter than a
    scheduler time slice is not measured alone; that count is a multiple of ``calls_multiple``
    (the number of model copies a ``cycle`` goes through). ``clock`` picks what the main entries hold:
    ``wall`` (perf_counter) or ``cpu`` (this process's CPU time: with one thread on a shared
    machine it leaves out the time spent waiting for a core, which wall time cannot).
    """
    names = list(runs)
    times = Timings(names, clock)
    inner, first = calls_multiple, max(1, warmup)
    for round_ in range(first + repeats):
        order = names if round_ % 2 == 0 else names[::-1]
        current = {name: timed(runs[name], inner) for name in order}
        if round_ == first - 1 and min_sample_s > 0:
            calls = max(1, math.ceil(min_sample_s / max(1e-9, min(w for w, _ in current.values()))))
            inner = calls_multiple * math.ceil(calls / calls_multiple)
        if round_ >= first:
            for name in names:
                wall, cpu = current[name]
                times.wall[name].append(wall)
                times.cpu[name].append(cpu)
                times[name].append(cpu if clock == "cpu" else wall)
    times.calls_per_sample = inner
    return times


def paired_ratio(times: dict[str, list[float]], ours: str, theirs: str) -> float:
    """Median over rounds of theirs/ours time (>1: ours is faster). Pairing each round
    cancels load that drifts between rounds better than a ratio of medians does."""
    return median([t / o for o, t in zip(times[ours], times[theirs])])


def ratio_spread(times: dict[str, list[float]], ours: str, theirs: str) -> dict:
    """The per-round ratios and their quartiles (how far a miss of a ratio target is from noise), and
    the best-of ratio (fastest oracle sample / fastest of ours: the least load-affected estimate)."""
    ratios = sorted(t / o for o, t in zip(times[ours], times[theirs]))
    if len(ratios) >= 4:
        q = statistics.quantiles(ratios, n=4)
        q1, q3 = q[0], q[2]
    else:
        q1, q3 = ratios[0], ratios[-1]
    return {
        "median": round(median(ratios), 4),
        "q1": round(q1, 4),
        "q3": round(q3, 4),
        "best_of": round(min(times[theirs]) / min(times[ours]), 4),
        "rounds": [round(r, 4) for r in ratios],
    }


def compare(times: Timings, ours: str, theirs: str, units: float) -> dict:
    """Rates (``units`` per second) of both sides on both clocks, and the paired ratio ours/theirs
    (from times: theirs_time / ours_time) on the chosen clock (``ratio``) and on the wall clock."""

    def rate(clock: dict, name: str) -> float:
        return round(units / median(clock[name]), 2)

    return {
        "clock": times.clock,
        "calls_per_sample": times.calls_per_sample,
        "ours_per_s": rate(times, ours),
        "theirs_per_s": rate(times, theirs),
        "ours_per_wall_s": rate(times.wall, ours),
        "theirs_per_wall_s": rate(times.wall, theirs),
        "ratio": ratio_spread(times, ours, theirs),
        "ratio_wall": ratio_spread(times.wall, ours, theirs),
        "seconds": {
            "wall": {k: [round(t, 6) for t in times.wall[k]] for k in (ours, theirs)},
            "cpu": {k: [round(t, 6) for t in times.cpu[k]] for k in (ours, theirs)},
        },
    }


def aa_verdict(ratio: float, aa: dict, threshold: float) -> str | None:
    """When a ratio misses its threshold by no more than two identical copies of our own model
    differ from each other (the A/A control), the miss is below the measurement floor."""
    floor = abs(1 - aa["median"])
    if ratio < threshold and threshold - ratio <= floor:
        return (
            f"missed by {threshold - ratio:.4f}, no more than the A/A control (our model vs separately allocated "
            f"copies of itself: ratio {aa['median']}) differs from 1: below this machine's measurement floor"
        )
    return None


def within_noise(spread: dict, threshold: float) -> bool:
    """True when the threshold lies inside the interquartile range of the per-round ratios."""
    return spread["q1"] <= threshold <= spread["q3"]


# ----------------------------------------------------------------------------- profiling


def module_calls(fn: Callable[[], object]) -> dict[str, int]:
    """How many times each nn.Module class is called during one ``fn()``: Python-level work that
    an op profile does not show (each call costs a few microseconds even when it does nothing)."""
    import collections

    import torch

    counts = collections.Counter()

    def name(module) -> str:  # MiniMindMLP / LlamaMLP / Qwen3MLP -> *MLP, so the two sides line up
        cls = type(module).__name__
        for prefix in ("MiniMind", "Qwen3Moe", "Qwen3", "Llama"):
            if cls.startswith(prefix) and len(cls) > len(prefix):
                return "*" + cls[len(prefix) :]
        return cls

    handle = torch.nn.modules.module.register_module_forward_pre_hook(
        lambda module, args: counts.update([name(module)])
    )
    try:
        fn()
    finally:
        handle.remove()
    return dict(counts)


@contextlib.contextmanager
def quiet_stderr():
    """Silence file descriptor 2 (torch.profiler's C++ start/stop lines) for the block."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def profile_pair(ours: Callable[[], object], theirs: Callable[[], object], steps: int = 3, top: int = 8) -> dict:
    """torch.profiler on both sides: operator time and counts, module calls, and what differs.

    Used when a ratio target is missed, to say whether the gap is in the kernels (different or
    slower aten ops) or in Python (more module calls / framework overhead around the same ops).
    """
    from torch.profiler import ProfilerActivity, profile

    sides = {}
    for name, fn in (("ours", ours), ("theirs", theirs)):
        fn()  # warm
        with quiet_stderr(), profile(activities=[ProfilerActivity.CPU]) as prof:
            start = time.perf_counter()
            for _ in range(steps):
                fn()
            wall = (time.perf_counter() - start) / steps
        events = {e.key: (e.count / steps, e.self_cpu_time_total / steps) for e in prof.key_averages()}
        sides[name] = {
            "wall_ms": wall * 1e3,
            "ops": events,
            "op_calls": sum(c for c, _ in events.values()),
            "op_self_ms": sum(t for _, t in events.values()) / 1e3,
            "modules": module_calls(fn),
        }
    a, b = sides["ours"], sides["theirs"]
    keys = set(a["ops"]) | set(b["ops"])
    diff = []
    for key in keys:
        (ca, ta), (cb, tb) = a["ops"].get(key, (0, 0.0)), b["ops"].get(key, (0, 0.0))
        diff.append(
            {
                "op": key,
                "calls_ours": round(ca, 1),
                "calls_theirs": round(cb, 1),
                "self_ms_ours": round(ta / 1e3, 3),
                "self_ms_theirs": round(tb / 1e3, 3),
                "delta_ms": round((ta - tb) / 1e3, 3),
            }
        )
    diff.sort(key=lambda d: -abs(d["delta_ms"]))
    modules = sorted(set(a["modules"]) | set(b["modules"]))
    module_delta = {m: a["modules"].get(m, 0) - b["modules"].get(m, 0) for m in modules}
    return {
        "steps": steps,
        "ours": {k: round(v, 3) if isinstance(v, float) else v for k, v in a.items() if k != "ops"},
        "theirs": {k: round(v, 3) if isinstance(v, float) else v for k, v in b.items() if k != "ops"},
        "top_op_differences": diff[:top],
        "ops_with_different_call_counts": [d for d in diff if d["calls_ours"] != d["calls_theirs"]][:top],
        "module_calls_ours_minus_theirs": {m: d for m, d in module_delta.items() if d},
        "module_calls_total": {"ours": sum(a["modules"].values()), "theirs": sum(b["modules"].values())},
    }


def explain_profile(prof: dict) -> str:
    """One sentence from a profile_pair result: where the extra time of ours goes."""
    a, b = prof["ours"], prof["theirs"]
    wall, ops = a["wall_ms"] - b["wall_ms"], a["op_self_ms"] - b["op_self_ms"]
    extra = ", ".join(f"{m} {d:+d}" for m, d in prof["module_calls_ours_minus_theirs"].items()) or "none"
    different = [d["op"] for d in prof["ops_with_different_call_counts"]]
    hint = ""
    if {"Dropout", "Identity"} & set(prof["module_calls_ours_minus_theirs"]):
        hint = (
            "; the extra Dropout (p=0: a no-op) and Identity (q/k norm off) module calls are pure Python "
            "overhead that is ours to remove in modeling_minimind.py (call them only when dropout > 0 / "
            "qk_norm): see docs/PERFORMANCE.md, 'Recommended model-code change'"
        )
    return (
        f"profile ({prof['steps']} steps, profiler on): wall {a['wall_ms']:.2f} vs {b['wall_ms']:.2f} ms per call "
        f"({wall:+.2f} ms), operator self time {a['op_self_ms']:.2f} vs {b['op_self_ms']:.2f} ms ({ops:+.2f} ms); "
        f"module calls {prof['module_calls_total']['ours']} vs {prof['module_calls_total']['theirs']} "
        f"(ours minus theirs: {extra}); ops with different call counts: {', '.join(different) or 'none'}" + hint
    )


# ----------------------------------------------------------------------------- models


def fresh_model(config, seed: int = 0, attn: str = "sdpa"):
    """A MiniMind with the usual initialisation, reproducible from ``seed``."""
    import torch

    from minimind_hf import MiniMindForCausalLM

    torch.manual_seed(seed)
    model = MiniMindForCausalLM(config)
    model.set_attn_implementation(attn)
    return model


def oracle_for(model, attn: str = "sdpa"):
    """transformers' own Llama / Qwen3 class holding exactly the weights of ``model``."""
    from transformers import LlamaForCausalLM, Qwen3ForCausalLM, Qwen3MoeForCausalLM

    from minimind_hf.export.native import native_config, to_native_state_dict

    config = native_config(model.config)
    cls = {"llama": LlamaForCausalLM, "qwen3": Qwen3ForCausalLM, "qwen3_moe": Qwen3MoeForCausalLM}[config.model_type]
    config._attn_implementation = attn
    oracle = cls(config)
    missing, unexpected = oracle.load_state_dict(to_native_state_dict(model.state_dict(), model.config), strict=False)
    if unexpected or set(missing) - {"lm_head.weight"}:
        raise RuntimeError(f"oracle weights do not map: missing {missing}, unexpected {unexpected}")
    oracle.tie_weights()
    return oracle.to(next(model.parameters()).device).train(model.training)


def count_parameters(model) -> dict:
    """Parameters, with tied weights once; the non-embedding count excludes the token embedding."""
    seen, total = set(), 0
    for p in model.parameters():
        if id(p) not in seen:
            seen.add(id(p))
            total += p.numel()
    embed = model.get_input_embeddings().weight.numel()
    return {"total": total, "embedding": embed, "non_embedding": total - embed}


# ----------------------------------------------------------------------------- training runs


def run_recipe(recipe: str | Path, overrides: dict, keep_output: bool = False) -> dict:
    """Run a recipe in this process through ``minimind_hf.cli.train.main`` (the code path of
    ``scripts/train.py``), with ``--key value`` overrides; output_dir must be among them.

    Returns ``{"state": trainer_state.json, "run_info": run_info.json, "log": captured output}``.
    The run's own printing is captured (and shown only when it fails).
    """
    import io
    import shutil

    from minimind_hf.cli.train import main as train_main

    argv = [str(recipe)]
    for key, value in overrides.items():
        typed = value is None or isinstance(value, (bool, list, dict))  # YAML reads JSON's spelling
        argv += [f"--{key}", json.dumps(value) if typed else str(value)]
    log = io.StringIO()
    with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        code = train_main(argv)
    if code != 0:
        raise RuntimeError(f"{recipe} failed with code {code}:\n{log.getvalue()[-3000:]}")
    output_dir = Path(overrides["output_dir"])
    out = {
        "state": json.loads((output_dir / "trainer_state.json").read_text()),
        "run_info": json.loads((output_dir / "run_info.json").read_text()),
        "log": log.getvalue(),
    }
    if not keep_output:
        shutil.rmtree(output_dir, ignore_errors=True)
    return out


def train_summary(state: dict) -> dict:
    """The final Trainer log entry (train_runtime, num_input_tokens_seen, ...)."""
    return next(h for h in reversed(state["log_history"]) if "train_runtime" in h)


# ----------------------------------------------------------------------------- trainer probes


@contextlib.contextmanager
def step_clock():
    """Observe every Trainer built inside the block: (time, tokens seen, step) at each step end.

    The callback goes into transformers' DEFAULT_CALLBACKS for the duration, so runs that go
    through our unmodified training entry point can be timed step by step (the CUDA queue is
    synchronised at each mark, so a mark is the moment the step's work finished).
    """
    import transformers.trainer as trainer_module
    from transformers import TrainerCallback

    class StepClock(TrainerCallback):
        def __init__(self):
            self.marks: list[tuple[float, float, int, int]] = []  # wall, cpu, tokens seen, step

        def mark(self, state):
            sync()
            self.marks.append(
                (time.perf_counter(), time.process_time(), state.num_input_tokens_seen, state.global_step)
            )

        def on_train_begin(self, args, state, control, **kwargs):
            self.marks.clear()
            self.mark(state)

        def on_step_end(self, args, state, control, **kwargs):
            self.mark(state)

        def steady(self, skip: int = 0) -> dict:
            """Steps, tokens, wall and CPU seconds after the first ``skip`` steps (compilation, warm-up)."""
            if len(self.marks) <= skip + 1:
                raise RuntimeError(f"only {len(self.marks) - 1} steps recorded; need more than {skip}")
            (t0, c0, n0, s0), (t1, c1, n1, s1) = self.marks[skip], self.marks[-1]
            step_times = [b[0] - a[0] for a, b in zip(self.marks[skip:], self.marks[skip + 1 :])]
            return {
                "steps": s1 - s0,
                "tokens": n1 - n0,
                "seconds": t1 - t0,
                "cpu_seconds": c1 - c0,
                "tokens_per_s": (n1 - n0) / (t1 - t0),
                "median_step_s": median(step_times),
            }

    clock = StepClock()
    trainer_module.DEFAULT_CALLBACKS.append(clock)
    try:
        yield clock
    finally:
        trainer_module.DEFAULT_CALLBACKS.remove(clock)


@contextlib.contextmanager
def temporary_env(**values):
    old = {k: os.environ.get(k) for k in values}
    os.environ.update({k: str(v) for k, v in values.items()})
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def save_fresh_model(folder, config, tokenizer, seed: int, preset: str) -> dict:
    """Save a freshly initialised MiniMind of `config` with `tokenizer` to `folder`; returns its
    description for a result's config (shape and parameter counts)."""
    model = fresh_model(config, seed=seed)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return {
        "preset": preset,
        "hidden_size": config.hidden_size,
        "layers": config.num_hidden_layers,
        "heads": f"{config.num_attention_heads}/{config.num_key_value_heads}",
        "intermediate_size": config.intermediate_size,
        "vocab_size": config.vocab_size,
        "parameters": count_parameters(model),
    }


def run_child(module: str, spec: dict, label: str, timeout: float, env: dict | None = None) -> dict:
    """`python -m MODULE --child SPEC` in a fresh process (the repository on its path, `env` added);
    returns the last JSON object it printed."""
    import subprocess

    child_env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
        **(env or {}),
    }
    proc = subprocess.run(
        [sys.executable, "-m", module, "--child", json.dumps(spec)],
        cwd=REPO_ROOT,
        env=child_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{label} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1])
