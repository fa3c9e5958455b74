"""Turn a model's raw reply text into what clients show: reasoning, content, tool calls.

MiniMind replies look like ``<think>\\nreasoning\\n</think>\\n\\ncontent`` (thinking on) or
plain ``content`` (thinking off: the prompt already holds the empty think block), and tool
calls are ``<tool_call>\\n{"name": ..., "arguments": {...}}\\n</tool_call>`` blocks after the
content. Everything here works on text *deltas* so that streaming and non-streaming replies
are parsed by the same code (``parse_reply`` is just "feed everything, then finish").

Markers may arrive split across deltas (a stop string always can; markup tokens can when a
model spells them with ordinary byte tokens), so each stage holds back a tail that could still
become a marker and releases it once it cannot.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field

from .tokenizer import THINK_END, THINK_START, TOOL_CALL_END, TOOL_CALL_START

_TOOL_BLOCK = re.compile(re.escape(TOOL_CALL_START) + r"(.*?)" + re.escape(TOOL_CALL_END), re.DOTALL)


def _partial_marker_len(text: str, markers) -> int:
    """Length of the longest tail of `text` that is a proper prefix of one of `markers`."""
    best = 0
    for marker in markers:
        for size in range(min(len(marker) - 1, len(text)), best, -1):
            if text.endswith(marker[:size]):
                best = size
                break
    return best


class StopTrimmer:
    """OpenAI `stop` semantics on a text stream: output ends *before* the first stop string."""

    def __init__(self, stop: list[str] | tuple[str, ...] = ()):
        self.stop = [s for s in stop if s]
        self.stopped = False
        self._held = ""

    def feed(self, text: str) -> str:
        if self.stopped or not self.stop:
            return "" if self.stopped else text
        text = self._held + text
        hits = [i for i in (text.find(s) for s in self.stop) if i >= 0]
        if hits:
            self.stopped, self._held = True, ""
            return text[: min(hits)]
        keep = _partial_marker_len(text, self.stop)
        self._held = text[len(text) - keep :] if keep else ""
        return text[: len(text) - keep]

    def finish(self) -> str:
        held, self._held = self._held, ""
        return "" if self.stopped else held


@dataclass
class ToolCall:
    name: str
    arguments: str  # a JSON string, as the OpenAI API carries it
    id: str = field(default_factory=lambda: f"call_{uuid.uuid4().hex[:24]}")

    def to_openai(self) -> dict:
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": self.arguments}}


@dataclass
class Delta:
    kind: str  # "reasoning" or "content"
    text: str


@dataclass
class ParsedReply:
    content: str = ""
    reasoning: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)


def parse_tool_calls(text: str) -> tuple[list[ToolCall], str] | None:
    """Parse every `<tool_call>` block; return (calls, leftover text) or None if any block is invalid.

    A malformed call (bad JSON, no name, unterminated by a length cut) is not guessed at: the
    caller shows the raw text as content instead, so nothing the model wrote is lost.
    """
    calls = []
    for block in _TOOL_BLOCK.findall(text):
        try:
            obj = json.loads(block.strip())
        except json.JSONDecodeError:
            return None
        if not isinstance(obj, dict) or not isinstance(obj.get("name"), str) or not obj["name"]:
            return None
        args = obj.get("arguments", obj.get("parameters", {}))
        # MiniMind data carries arguments either as an object or as a JSON string.
        args = args if isinstance(args, str) else json.dumps(args, ensure_ascii=False)
        calls.append(ToolCall(obj["name"], args))
    leftover = _TOOL_BLOCK.sub("", text)
    if not calls or TOOL_CALL_START in leftover or TOOL_CALL_END in leftover:
        return None
    return calls, leftover.strip()


class ReplyParser:
    """Incremental split of reply text into reasoning / content deltas, plus tool calls at the end."""

    def __init__(self, parse_tools: bool = False):
        self.parse_tools = parse_tools
        self.state = "start"  # start -> reasoning? -> content -> tools?
        self.reply = ParsedReply()
        self._buf = ""
        self._section_start = True  # leading newlines of a section are dropped (as the template does)

    def _emit(self, out: list[Delta], kind: str, text: str) -> None:
        if self._section_start:
            text = text.lstrip("\n")
        if not text:
            return
        self._section_start = False
        setattr(self.reply, kind, getattr(self.reply, kind) + text)
        out.append(Delta(kind, text))

    def _enter(self, state: str) -> None:
        self.state, self._section_start = state, True

    def feed(self, text: str) -> list[Delta]:
        self._buf += text
        out: list[Delta] = []
        while True:
            buf = self._buf
            if self.state == "start":
                stripped = buf.lstrip()
                if stripped.startswith(THINK_START):
                    self._buf = stripped[len(THINK_START) :]
                    self._enter("reasoning")
                elif not stripped or THINK_START.startswith(stripped):
                    return out  # not yet decidable
                else:
                    self._enter("content")
            elif self.state == "reasoning":
                end = buf.find(THINK_END)
                if end >= 0:
                    self._emit(out, "reasoning", buf[:end].rstrip())
                    self._buf = buf[end + len(THINK_END) :]
                    self._enter("content")
                    continue
                # Trailing whitespace may be the "\n" before </think>: hold it with any partial marker.
                keep = _partial_marker_len(buf, [THINK_END])
                body = buf[: len(buf) - keep]
                safe = body.rstrip()
                self._emit(out, "reasoning", safe)
                self._buf = buf[len(safe) :]
                return out
            elif self.state == "content":
                start = buf.find(TOOL_CALL_START) if self.parse_tools else -1
                if start >= 0:
                    self._emit(out, "content", buf[:start].rstrip())
                    self._buf = buf[start:]
                    self.state = "tools"
                    continue
                keep = _partial_marker_len(buf, [TOOL_CALL_START]) if self.parse_tools else 0
                body = buf[: len(buf) - keep]
                # Whitespace right before a tool call is a separator, not content: hold it back.
                safe = body.rstrip() if self.parse_tools else body
                self._emit(out, "content", safe)
                self._buf = buf[len(safe) :]
                return out
            else:  # tools: everything waits for finish()
                return out

    def finish(self) -> list[Delta]:
        out: list[Delta] = []
        buf, self._buf = self._buf, ""
        if self.state == "start":
            self._emit(out, "content", buf.lstrip())
        elif self.state == "reasoning":  # cut off mid-thought (length / stop)
            self._emit(out, "reasoning", buf.rstrip())
        elif self.state == "content":
            self._emit(out, "content", buf)
        else:
            parsed = parse_tool_calls(buf)
            if parsed is None:
                self._emit(out, "content", ("\n" if self.reply.content else "") + buf)
            else:
                self.reply.tool_calls, leftover = parsed
                if leftover:
                    self._emit(out, "content", ("\n" if self.reply.content else "") + leftover)
        return out


class ReplyAssembler:
    """Stop strings first, then the reply parser: the one pipeline every front end uses."""

    def __init__(self, stop=(), parse_tools: bool = False):
        self.trimmer = StopTrimmer(list(stop or ()))
        self.parser = ReplyParser(parse_tools)

    @property
    def stopped(self) -> bool:
        return self.trimmer.stopped

    @property
    def reply(self) -> ParsedReply:
        return self.parser.reply

    def feed(self, text: str) -> list[Delta]:
        return self.parser.feed(self.trimmer.feed(text))

    def finish(self) -> list[Delta]:
        return self.parser.feed(self.trimmer.finish()) + self.parser.finish()


def parse_reply(text: str, parse_tools: bool = False, stop=()) -> ParsedReply:
    assembler = ReplyAssembler(stop, parse_tools)
    assembler.feed(text)
    assembler.finish()
    return assembler.reply
