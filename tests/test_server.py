"""OpenAI-compatible server: the official `openai` client against a server on loopback.

A random-weight tiny model serves in a subprocess (real startup, real sockets); references
come from calling `generate` on the same weights in this process. Tool calls, reasoning and
stop strings need known model text, so they run against an in-process server whose engine
replays canned replies. Images run against an in-process server with a tiny MiniMind-V.
"""

import base64
import http.client
import io
import json
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
from serving_helpers import (
    free_port,
    one_thread,
    png_bytes,
    random_model_dir,
    start_script,
    stop_process,
    vlm_model_dir,
    wait_http,
)

openai = pytest.importorskip("openai", reason="the official openai client is a dev dependency")
uvicorn = pytest.importorskip("uvicorn")

from minimind_hf.serving import GenerationResult, GenerationWorker, load_engine, parse_reply  # noqa: E402
from minimind_hf.serving.engine import ChatEngine, load_chat_model  # noqa: E402
from minimind_hf.serving.images import data_url  # noqa: E402
from minimind_hf.serving.server import ServerLimits, create_app  # noqa: E402

NAME = "minimind-tiny"
HI = [{"role": "user", "content": "hi"}]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather of a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return random_model_dir(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def reference(model_dir):
    return load_chat_model(model_dir, device="cpu")


@pytest.fixture(scope="module")
def server(model_dir):
    port = free_port()
    proc = start_script("serve.py", str(model_dir), "--port", str(port), "--model-name", NAME, "--log-level", "warning")
    try:
        wait_http(f"http://127.0.0.1:{port}/health", proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(proc)


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=f"{server}/v1", api_key="unused", max_retries=0, timeout=60)


def greedy_reference(reference, messages, max_new_tokens, **template_kwargs):
    """(parsed reply, prompt length, generated token count, finish_reason) straight from generate()."""
    model, tok = reference
    prompt = tok.apply_chat_template(messages, add_generation_prompt=True, **template_kwargs)["input_ids"]
    with one_thread(), torch.no_grad():
        out = model.generate(
            torch.tensor([prompt]),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id,
        )
    new = out[0, len(prompt) :].tolist()
    finish = "stop" if new[-1] == tok.eos_token_id else "length"
    return parse_reply(tok.decode(new, skip_special_tokens=True)), len(prompt), len(new), finish


def test_models_endpoint(client):
    models = client.models.list()
    assert [m.id for m in models.data] == [NAME]
    assert client.models.retrieve(NAME).id == NAME


def test_non_streaming_matches_generate_and_counts_tokens(client, reference):
    reply = client.chat.completions.create(model=NAME, messages=HI, temperature=0, max_tokens=24)
    expected, prompt_len, generated, finish = greedy_reference(reference, HI, 24)
    choice = reply.choices[0]
    assert choice.message.role == "assistant" and choice.message.content == expected.content
    assert getattr(choice.message, "reasoning_content", None) == (expected.reasoning or None)
    assert choice.finish_reason == finish
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (prompt_len, generated)
    assert reply.usage.total_tokens == prompt_len + generated and reply.model == NAME


def test_streaming_chunks_and_usage(client, reference):
    stream = client.chat.completions.create(
        model=NAME, messages=HI, temperature=0, max_tokens=24, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    expected, prompt_len, generated, finish = greedy_reference(reference, HI, 24)
    assert chunks[0].choices[0].delta.role == "assistant"
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(pieces) > 1 and "".join(pieces) == expected.content  # really streamed, same text
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == [finish]
    assert chunks[-1].choices == [] and chunks[-1].usage.prompt_tokens == prompt_len
    assert chunks[-1].usage.completion_tokens == generated
    assert all(c.usage is None for c in chunks[:-1])
    assert len({c.id for c in chunks}) == 1


def test_sse_wire_format_ends_with_done(server):
    body = {"model": NAME, "messages": HI, "max_tokens": 4, "stream": True}
    request = urllib.request.Request(
        f"{server}/v1/chat/completions", json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        assert response.headers["Content-Type"].startswith("text/event-stream")
        events = [e for e in response.read().decode().split("\n\n") if e]
    assert all(e.startswith("data: ") for e in events) and events[-1] == "data: [DONE]"
    assert json.loads(events[0][6:])["object"] == "chat.completion.chunk"


def test_thinking_switch_and_tools_reach_the_template(client, reference):
    _, tok = reference
    for kwargs in ({"open_thinking": True}, {"enable_thinking": True}, {"open_thinking": False}):
        reply = client.chat.completions.create(
            model=NAME, messages=HI, max_tokens=1, extra_body={"chat_template_kwargs": kwargs}
        )
        want = len(tok.apply_chat_template(HI, add_generation_prompt=True, **kwargs)["input_ids"])
        assert reply.usage.prompt_tokens == want
    reply = client.chat.completions.create(model=NAME, messages=HI, max_tokens=1, tools=TOOLS)
    assert reply.usage.prompt_tokens == len(
        tok.apply_chat_template(HI, tools=TOOLS, add_generation_prompt=True)["input_ids"]
    )
    history = HI + [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    ]
    reply = client.chat.completions.create(model=NAME, messages=history, max_tokens=1, tools=TOOLS)
    templated = [dict(m, content=m["content"] or "") for m in history]
    assert reply.usage.prompt_tokens == len(
        tok.apply_chat_template(templated, tools=TOOLS, add_generation_prompt=True)["input_ids"]
    )


def test_concurrent_requests_never_mix(client):
    """8 clients at once (half streaming) get exactly what each gets alone."""
    jobs = [
        (f"question {i}: tell me about {'cats dogs birds fish'.split()[i % 4]}", 100 + i, i % 2 == 0) for i in range(8)
    ]

    def ask(job):
        prompt, seed, stream = job
        kwargs = dict(
            model=NAME, messages=[{"role": "user", "content": prompt}], temperature=1.0, seed=seed, max_tokens=16
        )
        if not stream:
            return client.chat.completions.create(**kwargs).choices[0].message.content
        return "".join(
            c.choices[0].delta.content or "" for c in client.chat.completions.create(stream=True, **kwargs) if c.choices
        )

    alone = [ask(job) for job in jobs]
    assert len(set(alone)) == len(jobs)  # different seeds/prompts really give different texts
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        together = list(pool.map(ask, jobs))
    assert together == alone


def _post(url: str, body: bytes, content_type: str = "application/json"):
    request = urllib.request.Request(url, body, {"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def _body(**fields) -> bytes:
    return json.dumps({"model": NAME, "messages": HI, **fields}).encode()


MALFORMED = {
    "invalid json": (b'{"model": "x", "messages": [', 400, None),
    "not an object": (b"[1, 2, 3]", 400, None),
    "unknown model": (_body(model="gpt-9"), 404, "model"),
    "missing messages": (json.dumps({"model": NAME}).encode(), 400, "messages"),
    "empty messages": (_body(messages=[]), 400, "messages"),
    "messages not a list": (_body(messages="hi"), 400, "messages"),
    "unknown role": (_body(messages=[{"role": "wizard", "content": "hi"}]), 400, "messages.0"),
    "content wrong type": (_body(messages=[{"role": "user", "content": 42}]), 400, "messages.0.content"),
    "unknown content part": (
        _body(messages=[{"role": "user", "content": [{"type": "audio", "data": "x"}]}]),
        400,
        "messages.0.content",
    ),
    "temperature not a number": (_body(temperature="hot"), 400, "temperature"),
    "temperature out of range": (_body(temperature=5), 400, "temperature"),
    "max_tokens negative": (_body(max_tokens=-3), 400, "max_tokens"),
    "max_tokens beyond context": (_body(max_tokens=10**6), 400, "max_tokens"),
    "n > 1": (_body(n=3), 400, "n"),
    "stop too many": (_body(stop=["a", "b", "c", "d", "e"]), 400, "stop"),
    "tool_choice unsupported": (_body(tools=TOOLS, tool_choice="required"), 400, "tool_choice"),
    "template kwarg clash": (_body(chat_template_kwargs={"tokenize": True}), 400, "chat_template_kwargs"),
    "seed beyond int64": (_body(seed=2**64), 400, "seed"),
    "repetition_penalty that overflows": (_body(repetition_penalty=1e-300, temperature=1), 400, "repetition_penalty"),
    "lone surrogate": (_body(messages=[{"role": "user", "content": "\ud800"}]), 400, None),  # json.dumps escapes it
    "prompt longer than context": (_body(messages=[{"role": "user", "content": "hello " * 1200}]), 400, "messages"),
    "image for a text model": (
        _body(
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                        {"type": "text", "text": "what is this?"},
                    ],
                }
            ]
        ),
        400,
        "messages",
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_requests_get_openai_errors(server, case):
    body, status, param = MALFORMED[case]
    got_status, payload = _post(f"{server}/v1/chat/completions", body)
    assert got_status == status, payload
    error = payload["error"]
    assert error["type"] == "invalid_request_error" and error["message"]
    assert error["param"] == param
    with urllib.request.urlopen(f"{server}/health", timeout=10) as response:  # still serving
        assert response.status == 200


@pytest.mark.parametrize("key", ["tools", "messages", "self", "conversation", "add_generation_prompt"])
def test_template_kwargs_that_clash_with_the_call_get_400(server, key):
    """These keys once reached `encode_prompt(**kwargs)` itself: TypeError, HTTP 500 and a traceback."""
    status, payload = _post(f"{server}/v1/chat/completions", _body(chat_template_kwargs={key: []}))
    assert status == 400, payload
    error = payload["error"]
    assert (
        error["param"] == "chat_template_kwargs" and error["message"] == f"chat_template_kwargs may not set ['{key}']"
    )


def test_body_size_limit_of_the_serve_command(server):
    """The default limit (8 MiB): a 9 MB prompt gets 413 before it is stored, parsed or tokenised."""
    body = _body(messages=[{"role": "user", "content": "hello " * 1_500_000}])
    assert len(body) > 9_000_000
    status, payload = _post(f"{server}/v1/chat/completions", body)
    assert status == 413, payload
    assert payload["error"]["code"] == "request_too_large" and "8,388,608 bytes" in payload["error"]["message"]


def test_client_errors_carry_codes(client):
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model=NAME, messages=[{"role": "user", "content": "hello " * 1200}])
    assert err.value.code == "context_length_exceeded" and "maximum context length is 1024" in err.value.message
    with pytest.raises(openai.BadRequestError, match="does not accept images"):
        client.chat.completions.create(
            model=NAME,
            messages=[
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}],
                }
            ],
        )
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gpt-9", messages=HI)


# ----------------------------------------------------------------------------- canned replies


class CannedEngine(ChatEngine):
    """The real prompt path, but `generate` replays the next canned reply in small pieces."""

    def __init__(self, model, tokenizer, replies):
        super().__init__(model, tokenizer, name=NAME)
        self.replies, self.prompts, self.cancelled = list(replies), [], threading.Event()
        self.encoded = 0  # prompts rendered and tokenised

    def encode_prompt(self, *args, **kwargs):
        self.encoded += 1
        return super().encode_prompt(*args, **kwargs)

    def generate(self, prompt, params, on_text, cancel=None):
        self.prompts.append(self.tokenizer.decode(prompt.input_ids))
        text = self.replies.pop(0)
        if text == "FOREVER":  # a reply that only ends when the request is cancelled
            while not cancel.wait(0.01):
                on_text("tick ")
            self.cancelled.set()
            return GenerationResult(len(prompt), 1, "stop")
        for i in range(0, len(text), 3):
            if cancel is not None and cancel.is_set():
                break
            on_text(text[i : i + 3])
        return GenerationResult(len(prompt), len(self.tokenizer(text)["input_ids"]) + 1, "stop")


def start_in_process(engine, servers: list, limits: ServerLimits | None = None):
    """Serve `engine` with uvicorn on a thread; returns an openai client (with `.port` and `.worker`)."""
    port = free_port()
    worker = GenerationWorker(engine)
    srv = uvicorn.Server(
        uvicorn.Config(create_app(worker, limits=limits), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    servers.append((srv, thread))
    deadline = time.monotonic() + 20
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert srv.started
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0, timeout=60)
    client.port, client.worker = port, worker
    return client


def stop_in_process(servers: list) -> None:
    for srv, thread in servers:
        srv.should_exit = True
        thread.join(timeout=10)


@pytest.fixture()
def canned(reference):
    """Start an in-process server; `canned(*replies)` -> (client, engine)."""
    servers = []

    def start(*replies, limits=None):
        engine = CannedEngine(*reference, replies)
        return start_in_process(engine, servers, limits), engine

    yield start
    stop_in_process(servers)


TOOL_REPLY = (
    "<think>\nThe user wants the weather.\n</think>\n\nLet me look.\n<tool_call>\n"
    '{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
)


def test_tool_calls_and_reasoning_non_streaming(canned):
    client, engine = canned(TOOL_REPLY, TOOL_REPLY)
    reply = client.chat.completions.create(
        model=NAME, messages=HI, tools=TOOLS, extra_body={"chat_template_kwargs": {"open_thinking": True}}
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.reasoning_content == "The user wants the weather."
    assert choice.message.content == "Let me look."
    [call] = choice.message.tool_calls
    assert call.type == "function" and call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    assert '"name": "get_weather"' in engine.prompts[0] and engine.prompts[0].endswith("<|im_start|>assistant\n")
    # tool_choice "none": tools are neither shown to the model nor parsed out of its reply
    reply = client.chat.completions.create(model=NAME, messages=HI, tools=TOOLS, tool_choice="none")
    assert reply.choices[0].finish_reason == "stop" and reply.choices[0].message.tool_calls is None
    assert "<tool_call>" in reply.choices[0].message.content and "get_weather" not in engine.prompts[1]


def test_tool_calls_and_reasoning_streaming(canned):
    client, _ = canned(TOOL_REPLY)
    chunks = list(client.chat.completions.create(model=NAME, messages=HI, tools=TOOLS, stream=True))
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    reasoning = "".join(getattr(d, "reasoning_content", None) or "" for d in deltas)
    content = "".join(d.content or "" for d in deltas)
    calls = [tc for d in deltas for tc in (d.tool_calls or [])]
    assert reasoning == "The user wants the weather." and content == "Let me look."
    assert len([d for d in deltas if getattr(d, "reasoning_content", None)]) > 1  # reasoning streamed too
    assert [(tc.index, tc.function.name, json.loads(tc.function.arguments)) for tc in calls] == [
        (0, "get_weather", {"city": "Paris"})
    ]
    assert calls[0].id.startswith("call_")
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["tool_calls"]


def test_stop_strings(canned):
    client, _ = canned("Hello there. STOP and more", "Hello there. STOP and more")
    reply = client.chat.completions.create(model=NAME, messages=HI, stop="STOP")
    assert reply.choices[0].message.content == "Hello there. " and reply.choices[0].finish_reason == "stop"
    chunks = client.chat.completions.create(model=NAME, messages=HI, stop=["ST", "zzz"], stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello there. "


def test_client_disconnect_cancels_generation(canned):
    """A client that hangs up mid-stream frees the generation thread for the next request."""
    client, engine = canned("FOREVER", "Next one.")
    conn = http.client.HTTPConnection("127.0.0.1", client.port, timeout=30)
    conn.request(
        "POST",
        "/v1/chat/completions",
        json.dumps({"model": NAME, "messages": HI, "stream": True}),
        {"Content-Type": "application/json"},
    )
    response = conn.getresponse()
    assert response.status == 200 and response.readline().startswith(b"data: ")
    conn.close()
    assert engine.cancelled.wait(30)
    assert client.chat.completions.create(model=NAME, messages=HI).choices[0].message.content == "Next one."


class PausingEngine(ChatEngine):
    """The real engine and model; generation pauses at its first text until the request is cancelled."""

    def __init__(self, model, tokenizer):
        super().__init__(model, tokenizer, name=NAME)
        self.started, self.results = threading.Event(), []

    def generate(self, prompt, params, on_text, cancel=None):
        def first_then_wait(text):
            if not self.started.is_set():
                self.started.set()
                cancel.wait(30)
            on_text(text)

        self.results.append(super().generate(prompt, params, first_then_wait, cancel))
        return self.results[-1]


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_disconnect_stops_model_generate_early(reference, stream):
    """Through the real generate loop: after a hang-up it stops a few tokens in, not at max_tokens=200."""
    servers = []
    engine = PausingEngine(*reference)
    client = start_in_process(engine, servers)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", client.port, timeout=30)
        body = {"model": NAME, "messages": HI, "max_tokens": 200, "temperature": 0, "stream": stream}
        conn.request("POST", "/v1/chat/completions", json.dumps(body), {"Content-Type": "application/json"})
        if stream:
            response = conn.getresponse()
            assert response.status == 200 and response.readline().startswith(b"data: ")
        assert engine.started.wait(30)
        conn.close()
        with one_thread():
            reply = client.chat.completions.create(model=NAME, messages=HI, max_tokens=3, temperature=0)
        [hung_up, _] = engine.results  # the worker ran the next request, so the first one had ended
        assert hung_up.completion_tokens < 10 and hung_up.finish_reason == "stop"  # 2 here, of 200
        assert reply.usage.completion_tokens == 3 and client.worker.pending == 0
    finally:
        stop_in_process(servers)


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_body_over_the_limit_gets_413_before_parsing(canned, chunked):
    client, engine = canned("Fine.", limits=ServerLimits(max_body_bytes=4096))
    body = _body(messages=[{"role": "user", "content": "hello " * 1000}])
    conn = http.client.HTTPConnection("127.0.0.1", client.port, timeout=30)
    if chunked:  # no Content-Length: the running count refuses it
        conn.request(
            "POST",
            "/v1/chat/completions",
            iter([body[i : i + 1000] for i in range(0, len(body), 1000)]),
            {"Content-Type": "application/json"},
            encode_chunked=True,
        )
    else:
        conn.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
    response = conn.getresponse()
    payload = json.loads(response.read())
    assert response.status == 413, payload
    error = payload["error"]
    assert error["code"] == "request_too_large" and error["type"] == "invalid_request_error"
    assert "larger than this server's limit of 4,096 bytes" in error["message"]
    assert engine.encoded == 0  # never rendered nor tokenised
    assert client.chat.completions.create(model=NAME, messages=HI).choices[0].message.content == "Fine."
    assert engine.encoded == 1


def test_serve_command_limit_flags(monkeypatch):
    from minimind_hf.cli import serve as serve_cli
    from minimind_hf.serving import server

    seen = {}
    monkeypatch.setattr(server, "serve", lambda *args, **kwargs: seen.update(args=args, kwargs=kwargs))
    serve_cli.main(["some/folder", "--max-body-mb", "0.5", "--max-images", "2", "--max-image-pixels", "1000"])
    assert ServerLimits(max_body_bytes=524288, max_images=2, max_image_pixels=1000) in seen["args"]
    serve_cli.main(["some/folder"])
    assert ServerLimits() in seen["args"]
    with pytest.raises(SystemExit):
        serve_cli.main(["some/folder", "--max-body-mb", "0"])


# ----------------------------------------------------------------------------- images (MiniMind-V)

VLM = "minimind-v-tiny"


@pytest.fixture(scope="module")
def vlm_dir(tmp_path_factory):
    return vlm_model_dir(tmp_path_factory.mktemp("vlm"))


@pytest.fixture(scope="module")
def vlm_client(vlm_dir):
    """The real engine, loaded from the folder the way scripts/serve.py loads it, served in process."""
    servers = []
    engine = load_engine(vlm_dir, name=VLM, device="cpu")
    yield start_in_process(engine, servers)
    stop_in_process(servers)


@pytest.fixture(scope="module")
def vlm_reference(vlm_dir):
    from transformers import AutoModelForCausalLM, AutoProcessor

    return AutoModelForCausalLM.from_pretrained(vlm_dir).eval(), AutoProcessor.from_pretrained(vlm_dir)


def image_url_part(colour: str) -> dict:
    return {"type": "image_url", "image_url": {"url": data_url(png_bytes(colour))}}


def _decode(url: str):
    """The reference's own image decoding (PIL, RGB), independent of the server's."""
    from PIL import Image

    return Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB")


def vlm_reference_reply(vlm_reference, messages, max_new_tokens):
    """(content, prompt length) from the processor + model.generate on the same images and text."""
    model, processor = vlm_reference
    images, template_messages = [], []
    for message in messages:
        content = message["content"]
        if isinstance(content, list):
            images += [_decode(p["image_url"]["url"]) for p in content if p["type"] == "image_url"]
            content = [{"type": "image"} if p["type"] == "image_url" else p for p in content]
        template_messages.append({**message, "content": content})
    prompt = processor.apply_chat_template(template_messages, add_generation_prompt=True, tokenize=False)
    inputs = processor(text=[prompt], images=images, return_tensors="pt")
    tok = processor.tokenizer
    with one_thread(), torch.no_grad():
        out = model.generate(
            **inputs,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id,
        )
    width = inputs["input_ids"].shape[1]
    placeholders = int((inputs["input_ids"] == processor.image_token_id).sum())
    assert placeholders == len(images) * processor.image_seq_length
    return parse_reply(tok.decode(out[0, width:], skip_special_tokens=True)).content, width


def test_image_request_matches_generate_with_the_processor(vlm_client, vlm_reference):
    messages = [{"role": "user", "content": [image_url_part("red"), {"type": "text", "text": "Describe the picture."}]}]
    with one_thread():
        reply = vlm_client.chat.completions.create(model=VLM, messages=messages, temperature=0, max_tokens=12)
        streamed = vlm_client.chat.completions.create(
            model=VLM,
            messages=messages,
            temperature=0,
            max_tokens=12,
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = list(streamed)
    expected, prompt_len = vlm_reference_reply(vlm_reference, messages, 12)
    assert reply.choices[0].message.content == expected and expected
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == expected
    # usage counts the expanded image tokens: the text prompt holds 1 placeholder, the model saw 16
    _, processor = vlm_reference
    text_only = processor.tokenizer.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Describe the picture."}]}],
        add_generation_prompt=True,
    )["input_ids"]
    assert reply.usage.prompt_tokens == prompt_len == len(text_only) - 1 + processor.image_seq_length
    assert chunks[-1].usage.prompt_tokens == prompt_len
    # the image matters: another picture, another answer (and the same one as generate() gives)
    messages[0]["content"][0] = image_url_part("blue")
    with one_thread():
        other = vlm_client.chat.completions.create(model=VLM, messages=messages, temperature=0, max_tokens=12)
    assert other.choices[0].message.content == vlm_reference_reply(vlm_reference, messages, 12)[0] != expected


def test_images_across_history_keep_their_order(vlm_client, vlm_reference):
    """Two images in two user turns: both stay in the prompt, in reading order, as generate() sees them."""
    messages = [
        {"role": "user", "content": [image_url_part("green"), {"type": "text", "text": "What is this?"}]},
        {"role": "assistant", "content": "A square."},
        {"role": "user", "content": [{"type": "text", "text": "And this one?"}, image_url_part("black")]},
    ]
    with one_thread():
        reply = vlm_client.chat.completions.create(model=VLM, messages=messages, temperature=0, max_tokens=10)
    expected, prompt_len = vlm_reference_reply(vlm_reference, messages, 10)
    assert reply.choices[0].message.content == expected
    assert reply.usage.prompt_tokens == prompt_len
    swapped = [
        dict(messages[0], content=[image_url_part("black"), messages[0]["content"][1]]),
        messages[1],
        dict(messages[2], content=[messages[2]["content"][0], image_url_part("green")]),
    ]
    assert vlm_reference_reply(vlm_reference, swapped, 10)[0] != expected  # so the order was really checked


def test_context_check_counts_image_tokens(vlm_client):
    messages = [{"role": "user", "content": [image_url_part("red"), {"type": "text", "text": "hi"}]}]
    with one_thread():
        prompt_len = vlm_client.chat.completions.create(model=VLM, messages=messages, max_tokens=1).usage.prompt_tokens
    with pytest.raises(openai.BadRequestError) as err:
        vlm_client.chat.completions.create(model=VLM, messages=messages, max_tokens=1024 - prompt_len + 1)
    assert err.value.code == "context_length_exceeded" and f"the messages take {prompt_len} and" in err.value.message


def test_concurrent_image_requests_never_mix(vlm_client):
    jobs = [(colour, i % 2 == 0) for i, colour in enumerate(["red", "green", "blue", "black"])]

    def ask(job):
        colour, stream = job
        kwargs = dict(
            model=VLM,
            temperature=0,
            max_tokens=8,
            messages=[
                {"role": "user", "content": [image_url_part(colour), {"type": "text", "text": "Describe the picture."}]}
            ],
        )
        if not stream:
            return vlm_client.chat.completions.create(**kwargs).choices[0].message.content
        chunks = vlm_client.chat.completions.create(stream=True, **kwargs)
        return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)

    with one_thread():
        alone = [ask(job) for job in jobs]
        assert len(set(alone)) > 2  # the pictures change the answers
        with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
            together = list(pool.map(ask, jobs))
    assert together == alone


BAD_IMAGES = {
    "not an image": (data_url(b"just some text, not a picture"), "not an image format"),
    "broken base64": ("data:image/png;base64,@@not-base64@@", "base64"),
    "remote url": ("https://example.com/cat.png", "remote URLs are not fetched"),
    "not a data url": ("cat.png", "must be a base64 data URL"),
}


@pytest.mark.parametrize("case", sorted(BAD_IMAGES))
def test_bad_images_get_400(vlm_client, case):
    url, reason = BAD_IMAGES[case]
    body = {
        "model": VLM,
        "messages": [
            {
                "role": "user",
                "content": [{"type": "text", "text": "look"}, {"type": "image_url", "image_url": {"url": url}}],
            }
        ],
    }
    status, payload = _post(f"http://127.0.0.1:{vlm_client.port}/v1/chat/completions", json.dumps(body).encode())
    assert status == 400, payload
    error = payload["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == "messages.0.content.1"
    assert reason in error["message"] and error["message"].startswith("messages[0].content[1]: image_url")


def test_image_markers_in_text_are_refused(vlm_client):
    with pytest.raises(openai.BadRequestError, match="image marker"):
        vlm_client.chat.completions.create(
            model=VLM, max_tokens=1, messages=[{"role": "user", "content": "what is in <image>?"}]
        )


def png_header(width: int, height: int) -> bytes:
    """A valid PNG header and no pixel data: decoding it fails ("truncated"), reading its size does not."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"") + chunk(b"IEND", b"")


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # Pillow's own, at open (not an error)
def test_image_pixels_are_checked_from_the_header(vlm_client):
    """13000 x 13000 (under Pillow's bomb limit; 2 GB once decoded) is refused before decoding."""
    part = {"type": "image_url", "image_url": {"url": data_url(png_header(13000, 13000))}}
    body = {"model": VLM, "messages": [{"role": "user", "content": [{"type": "text", "text": "look"}, part]}]}
    status, payload = _post(f"http://127.0.0.1:{vlm_client.port}/v1/chat/completions", json.dumps(body).encode())
    assert status == 400, payload
    error = payload["error"]
    assert error["param"] == "messages.0.content.1" and error["code"] == "invalid_image"
    assert "13000x13000 image (169,000,000 pixels)" in error["message"]
    assert "at most 16,777,216 pixels" in error["message"]


def test_images_per_request_are_counted_before_decoding(vlm_client):
    def ask(n: int, image: bytes):
        parts = [{"type": "image_url", "image_url": {"url": data_url(image)}}] * n
        body = {"model": VLM, "max_tokens": 1, "messages": [{"role": "user", "content": parts}]}
        return _post(f"http://127.0.0.1:{vlm_client.port}/v1/chat/completions", json.dumps(body).encode())

    status, payload = ask(9, b"not even an image")  # the count is refused first: nothing was decoded
    assert status == 400 and payload["error"]["code"] == "too_many_images", payload
    assert payload["error"]["message"] == "the messages hold 9 images; at most 8 are accepted per request"
    with one_thread():
        status, payload = ask(8, png_bytes("red", (8, 8)))
    assert status == 200 and payload["usage"]["completion_tokens"] == 1, payload


def test_image_limits_are_settings(vlm_dir):
    servers = []
    engine = load_engine(vlm_dir, name=VLM, device="cpu")
    client = start_in_process(engine, servers, ServerLimits(max_images=1, max_image_pixels=30 * 30))
    try:
        url = f"http://127.0.0.1:{client.port}/v1/chat/completions"
        for parts, reason in (
            ([image_url_part("red")], "40x40 image (1,600 pixels); images may have at most 900"),
            ([image_url_part("red")] * 2, "hold 2 images; at most 1"),
        ):
            body = {"model": VLM, "messages": [{"role": "user", "content": parts}]}
            status, payload = _post(url, json.dumps(body).encode())
            assert status == 400 and reason in payload["error"]["message"], payload
    finally:
        stop_in_process(servers)
