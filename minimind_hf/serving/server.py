"""OpenAI-compatible HTTP server: `/v1/models` and `/v1/chat/completions` (plain and SSE).

Requests are validated (schemas.py), rendered with the model's chat template, and queued on
the single `GenerationWorker`; the event loop only shuttles text, so many clients can wait
while one generation runs, and outputs never mix. Every failure the client caused is an
OpenAI-style error body `{"error": {"message", "type", "param", "code"}}` with a 4xx status.
`ServerLimits` bounds what one request may cost (body bytes, images, pixels per image); a client
that hangs up, streaming or not, cancels its generation.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass, replace

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..parsing import ReplyAssembler
from .engine import Prompt, RequestError, SamplingParams
from .images import MAX_IMAGE_PIXELS
from .schemas import ChatCompletionRequest
from .worker import GenerationWorker

# OpenAI's defaults for sampling; max_tokens defaults to what fits, capped by the server option.
OPENAI_DEFAULTS = SamplingParams(temperature=1.0, top_p=1.0, top_k=0, repetition_penalty=1.0)


@dataclass(frozen=True)
class ServerLimits:
    """What one request may cost; the serve command's --max-body-mb / --max-images / --max-image-pixels."""

    max_body_bytes: int = 8 * 2**20  # a few photos as base64 data URLs; text prompts are far smaller
    max_images: int = 8
    max_image_pixels: int = MAX_IMAGE_PIXELS  # checked from the image header, before decoding


def error_response(
    status: int, message: str, param: str | None = None, code: str | None = None, type_: str | None = None
) -> JSONResponse:
    type_ = type_ or ("invalid_request_error" if status < 500 else "server_error")
    return JSONResponse(
        {"error": {"message": message, "type": type_, "param": param, "code": code}}, status_code=status
    )


def _too_large(limit: int) -> str:
    return f"the request body is larger than this server's limit of {limit:,} bytes"


class _BodyLimit:
    """ASGI middleware: a body over `limit` bytes gets a 413 instead of being stored and parsed.

    A declared Content-Length is judged at once, a chunked body when the running count passes the
    limit (the HTTPException raised from `receive` reaches the app's error handler). The rest of
    such a body is read and dropped first: clients that send all of it before reading (urllib,
    requests) would otherwise see a reset connection instead of the answer.
    """

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            if headers.get(b"expect", b"").lower() != b"100-continue":  # those clients wait for this answer
                await _discard_body(receive, {"more_body": True})
            response = error_response(413, _too_large(self.limit), code="request_too_large")
            return await response(scope, receive, send)
        seen = 0

        async def limited_receive():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                await _discard_body(receive, message)
                raise HTTPException(413, _too_large(self.limit))
            return message

        await self.app(scope, limited_receive, send)


async def _discard_body(receive, message: dict, cap: int = 64 * 2**20) -> None:
    """Read what is left of a refused body without keeping it (up to `cap` bytes; then the socket closes)."""
    dropped = 0
    while message.get("more_body") and dropped < cap:
        message = await receive()
        dropped += len(message.get("body", b""))


# Union branches that pydantic names in error locations: role / part tags and type names, not fields.
_UNION_TAGS = {
    "system",
    "developer",
    "user",
    "assistant",
    "tool",
    "text",
    "image_url",
    "str",
    "int",
    "float",
    "bool",
    "dict",
    "list",
    "none",
}


def _clean_loc(loc) -> list[str]:
    return [str(p) for p in loc if p != "body" and not (isinstance(p, str) and (p in _UNION_TAGS or "[" in p))]


def _validation_message(exc: RequestValidationError) -> tuple[str, str | None]:
    """One OpenAI-style message + `param` from pydantic's errors (several when a union failed)."""
    errors = exc.errors()
    if not errors:
        return "invalid request", None
    if errors[0].get("type") == "json_invalid":
        return "the request body is not valid JSON", None
    locs = [_clean_loc(e.get("loc", ())) for e in errors]
    # Name the first problem only: its field, or its list item (messages.3), with that item's union branches.
    first = locs[0]
    item = next((i + 1 for i, part in enumerate(first) if part.isdigit()), len(first))
    errors, locs = zip(*[(e, loc) for e, loc in zip(errors, locs) if loc[:item] == first[:item]])
    common = locs[0]
    for loc in locs[1:]:
        n = 0
        while n < min(len(common), len(loc)) and common[n] == loc[n]:
            n += 1
        common = common[:n]
    deepest = max(len(loc) for loc in locs)
    reasons = list(
        dict.fromkeys(
            e.get("msg", "invalid value").removeprefix("Value error, ")
            for e, loc in zip(errors, locs)
            if len(loc) == deepest
        )
    )
    param = ".".join(common) or None
    return f"{param or 'body'}: {' or '.join(reasons)}", param


def create_app(
    worker: GenerationWorker,
    model_name: str | None = None,
    max_tokens_default: int = 512,
    limits: ServerLimits | None = None,
) -> FastAPI:
    engine = worker.engine
    model_name = model_name or engine.name
    limits = limits or ServerLimits()
    created = int(time.time())
    app = FastAPI(title="minimind-hf OpenAI-compatible server")
    app.add_middleware(_BodyLimit, limit=limits.max_body_bytes)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        message, param = _validation_message(exc)
        return error_response(400, message, param)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        code = {404: "not_found", 413: "request_too_large"}.get(exc.status_code)
        return error_response(exc.status_code, str(exc.detail), code=code)

    @app.exception_handler(RequestError)
    async def _request_error(request: Request, exc: RequestError):
        return error_response(exc.status, exc.message, exc.param, exc.code)

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception):  # a bug or a failed generation, still JSON
        return error_response(500, f"internal error: {type(exc).__name__}: {exc}")

    @app.get("/health")
    async def health():
        return {"status": "ok", "queued": worker.pending}

    def model_card() -> dict:
        return {
            "id": model_name,
            "object": "model",
            "created": created,
            "owned_by": "minimind-hf",
            "max_model_len": engine.context_length,
        }

    @app.get("/v1/models")
    async def list_models():
        return {"object": "list", "data": [model_card()]}

    @app.get("/v1/models/{model_id:path}")
    async def get_model(model_id: str):
        if model_id != model_name:
            raise RequestError(
                f"the model `{model_id}` does not exist", param="model", code="model_not_found", status=404
            )
        return model_card()

    def prepare(req: ChatCompletionRequest) -> tuple[Prompt, SamplingParams, bool]:
        """Validate what pydantic cannot (model, template, context) and build the job's inputs."""
        if req.model != model_name:
            raise RequestError(
                f"the model `{req.model}` does not exist; this server serves `{model_name}`",
                param="model",
                code="model_not_found",
                status=404,
            )
        use_tools = bool(req.tools) and req.tool_choice != "none"
        tools = [t.model_dump(exclude_none=True) for t in req.tools] if use_tools else None
        prompt = engine.encode_prompt(
            req.template_messages(),
            tools,
            req.chat_template_kwargs,
            max_images=limits.max_images,
            max_image_pixels=limits.max_image_pixels,
        )
        requested = req.max_completion_tokens if req.max_completion_tokens is not None else req.max_tokens
        budget = engine.check_budget(len(prompt), requested, max_tokens_default)  # expanded image tokens included
        top_k = req.top_k if req.top_k is not None and req.top_k > 0 else 0
        params = replace(
            OPENAI_DEFAULTS,
            max_new_tokens=budget,
            temperature=OPENAI_DEFAULTS.temperature if req.temperature is None else req.temperature,
            top_p=OPENAI_DEFAULTS.top_p if req.top_p is None else req.top_p,
            top_k=top_k,
            repetition_penalty=req.repetition_penalty or 1.0,
            seed=req.seed,
            stop=list(req.stop or []),
        )
        return prompt, params, use_tools

    @app.post("/v1/chat/completions")
    async def chat_completions(req: ChatCompletionRequest, request: Request):
        # Off the event loop: decoding and resizing images takes a while, and other streams are waiting.
        prompt, params, use_tools = await run_in_threadpool(prepare, req)
        job = worker.submit(prompt, params, loop=asyncio.get_running_loop())
        completion_id = f"chatcmpl-{uuid.uuid4().hex}"
        if req.stream:
            include_usage = bool(req.stream_options and req.stream_options.include_usage)
            return StreamingResponse(
                _stream(job, completion_id, model_name, params, use_tools, include_usage),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            )
        assembler = ReplyAssembler(params.stop, parse_tools=use_tools)
        watcher = asyncio.create_task(_cancel_on_disconnect(request, job))
        try:
            result = await _drain(job, assembler)
        finally:
            watcher.cancel()
            job.cancel.set()  # ends a generation that outlived a stop string, an error or its client
        reply = assembler.reply
        message = {"role": "assistant", "content": reply.content or (None if reply.tool_calls else "")}
        if reply.reasoning:
            message["reasoning_content"] = reply.reasoning
        if reply.tool_calls:
            message["tool_calls"] = [call.to_openai() for call in reply.tool_calls]
        return {
            "id": completion_id,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model_name,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": _finish_reason(result.finish_reason, assembler),
                }
            ],
            "usage": _usage(result),
        }

    return app


async def _cancel_on_disconnect(request: Request, job) -> None:
    """A plain reply sends nothing until the end, so only `receive` tells that its client hung up.
    (StreamingResponse watches for that itself, and its generator's `finally` cancels.)"""
    while (await request.receive())["type"] != "http.disconnect":
        pass
    job.cancel.set()


async def _drain(job, assembler: ReplyAssembler):
    async for kind, value in job.events():
        if kind == "text":
            assembler.feed(value)
            if assembler.stopped:
                job.cancel.set()
        elif kind == "error":
            raise value
        else:
            assembler.finish()
            return value


def _finish_reason(reason: str, assembler: ReplyAssembler) -> str:
    if assembler.reply.tool_calls:
        return "tool_calls"
    return "stop" if assembler.stopped else reason


def _usage(result) -> dict:
    return {
        "prompt_tokens": result.prompt_tokens,
        "completion_tokens": result.completion_tokens,
        "total_tokens": result.prompt_tokens + result.completion_tokens,
    }


def _sse(data: dict | str) -> str:
    return f"data: {data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)}\n\n"


async def _stream(job, completion_id: str, model: str, params: SamplingParams, use_tools: bool, include_usage: bool):
    """SSE chunks in OpenAI's order: role, deltas, tool calls, finish_reason, [usage], [DONE]."""
    created = int(time.time())
    assembler = ReplyAssembler(params.stop, parse_tools=use_tools)

    def chunk(delta: dict, finish: str | None = None) -> str:
        body = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if include_usage:
            body["usage"] = None
        return _sse(body)

    def deltas(items) -> list[str]:
        return [chunk({("reasoning_content" if d.kind == "reasoning" else "content"): d.text}) for d in items]

    try:
        yield chunk({"role": "assistant", "content": ""})
        result = None
        async for kind, value in job.events():
            if kind == "text":
                for piece in deltas(assembler.feed(value)):
                    yield piece
                if assembler.stopped:
                    job.cancel.set()
            elif kind == "error":
                raise value
            else:
                result = value
        for piece in deltas(assembler.finish()):
            yield piece
        calls = assembler.reply.tool_calls
        if calls:
            yield chunk({"tool_calls": [dict(index=i, **call.to_openai()) for i, call in enumerate(calls)]})
        yield chunk({}, _finish_reason(result.finish_reason, assembler))
        if include_usage:
            yield _sse(
                {
                    "id": completion_id,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model,
                    "choices": [],
                    "usage": _usage(result),
                }
            )
    except Exception as exc:  # noqa: BLE001 - headers are sent; report in-band as OpenAI does
        yield _sse(
            {"error": {"message": f"generation failed: {exc}", "type": "server_error", "param": None, "code": None}}
        )
    finally:
        job.cancel.set()  # also runs when the client disconnects mid-stream
    yield _sse("[DONE]")


def serve(
    model_path: str,
    host: str = "127.0.0.1",
    port: int = 8000,
    model_name: str | None = None,
    max_tokens_default: int = 512,
    log_level: str = "info",
    limits: ServerLimits | None = None,
    **load_kwargs,
) -> None:
    import uvicorn

    from .engine import load_engine

    worker = GenerationWorker(load_engine(model_path, name=model_name, **load_kwargs))
    app = create_app(worker, model_name, max_tokens_default, limits)
    try:
        uvicorn.run(app, host=host, port=port, log_level=log_level)
    finally:
        worker.close()
