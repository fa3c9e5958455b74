"""Server load: N concurrent streaming chat requests against `scripts/serve.py` on loopback.

The script builds a tiny MiniMind (random weights, the shipped tokenizer) unless `--model` is
given, starts the OpenAI-compatible server on 127.0.0.1 (a free port), waits for /health,
sends one warm-up request, then releases all requests at once (a barrier) as streaming
`/v1/chat/completions` calls with `stream_options.include_usage`. Each request is checked: HTTP
200, no in-band error, a usage chunk, and the closing `data: [DONE]`. Recorded: ok / failed,
latency and time-to-first-token percentiles, completion tokens (from the usage chunks) and
aggregate tokens/s over the wall time of the burst. The server runs one generation at a
time, so latency grows with queue position; the target is 0 failures, not a latency.

Sampling uses temperature 1 with a distinct seed per request, so requests differ and (with
random weights) rarely stop before `--max-tokens`.

    python benchmarks/bench_server.py [--requests 50] [--max-tokens 64] [--model FOLDER]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

if __package__ in (None, ""):  # `python benchmarks/bench_server.py`: the repository root is not on the path
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import common  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results" / "server.json"
MODEL_NAME = "bench-tiny"


def build_tiny_model(folder: Path) -> Path:
    import torch

    from minimind_hf import MiniMindForCausalLM, preset_config
    from minimind_hf.tokenizer import load_tokenizer

    torch.manual_seed(0)
    MiniMindForCausalLM(preset_config("tiny")).save_pretrained(folder)
    load_tokenizer().save_pretrained(folder)
    return folder


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(model: Path, port: int, threads: int) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}
    return subprocess.Popen(
        [
            sys.executable,
            str(REPO / "scripts" / "serve.py"),
            str(model),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--model-name",
            MODEL_NAME,
            "--log-level",
            "warning",
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_ready(port: int, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{proc.stdout.read()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"server not ready after {timeout:.0f}s")


def stream_chat(port: int, index: int, max_tokens: int, timeout: float) -> dict:
    """One streaming request; every protocol expectation that fails is recorded as the error."""
    body = {
        "model": MODEL_NAME,
        "messages": [{"role": "user", "content": f"Request {index}: tell me something about the number {index}."}],
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": max_tokens,
        "temperature": 1.0,
        "seed": index,
    }
    record = {"index": index, "ok": False, "error": None, "ttft_s": None, "latency_s": None, "completion_tokens": 0}
    start = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", "/v1/chat/completions", json.dumps(body), {"Content-Type": "application/json"})
        response = conn.getresponse()
        if response.status != 200:
            record["error"] = f"HTTP {response.status}: {response.read()[:200]!r}"
            return record
        done, usage = False, None
        for raw in response:  # SSE: "data: {...}" lines separated by blank lines
            line = raw.decode("utf-8").strip()
            if not line.startswith("data: "):
                continue
            data = line[6:]
            if data == "[DONE]":
                done = True
                break
            chunk = json.loads(data)
            if "error" in chunk:
                record["error"] = chunk["error"].get("message")
                return record
            if chunk.get("usage"):
                usage = chunk["usage"]
            for choice in chunk.get("choices", []):
                delta = choice.get("delta", {})
                if record["ttft_s"] is None and (delta.get("content") or delta.get("reasoning_content")):
                    record["ttft_s"] = time.perf_counter() - start
        record["latency_s"] = time.perf_counter() - start
        if not done or usage is None:
            record["error"] = "stream ended without usage chunk / [DONE]"
            return record
        record["completion_tokens"] = usage["completion_tokens"]
        record["ok"] = True
    except (OSError, ValueError, http.client.HTTPException) as exc:
        record["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        conn.close()
    return record


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    pos = (len(values) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (pos - low)


def run_burst(port: int, requests: int, max_tokens: int, timeout: float) -> tuple[list[dict], float]:
    barrier = threading.Barrier(requests)

    def one(index: int) -> dict:
        barrier.wait()  # every client connects at the same moment
        return stream_chat(port, index, max_tokens, timeout)

    with ThreadPoolExecutor(max_workers=requests) as pool:
        start = time.perf_counter()
        records = list(pool.map(one, range(requests)))
        wall = time.perf_counter() - start
    return records, wall


def summarise(records: list[dict], wall: float) -> dict:
    ok = [r for r in records if r["ok"]]
    latencies = [r["latency_s"] for r in ok]
    ttfts = [r["ttft_s"] for r in ok if r["ttft_s"] is not None]
    tokens = sum(r["completion_tokens"] for r in ok)
    rnd = lambda v: None if v is None else round(v, 4)  # noqa: E731
    return {
        "requests": len(records),
        "ok": len(ok),
        "failed": len(records) - len(ok),
        "errors": sorted({r["error"] for r in records if r["error"]}),
        "wall_s": round(wall, 3),
        "latency_s": {
            "p50": rnd(_percentile(latencies, 50)),
            "p99": rnd(_percentile(latencies, 99)),
            "max": rnd(max(latencies, default=None)),
        },
        "ttft_s": {"p50": rnd(_percentile(ttfts, 50)), "p99": rnd(_percentile(ttfts, 99))},
        "completion_tokens": tokens,
        "tokens_per_s": round(tokens / wall, 2) if wall > 0 else None,
        "requests_per_s": round(len(ok) / wall, 3) if wall > 0 else None,
        "mean_tokens_per_request": round(statistics.mean([r["completion_tokens"] for r in ok]), 2) if ok else None,
    }


PACKAGES = ("minimind-hf", "torch", "transformers", "fastapi", "uvicorn", "starlette", "pydantic")


def _machine() -> dict:
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "cpus_available": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
    }


def _table(summary: dict) -> str:
    rows = [
        ("requests ok / failed", f"{summary['ok']} / {summary['failed']}"),
        ("latency p50 / p99 (s)", f"{summary['latency_s']['p50']} / {summary['latency_s']['p99']}"),
        ("time to first token p50 / p99 (s)", f"{summary['ttft_s']['p50']} / {summary['ttft_s']['p99']}"),
        ("completion tokens", str(summary["completion_tokens"])),
        ("tokens/s (aggregate)", str(summary["tokens_per_s"])),
        ("wall time (s)", str(summary["wall_s"])),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--requests", type=int, default=50, help="concurrent streaming requests")
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--model", default=None, help="model folder (default: a tiny random MiniMind)")
    p.add_argument("--threads", type=int, default=1, help="OMP threads for the server's torch")
    p.add_argument("--timeout", type=float, default=300.0, help="per-request socket timeout (s)")
    p.add_argument("--startup-timeout", type=float, default=120.0)
    p.add_argument("--output", default=str(DEFAULT_OUTPUT))
    return p.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-server-") as tmp:
        model = Path(args.model) if args.model else build_tiny_model(Path(tmp) / "tiny")
        port = _free_port()
        proc = start_server(model, port, args.threads)
        try:
            wait_ready(port, proc, args.startup_timeout)
            warmup = stream_chat(port, -1, 4, args.timeout)
            if not warmup["ok"]:
                raise RuntimeError(f"warm-up request failed: {warmup['error']}")
            records, wall = run_burst(port, args.requests, args.max_tokens, args.timeout)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    summary = {
        "benchmark": "OpenAI-compatible server: concurrent streaming chat completions on loopback",
        "machine": _machine(),
        "versions": common.versions(PACKAGES, cuda_runtime=False),
        "config": {
            "requests": args.requests,
            "concurrency": args.requests,
            "max_tokens": args.max_tokens,
            "model": args.model or "tiny preset, random weights",
            "server_threads": args.threads,
            "temperature": 1.0,
            "stream": True,
        },
        "results": summarise(records, wall),
        "per_request": records,
    }
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    print(_table(summary["results"]))
    print(f"written: {output}")
    return summary


if __name__ == "__main__":
    result = main()
    sys.exit(0 if result["results"]["failed"] == 0 else 1)
