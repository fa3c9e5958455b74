"""Shared pieces for the chat / server / web-demo tests: model folders, free ports, subprocesses."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
REPLY = "Hello! I am MiniMind, your tiny model."  # 15 distinct tokens (see scripted_model_dir)
_CACHE: dict[str, Path] = {}


def random_model_dir(root: Path) -> Path:
    """Tiny preset with random weights + the shipped tokenizer: random text, fine for transport.

    The weights are scaled up (tests/helpers.py `randomize`) so greedy decoding wanders through the
    vocabulary instead of repeating one token, and different seeds give different samples.
    """
    if "random" not in _CACHE:
        from helpers import randomize

        from minimind_hf import MiniMindForCausalLM, preset_config
        from minimind_hf.tokenizer import load_tokenizer

        torch.manual_seed(0)
        path = root / "random-tiny"
        randomize(MiniMindForCausalLM(preset_config("tiny")), seed=0).save_pretrained(path)
        load_tokenizer().save_pretrained(path)
        _CACHE["random"] = path
    return _CACHE["random"]


def scripted_model_dir(root: Path) -> Path:
    """A real MiniMind whose weights are set by hand so that greedy (or any sampling) replies REPLY."""
    if "scripted" not in _CACHE:
        model, tok = scripted_model()
        path = root / "scripted-tiny"
        model.save_pretrained(path)
        tok.save_pretrained(path)
        _CACHE["scripted"] = path
    return _CACHE["scripted"]


def scripted_model():
    """(model, tokenizer) of the scripted MiniMind.

    Training a model to memorise a reply takes tens of seconds on a small shared CPU; this takes
    milliseconds. The blocks' output projections are zeroed, so the last hidden state is the
    current token's embedding (normalised): a bigram model. The chain "\\n" (every generation
    prompt ends with it) -> REPLY's tokens -> <|im_end|> gets orthonormal embeddings and an
    untied lm_head row per link with a margin of ~80 logits, so history, system prompts and the
    thinking switch cannot change the answer.
    """
    from minimind_hf import MiniMindForCausalLM, preset_config
    from minimind_hf.tokenizer import load_tokenizer

    tok = load_tokenizer()
    reply_ids = tok(REPLY, add_special_tokens=False)["input_ids"]
    newline = tok.convert_tokens_to_ids("Ċ")
    chain = [newline, *reply_ids, tok.eos_token_id]
    assert len(set(chain)) == len(chain), "a bigram chain needs distinct tokens"
    torch.manual_seed(0)
    config = preset_config("tiny", tie_word_embeddings=False)
    model = MiniMindForCausalLM(config)
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        basis = torch.linalg.qr(torch.randn(config.hidden_size, config.hidden_size))[0].T  # orthonormal rows
        model.lm_head.weight.zero_()
        for i, (token, following) in enumerate(zip(chain, chain[1:])):
            model.model.embed_tokens.weight[token] = basis[i]
            model.lm_head.weight[following] = 10.0 * basis[i]
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    return model, tok


def vlm_model_dir(root: Path, scripted: bool = False) -> Path:
    """A tiny MiniMind-V folder (model + processor; random 32x32 CLIP tower, 16 image tokens).

    scripted=False: random language model and projector, so the image changes the text
    (references come from `model.generate`). scripted=True: the scripted bigram language model
    inside, so the reply is REPLY whatever the images (the zeroed output projections keep the
    image features away from the last position) - for front-end tests that check transport.
    """
    key = "vlm-scripted" if scripted else "vlm-random"
    if key not in _CACHE:
        from helpers import randomize

        from minimind_hf import MiniMindForCausalLM, preset_config
        from minimind_hf.tokenizer import load_tokenizer
        from minimind_hf.vlm import build_vlm

        if scripted:
            llm, tok = scripted_model()
        else:
            torch.manual_seed(0)
            llm, tok = randomize(MiniMindForCausalLM(preset_config("tiny")), seed=0), load_tokenizer()
        model, processor = build_vlm(llm, tok)
        if not scripted:
            randomize(model.projector, seed=1)
        path = root / key
        model.save_pretrained(path)
        processor.save_pretrained(path)
        _CACHE[key] = path
    return _CACHE[key]


def png_bytes(colour: str, size: tuple[int, int] = (40, 40)) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


@contextlib.contextmanager
def one_thread():
    """Tiny models run fastest on one intra-op thread, above all on a small shared machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def child_env() -> dict:
    # One intra-op thread per child: the machine is small and shared; tiny models gain nothing from more.
    return {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "HF_HUB_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1",
    }


def wait_http(url: str, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    """Poll `url` until it answers 200; fail early with the child's output if it died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered:\n{out}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f}s")


def stop_process(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def start_script(script: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(REPO / "scripts" / script), *args],
        cwd=REPO,
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


class PipeReader:
    """Collects a pipe's output on a thread so a test can wait for text without blocking forever."""

    def __init__(self, stream):
        self.chunks: list[tuple[float, str]] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self._thread.start()

    def _pump(self, stream) -> None:
        fd = stream.fileno()
        while data := os.read(fd, 4096):
            with self._lock:
                self.chunks.append((time.monotonic(), data.decode("utf-8", errors="replace")))

    @property
    def text(self) -> str:
        with self._lock:
            return "".join(c for _, c in self.chunks)

    def wait_for(self, needle: str, start: int = 0, timeout: float = 60.0) -> int:
        """Index just after the first `needle` at or after `start`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            i = self.text.find(needle, start)
            if i >= 0:
                return i + len(needle)
            time.sleep(0.05)
        raise TimeoutError(f"{needle!r} did not appear within {timeout:.0f}s; output so far:\n{self.text}")
