"""Chat front ends for MiniMind models: terminal chat, OpenAI-compatible server, web demo.

All of them share `engine.GenerationWorker` (one thread owns the model, jobs queue) and
`parsing.ReplyAssembler` (stop strings, `<think>` reasoning, `<tool_call>` blocks).
"""

from .conversation import Conversation, Turn, start_turn
from .engine import (
    ChatEngine,
    GenerationResult,
    GenerationWorker,
    Prompt,
    RequestError,
    SamplingParams,
    load_chat_model,
    load_engine,
    load_processor,
)
from .parsing import ParsedReply, ReplyAssembler, ToolCall, parse_reply

__all__ = [
    "ChatEngine",
    "Conversation",
    "GenerationResult",
    "GenerationWorker",
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
