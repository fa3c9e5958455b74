"""Serving MiniMind models: the generation engine and its worker thread, conversation state,
the OpenAI-compatible server. The front ends (terminal chat, web demo) live in `minimind_hf.cli`.

All of them share `worker.GenerationWorker` (one thread owns the model, jobs queue) and
`minimind_hf.parsing.ReplyAssembler` (stop strings, `<think>` reasoning, `<tool_call>` blocks).
"""

from ..parsing import ParsedReply, ReplyAssembler, ToolCall, parse_reply
from .conversation import Conversation, Turn, start_turn
from .engine import (
    ChatEngine,
    GenerationResult,
    Prompt,
    RequestError,
    SamplingParams,
    load_chat_model,
    load_engine,
    load_processor,
)
from .worker import GenerationWorker, Job

__all__ = [
    "ChatEngine",
    "Conversation",
    "GenerationResult",
    "GenerationWorker",
    "Job",
    "ParsedReply",
    "Prompt",
    "ReplyAssembler",
    "RequestError",
    "SamplingParams",
    "ToolCall",
    "Turn",
    "load_chat_model",
    "load_engine",
    "load_processor",
    "parse_reply",
    "start_turn",
]
