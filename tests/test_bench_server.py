"""The server benchmark runs end to end at a toy size: valid JSON, every request served."""

from bench_helpers import run_to_file

from benchmarks import bench_server


def test_bench_server_smoke(tmp_path):
    result = run_to_file(bench_server.main, ["--requests", "5", "--max-tokens", "8"], tmp_path / "server.json")
    assert {"benchmark", "machine", "versions", "config", "results", "per_request"} <= set(result)
    figures = result["results"]
    assert (figures["requests"], figures["ok"], figures["failed"]) == (5, 5, 0), figures["errors"]
    assert figures["errors"] == [] and len(result["per_request"]) == 5
    assert 0 < figures["latency_s"]["p50"] <= figures["latency_s"]["p99"]
    assert 0 < figures["ttft_s"]["p50"] <= figures["latency_s"]["p99"]
    assert 5 <= figures["completion_tokens"] <= 5 * 8 and figures["tokens_per_s"] > 0
    assert all(r["ok"] and 1 <= r["completion_tokens"] <= 8 for r in result["per_request"])
