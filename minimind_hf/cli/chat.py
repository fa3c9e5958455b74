"""`scripts/chat.py MODEL`: streaming terminal chat with history.

Lines starting with "/" are commands (see HELP); everything else is a user message. Works
interactively and through pipes: every piece of the answer is flushed as it is generated.
MiniMind-V models take images: `--image PATH` for the first message, `/image PATH` for the next.
"""

from __future__ import annotations

import argparse
import re
import shlex
import sys

from ..serving.conversation import Conversation, start_turn
from ..serving.engine import RequestError, SamplingParams, load_engine
from ..serving.images import check_image_file
from ..serving.worker import GenerationWorker
from ..tools import execute, resolve_tools, tool_schema

HELP = """commands:
  /image PATH ...  attach image(s) to your next message (MiniMind-V models)
  /reset           forget the conversation and pending images (keeps the system prompt)
  /think           toggle thinking (reasoning in <think> before the answer)
  /system TEXT     set the system prompt (and reset)
  /help            this text
  /exit, /quit     leave (so does Ctrl-D)"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Chat with a MiniMind model in the terminal.")
    p.add_argument("model", help="model folder (save_pretrained output with tokenizer files)")
    p.add_argument("--system", default=None, help="system prompt")
    p.add_argument("--think", action="store_true", help="start with thinking on (toggle with /think)")
    p.add_argument("--temperature", type=float, default=0.85, help="0 = greedy")
    p.add_argument("--top-p", type=float, default=0.85)
    p.add_argument("--top-k", type=int, default=0, help="0 = off")
    p.add_argument("--repetition-penalty", type=float, default=1.0)
    p.add_argument("--max-new-tokens", type=int, default=512)
    p.add_argument("--seed", type=int, default=None, help="fix the sampling of every answer")
    p.add_argument(
        "--image",
        action="append",
        default=[],
        metavar="PATH",
        help="image for the first message (MiniMind-V); repeat for several",
    )
    p.add_argument("--device", default=None)
    p.add_argument("--dtype", default="auto", help="auto, float32, bfloat16, float16")
    p.add_argument("--trust-remote-code", action="store_true")
    p.add_argument("--show-prompt", action="store_true", help="print each rendered prompt to stderr (debugging)")
    p.add_argument(
        "--tools",
        default=None,
        metavar="NAMES",
        help="offer tools and RUN the model's calls: 'builtin' (calculator, convert_units, add_days, "
        "lookup_capital), tool names, or module:function, comma-separated; off by default",
    )
    p.add_argument("--max-tool-rounds", type=int, default=3, help="tool calls answered per message at most")
    return p


class _Printer:
    """Writes reasoning dimmed (on a terminal) and the answer plainly, flushing every piece."""

    def __init__(self, out):
        self.out, self.kind = out, None
        self.color = out.isatty()

    def write(self, kind: str, text: str) -> None:
        if kind != self.kind:
            if kind == "reasoning":
                text = ("\x1b[2m" if self.color else "") + "[thinking] " + text
            elif self.kind == "reasoning":
                text = ("\x1b[0m" if self.color else "") + "\n[answer] " + text
            self.kind = kind
        self.out.write(text)
        self.out.flush()

    def end(self) -> None:
        self.out.write(("\x1b[0m" if self.color and self.kind == "reasoning" else "") + "\n")
        self.out.flush()


def _read_images(paths: list[str]) -> list[str]:
    """Data URLs of the image files (read once; the conversation keeps them for later prompts)."""
    return [check_image_file(path)["image_url"]["url"] for path in paths]


def _readable_prompt(engine, prompt_ids: list[int]) -> str:
    """The decoded prompt, each run of image placeholder tokens shortened to `<|image_pad|>×N`."""
    text = engine.tokenizer.decode(prompt_ids)
    if engine.processor is None:
        return text
    token = engine.processor.image_token
    return re.sub(f"(?:{re.escape(token)})+", lambda run: f"{token}×{len(run[0]) // len(token)}", text)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = sys.stdout
    from ..utils import ModelLoadError

    try:
        engine = load_engine(args.model, device=args.device, dtype=args.dtype, trust_remote_code=args.trust_remote_code)
    except ModelLoadError as error:  # a damaged or mismatched folder: one clear message, exit code 2
        print(f"error: {error}", file=sys.stderr)
        return 2
    no_images = f"this model ({engine.model.config.model_type}) does not accept images; images need a MiniMind-V model"
    if args.image and not engine.accepts_images:
        print(f"error: {no_images}", file=sys.stderr)
        return 2
    try:
        images = _read_images(args.image)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    tools = {}
    if args.tools:
        try:
            tools = resolve_tools([name.strip() for name in args.tools.split(",") if name.strip()])
        except ValueError as exc:
            print(f"error: --tools: {exc}", file=sys.stderr)
            return 2
    worker = GenerationWorker(engine)
    params = SamplingParams(
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        top_p=args.top_p,
        top_k=args.top_k,
        repetition_penalty=args.repetition_penalty,
        seed=args.seed,
    )
    conversation, thinking = Conversation(system=args.system), args.think
    if tools:
        conversation.tool_schemas = [tool_schema(fn) for fn in tools.values()]
    banner = f"MiniMind chat · {engine.name} · thinking {'on' if thinking else 'off'}"
    if tools:
        banner += f" · tools: {', '.join(tools)}"
    if images:
        banner += f" · {len(images)} image(s) for your first message"
    print(banner + " · /help for commands", file=out, flush=True)

    while True:
        try:
            line = input("user> ")
        except (EOFError, KeyboardInterrupt):
            print(file=out, flush=True)
            return 0
        text = line.strip()
        if not text:
            continue
        if text.startswith("/"):
            command, _, rest = text.partition(" ")
            if command in ("/exit", "/quit"):
                return 0
            if command == "/reset":
                conversation.reset()
                images = []
                print("(history cleared)", file=out, flush=True)
            elif command == "/image":
                try:
                    paths = shlex.split(rest)
                    if not engine.accepts_images:
                        raise ValueError(no_images)
                    if not paths:
                        raise ValueError("usage: /image PATH [PATH ...]")
                    images += _read_images(paths)
                except (OSError, ValueError) as exc:
                    print(f"error: {exc}", file=out, flush=True)
                else:
                    print(f"({len(images)} image(s) attached to your next message)", file=out, flush=True)
            elif command == "/think":
                thinking = not thinking
                print(f"(thinking {'on' if thinking else 'off'})", file=out, flush=True)
            elif command == "/system":
                conversation.system = rest.strip() or None
                conversation.reset()
                print("(system prompt set, history cleared)", file=out, flush=True)
            else:
                print(HELP, file=out, flush=True)
            continue

        conversation.add_user(text, images)
        images = []  # attached to this message; the history keeps them for later prompts
        for _ in range(1 + args.max_tool_rounds):
            reply = _answer(worker, conversation, params, thinking, engine, args.show_prompt, out)
            if reply is None or not (tools and reply.tool_calls):
                break
            for call in reply.tool_calls:  # run each call; the model reads the results on its next turn
                result = execute(call.name, call.arguments, tools)
                print(f"[tool] {call.name}({call.arguments}) -> {result}", file=out, flush=True)
                conversation.add_tool_result(call.name, result)


def _answer(worker, conversation, params, thinking, engine, show_prompt, out):
    """Stream one assistant turn into the conversation; None when it failed or was interrupted."""
    try:
        turn = start_turn(worker, conversation, params, thinking=thinking)
    except RequestError as exc:
        conversation.pop_user()
        hint = " (type /reset to start a new conversation)" if exc.code == "context_length_exceeded" else ""
        print(f"error: {exc.message}{hint}", file=out, flush=True)
        return None
    if show_prompt:
        prompt = _readable_prompt(engine, turn.prompt_ids)
        print(f"--- prompt ---\n{prompt}\n--- end prompt ---", file=sys.stderr, flush=True)
    printer = _Printer(out)
    out.write("assistant> ")
    try:
        for delta in turn:
            printer.write(delta.kind, delta.text)
    except KeyboardInterrupt:  # stop this answer, keep chatting
        printer.end()
        conversation.pop_user()
        print("(interrupted)", file=out, flush=True)
        return None
    if turn.reply.tool_calls:
        printer.write(
            "content",
            ("\n" if turn.reply.content else "")
            + "[calls] "
            + ", ".join(f"{c.name}({c.arguments})" for c in turn.reply.tool_calls),
        )
    printer.end()
    conversation.add_assistant(turn.reply)
    return turn.reply


if __name__ == "__main__":
    sys.exit(main())
