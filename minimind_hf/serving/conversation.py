"""Chat history for the interactive front ends (terminal and web demo) and one turn of streaming."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace

from .engine import GenerationResult, GenerationWorker, SamplingParams
from .images import image_part
from .parsing import Delta, ParsedReply, ReplyAssembler


@dataclass
class Conversation:
    """OpenAI-style message list with an optional system prompt that survives `reset()`."""

    system: str | None = None
    messages: list[dict] = field(default_factory=list)

    def reset(self) -> None:
        self.messages.clear()

    def add_user(self, text: str, images: list[str] | None = None) -> None:
        # Images become OpenAI content parts: the template renders one placeholder per image.
        content = [image_part(i) for i in images] + [{"type": "text", "text": text}] if images else text
        self.messages.append({"role": "user", "content": content})

    def add_assistant(self, reply: ParsedReply) -> None:
        message = {"role": "assistant", "content": reply.content}
        if reply.reasoning:
            message["reasoning_content"] = reply.reasoning
        if reply.tool_calls:
            message["tool_calls"] = [call.to_openai() for call in reply.tool_calls]
        self.messages.append(message)

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
    prompt_ids: list[int]
    params: SamplingParams
    reply: ParsedReply | None = None
    result: GenerationResult | None = None

    def __iter__(self) -> Iterator[Delta]:
        assembler = ReplyAssembler(self.params.stop)
        job = self.worker.submit(self.prompt_ids, self.params)
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


def start_turn(worker: GenerationWorker, conversation: Conversation, params: SamplingParams, thinking: bool = False) -> Turn:
    """Render the conversation (ending with the user's new message) and queue its answer."""
    prompt_ids = worker.engine.encode_chat(conversation.to_messages(), open_thinking=thinking)
    budget = worker.engine.check_budget(len(prompt_ids), None, params.max_new_tokens)
    return Turn(worker, prompt_ids, replace(params, max_new_tokens=budget))
