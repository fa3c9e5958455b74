"""Schema fuzzing: schemathesis sends requests built from the server's own OpenAPI schema
(valid ones and deliberately broken ones) to the app in process. No input may get a 5xx (an
exception in the app fails the call too), every 4xx body is the OpenAI error object, and a
stream never carries an in-band server error.

The scripted tiny model answers every prompt in 16 tokens, so the requests that pass validation
generate for real but briefly.
"""

import copy

import pytest
from serving_helpers import one_thread, scripted_model_dir

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is a dev dependency")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402

from minimind_hf.serving import GenerationWorker, load_engine  # noqa: E402
from minimind_hf.serving.server import ServerLimits, create_app  # noqa: E402

NAME = "minimind-tiny"
MAX_EXAMPLES = 60  # per mode, over all operations; with the coverage cases ~20 s on 2 cores


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory):
    worker = GenerationWorker(load_engine(scripted_model_dir(tmp_path_factory.mktemp("fuzz")), name=NAME, device="cpu"))
    app = create_app(worker, max_tokens_default=16, limits=ServerLimits(max_body_bytes=64 * 1024))
    # The served schema, with `model` narrowed to the served id so that valid requests get past the
    # model check into templating and generation (negative mode still sends other ids).
    raw = copy.deepcopy(app.openapi())
    raw["components"]["schemas"]["ChatCompletionRequest"]["properties"]["model"] = {"enum": [NAME]}
    # Read whole streams (schemathesis stops after 20 events by default) to see how each one ends.
    schema = schemathesis.openapi.from_dict(raw, config=schemathesis.Config.from_dict({"max-stream-events": 4096}))
    schema.app = app
    with one_thread():
        yield schema
    worker.close()


def check(case, response) -> None:
    assert response.status_code < 500, f"{case.method} {case.path} {case.body!r} -> {response.text}"
    if response.status_code >= 400:
        error = response.json()["error"]
        assert set(error) == {"message", "type", "param", "code"} and error["message"], response.text
        assert error["type"] == "invalid_request_error"
    elif "text/event-stream" in str(response.headers.get("content-type")):
        assert "server_error" not in response.text and response.text.endswith("data: [DONE]\n\n")


def test_coverage_cases(api_schema):
    """schemathesis' coverage phase: every field at its boundaries, then broken one at a time (deterministic)."""
    sent = 0
    for result in api_schema.get_all_operations():
        operation = result.ok()
        config = api_schema.config.generation_for(operation=operation, phase="coverage")
        for case in api_schema.iter_coverage_cases(
            operation, generation_modes=list(GenerationMode), generation_config=config
        ):
            check(case, case.call())
            sent += 1
    assert sent > 100  # about 500 with this schema


@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_fuzzed_requests(api_schema, mode):
    """Random requests from the schema; `negative` ones break it on purpose (wrong types, missing fields, ...)."""
    sent = []

    @given(case=api_schema.as_strategy(generation_mode=GenerationMode(mode)))
    @settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case):
        sent.append(case)
        check(case, case.call())

    run()
    assert len(sent) >= MAX_EXAMPLES // 2
