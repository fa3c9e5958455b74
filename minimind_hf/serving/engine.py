"""Load a chat model, build prompts, and generate (the worker thread that runs it: `worker.py`).

`ChatEngine.generate` streams text through a transformers `TextStreamer` subclass to a
callback and returns a `GenerationResult` carrying the token counts.

MiniMind-V folders load with their processor: image content parts (data URLs) are decoded,
rendered as image blocks by the chat template, expanded to placeholder tokens and turned into
`pixel_values` (`Prompt`), which `generate` feeds to the prefill step.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoConfig,
    AutoProcessor,
    AutoTokenizer,
    StoppingCriteria,
    StoppingCriteriaList,
    TextStreamer,
)

import minimind_hf  # noqa: F401  (registers "minimind" / "minimind-v" with the Auto classes)

from ..utils import is_vlm
from .images import MAX_IMAGE_PIXELS, load_image

# Keyword names `apply_chat_template` (or the template's render call) uses itself: clients may not
# smuggle them in as template kwargs.
RESERVED_TEMPLATE_KWARGS = frozenset(
    {
        "self",
        "conversation",
        "messages",
        "tools",
        "documents",
        "chat_template",
        "add_generation_prompt",
        "continue_final_message",
        "tokenize",
        "padding",
        "truncation",
        "max_length",
        "return_tensors",
        "return_dict",
        "return_assistant_tokens_mask",
        "sanitize_control_tokens",
        "tokenizer_kwargs",
        "processor_kwargs",
    }
)


class RequestError(ValueError):
    """A problem with what the user asked for (shown to them; the server maps it to a 4xx)."""

    def __init__(self, message: str, param: str | None = None, code: str | None = None, status: int = 400):
        super().__init__(message)
        self.message, self.param, self.code, self.status = message, param, code, status


# Temperatures below this mean greedy (as in vLLM): dividing logits by them overflows to inf / nan.
GREEDY_BELOW = 1e-5


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
        if self.temperature and self.temperature >= GREEDY_BELOW:
            kwargs.update(do_sample=True, temperature=self.temperature, top_p=self.top_p, top_k=self.top_k or 0)
        else:
            # Explicit values override any sampling defaults stored in the folder's generation_config.
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        return kwargs


@dataclass
class Prompt:
    """A rendered, tokenized prompt: image placeholders already expanded in `input_ids`, and
    `pixel_values` holding the prompt's images in reading order (None without images)."""

    input_ids: list[int]
    pixel_values: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.input_ids)


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
    """A model + tokenizer (+ processor for MiniMind-V) with the chat glue: prompts, limits, one generate call."""

    def __init__(self, model, tokenizer, name: str | None = None, processor=None):
        self.model = model.eval()
        if processor is None and is_vlm(model.config):
            raise ValueError("a vision-language model needs its processor (AutoProcessor.from_pretrained(folder))")
        self.processor = processor
        self.tokenizer = processor.tokenizer if processor is not None else tokenizer
        self.name = name or Path(getattr(model, "name_or_path", "") or "model").name
        if not self.tokenizer.chat_template:
            raise ValueError("the tokenizer has no chat template: is this a chat (SFT) model folder?")
        text_config = model.config.get_text_config(decoder=True)
        self.context_length = int(getattr(text_config, "max_position_embeddings", 0) or self.tokenizer.model_max_length)
        self._encode_lock = threading.Lock()  # fast tokenizers dislike concurrent use from several threads
        configured = _as_list(getattr(model.generation_config, "eos_token_id", None))
        self.eos_token_ids = sorted({self.tokenizer.eos_token_id, *configured} - {None})

    @property
    def accepts_images(self) -> bool:
        """MiniMind-V (a model with a vision tower, loaded with its processor) takes image parts."""
        return self.processor is not None

    def encode_chat(self, messages: list[dict], tools: list[dict] | None = None, /, **template_kwargs) -> list[int]:
        """Prompt token ids for `messages` + the assistant generation prompt (see `encode_prompt`)."""
        return self.encode_prompt(messages, tools, template_kwargs).input_ids

    def encode_prompt(
        self,
        messages: list[dict],
        tools: list[dict] | None = None,
        template_kwargs: dict | None = None,
        max_images: int | None = None,
        max_image_pixels: int | None = MAX_IMAGE_PIXELS,
    ) -> Prompt:
        """Render `messages` + the assistant generation prompt; decode and preprocess their images.

        `template_kwargs` is a dict, not `**kwargs`, so a client's keys can never collide with this
        method's own parameters. The whole history is rendered every turn, so images of earlier
        turns keep their place (and their placeholder tokens) in every later prompt.
        """
        template_kwargs = template_kwargs or {}
        bad = RESERVED_TEMPLATE_KWARGS & set(template_kwargs)
        if bad:
            raise RequestError(f"chat_template_kwargs may not set {sorted(bad)}", param="chat_template_kwargs")
        images: list = []
        if any(content_has_images(m.get("content")) for m in messages):
            if not self.accepts_images:
                raise RequestError("this model does not accept images", param="messages", code="images_not_supported")
            messages, images = _take_images(messages, max_images, max_image_pixels)
        with self._encode_lock:
            try:
                text = self.tokenizer.apply_chat_template(
                    messages, tools=tools or None, add_generation_prompt=True, tokenize=False, **template_kwargs
                )
            except Exception as exc:  # jinja's raise_exception (unknown role, ...) and type errors in content
                raise RequestError(f"cannot render the chat template: {exc}", param="messages") from exc
            if self.processor is None:
                return Prompt(self.tokenizer(text, add_special_tokens=False)["input_ids"])
            return self._process(text, images)

    def _process(self, text: str, images: list) -> Prompt:
        """The processor expands each image block to `image_seq_length` placeholders + pixel values."""
        processor = self.processor
        markers = processor.normalize_image_markers(text).count(processor.image_token)
        if markers != len(images):
            raise RequestError(
                f"the messages hold {markers} image marker(s) but {len(images)} image(s): send images as "
                f"image_url content parts and keep <image> / {processor.image_token} out of the text",
                param="messages",
            )
        try:
            batch = processor(text=[text], images=images or None, return_tensors="pt")
        except Exception as exc:  # an image the image processor cannot handle
            raise RequestError(f"cannot preprocess the images: {exc}", param="messages") from exc
        return Prompt(batch["input_ids"][0].tolist(), batch["pixel_values"] if images else None)

    def check_budget(self, prompt_len: int, max_new_tokens: int | None, default: int) -> int:
        """The number of tokens to generate: the request's, or as many as fit (up to `default`)."""
        room = self.context_length - prompt_len
        if room <= 0:
            raise RequestError(
                f"this model's maximum context length is {self.context_length} tokens, "
                f"but the messages take {prompt_len} tokens",
                param="messages",
                code="context_length_exceeded",
            )
        if max_new_tokens is None:
            return min(default, room)
        if max_new_tokens > room:
            raise RequestError(
                f"this model's maximum context length is {self.context_length} tokens; the messages take "
                f"{prompt_len} and {max_new_tokens} were requested for the completion",
                param="max_tokens",
                code="context_length_exceeded",
            )
        return max_new_tokens

    @torch.inference_mode()
    def generate(
        self, prompt: Prompt, params: SamplingParams, on_text, cancel: threading.Event | None = None
    ) -> GenerationResult:
        """Blocking generation; `on_text(str)` receives decoded text as it becomes final."""
        streamer = _CallbackStreamer(self.tokenizer, on_text)
        kwargs = params.generate_kwargs()
        criteria = StoppingCriteriaList([_Cancelled(cancel)] if cancel is not None else [])
        if params.stop:  # stop exactly at the token that completes a stop string
            kwargs.update(stop_strings=list(params.stop), tokenizer=self.tokenizer)
        if params.seed is not None:
            torch.manual_seed(params.seed)  # only this thread generates, so the seed alone fixes the sample
        input_ids = torch.tensor([prompt.input_ids], device=self.model.device)
        if prompt.pixel_values is not None:  # transformers feeds them to the prefill step only
            kwargs["pixel_values"] = prompt.pixel_values.to(self.model.device)
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
        return GenerationResult(len(prompt), streamer.generated, finish)


def _take_images(messages: list[dict], max_images: int | None, max_pixels: int | None) -> tuple[list[dict], list]:
    """Decode every image part (data URLs) in reading order; the template sees `{"type": "image"}`."""
    count = sum(
        isinstance(p, dict) and p.get("type") in ("image", "image_url")
        for m in messages
        if isinstance(m.get("content"), list)
        for p in m["content"]
    )
    if max_images is not None and count > max_images:  # counted before anything is decoded
        raise RequestError(
            f"the messages hold {count} images; at most {max_images} are accepted per request",
            param="messages",
            code="too_many_images",
        )
    images, out = [], []
    for i, message in enumerate(messages):
        content = message.get("content")
        if not content_has_images(content):
            out.append(message)
            continue
        parts = []
        for j, part in enumerate(content):
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "image_url":
                url = part.get("image_url")
                url = url.get("url") if isinstance(url, dict) else url
                try:
                    images.append(load_image(url if isinstance(url, str) else "", max_pixels))
                except ValueError as exc:
                    raise RequestError(
                        f"messages[{i}].content[{j}]: {exc}", param=f"messages.{i}.content.{j}", code="invalid_image"
                    ) from exc
                part = {"type": "image"}
            elif kind == "image":
                raise RequestError(
                    f"messages[{i}].content[{j}]: an image part needs its data (send image_url)",
                    param=f"messages.{i}.content.{j}",
                    code="invalid_image",
                )
            parts.append(part)
        out.append({**message, "content": parts})
    return out, images


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


def load_chat_model(path: str | Path, device: str | None = None, dtype: str = "auto", trust_remote_code: bool = False):
    """Model + tokenizer from a save_pretrained folder (ours, an export, or a hub id in the cache)."""
    path = str(path)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    from ..utils import load_pretrained, resolve_dtype

    model = load_pretrained(path, dtype=resolve_dtype(dtype), trust_remote_code=trust_remote_code)
    return model.to(device).eval(), tokenizer


def load_processor(path: str | Path, trust_remote_code: bool = False):
    """The folder's processor (tokenizer + image processor) for a MiniMind-V model; None for text-only ones."""
    config = AutoConfig.from_pretrained(str(path), trust_remote_code=trust_remote_code)
    if not is_vlm(config):
        return None
    try:
        return AutoProcessor.from_pretrained(str(path), trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        raise ValueError(
            f"{path} holds a vision-language model but no usable processor files "
            f"(save them with processor.save_pretrained): {exc}"
        ) from exc


def load_engine(path: str | Path, name: str | None = None, **kwargs) -> ChatEngine:
    model, tokenizer = load_chat_model(path, **kwargs)
    processor = load_processor(path, trust_remote_code=kwargs.get("trust_remote_code", False))
    return ChatEngine(model, tokenizer, name=name or Path(str(path)).resolve().name, processor=processor)
