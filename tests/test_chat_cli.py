"""Terminal chat driven through pipes: streamed answers, history, commands, image rejection."""

import subprocess
import sys

import pytest
from serving_helpers import (
    REPLY,
    REPO,
    PipeReader,
    child_env,
    png_bytes,
    scripted_model_dir,
    stop_process,
    vlm_model_dir,
)

from minimind_hf.cli import chat as chat_cli

EXCHANGE = "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n" + REPLY + "<|im_end|>\n"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return scripted_model_dir(tmp_path_factory.mktemp("models"))


def start_chat(*args):
    """scripts/chat.py on pipes: (process, stdout reader, stderr reader, say(line))."""
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "scripts" / "chat.py"), *map(str, args)],
        cwd=REPO,
        env=child_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )

    def say(line: str) -> None:
        proc.stdin.write((line + "\n").encode())
        proc.stdin.flush()

    return proc, PipeReader(proc.stdout), PipeReader(proc.stderr), say


def shown_prompts(err: PipeReader) -> list[str]:
    return [p.split("\n--- end prompt ---")[0] for p in err.text.split("--- prompt ---\n")[1:]]


def play(args, steps) -> list[str]:
    """Run the chat through a pipe: each step says its line (None: say nothing) and waits for each
    expected text in order, the process still running; then /exit must end it with code 0.
    Returns the prompts it showed (--show-prompt)."""
    proc, out, err, say = start_chat(*args)
    try:
        at = 0
        for line, *expected in steps:
            if line is not None:
                say(line)
            for text in expected:
                at = out.wait_for(text, at, timeout=90)
            assert proc.poll() is None
        say("/exit")
        assert proc.wait(timeout=30) == 0
    finally:
        stop_process(proc)
    return shown_prompts(err)


def test_chat_through_a_pipe_streams_and_keeps_history(model_dir):
    # Each answer is flushed while the chat still waits for input: stdin is open, nothing buffered.
    prompts = play(
        [model_dir, "--temperature", "0", "--show-prompt", "--system", "Be kind."],
        [
            ("hi", f"assistant> {REPLY}\n", "user> "),
            ("who are you?", f"assistant> {REPLY}\n", "user> "),
            ("/reset", "(history cleared)"),
            ("hello", f"assistant> {REPLY}\n"),
        ],
    )
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


IMAGE_BLOCK = "<|vision_start|><|image_pad|>×16<|vision_end|>"  # --show-prompt shortens the 16 placeholders


def test_images_through_a_pipe(tmp_path_factory):
    """MiniMind-V: --image goes with the first message, /image with the next; history keeps both."""
    root = tmp_path_factory.mktemp("vlm")
    model_dir = vlm_model_dir(root, scripted=True)
    first, second = root / "red.png", root / "blue dot.png"
    first.write_bytes(png_bytes("red"))
    second.write_bytes(png_bytes("blue"))
    prompts = play(
        [model_dir, "--temperature", "0", "--show-prompt", "--image", first],
        [
            (None, "1 image(s) for your first message", "user> "),
            ("What is this?", f"assistant> {REPLY}\n", "user> "),  # streamed while stdin stays open
            (f'/image "{second}"', "(1 image(s) attached to your next message)"),
            ("/image missing.png", "error: image not found: missing.png"),
            ("And this?", f"assistant> {REPLY}\n"),
            ("Thanks.", f"assistant> {REPLY}\n"),
        ],
    )
    assert len(prompts) == 3
    turn1 = f"<|im_start|>user\n{IMAGE_BLOCK}What is this?<|im_end|>\n"
    assert prompts[0] == turn1 + "<|im_start|>assistant\n<think>\n\n</think>\n\n"
    # later prompts re-encode the whole history: the first image stays where it was, the second joins
    exchange1 = turn1 + f"<|im_start|>assistant\n<think>\n\n</think>\n\n{REPLY}<|im_end|>\n"
    turn2 = f"<|im_start|>user\n{IMAGE_BLOCK}And this?<|im_end|>\n"
    assert prompts[1].startswith(exchange1 + turn2)
    assert prompts[2].startswith(exchange1 + turn2) and prompts[2].count(IMAGE_BLOCK) == 2
    assert "<|im_start|>user\nThanks.<|im_end|>" in prompts[2]


def test_unreadable_image_is_refused(tmp_path_factory, capsys):
    root = tmp_path_factory.mktemp("vlm")
    text_file = root / "notes.png"
    text_file.write_bytes(b"not a picture")
    assert chat_cli.main([str(vlm_model_dir(root, scripted=True)), "--image", str(text_file)]) == 2
    assert f"not a readable image: {text_file}" in capsys.readouterr().err


def test_a_history_that_outgrows_the_context_suggests_reset(model_dir):
    proc, out, err, say = start_chat(model_dir, "--temperature", "0")
    try:
        at = out.wait_for("user> ", timeout=90)
        say("1 " * 1200)  # ~2400 tokens; the tiny model's context is 1024
        at = out.wait_for("maximum context length is 1024 tokens", at)
        at = out.wait_for("(type /reset to start a new conversation)", at)
        at = out.wait_for("user> ", at)
        say("hi")  # the refused message was not kept: the next one fits again
        out.wait_for(f"assistant> {REPLY}\n", at)
    finally:
        stop_process(proc)


def test_tools_builtin_runs_the_models_calls(model_dir, monkeypatch, capsys):
    """--tools builtin: the call in a reply is executed, its result goes back as a tool message and the
    model answers again; the prompts carry the tool schemas. (Replies are scripted: the chat loop is
    what is tested here; the parsing and the template have their own tests.)"""
    from minimind_hf.parsing import parse_reply

    replies = iter(
        [
            '<tool_call>\n{"name": "calculator", "arguments": {"expression": "347 * 29"}}\n</tool_call>',
            "347 * 29 = 10063.",
        ]
    )
    seen = []

    class Turn:
        def __init__(self, conversation, parse_tools):
            seen.append(([dict(m) for m in conversation.to_messages()], conversation.tool_schemas))
            self.text = next(replies)
            self.reply = parse_reply(self.text, parse_tools=parse_tools)
            self.prompt_ids = []

        def __iter__(self):
            from minimind_hf.parsing import Delta

            return iter([Delta("content", self.reply.content)] if self.reply.content else [])

    monkeypatch.setattr(
        chat_cli,
        "start_turn",
        lambda worker, conversation, params, thinking=False: Turn(conversation, bool(conversation.tool_schemas)),
    )
    lines = iter(["What is 347 * 29?"])

    def fake_input(prompt=""):
        try:
            return next(lines)
        except StopIteration:
            raise EOFError from None

    monkeypatch.setattr("builtins.input", fake_input)
    assert chat_cli.main([str(model_dir), "--tools", "builtin"]) == 0
    out = capsys.readouterr().out
    assert "tools: calculator, convert_units, add_days, lookup_capital" in out
    assert '[tool] calculator({"expression": "347 * 29"}) -> 10063' in out and "assistant> 347 * 29 = 10063." in out
    assert len(seen) == 2 and [s["function"]["name"] for s in seen[0][1]][0] == "calculator"
    assert [m["role"] for m in seen[1][0]] == ["user", "assistant", "tool"]
    assert seen[1][0][2] == {"role": "tool", "name": "calculator", "content": "10063"}


def test_tools_are_off_unless_asked_and_bad_names_exit_2(model_dir, capsys):
    assert chat_cli.main([str(model_dir), "--tools", "web_search"]) == 2
    assert "error: --tools: unknown tool 'web_search'" in capsys.readouterr().err
    assert chat_cli.build_parser().parse_args([str(model_dir)]).tools is None
