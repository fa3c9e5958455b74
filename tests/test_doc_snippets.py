"""Every Python snippet in README.md and docs/*.md runs as written.

The snippets are extracted from the fenced ```python blocks and executed in a folder that
holds what they name (a trained text model, a trained MiniMind-V, their exports, pictures),
built here from tiny models - the same folder layout the README chain leaves behind. A doc
change that breaks a snippet, or a new snippet nobody runs, fails this test."""

import os
import re
from pathlib import Path

import pytest
import torch
from helpers import VLM_TEXT, randomize
from PIL import Image

import minimind_hf
from minimind_hf.export import export_model
from minimind_hf.tokenizer import load_tokenizer
from minimind_hf.vlm import build_vlm

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# Snippets that talk to a running server run against one (test_server_snippets_run_as_written).
SERVER_SNIPPET = re.compile(r"OpenAI\(|client\.chat")


def python_blocks() -> list[tuple[str, int, str]]:
    blocks = []
    for doc in DOCS:
        lines = doc.read_text(encoding="utf-8").splitlines()
        start = None
        for number, line in enumerate(lines, 1):
            if start is None and line.strip() == "```python":
                start = number
            elif start is not None and line.strip() == "```":
                blocks.append((doc.relative_to(ROOT).as_posix(), start, "\n".join(lines[start : number - 1])))
                start = None
    return blocks


BLOCKS = [b for b in python_blocks() if not SERVER_SNIPPET.search(b[2])]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """outputs/sft, outputs/vlm_sft, exports/minimind-sft, exports/minimind-v and pictures."""
    root = tmp_path_factory.mktemp("docs")
    tokenizer = load_tokenizer()
    text = dict(VLM_TEXT)
    torch.manual_seed(0)
    llm = randomize(minimind_hf.MiniMindForCausalLM(minimind_hf.MiniMindConfig(**text)), 0)
    llm.generation_config.eos_token_id = tokenizer.eos_token_id
    llm.save_pretrained(root / "outputs" / "sft")
    tokenizer.save_pretrained(root / "outputs" / "sft")
    vlm, processor = build_vlm(llm, tokenizer)
    vlm.save_pretrained(root / "outputs" / "vlm_sft")
    processor.save_pretrained(root / "outputs" / "vlm_sft")
    export_model(root / "outputs" / "sft", root / "exports" / "minimind-sft")
    export_model(root / "outputs" / "vlm_sft", root / "exports" / "minimind-v")
    for name, colour in (("shape.png", "red"), ("photo.jpg", "blue"), ("cat.png", "green")):
        Image.new("RGB", (40, 40), colour).save(root / name)
    return root


def test_snippets_are_found():
    files = {doc for doc, _, _ in python_blocks()}
    assert {"README.md", "docs/export.md"} <= files and len(BLOCKS) >= 4


@pytest.mark.parametrize("doc, line, code", BLOCKS, ids=[f"{d}:{n}" for d, n, _ in BLOCKS])
def test_snippet_runs_as_written(doc, line, code, workspace, monkeypatch, capsys):
    if "llama_cpp" in code:  # a GGUF snippet: the export it names, run by llama.cpp (skipped as in test_gguf.py)
        if os.environ.get("MINIMIND_SKIP_LLAMA_CPP") == "1":
            pytest.skip("MINIMIND_SKIP_LLAMA_CPP=1")
        if not (workspace / "exports" / "minimind-gguf").exists():
            export_model(workspace / "outputs" / "sft", workspace / "exports" / "minimind-gguf", fmt="gguf")
    monkeypatch.chdir(workspace)
    monkeypatch.setenv("HF_MODULES_CACHE", str(workspace / "modules"))
    namespace = {"__name__": "__snippet__"}
    exec(compile(code, f"{doc}:{line}", "exec"), namespace)  # noqa: S102 - our own documentation
    for name in ("model", "processor", "tokenizer"):  # whatever the snippet loaded is a real object
        if name in namespace:
            assert namespace[name] is not None


SERVER_BLOCKS = [b for b in python_blocks() if SERVER_SNIPPET.search(b[2])]


def test_server_snippets_run_as_written(workspace, monkeypatch, capsys):
    """docs/serving.md's client snippets, in order (the image one reuses the first's client),
    against the text server and then a MiniMind-V server - only the port differs from the docs."""
    from test_server import start_in_process, stop_in_process

    from minimind_hf.serving import load_engine

    assert len(SERVER_BLOCKS) >= 2
    monkeypatch.chdir(workspace)
    namespace = {"__name__": "__snippet__"}
    servers = []
    try:
        for doc, line, code in SERVER_BLOCKS:
            folder = "vlm_sft" if "image_url" in code else "sft"
            client = start_in_process(load_engine(workspace / "outputs" / folder, device="cpu"), servers)
            code = code.replace("127.0.0.1:8000", f"127.0.0.1:{client.port}")
            if "OpenAI(" not in code:  # a continuation: the docs' `client`, pointed at this server
                namespace["client"] = client
            exec(compile(code, f"{doc}:{line}", "exec"), namespace)  # noqa: S102 - our own documentation
            assert namespace["reply"].choices[0].message is not None
    finally:
        stop_in_process(servers)
