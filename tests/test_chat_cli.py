"""Terminal chat driven through pipes: streamed answers, history, commands, image rejection."""

import subprocess
import sys

import pytest
from serving_helpers import REPO, REPLY, PipeReader, child_env, scripted_model_dir, stop_process

from minimind_hf.serving import chat_cli

EXCHANGE = "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n" + REPLY + "<|im_end|>\n"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return scripted_model_dir(tmp_path_factory.mktemp("models"))


def test_chat_through_a_pipe_streams_and_keeps_history(model_dir):
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "scripts" / "chat.py"), str(model_dir), "--temperature", "0", "--show-prompt",
         "--system", "Be kind."],
        cwd=REPO, env=child_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    out, err = PipeReader(proc.stdout), PipeReader(proc.stderr)

    def say(line: str) -> None:
        proc.stdin.write((line + "\n").encode())
        proc.stdin.flush()

    try:
        at = out.wait_for("user> ", timeout=90)
        say("hi")
        # The answer is flushed while the chat still waits for input: stdin is open, nothing buffered.
        at = out.wait_for(f"assistant> {REPLY}\n", at)
        at = out.wait_for("user> ", at)
        assert proc.poll() is None
        say("who are you?")
        at = out.wait_for(f"assistant> {REPLY}\n", at)
        at = out.wait_for("user> ", at)
        say("/reset")
        at = out.wait_for("(history cleared)", at)
        say("hello")
        at = out.wait_for(f"assistant> {REPLY}\n", at)
        say("/exit")
        assert proc.wait(timeout=30) == 0
    finally:
        stop_process(proc)

    prompts = [p.split("\n--- end prompt ---")[0] for p in err.text.split("--- prompt ---\n")[1:]]
    assert len(prompts) == 3
    system = "<|im_start|>system\nBe kind.<|im_end|>\n"
    assert prompts[0] == system + "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
    # the second prompt carries the first exchange, the third (after /reset) only the system prompt
    assert prompts[1].startswith(system + EXCHANGE + "<|im_start|>user\nwho are you?<|im_end|>")
    assert prompts[2] == system + "<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"


def test_think_command_and_eof(model_dir, monkeypatch, capsys):
    """In process: /think switches the generation prompt; end of input ends the chat cleanly."""
    lines = iter(["/think", "hi", "/help"])

    def fake_input(prompt=""):
        print(prompt, end="")
        try:
            return next(lines)
        except StopIteration:
            raise EOFError from None

    monkeypatch.setattr("builtins.input", fake_input)
    assert chat_cli.main([str(model_dir), "--temperature", "0", "--show-prompt"]) == 0
    captured = capsys.readouterr()
    assert "(thinking on)" in captured.out and f"assistant> {REPLY}\n" in captured.out and "/reset" in captured.out
    assert "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n\n--- end prompt ---" in captured.err


def test_image_is_refused_for_a_text_model(model_dir, tmp_path, capsys):
    image = tmp_path / "cat.png"
    image.write_bytes(b"\x89PNG")
    assert chat_cli.main([str(model_dir), "--image", str(image)]) == 2
    assert "does not accept images" in capsys.readouterr().err
