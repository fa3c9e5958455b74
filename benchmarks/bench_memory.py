"""Memory of one training step: peak RSS on CPU, peak allocated on CUDA, per size and batch.

Each configuration runs in its own fresh subprocess (``python -m benchmarks.bench_memory
--child JSON``) so that one run's allocator caches and freed-but-kept pages do not inflate
the next. A child builds the model (ours, or the Llama / Qwen3 class of the same shapes,
built directly so that no MiniMind is allocated in its process), an AdamW optimiser and one
batch, then runs ONE training step (forward with labels, backward, optimiser step - the step
that first allocates gradients and the Adam moments).

CPU figures (Linux ``/proc/self/status``; ``ru_maxrss`` elsewhere):

* ``rss_before_step_mib``: resident set after imports, model, optimiser and batch;
* ``peak_rss_mib``: the high-water mark during the step (the mark is reset just before it
  via ``/proc/self/clear_refs``, so model construction does not count);
* ``step_peak_increase_mib`` = peak - before: activations, gradients, Adam moments, temporaries;
* ``expected_states_mib``: gradients (4 B) + Adam moments (8 B) per parameter, for scale.

CUDA figures: ``torch.cuda.max_memory_allocated`` over the step (bf16 autocast, fp32 master
weights as Trainer's ``bf16=True``), with the memory held before it.

    python -m benchmarks.bench_memory [--quick] [--configs NAME ...]
"""

from __future__ import annotations

import json
import resource
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import common  # noqa: E402

MIB = 2**20

# name -> (preset, overrides, batch, seq, model kind, gradient checkpointing)
CONFIGS = {
    "tiny_b8x256": ("tiny", {}, 8, 256, "ours", False),
    "minimind2-small_b4x256": ("minimind2-small", {}, 4, 256, "ours", False),
    "minimind2-small_b4x256_llama": ("minimind2-small", {}, 4, 256, "oracle", False),
    "minimind-3_b2x256": ("minimind-3", {}, 2, 256, "ours", False),
    "minimind-3_b2x256_qwen3": ("minimind-3", {}, 2, 256, "oracle", False),
    "minimind-3_b2x256_ckpt": ("minimind-3", {}, 2, 256, "ours", True),
}
QUICK_CONFIGS = {
    "tiny_b2x64": ("tiny", {}, 2, 64, "ours", False),
    "tiny_b2x64_llama": ("tiny", {}, 2, 64, "oracle", False),
}
CUDA_CONFIGS = {
    "minimind-3_b16x1024": ("minimind-3", {}, 16, 1024, "ours", False),
    "minimind-3_b16x1024_qwen3": ("minimind-3", {}, 16, 1024, "oracle", False),
    "minimind-3_b16x1024_ckpt": ("minimind-3", {}, 16, 1024, "ours", True),
    "minimind2_b16x1024": ("minimind2", {}, 16, 1024, "ours", False),
}


def parse_args(argv=None):
    parser = common.base_parser("memory", __doc__)
    parser.add_argument(
        "--configs", nargs="+", default=None, help=f"names from {sorted({**CONFIGS, **QUICK_CONFIGS, **CUDA_CONFIGS})}"
    )
    parser.add_argument("--child", default=None, help=argparse_hidden())
    args = parser.parse_args(argv)
    if args.configs is None:
        args.configs = list(QUICK_CONFIGS if args.quick else CUDA_CONFIGS if cuda_available() else CONFIGS)
    return args


def argparse_hidden():
    import argparse

    return argparse.SUPPRESS


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


# ----------------------------------------------------------------------------- child


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="utf-8") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    """Linux: writing 5 to clear_refs resets the VmHWM high-water mark to the current RSS."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="utf-8") as f:
            f.write("5")
        return True
    except OSError:
        return False


def child(spec: dict) -> dict:
    import torch

    common.quiet_libraries()
    torch.set_num_threads(max(1, spec["threads"]))
    from minimind_hf import preset_config

    preset, overrides, batch, seq, kind, ckpt = spec["config"]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    config = preset_config(preset, **overrides)
    if kind == "oracle":  # built directly (same shapes, its own init): no MiniMind allocated in this process
        from transformers import LlamaForCausalLM, Qwen3ForCausalLM

        from minimind_hf.export.native import native_config

        native = native_config(config)
        native._attn_implementation = "sdpa"
        torch.manual_seed(spec["seed"])
        model = {"llama": LlamaForCausalLM, "qwen3": Qwen3ForCausalLM}[native.model_type](native)
    else:
        model = common.fresh_model(config, seed=spec["seed"])
    params = common.count_parameters(model)
    model = model.to(device).train()
    if ckpt:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    ids = torch.randint(0, config.vocab_size, (batch, seq), generator=torch.Generator().manual_seed(spec["seed"])).to(
        device
    )

    out = {
        "name": spec["name"],
        "preset": preset,
        "model": type(model).__name__,
        "batch": batch,
        "seq": seq,
        "gradient_checkpointing": ckpt,
        "device": device,
        "parameters": params["total"],
        "expected_states_mib": round(params["total"] * 12 / MIB, 1),
    }
    if device == "cuda":
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated()
        out.update(
            allocated_before_step_mib=round(before / MIB, 1),
            peak_allocated_mib=round(peak / MIB, 1),
            step_peak_increase_mib=round((peak - before) / MIB, 1),
            peak_reserved_mib=round(torch.cuda.max_memory_reserved() / MIB, 1),
        )
        return out

    rss_before = _status_kib("VmRSS")
    reset = _reset_peak_rss()
    loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    optimizer.step()
    peak_kib = _status_kib("VmHWM") if reset else None
    if peak_kib is None:  # no resettable mark: the lifetime peak (includes model construction)
        peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out.update(
        rss_before_step_mib=round(rss_before / 1024, 1) if rss_before else None,
        peak_rss_mib=round(peak_kib / 1024, 1),
        step_peak_increase_mib=round((peak_kib - rss_before) / 1024, 1) if rss_before else None,
        peak_reset_before_step=reset,
        loss=round(loss.item(), 4),
    )
    return out


def run_child(name: str, config: tuple, args) -> dict:
    spec = {"name": name, "config": config, "seed": args.seed, "threads": args.threads}
    return common.run_child("benchmarks.bench_memory", spec, f"memory child {name}", 900)


# ----------------------------------------------------------------------------- parent


@common.restores_globals
def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.child:
        print(json.dumps(child(json.loads(args.child))), flush=True)
        return {}
    common.setup(args)
    import torch

    table = {**CONFIGS, **QUICK_CONFIGS, **CUDA_CONFIGS}
    unknown = [c for c in args.configs if c not in table]
    if unknown:
        raise SystemExit(f"unknown memory config(s) {unknown}; choose from {sorted(table)}")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    result = common.Result(
        "memory",
        f"one training step (fwd+bwd+AdamW), fresh process per config: "
        f"{'peak allocated on CUDA' if device == 'cuda' else 'peak RSS on CPU'}",
        {
            "configs": {c: table[c] for c in args.configs},
            "device": device,
            "threads": args.threads,
            "quick": args.quick,
            "seed": args.seed,
        },
    )
    rows = []
    for name in args.configs:
        fig = run_child(name, table[name], args)
        result["figures"][name] = fig
        key = "peak_allocated_mib" if device == "cuda" else "peak_rss_mib"
    # ours vs oracle at the same size, when both ran
    key = "peak_allocated_mib" if device == "cuda" else "peak_rss_mib"
    for name, fig in result["figures"].items():
        for suffix in ("_llama", "_qwen3"):
            theirs = result["figures"].get(name + suffix)
            if theirs:
                fig["peak_vs_oracle"] = round(fig[key] / theirs[key], 4)
                if fig["step_peak_increase_mib"] and theirs["step_peak_increase_mib"]:
                    fig["step_increase_vs_oracle"] = round(
                        fig["step_peak_increase_mib"] / theirs["step_peak_increase_mib"], 4
                    )
    for name in args.configs:
        fig = result["figures"][name]
        rows.append(
            {
                "config": name,
                "model": fig["model"],
                "params M": round(fig["parameters"] / 1e6, 2),
                "batch x seq": f"{fig['batch']}x{fig['seq']}",
                "peak MiB": fig[key],
                "vs oracle": fig.get("peak_vs_oracle"),
                "step increase MiB": fig["step_peak_increase_mib"],
                "grads+Adam MiB": fig["expected_states_mib"],
            }
        )
    if device == "cpu":
        result["figures"]["cuda"] = "not measured: no CUDA device"
    result.note(
        "no memory target is set; ours vs oracle (same shapes and batch, separate processes) is context: "
        "compare peak_rss_mib / peak_vs_oracle"
    )
    result.note(
        "RSS includes the Python/torch/transformers runtime (~hundreds of MiB); step_peak_increase_mib isolates "
        "the step itself"
    )
    return common.finish(result, args, rows)


if __name__ == "__main__":
    main()
