"""MiniMind survives the transformers release lines it declares: the cache under either
name, the exact keyword arguments each line's generate() passes, no deprecation noise, and
exports that load - with the same logits, greedy tokens and chat template - in an
interpreter where minimind_hf is not installed (`.ci/compat` runs the same matrix under
transformers 4.57.6, the lowest and the newest 5.x)."""

import importlib.util
import json
import logging
import os
import subprocess
import sys
import sysconfig
import warnings
from pathlib import Path

import pytest
import torch
from helpers import tiny_model
from transformers import AutoTokenizer, DynamicCache

from minimind_hf.models.compat import CACHE_NAME, unwrap_vision_tower
from minimind_hf.tokenizer import default_tokenizer_path, make_tokenizer_config_portable

REPO = Path(__file__).resolve().parent.parent
COMPAT = REPO / "tests" / "compat"
IDS = torch.randint(0, 128, (2, 7), generator=torch.Generator().manual_seed(3))


def step_kwargs(line: str, cache, past: int, length: int) -> dict:
    """The cache keyword arguments each release line's generate() hands to forward()."""
    if line == "4.57":  # past_key_values + cache_position
        return {"past_key_values": cache, "cache_position": torch.arange(past, past + length)}
    if line == "5.23":  # past_key_values only
        return {"past_key_values": cache}
    return {"cache": cache}  # 5.24 and later


@pytest.mark.parametrize("line", ["4.57", "5.23", "5.24"])
@pytest.mark.parametrize("overrides", [dict(), dict(qk_norm=True, use_moe=True, num_experts=4, num_experts_per_tok=2)])
def test_incremental_decoding_with_each_lines_kwargs_equals_one_full_pass(line, overrides):
    model = tiny_model(**overrides)
    with torch.no_grad():
        full = model(IDS, use_cache=False).logits
        cache = DynamicCache(config=model.config)
        prefix = 4
        out = model(IDS[:, :prefix], use_cache=True, **step_kwargs(line, cache, 0, prefix))
        steps = [out.logits]
        for t in range(prefix, IDS.shape[1]):
            returned = getattr(out, CACHE_NAME)
            assert returned is cache and returned.get_seq_length() == t  # the cache really carried the context
            out = model(IDS[:, t : t + 1], use_cache=True, **step_kwargs(line, returned, t, 1))
            steps.append(out.logits)
    assert (torch.cat(steps, dim=1) - full).abs().max() < 1e-5


def test_the_cache_passed_under_both_names_is_refused():
    model = tiny_model()
    with pytest.raises(ValueError, match="not both"):
        model(IDS, past_key_values=DynamicCache(), cache=DynamicCache())


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_generation_prints_no_deprecation_notice():
    model = tiny_model()
    records = _Records()
    logger = logging.getLogger("transformers")
    logger.addHandler(records)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model.generate(IDS, attention_mask=torch.ones_like(IDS), max_new_tokens=4, do_sample=False, pad_token_id=0)
            model(IDS, labels=IDS)
    finally:
        logger.removeHandler(records)
    notices = [str(w.message) for w in caught] + records.messages
    assert not [n for n in notices if "deprecat" in n.lower()], notices


def test_portable_tokenizer_config_loads_the_same_tokenizer(tmp_path):
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        (tmp_path / name).write_bytes((default_tokenizer_path() / name).read_bytes())
    assert json.loads((tmp_path / "tokenizer_config.json").read_text())["tokenizer_class"] == "TokenizersBackend"
    make_tokenizer_config_portable(tmp_path / "tokenizer_config.json")
    config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    assert config["tokenizer_class"] == "PreTrainedTokenizerFast"  # a class transformers 4.x has
    assert config["extra_special_tokens"]["image_token"] == "<|image_pad|>"  # where 4.x reads named tokens
    assert config["model_input_names"] == ["input_ids", "attention_mask"]
    original, portable = (
        AutoTokenizer.from_pretrained(default_tokenizer_path()),
        AutoTokenizer.from_pretrained(tmp_path),
    )
    text = "Hello <|image_pad|> 12+3=15 <think>x</think>\n你好"
    assert portable(text)["input_ids"] == original(text)["input_ids"]
    assert portable.image_token == "<|image_pad|>" and set(portable(text)) == {"input_ids", "attention_mask"}
    messages = [{"role": "system", "content": "s"}, {"role": "user", "content": "hi"}]
    assert portable.apply_chat_template(messages, tokenize=False) == original.apply_chat_template(
        messages, tokenize=False
    )


def test_vision_tower_wrapper_is_unwrapped_only_when_it_holds_everything():
    class Wrapper(torch.nn.Module):  # transformers 4.57's CLIPVisionModel: all layers inside .vision_model
        def __init__(self, extra: bool):
            super().__init__()
            self.vision_model = torch.nn.Linear(2, 2)
            if extra:
                self.head = torch.nn.Linear(2, 2)

    whole = Wrapper(extra=False)
    assert unwrap_vision_tower(whole) is whole.vision_model
    partial = Wrapper(extra=True)  # unwrapping would lose the head: keep the whole module
    assert unwrap_vision_tower(partial) is partial
    flat = torch.nn.Linear(2, 2)
    assert unwrap_vision_tower(flat) is flat


@pytest.mark.slow
def test_export_matrix_loads_where_minimind_hf_is_not_installed(tmp_path):
    out = tmp_path / "matrix"
    make = subprocess.run(
        [sys.executable, str(COMPAT / "make_exports.py"), str(out)], capture_output=True, text=True, timeout=600
    )
    assert make.returncode == 0, make.stderr[-3000:]
    cases = json.loads((out / "cases.json").read_text())
    assert {"remote-code-dense", "remote-code-moe", "llama", "qwen3", "qwen3-moe", "remote-code-vlm"} <= set(cases)

    # -I ignores PYTHONPATH / user site / cwd, -S skips site-packages' .pth files (the editable
    # install of minimind_hf is one); third-party packages come back through sys.path.
    bootstrap = (
        f"import sys; sys.path.append({sysconfig.get_paths()['purelib']!r}); "
        f"sys.argv = ['check_exports', {str(out)!r}, '--json', {str(tmp_path / 'results.json')!r}]; "
        f"import runpy; runpy.run_path({str(COMPAT / 'check_exports.py')!r}, run_name='__main__')"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(HF_MODULES_CACHE=str(tmp_path / "modules"), HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    check = subprocess.run(
        [sys.executable, "-I", "-S", "-c", bootstrap],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert check.returncode == 0, check.stdout[-3000:] + check.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())["results"]
    assert set(results) == set(cases) and all(r["ok"] for r in results.values()), results
    assert results["remote-code-vlm"]["class"] == "MiniMindVForCausalLM"
    assert importlib.util.find_spec("minimind_hf") is not None  # this test's own interpreter does have it


def test_checker_refuses_to_run_where_minimind_hf_is_installed(tmp_path):
    result = subprocess.run(
        [sys.executable, str(COMPAT / "check_exports.py"), str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2 and "minimind_hf is importable" in result.stderr
