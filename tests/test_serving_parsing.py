"""Reply parsing (reasoning, tool calls, stop strings), conversation history, engine limits."""

import json
import random

import pytest
from serving_helpers import REPLY, one_thread, scripted_model_dir

from minimind_hf.parsing import ReplyAssembler, StopTrimmer
from minimind_hf.serving import Conversation, GenerationWorker, RequestError, SamplingParams, load_engine, parse_reply
from minimind_hf.serving.engine import content_has_images
from minimind_hf.serving.images import data_url, image_part, load_image

THINKING = "<think>\nFirst add 2 and 3.\nThat is 5.\n</think>\n\n2 + 3 = 5."
TOOL = 'Let me check.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", "unit": "°C"}}\n</tool_call>'
TWO_TOOLS = (
    '<tool_call>\n{"name": "add", "arguments": "{\\"a\\": 1, \\"b\\": 2}"}\n</tool_call>\n'
    '<tool_call>\n{"name": "now", "arguments": {}}\n</tool_call>'
)
THINK_AND_TOOL = "<think>\nI need the weather.\n</think>\n\n" + TOOL.split("\n", 1)[1]


def streamed(text: str, pieces: list[int], **kwargs):
    """Feed `text` cut at the given offsets; return (joined deltas by kind, reply)."""
    assembler = ReplyAssembler(**kwargs)
    deltas, start = [], 0
    for cut in sorted(pieces) + [len(text)]:
        deltas += assembler.feed(text[start:cut])
        start = cut
    deltas += assembler.finish()
    joined = {"reasoning": "", "content": ""}
    for d in deltas:
        joined[d.kind] += d.text
    return joined, assembler.reply


def test_reasoning_split():
    reply = parse_reply(THINKING)
    assert reply.reasoning == "First add 2 and 3.\nThat is 5."
    assert reply.content == "2 + 3 = 5." and reply.tool_calls == []
    # thinking off: the prompt held the empty think block, the reply is content only
    assert parse_reply("\n\nJust an answer.\n").content == "Just an answer.\n"
    assert parse_reply("Just an answer.").reasoning == ""
    # cut off by max_tokens while thinking: everything so far is reasoning
    cut = parse_reply("<think>\nstill thinking about")
    assert (cut.reasoning, cut.content) == ("still thinking about", "")


def test_tool_calls_parsed():
    reply = parse_reply(TOOL, parse_tools=True)
    assert reply.content == "Let me check."
    [call] = reply.tool_calls
    assert call.name == "get_weather" and json.loads(call.arguments) == {"city": "Paris", "unit": "°C"}
    assert call.to_openai()["type"] == "function" and call.id.startswith("call_")

    reply = parse_reply(TWO_TOOLS, parse_tools=True)
    assert reply.content == ""
    assert [(c.name, json.loads(c.arguments)) for c in reply.tool_calls] == [("add", {"a": 1, "b": 2}), ("now", {})]
    assert len({c.id for c in reply.tool_calls}) == 2

    reply = parse_reply(THINK_AND_TOOL, parse_tools=True)
    assert reply.reasoning == "I need the weather." and reply.content == ""
    assert reply.tool_calls[0].name == "get_weather"


@pytest.mark.parametrize(
    "text",
    [
        'Sure.\n<tool_call>\n{"name": "f", "arguments": {oops}}\n</tool_call>',  # bad JSON
        '<tool_call>\n{"arguments": {}}\n</tool_call>',  # no name
        '<tool_call>\n{"name": "f", "arguments": {"x": 1',  # cut off by max_tokens
    ],
)
def test_malformed_tool_calls_stay_visible_as_content(text):
    reply = parse_reply(text, parse_tools=True)
    assert reply.tool_calls == []
    assert "<tool_call>" in reply.content and text.split("<tool_call>")[1] in reply.content


def test_tool_markup_is_plain_content_without_tools():
    assert parse_reply(TOOL, parse_tools=False).content == TOOL


@pytest.mark.parametrize("text", [THINKING, TOOL, TWO_TOOLS, THINK_AND_TOOL, "a < b and <thin", "\n\nplain\n\ntext  "])
def test_streaming_split_points_do_not_change_the_result(text):
    """Markers cut anywhere across deltas (even char by char) parse exactly like the whole reply."""
    whole = parse_reply(text, parse_tools=True)
    rng = random.Random(0)
    cuts = [list(range(1, len(text)))] + [rng.sample(range(1, len(text)), k=min(len(text) - 1, 5)) for _ in range(20)]
    for pieces in cuts:
        joined, reply = streamed(text, pieces, parse_tools=True)
        assert joined == {"reasoning": whole.reasoning, "content": whole.content}
        assert [(c.name, c.arguments) for c in reply.tool_calls] == [(c.name, c.arguments) for c in whole.tool_calls]


def test_stop_strings():
    trimmer = StopTrimmer(["STOP", "\n\n"])
    assert trimmer.feed("abc ST") == "abc " and trimmer.feed("O") == ""
    assert trimmer.feed("P tail") == "" and trimmer.stopped and trimmer.finish() == ""
    trimmer = StopTrimmer(["STOP"])
    assert trimmer.feed("a ST") == "a " and trimmer.feed("ART") == "START" and not trimmer.stopped
    assert trimmer.feed("xS") == "x" and trimmer.finish() == "S"
    joined, _ = streamed("one\ntwo END three", [5, 10, 11, 12], stop=["END"])
    assert joined["content"] == "one\ntwo "
    assert parse_reply(THINKING, stop=["= 5"]).content == "2 + 3 "


def test_images_are_content_parts(tmp_path):
    from PIL import Image

    png = tmp_path / "dot.png"
    Image.new("RGB", (4, 3), "red").save(png)
    part = image_part(png)
    assert part["type"] == "image_url" and part["image_url"]["url"].startswith("data:image/png;base64,")
    assert load_image(part["image_url"]["url"]).size == (4, 3)
    assert content_has_images([part, {"type": "text", "text": "hi"}]) and not content_has_images("hi")
    with pytest.raises(ValueError, match="data URL"):
        load_image("https://example.com/cat.png")
    with pytest.raises(ValueError, match="readable image"):
        load_image(data_url(b"not an image"))
    with pytest.raises(FileNotFoundError):
        image_part(tmp_path / "missing.png")
    with pytest.raises(ValueError, match=r"4x3 image \(12 pixels\); images may have at most 11 pixels"):
        load_image(part["image_url"]["url"], max_pixels=11)
    assert load_image(part["image_url"]["url"], max_pixels=12).size == (4, 3)


def test_tiny_temperatures_are_greedy():
    """Dividing logits by 1e-300 overflows to inf / nan (multinomial raises): treat it as 0, as vLLM does."""
    assert SamplingParams(temperature=1e-300).generate_kwargs()["do_sample"] is False
    assert SamplingParams(temperature=1e-5).generate_kwargs()["do_sample"] is True


@pytest.fixture(scope="module")
def worker(tmp_path_factory):
    engine = load_engine(scripted_model_dir(tmp_path_factory.mktemp("models")))
    worker = GenerationWorker(engine)
    yield worker
    worker.close()


def test_conversation_keeps_history_and_streams(worker):
    from minimind_hf.serving import start_turn

    tok = worker.engine.tokenizer
    greedy = SamplingParams(temperature=0, max_new_tokens=40)
    conversation = Conversation()
    conversation.add_user("hi")
    with one_thread():
        turn = start_turn(worker, conversation, greedy)
        deltas = list(turn)
    assert len(deltas) > 1 and all(d.kind == "content" for d in deltas)  # streamed in pieces
    assert "".join(d.text for d in deltas) == turn.reply.content == REPLY
    assert turn.result.finish_reason == "stop"
    assert turn.result.completion_tokens == len(tok(REPLY)["input_ids"]) + 1  # + <|im_end|>
    conversation.add_assistant(turn.reply)

    conversation.add_user("who are you?")
    with one_thread():
        second = start_turn(worker, conversation, greedy)
        list(second)
    prompt = tok.decode(second.prompt_ids)
    assert prompt == tok.apply_chat_template(
        [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": REPLY},
            {"role": "user", "content": "who are you?"},
        ],
        add_generation_prompt=True,
        tokenize=False,
    )
    assert f"<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n{REPLY}<|im_end|>" in prompt

    conversation.reset()
    conversation.add_user("hello")
    third = start_turn(worker, conversation, greedy)
    list(third)
    assert "hi<|im_end|>" not in tok.decode(third.prompt_ids)


def test_thinking_switch_and_limits(worker):
    engine = worker.engine
    messages = [{"role": "user", "content": "hi"}]
    on = engine.tokenizer.decode(engine.encode_chat(messages, open_thinking=True))
    off = engine.tokenizer.decode(engine.encode_chat(messages))
    assert on.endswith("<|im_start|>assistant\n") and off.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    assert engine.tokenizer.decode(engine.encode_chat(messages, enable_thinking=True)) == on

    with pytest.raises(RequestError, match="does not accept images"):
        engine.encode_chat([{"role": "user", "content": [image_part(data_url(b"x")), {"type": "text", "text": "?"}]}])
    with pytest.raises(RequestError, match="Unknown message role"):
        engine.encode_chat([{"role": "wizard", "content": "hi"}])
    with pytest.raises(RequestError, match="may not set"):
        engine.encode_chat(messages, tokenize=True)

    ctx = engine.context_length
    assert engine.check_budget(10, None, 512) == 512 and engine.check_budget(ctx - 5, None, 512) == 5
    with pytest.raises(RequestError, match="maximum context length") as err:
        engine.check_budget(ctx, None, 512)
    assert err.value.code == "context_length_exceeded"
    with pytest.raises(RequestError, match="requested"):
        engine.check_budget(10, ctx, 512)
