"""Load a chat model, build prompts, and generate through ONE worker thread.

Every front end (terminal chat, web demo, OpenAI server) talks to a `GenerationWorker`:
`model.generate` is neither thread-safe on a shared model nor cheap to interleave, so jobs run
one at a time, in arrival order, on the worker's thread. A job streams its text back through
a transformers `TextStreamer` subclass, to a plain queue (sync consumers) or to an asyncio
queue (the server), and ends with a `GenerationResult` carrying the token counts.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, StoppingCriteria, StoppingCriteriaList, TextStreamer

import minimind_hf  # noqa: F401  (registers model_type "minimind" with the Auto classes)

# Keyword names `apply_chat_template` uses itself: clients may not smuggle them in as template kwargs.
RESERVED_TEMPLATE_KWARGS = frozenset(
    {"conversation", "messages", "tools", "documents", "chat_template", "add_generation_prompt",
     "continue_final_message", "tokenize", "padding", "truncation", "max_length", "return_tensors",
     "return_dict", "return_assistant_tokens_mask", "tokenizer_kwargs", "processor_kwargs"}
)


class RequestError(ValueError):
    """A problem with what the user asked for (shown to them; the server maps it to a 4xx)."""

    def __init__(self, message: str, param: str | None = None, code: str | None = None, status: int = 400):
        super().__init__(message)
        self.message, self.param, self.code, self.status = message, param, code, status


@dataclass
class SamplingParams:
    max_new_tokens: int = 512
    temperature: float = 0.85  # 0 means greedy
    top_p: float = 0.85
    top_k: int = 0  # 0 disables top-k
    repetition_penalty: float = 1.0
    seed: int | None = None
    stop: list[str] = field(default_factory=list)

    def generate_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"max_new_tokens": self.max_new_tokens, "repetition_penalty": self.repetition_penalty}
        if self.temperature and self.temperature > 0:
            kwargs.update(do_sample=True, temperature=self.temperature, top_p=self.top_p, top_k=self.top_k or 0)
        else:
            # Explicit values override any sampling defaults stored in the folder's generation_config.
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        return kwargs


@dataclass
class GenerationResult:
    prompt_tokens: int
    completion_tokens: int  # every generated token, the end-of-turn token included
    finish_reason: str  # "stop" (end of turn, stop string, cancel) or "length"


def content_has_images(content: Any) -> bool:
    return isinstance(content, list) and any(
        isinstance(part, dict) and part.get("type") in ("image", "image_url") for part in content
    )


class ChatEngine:
    """A model + tokenizer pair with the chat-specific glue: prompts, limits, one generate call."""

    def __init__(self, model, tokenizer, name: str | None = None):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.name = name or Path(getattr(model, "name_or_path", "") or "model").name
        if not tokenizer.chat_template:
            raise ValueError("the tokenizer has no chat template: is this a chat (SFT) model folder?")
        self.context_length = int(getattr(model.config, "max_position_embeddings", 0) or tokenizer.model_max_length)
        self._encode_lock = threading.Lock()  # fast tokenizers dislike concurrent use from several threads
        configured = _as_list(getattr(model.generation_config, "eos_token_id", None))
        self.eos_token_ids = sorted({tokenizer.eos_token_id, *configured} - {None})

    @property
    def accepts_images(self) -> bool:
        # MiniMind-V plugs in here (its config carries a vision tower); text-only models say no.
        return getattr(self.model.config, "model_type", "") == "minimind-v"

    def encode_chat(self, messages: list[dict], tools: list[dict] | None = None, **template_kwargs) -> list[int]:
        """Prompt token ids for `messages` + the assistant generation prompt."""
        if any(content_has_images(m.get("content")) for m in messages):
            if not self.accepts_images:
                raise RequestError("this model does not accept images", param="messages", code="images_not_supported")
            raise RequestError("image input for MiniMind-V is not wired into serving yet", param="messages")
        bad = RESERVED_TEMPLATE_KWARGS & set(template_kwargs)
        if bad:
            raise RequestError(f"chat_template_kwargs may not set {sorted(bad)}", param="chat_template_kwargs")
        with self._encode_lock:
            try:
                text = self.tokenizer.apply_chat_template(
                    messages, tools=tools or None, add_generation_prompt=True, tokenize=False, **template_kwargs
                )
            except Exception as exc:  # jinja's raise_exception (unknown role, ...) and type errors in content
                raise RequestError(f"cannot render the chat template: {exc}", param="messages") from exc
            return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def check_budget(self, prompt_len: int, max_new_tokens: int | None, default: int) -> int:
        """The number of tokens to generate: the request's, or as many as fit (up to `default`)."""
        room = self.context_length - prompt_len
        if room <= 0:
            raise RequestError(
                f"this model's maximum context length is {self.context_length} tokens, "
                f"but the messages take {prompt_len} tokens",
                param="messages", code="context_length_exceeded",
            )
        if max_new_tokens is None:
            return min(default, room)
        if max_new_tokens > room:
            raise RequestError(
                f"this model's maximum context length is {self.context_length} tokens; the messages take "
                f"{prompt_len} and {max_new_tokens} were requested for the completion",
                param="max_tokens", code="context_length_exceeded",
            )
        return max_new_tokens

    @torch.inference_mode()
    def generate(
        self, prompt_ids: list[int], params: SamplingParams, on_text, cancel: threading.Event | None = None
    ) -> GenerationResult:
        """Blocking generation; `on_text(str)` receives decoded text as it becomes final."""
        streamer = _CallbackStreamer(self.tokenizer, on_text)
        kwargs = params.generate_kwargs()
        criteria = StoppingCriteriaList([_Cancelled(cancel)] if cancel is not None else [])
        if params.stop:  # stop exactly at the token that completes a stop string
            kwargs.update(stop_strings=list(params.stop), tokenizer=self.tokenizer)
        if params.seed is not None:
            torch.manual_seed(params.seed)  # only this thread generates, so the seed alone fixes the sample
        input_ids = torch.tensor([prompt_ids], device=self.model.device)
        self.model.generate(
            input_ids=input_ids,
            attention_mask=torch.ones_like(input_ids),
            streamer=streamer,
            stopping_criteria=criteria,
            eos_token_id=self.eos_token_ids,
            pad_token_id=self.tokenizer.pad_token_id,
            **kwargs,
        )
        ended = streamer.last_token in self.eos_token_ids
        finish = "length" if not ended and streamer.generated >= params.max_new_tokens else "stop"
        return GenerationResult(len(prompt_ids), streamer.generated, finish)


def _as_list(value) -> list:
    return [] if value is None else list(value) if isinstance(value, (list, tuple)) else [value]


class _CallbackStreamer(TextStreamer):
    """transformers' word-boundary streaming, redirected to a callback, counting generated tokens."""

    def __init__(self, tokenizer, on_text):
        super().__init__(tokenizer, skip_prompt=True, skip_special_tokens=True)
        self.on_text, self.generated, self.last_token = on_text, 0, None

    def put(self, value):
        if not self.next_tokens_are_prompt:
            tokens = value.reshape(-1).tolist()
            self.generated += len(tokens)
            self.last_token = tokens[-1]
        super().put(value)

    def on_finalized_text(self, text: str, stream_end: bool = False):
        if text:
            self.on_text(text)


class _Cancelled(StoppingCriteria):
    def __init__(self, event: threading.Event):
        self.event = event

    def __call__(self, input_ids, scores, **kwargs):
        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device)


# ----------------------------------------------------------------------------- worker


class Job:
    """One queued generation. Iterate it (sync) or `async for` over `job.events()` (asyncio).

    Events: ("text", str) ... then ("done", GenerationResult) or ("error", Exception).
    """

    def __init__(self, prompt_ids: list[int], params: SamplingParams, loop: asyncio.AbstractEventLoop | None = None):
        self.prompt_ids, self.params = prompt_ids, params
        self.cancel = threading.Event()
        self._loop = loop
        self._queue: asyncio.Queue | queue.Queue = asyncio.Queue() if loop else queue.Queue()

    def _emit(self, kind: str, value) -> None:  # called on the worker thread
        if self._loop is None:
            self._queue.put((kind, value))
            return
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, (kind, value))
        except RuntimeError:  # the event loop is gone (server shutting down): nobody is listening
            self.cancel.set()

    def __iter__(self):
        while True:
            kind, value = self._queue.get()
            yield kind, value
            if kind != "text":
                return

    async def events(self):
        while True:
            kind, value = await self._queue.get()
            yield kind, value
            if kind != "text":
                return


class GenerationWorker:
    """A single thread that owns the model and runs queued jobs first-come, first-served."""

    def __init__(self, engine: ChatEngine):
        self.engine = engine
        self._jobs: queue.Queue[Job | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="minimind-generation", daemon=True)
        self._thread.start()

    def submit(self, prompt_ids: list[int], params: SamplingParams, loop=None) -> Job:
        job = Job(prompt_ids, params, loop)
        self._jobs.put(job)
        return job

    @property
    def pending(self) -> int:
        return self._jobs.qsize()

    def close(self) -> None:
        self._jobs.put(None)

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            if job.cancel.is_set():  # the client left while queued
                job._emit("done", GenerationResult(len(job.prompt_ids), 0, "stop"))
                continue
            try:
                on_text = lambda text, j=job: j._emit("text", text)  # noqa: E731
                result = self.engine.generate(job.prompt_ids, job.params, on_text, job.cancel)
            except Exception as exc:  # noqa: BLE001 - reported to the job's consumer, the worker lives on
                job._emit("error", exc)
            else:
                job._emit("done", result)


def load_chat_model(path: str | Path, device: str | None = None, dtype: str = "auto", trust_remote_code: bool = False):
    """Model + tokenizer from a save_pretrained folder (ours, an export, or a hub id in the cache)."""
    path = str(path)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    torch_dtype = dtype if dtype == "auto" else getattr(torch, dtype)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype, trust_remote_code=trust_remote_code)
    return model.to(device).eval(), tokenizer


def load_engine(path: str | Path, name: str | None = None, **kwargs) -> ChatEngine:
    model, tokenizer = load_chat_model(path, **kwargs)
    return ChatEngine(model, tokenizer, name=name or Path(str(path)).resolve().name)
