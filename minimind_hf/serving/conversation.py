"""Chat history for the interactive front ends (terminal and web demo) and one turn of streaming."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace

from ..parsing import Delta, ParsedReply, ReplyAssembler
from .engine import GenerationResult, Prompt, SamplingParams
from .images import image_part
from .worker import GenerationWorker


@dataclass
class Conversation:
    """OpenAI-style message list with an optional system prompt that survives `reset()`."""

    system: str | None = None
    messages: list[dict] = field(default_factory=list)
    tool_schemas: list[dict] | None = None  # offered to the model on every turn (opt-in: --tools)

    def reset(self) -> None:
        self.messages.clear()

    def add_user(self, text: str, images: list[str] | None = None) -> None:
        """`images`: file paths or data URLs. They become OpenAI image_url parts (before the text) and
        stay in the history, so every later prompt re-encodes them at the same place."""
        content = [image_part(i) for i in images] + [{"type": "text", "text": text}] if images else text
        self.messages.append({"role": "user", "content": content})

    def add_assistant(self, reply: ParsedReply) -> None:
        message = {"role": "assistant", "content": reply.content}
        if reply.reasoning:
            message["reasoning_content"] = reply.reasoning
        if reply.tool_calls:
            message["tool_calls"] = [call.to_openai() for call in reply.tool_calls]
        self.messages.append(message)

    def add_tool_result(self, name: str, content: str) -> None:
        self.messages.append({"role": "tool", "name": name, "content": content})

    def pop_user(self) -> None:
        """Forget an unanswered user turn (generation failed or was interrupted)."""
        if self.messages and self.messages[-1]["role"] == "user":
            self.messages.pop()

    def to_messages(self) -> list[dict]:
        head = [{"role": "system", "content": self.system}] if self.system else []
        return head + list(self.messages)


@dataclass
class Turn:
    """One streamed answer: iterate for reasoning/content deltas; `reply` and `result` at the end."""

    worker: GenerationWorker
    prompt: Prompt
    params: SamplingParams
    reply: ParsedReply | None = None
    result: GenerationResult | None = None

    @property
    def prompt_ids(self) -> list[int]:
        return self.prompt.input_ids

    parse_tools: bool = False

    def __iter__(self) -> Iterator[Delta]:
        assembler = ReplyAssembler(self.params.stop, parse_tools=self.parse_tools)
        job = self.worker.submit(self.prompt, self.params)
        try:
            for kind, value in job:
                if kind == "error":
                    raise value
                if kind == "done":
                    self.result = value
                    break
                yield from assembler.feed(value)
                if assembler.stopped:
                    job.cancel.set()
        finally:
            job.cancel.set()  # interrupted consumers (Ctrl-C, a closed browser tab) free the worker
        yield from assembler.finish()
        self.reply = assembler.reply


def start_turn(
    worker: GenerationWorker, conversation: Conversation, params: SamplingParams, thinking: bool = False
) -> Turn:
    """Render the conversation (ending with the user's message or a tool result) and queue its answer."""
    prompt = worker.engine.encode_prompt(
        conversation.to_messages(), conversation.tool_schemas, template_kwargs={"open_thinking": thinking}
    )
    budget = worker.engine.check_budget(len(prompt), None, params.max_new_tokens)  # image tokens count too
    return Turn(worker, prompt, replace(params, max_new_tokens=budget), parse_tools=bool(conversation.tool_schemas))
