"""The data benchmark runs end to end at a toy size and writes a complete JSON result."""

import json
from pathlib import Path

import pytest
from bench_helpers import run_to_file  # puts the repository root (benchmarks/) on the path

from benchmarks import __main__ as suite
from benchmarks import (
    bench_cuda,
    bench_data,
    bench_generate,
    bench_grpo,
    bench_memory,
    bench_model,
    bench_startup,
    bench_train,
)


def test_bench_data_smoke(tmp_path):
    result = run_to_file(
        bench_data.main,
        ["--records", "50", "--repeats", "1", "--warmup-records", "10", "--num-proc", "1", "2"],
        tmp_path / "data.json",
    )
    assert {
        "benchmark",
        "machine",
        "versions",
        "config",
        "data",
        "results",
        "ratio_vs_naive",
        "cpu_ratio_vs_naive",
        "verification",
    } <= set(result)
    assert result["config"]["records"] == 50 and result["config"]["num_proc"] == [1, 2]
    assert set(result["results"]) == {"naive", "ours_num_proc_1", "ours_num_proc_2"}
    for figures in result["results"].values():
        assert len(figures["wall_s"]) == 1 and figures["records_per_s"] > 0 and figures["records_per_cpu_s"] > 0
    assert set(result["ratio_vs_naive"]) == {"ours_num_proc_1", "ours_num_proc_2"}
    assert result["verification"]["mismatches"] == 0
    assert result["verification"]["rows_compared"] == result["data"]["rows_kept"] > 0
    assert result["versions"]["transformers"] and result["machine"]["cpu_count"]


# ----------------------------------------------------------------------------- the suite (benchmarks/__main__.py)
# Each benchmark runs at its --quick toy size; these tests check the JSON it writes, never speed.

RESULT_KEYS = {
    "benchmark",
    "description",
    "measured",
    "machine",
    "versions",
    "config",
    "figures",
    "targets",
    "target_met",
    "notes",
    "load_average",
    "started",
    "duration_s",
}


def _check_result(path: Path, summary: dict, name: str) -> dict:
    result = json.loads(path.read_text(encoding="utf-8"))
    assert result == json.loads(json.dumps(summary, default=str))
    assert RESULT_KEYS <= set(result) and result["benchmark"] == name
    machine = result["machine"]
    assert machine["cpu_model"] and machine["cpu_count"] and "load_average" in machine and "cuda" in machine
    assert result["versions"]["torch"] and result["versions"]["transformers"]
    assert set(result["load_average"]) == {"start", "end"}
    for target in result["targets"]:
        assert {"name", "metric", "threshold", "measured", "target_met"} <= set(target)
        assert target["target_met"] in (True, False) and isinstance(target["measured"], float)
    if result["targets"]:
        assert result["target_met"] == all(t["target_met"] for t in result["targets"])
    return result


@pytest.mark.parametrize("stage", ["sft", "pretrain"])
def test_bench_train_smoke(tmp_path, stage):
    summary = bench_train.main(["--quick", "--stage", stage, "--records", "32", "--out", str(tmp_path)])
    result = _check_result(tmp_path / "train.json", summary, "train")
    figures = result["figures"]
    for mode in ("padded", "packed", "minimind", "separate"):
        assert {"tokens_per_s", "supervised_tokens_per_s", "samples_per_s", "steps", "padding_fraction"} <= set(
            figures[mode]
        )
    # MiniMind's loop pads every chat to max_length; one chat per forward pass has no padding
    assert figures["minimind"]["computed_positions"] == figures["data"]["rows"] * 256
    assert figures["separate"]["padding_fraction"] == 0.0
    assert figures["minimind"]["supervised_tokens_reported"] == figures["data"]["supervised_tokens"]
    # the same budget: both modes trained on the same supervised tokens, packing took fewer steps
    in_loss = figures["data"]["supervised_tokens_in_loss"]
    assert in_loss["padded"] == in_loss["packed"] == figures["data"]["supervised_tokens"] > 0
    assert figures["packed"]["steps"] < figures["padded"]["steps"]
    assert figures["data"]["records"] == 32 and 0 < figures["data"]["rows"] <= 32
    assert "packed_vs_padded_supervised_tokens_per_s" in figures
    assert [t["name"] for t in result["targets"]] == ["packed_vs_padded", "packed_vs_minimind", "packed_vs_separate"]


def test_bench_grpo_smoke(tmp_path):
    summary = bench_grpo.main(["--quick", "--out", str(tmp_path)])
    result = _check_result(tmp_path / "grpo.json", summary, "grpo")
    figures = result["figures"]
    for side in ("ours", "reference"):  # each side ran once, in its own process, 2 steps (1 timed)
        side_figures = figures[side]
        assert side_figures["step_time_s"] > 0 and side_figures["completion_tokens_per_s"] > 0
        assert side_figures["peak_rss_mib"] > 0 and 0 < side_figures["mean_completion_length"] <= 8
        assert set(side_figures["phases_s"]) == {"generate", "score", "loss", "update"}
        assert [run["timed_steps"] for run in side_figures["runs"]] == [1]
        assert len(side_figures["runs"][0]["completion_tokens"]) == 2
    ratio = figures["ours_vs_reference"]
    assert ratio["step_time"]["median"] > 0 and ratio["completion_tokens_per_s"]["median"] > 0
    assert ratio["peak_rss"] > 0 and result["config"]["completions_per_step"] == 4
    assert result["targets"] == [] and result["target_met"] is None


def test_bench_model_smoke(tmp_path):
    summary = bench_model.main(["--quick", "--repeats", "1", "--out", str(tmp_path)])
    result = _check_result(tmp_path / "model.json", summary, "model")
    assert {t["name"] for t in result["targets"]} == {"llama_fwd_bwd", "qwen3_fwd_bwd"}
    for shape, oracle in (("llama", "LlamaForCausalLM"), ("qwen3", "Qwen3ForCausalLM")):
        figures = result["figures"][shape]
        assert figures["oracle_class"] == oracle and figures["loss_abs_diff"] < 1e-4  # truly identical weights
        assert {"ours_tokens_per_s", "oracle_tokens_per_s", "speed_ratio_ours_vs_oracle"} <= set(figures)


def test_bench_generate_smoke(tmp_path):
    summary = bench_generate.main(["--quick", "--repeats", "1", "--shapes", "qwen3", "--out", str(tmp_path)])
    result = _check_result(tmp_path / "generate.json", summary, "generate")
    batches = result["figures"]["qwen3"]["batches"]
    assert set(batches) == {"1", "8"}
    for figures in batches.values():
        assert figures["outputs_identical"] and figures["new_tokens"] == 4
        assert {"ours_tokens_per_s", "oracle_tokens_per_s", "ours_ttft_ms", "oracle_ttft_ms"} <= set(figures)
    assert len(result["targets"]) == 4


def test_bench_memory_smoke(tmp_path):
    summary = bench_memory.main(["--quick", "--configs", "tiny_b2x64", "--out", str(tmp_path)])
    result = _check_result(tmp_path / "memory.json", summary, "memory")
    figures = result["figures"]["tiny_b2x64"]
    key = "peak_allocated_mib" if result["config"]["device"] == "cuda" else "peak_rss_mib"
    assert figures[key] > 0 and figures["model"] == "MiniMindForCausalLM" and figures["batch"] == 2
    assert result["targets"] == [] and result["target_met"] is None


def test_bench_cuda_smoke(tmp_path):
    summary = bench_cuda.main(["--quick", "--no-compile", "--out", str(tmp_path)])
    result = _check_result(tmp_path / "cuda.json", summary, "cuda")
    import torch

    if torch.cuda.is_available():
        assert result["measured"] and any(k.startswith("pretrain_eager_") for k in result["figures"])
    else:
        assert result["measured"] is False and result["reason"] == "no CUDA device" and result["target_met"] is None


def test_bench_cuda_code_path_at_toy_size_on_cpu(tmp_path):
    """The GPU script's own code path (every run kind, real entry point), on CPU with --allow-cpu."""
    summary = bench_cuda.main(["--quick", "--allow-cpu", "--no-compile", "--steps", "3", "--out", str(tmp_path)])
    figures = _check_result(tmp_path / "cuda.json", summary, "cuda")["figures"]
    runs = {k: f for k, f in figures.items() if isinstance(f, dict) and "tokens_per_s" in f}
    assert set(runs) == {
        "pretrain_eager_sdpa",
        "pretrain_eager_document_sdpa",
        f"sft_eager_{figures['best_attention']}",
    }
    for fig in runs.values():
        assert fig["tokens_per_s"] > 0 and fig["steps"] == 3 and fig["flops"]["flops_per_token"] > 0


def test_benchmark_suite_runner(tmp_path):
    assert suite.main(["--quick", "--only", "cuda", "--out", str(tmp_path)]) == 0
    index = json.loads((tmp_path / "summary.json").read_text(encoding="utf-8"))
    assert set(index["benchmarks"]) == {"cuda"} and (tmp_path / "cuda.json").is_file()
    assert suite.benchmark_argv("data", suite.parse_args(["--quick", "--out", "x"]))[:2] == ["--output", "x/data.json"]


def test_bench_startup_smoke(tmp_path):
    summary = bench_startup.main(["--quick", "--out", str(tmp_path)])
    result = _check_result(tmp_path / "startup.json", summary, "startup")
    seconds = result["figures"]["seconds"]
    assert set(seconds) == set(bench_startup.CASES) and all(s > 0 for s in seconds.values())
    assert len(result["targets"]) == 4
