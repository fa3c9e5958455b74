"""CUDA training throughput and MFU of minimind-3: bf16 pretraining and SFT, packed rows.

Runs only when ``torch.cuda.is_available()``; otherwise it writes a result with
``"measured": false, "reason": "no CUDA device"`` (CI and CPU machines). On a GPU every run
goes through the real entry point (``minimind_hf.cli.train.main`` = ``scripts/train.py``):

* pretrain: ``recipes/pretrain.yaml --preset minimind-3`` on the embedded corpus, packed
  (documents split across full rows), ``--max-length`` tokens per row;
* sft: ``recipes/sft.yaml`` from that fresh pretrained folder, on the skewed chats of
  ``bench_train`` (many short, a long tail), packed;

bf16 (the recipe default on a bf16 GPU). The runs: pretraining eager with every attention
kernel available (``sdpa``: a block-diagonal mask over each packed row, which rules out SDPA's
flash kernel; ``document_sdpa``: SDPA per packed document, the CPU default;
``flash_attention_2`` when ``flash_attn`` is installed: padding-free varlen from the packed
position_ids; ``flex_attention``: a document BlockMask), then with the best kernel: pretraining
with ``torch_compile``, SFT eager and compiled, and a batch-size sweep (``--sweep``, up to the
memory limit). ``--no-compile`` skips the compiled runs. Liger kernels are not measured:
liger-kernel patches the model types it knows (llama, qwen3, ...), not ``minimind``.

Throughput is steady state: a callback marks the end of every step (after a CUDA sync); the
first ``--warmup-steps`` (compilation, allocator growth) are dropped. Tokens are the
non-padding input tokens (Trainer's ``num_input_tokens_seen`` with ``non_padding``).

MFU = model FLOPs per token x tokens/s / device peak, with (PaLM, Chowdhery et al. 2022, app. B)

    FLOPs/token = 6 * N + 12 * n_layers * n_heads * head_dim * T

N = non-embedding parameters + the output projection (vocab x hidden: tied to the embedding,
but a real matmul), T = row length (``--max-length``). The attention term counts the full
T x T score matrix (the PaLM convention); ``mfu_causal`` halves it (only the causal half is
computed) for reference. Peaks are dense bf16 tensor-core figures from NVIDIA data sheets
(H100 SXM 989.4 TFLOPS, H100 PCIe 756, H100 NVL 835, H200 989.4, A100 312 ...);
``--peak-tflops`` overrides. Target: MFU >= 40% on an H100.

With more than one GPU it also compares single-GPU against DeepSpeed ZeRO-2 through
``accelerate launch --config_file accelerate_configs/zero2.yaml`` (same recipe and steps).

    python -m benchmarks.bench_cuda [--quick] [--no-compile] [--batch 32] [--max-length 1024] [--steps 40]
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import common  # noqa: E402

TARGET_MFU = 0.40
ATTENTION_KERNELS = ("sdpa", "document_sdpa", "flash_attention_2", "flex_attention")
# Dense (no sparsity) bf16 tensor-core peaks, TFLOPS, by a substring of the device name; first match wins.
PEAK_TFLOPS = (
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H100", 989.4),
    ("H200", 989.4),
    ("H800", 989.4),
    ("H20", 148.0),
    ("GH200", 989.4),
    ("B200", 2250.0),
    ("A100", 312.0),
    ("A800", 312.0),
    ("L40S", 362.1),
    ("L40", 181.0),
    ("L4", 121.0),
    ("A10G", 70.0),
    ("A10", 125.0),
    ("RTX 4090", 165.2),
    ("RTX 3090", 71.0),
)


def parse_args(argv=None):
    parser = common.base_parser("cuda", __doc__)
    parser.add_argument("--stages", nargs="+", default=["pretrain", "sft"], choices=["pretrain", "sft"])
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile runs")
    parser.add_argument(
        "--attn",
        nargs="+",
        default=["auto"],
        choices=["auto", *ATTENTION_KERNELS],
        help="kernels of the pretraining comparison (auto: every one available)",
    )
    parser.add_argument(
        "--sweep", nargs="*", type=int, default=None, help="rows per step of the batch sweep (default 16 64 128)"
    )
    parser.add_argument("--batch", type=int, default=None, help="rows per step (default 32; quick 4)")
    parser.add_argument("--max-length", type=int, default=None, help="row length (default 1024; quick 256)")
    parser.add_argument("--steps", type=int, default=None, help="training steps per run (default 40; quick 6)")
    parser.add_argument(
        "--warmup-steps", type=int, default=None, help="steps left out of the rate (default 10; quick 2)"
    )
    parser.add_argument("--sft-records", type=int, default=None, help="generated SFT chats (default 20000; quick 200)")
    parser.add_argument("--peak-tflops", type=float, default=None, help="device peak (dense bf16) if not in the table")
    parser.add_argument(
        "--allow-cpu",
        action="store_true",
        help="debug only: run the same code path on CPU (no MFU); never used for reported figures",
    )
    parser.add_argument("--no-zero2", action="store_true", help="skip the multi-GPU DeepSpeed ZeRO-2 comparison")
    args = parser.parse_args(argv)
    args.batch = args.batch or (4 if args.quick else 32)
    args.max_length = args.max_length or (256 if args.quick else 1024)
    args.steps = args.steps or (6 if args.quick else 40)
    args.warmup_steps = args.warmup_steps if args.warmup_steps is not None else (2 if args.quick else 10)
    args.sft_records = args.sft_records or (200 if args.quick else 20000)
    args.sweep = args.sweep if args.sweep is not None else ([] if args.quick else [16, 64, 128])
    return args


# ----------------------------------------------------------------------------- FLOPs


def flops_per_token(config, seq_len: int) -> dict:
    """Training FLOPs per token (forward + backward), PaLM convention; see the module docstring."""
    import torch

    from minimind_hf import MiniMindForCausalLM

    with torch.device("meta"):
        params = common.count_parameters(MiniMindForCausalLM(config))
    head = config.vocab_size * config.hidden_size  # the output projection is a matmul even when tied
    n = params["non_embedding"] + head
    attention = 12 * config.num_hidden_layers * config.num_attention_heads * config.head_dim * seq_len
    return {
        "matmul_parameters": n,
        "dense_flops": 6 * n,
        "attention_flops": attention,
        "flops_per_token": 6 * n + attention,
        "flops_per_token_causal": 6 * n + attention // 2,
        "formula": "6 * (non_embedding_params + vocab*hidden) + 12 * layers * heads * head_dim * seq_len",
    }


def device_peak(name: str, override: float | None) -> tuple[float | None, str]:
    if override:
        return override, "--peak-tflops"
    for key, peak in PEAK_TFLOPS:
        if key in name:
            return peak, f"dense bf16 data-sheet peak for '{key}'"
    return None, f"unknown device {name!r}: pass --peak-tflops"


# ----------------------------------------------------------------------------- runs


def attention_kernels(requested: list[str]) -> list[str]:
    if "auto" not in requested:
        return requested
    return [k for k in ATTENTION_KERNELS if k != "flash_attention_2" or importlib.util.find_spec("flash_attn")]


def write_sft_data(path: Path, records: int, seed: int) -> str:
    from benchmarks.bench_train import skewed_sft_records

    with open(path, "w", encoding="utf-8") as f:
        for record in skewed_sft_records(records, seed):
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    return str(path)


def stage_overrides(
    stage: str,
    args,
    attn: str,
    output_dir: Path,
    model_dir: Path | None,
    sft_data: str | None,
    compile_: bool,
    batch: int | None = None,
) -> tuple[Path, dict]:
    import torch

    on_gpu = torch.cuda.is_available()
    common_keys = {
        "max_length": args.max_length,
        "packing": True,
        "per_device_train_batch_size": batch or args.batch,
        "gradient_accumulation_steps": 1,
        "max_steps": args.steps,
        "warmup_steps": 0,
        "output_dir": str(output_dir),
        "logging_steps": 10_000,
        "disable_tqdm": True,
        "include_num_input_tokens_seen": "non_padding",
        "attn_implementation": attn,
        "torch_compile": compile_,
        "seed": args.seed,
        "eval_files": [],
        "dataloader_num_workers": 2 if not args.allow_cpu else 0,
        "bf16": on_gpu and torch.cuda.is_bf16_supported(),
    }
    if stage == "pretrain":
        preset = "tiny" if args.quick else "minimind-3"
        return common.REPO_ROOT / "recipes" / "pretrain.yaml", {
            **common_keys,
            "preset": preset,
            "model_config": {"max_position_embeddings": max(2048, args.max_length)},
        }
    return common.REPO_ROOT / "recipes" / "sft.yaml", {
        **common_keys,
        "model_name_or_path": str(model_dir),
        "train_files": [sft_data],
    }


def measure(
    stage: str, args, attn: str, output_dir: Path, model_dir, sft_data, compile_: bool, peak, keep=False, batch=None
) -> dict:
    import torch

    recipe, overrides = stage_overrides(stage, args, attn, output_dir, model_dir, sft_data, compile_, batch)
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    with common.step_clock() as clock:
        run = common.run_recipe(recipe, overrides, keep_output=keep)
    steady = clock.steady(args.warmup_steps)
    from transformers import AutoConfig

    from minimind_hf import preset_config

    config = preset_config(overrides["preset"]) if stage == "pretrain" else AutoConfig.from_pretrained(model_dir)
    flops = flops_per_token(config, args.max_length)
    rate = steady["tokens_per_s"]
    fig = {
        "recipe": str(recipe.relative_to(common.REPO_ROOT)),
        "torch_compile": compile_,
        "attn_implementation": attn,
        "rows_per_step": overrides["per_device_train_batch_size"],
        "bf16": overrides["bf16"],
        "steps": run["state"]["global_step"],
        "measured_steps": steady["steps"],
        "warmup_steps": args.warmup_steps,
        "tokens_measured": steady["tokens"],
        "seconds_measured": round(steady["seconds"], 3),
        "tokens_per_s": round(rate, 1),
        "median_step_s": round(steady["median_step_s"], 4),
        "train_runtime_s": common.train_summary(run["state"])["train_runtime"],
        "flops": flops,
        "achieved_tflops": round(flops["flops_per_token"] * rate / 1e12, 2),
        "loss_first": run["run_info"]["train_loss_first"],
        "loss_last": run["run_info"]["train_loss_last"],
    }
    if peak:
        fig["mfu"] = round(flops["flops_per_token"] * rate / (peak * 1e12), 4)
        fig["mfu_causal"] = round(flops["flops_per_token_causal"] * rate / (peak * 1e12), 4)
    if torch.cuda.is_available():
        fig["peak_allocated_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    return fig


def zero2_comparison(args, attn: str, work: Path) -> dict:
    """Single GPU vs DeepSpeed ZeRO-2 on all GPUs, both launched as users launch them."""
    import torch
    import yaml

    gpus = torch.cuda.device_count()
    config = yaml.safe_load((common.REPO_ROOT / "accelerate_configs" / "zero2.yaml").read_text())
    config.update(use_cpu=False, num_processes=gpus)
    accelerate_config = work / "zero2_gpu.yaml"
    accelerate_config.write_text(yaml.safe_dump(config))
    out = {}
    for name, launcher in (
        ("single_gpu", [sys.executable, "scripts/train.py"]),
        (
            "zero2",
            [
                sys.executable,
                "-m",
                "accelerate.commands.launch",
                "--config_file",
                str(accelerate_config),
                "scripts/train.py",
            ],
        ),
    ):
        recipe, overrides = stage_overrides("pretrain", args, attn, work / f"launch_{name}", None, None, False)
        cmd = launcher + [str(recipe)]
        for key, value in overrides.items():
            cmd += [f"--{key}", json.dumps(value) if isinstance(value, (bool, list, dict)) else str(value)]
        env = {**os.environ, "CUDA_VISIBLE_DEVICES": "0"} if name == "single_gpu" else dict(os.environ)
        proc = subprocess.run(cmd, cwd=common.REPO_ROOT, env=env, capture_output=True, text=True, timeout=1800)
        if proc.returncode != 0:
            out[name] = {"error": proc.stderr[-2000:]}
            continue
        state = json.loads((Path(overrides["output_dir"]) / "trainer_state.json").read_text())
        final = common.train_summary(state)
        out[name] = {
            "gpus": 1 if name == "single_gpu" else gpus,
            "train_runtime_s": final["train_runtime"],
            "tokens": final.get("num_input_tokens_seen"),
            "tokens_per_s_incl_warmup": round(final["num_input_tokens_seen"] / final["train_runtime"], 1),
        }
    if all("tokens_per_s_incl_warmup" in out.get(k, {}) for k in ("single_gpu", "zero2")):
        out["zero2_speedup"] = round(
            out["zero2"]["tokens_per_s_incl_warmup"] / out["single_gpu"]["tokens_per_s_incl_warmup"], 3
        )
    out["note"] = "whole-run rates (train_runtime, warm-up included), same per-device batch and steps"
    return out


@common.restores_globals
def main(argv=None) -> dict:
    args = parse_args(argv)
    result = common.start(args, "cuda", "bf16 pretraining + SFT of minimind-3 on CUDA: tokens/s and MFU")
    import datasets
    import torch

    if not torch.cuda.is_available() and not args.allow_cpu:
        result.not_measured("no CUDA device")
        result.note(
            "not yet measured: run `python -m benchmarks --only cuda` on a CUDA machine (target MFU >= 40% on H100)"
        )
        return common.finish(result, args)

    kernels = attention_kernels(args.attn) if torch.cuda.is_available() else ["sdpa", "document_sdpa"]
    name = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    peak, peak_source = device_peak(name, args.peak_tflops) if torch.cuda.is_available() else (None, "cpu: no MFU")
    result["figures"]["device"] = {
        "name": name,
        "peak_tflops_bf16_dense": peak,
        "peak_source": peak_source,
        "gpus": torch.cuda.device_count(),
    }
    if "flash_attention_2" not in kernels:
        result.note("flash_attn is not installed: no flash_attention_2 line")
    work = Path(tempfile.mkdtemp(prefix="bench_cuda_"))
    old_cache = datasets.config.HF_DATASETS_CACHE
    datasets.config.HF_DATASETS_CACHE = work / "hf_datasets"
    rows = []

    def record(key: str, fig: dict) -> None:
        result["figures"][key] = fig
        rows.append(
            {
                "run": key,
                "attn": fig["attn_implementation"],
                "rows": fig["rows_per_step"],
                "tokens/s": fig.get("tokens_per_s"),
                "TFLOPS": fig.get("achieved_tflops"),
                "MFU": fig.get("mfu"),
                "step s": fig.get("median_step_s"),
                "peak GiB": fig.get("peak_allocated_gib"),
            }
        )

    try:
        with common.temporary_env(MINIMIND_HF_HOME=work / "home"):
            sft_data = None
            if "sft" in args.stages:
                sft_data = write_sft_data(work / "sft_skewed.jsonl", args.sft_records, args.seed)
            # 1. pretraining, eager, every kernel; the first one's folder starts the SFT runs
            model_dir = work / "pretrain_start"
            for i, attn in enumerate(kernels):
                out = model_dir if i == 0 else work / f"pretrain_{attn}"
                fig = measure("pretrain", args, attn, out, None, None, False, peak, keep=i == 0)
                if "pretrain" in args.stages:
                    record(f"pretrain_eager_{attn}", fig)
            best = max(kernels, key=lambda k: result["figures"].get(f"pretrain_eager_{k}", {}).get("tokens_per_s", 0))
            result["figures"]["best_attention"] = best
            # 2. the best kernel: compiled pretraining, SFT eager / compiled, the batch sweep
            compiled = [False] if args.no_compile else [False, True]
            if "pretrain" in args.stages and True in compiled:
                fig = measure("pretrain", args, best, work / "pretrain_compiled", None, None, True, peak)
                record(f"pretrain_compiled_{best}", fig)
            if "sft" in args.stages:
                for compile_ in compiled:
                    out = work / f"sft_{compile_}"
                    fig = measure("sft", args, best, out, model_dir, sft_data, compile_, peak)
                    record(f"sft_{'compiled' if compile_ else 'eager'}_{best}", fig)
            for batch in args.sweep if "pretrain" in args.stages else []:
                try:
                    fig = measure("pretrain", args, best, work / f"sweep_{batch}", None, None, False, peak, batch=batch)
                except torch.OutOfMemoryError:
                    result["figures"][f"pretrain_rows_{batch}"] = "out of memory"
                    torch.cuda.empty_cache()
                    break
                record(f"pretrain_rows_{batch}_{best}", fig)
            if torch.cuda.device_count() > 1 and not args.no_zero2:
                result["figures"]["zero2_vs_single_gpu"] = zero2_comparison(args, best, work)
            else:
                result["figures"]["zero2_vs_single_gpu"] = "not measured: fewer than 2 GPUs"
    finally:
        datasets.config.HF_DATASETS_CACHE = old_cache
        shutil.rmtree(work, ignore_errors=True)

    mfus = {k: v.get("mfu") for k, v in result["figures"].items() if isinstance(v, dict) and "mfu" in v}
    if mfus:
        best = max(mfus, key=mfus.get)
        result.target("mfu", f"best MFU over runs ({best}); target defined for an H100", TARGET_MFU, mfus[best])
        if "H100" not in name:
            result.note(f"device is {name}, not an H100: the 40% target is defined for H100")
    return common.finish(result, args, rows)


if __name__ == "__main__":
    main()
