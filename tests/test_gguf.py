"""GGUF exports run in llama.cpp as in transformers: the same token ids (our tokenizer and a
MiniMind-format one), the same greedy tokens (f32 and f16; Llama, Qwen3 and Qwen3-MoE layouts),
the same chat prompt from the embedded template; and the Ollama Modelfile's Go template renders
our chat template's prompt (checked with Go's own text/template, as Ollama uses).

llama.cpp comes from `pip install -e ".[dev]"` (llama-cpp-python builds it from source once; pip
caches the wheel). These tests fail when it is missing, so that CI never skips them silently; a
developer without it sets MINIMIND_SKIP_LLAMA_CPP=1 (and MINIMIND_SKIP_GO=1 without a Go toolchain).
"""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from helpers import minimind_style_tokenizer, tiny_config, tiny_model
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

import minimind_hf  # registers the Auto classes; its folder holds the shipped tokenizer
from minimind_hf import MiniMindForCausalLM
from minimind_hf.cli import export as export_cli
from minimind_hf.export import ExportError, export_model
from minimind_hf.export.gguf import OLLAMA_TEMPLATE, GGUFExportError, converter_dir, pre_tokenizer_type
from minimind_hf.tokenizer import load_tokenizer

VOCAB = 6400
# Mixed English / Chinese / code / emoji / digits, plus the whitespace and punctuation runs that
# tell pre-tokenizers apart (llama.cpp's own probe text is the last one).
PROBES = [
    "Hello, world! 你好，世界。def f(x):\n    return x ** 2  # 😀🚀 1234567 3.14 ½ ² ١٢٣ １２\n\n\n  \t end",
    "<|im_start|>user\nWhat is 12+30?<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n42<|im_end|>\n",
    " 12 a1b22 'll I've (hello) [x]={1,2}; if(a<=b){return-1;}\r\n\ttab  two   three",
    "\n \n\n \n\n\n \t \t\t \t\n  \n   \n    \n     \n🚀 (normal) 😶\u200d🌫️ (multiple emojis concatenated) ✅ 🦙🦙 3 33 "  # noqa: E501
    "333 3333 33333 333333 3333333 33333333 3.3 3..3 3...3 កាន់តែពិសេសអាច😁 ?我想在apple工作1314151天～ "
    "------======= нещо на Български ''''''```````\"\"\"\"......!!!!!!?????? I've been 'told he's there, "
    "'RE you sure? 'M not sure I'll make it, 'D you like some tea? We'Ve a'lL",
]
# What the tiny models learn by heart, so that greedy decoding continues it with clear margins.
CORPUS = (
    "MiniMind is a small language model. It runs on a laptop CPU and answers in English and 中文。\n"
    "def add(a, b):\n    return a + b  # 1 + 2 = 3\n"
    "The quick brown fox jumps over the lazy dog 7 times; 小狐狸跳过了懒狗。\n"
    "llama.cpp loads GGUF files, and Ollama builds on llama.cpp.\n"
)
PROMPT = "MiniMind is a small"
TWO_TURNS = [
    {"role": "system", "content": "You are MiniMind."},
    {"role": "user", "content": "What is 2+3?"},
    {"role": "assistant", "content": "5"},
    {"role": "user", "content": "And 中文 please?"},
]


@pytest.fixture(scope="module")
def llama_cpp():
    if os.environ.get("MINIMIND_SKIP_LLAMA_CPP") == "1":
        pytest.skip("MINIMIND_SKIP_LLAMA_CPP=1")
    try:
        import llama_cpp
    except ImportError:
        pytest.fail(
            "llama_cpp is not installed: pip install -e '.[dev]' builds it (set MINIMIND_SKIP_LLAMA_CPP=1 "
            "to skip these tests locally)"
        )
    return llama_cpp


def load_gguf(llama_cpp, folder: Path, **kwargs):
    (path,) = folder.glob("*.gguf")
    return llama_cpp.Llama(model_path=str(path), n_ctx=256, n_threads=2, seed=0, verbose=False, **kwargs)


def save_with_tokenizer(model, tokenizer, folder: Path) -> Path:
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def trained_minimind(folder: Path, **overrides) -> Path:
    """A tiny MiniMind that has learned CORPUS (a few dozen Trainer steps)."""
    from datasets import Dataset
    from transformers import Trainer, TrainingArguments

    tokenizer = load_tokenizer()
    torch.manual_seed(0)
    model = MiniMindForCausalLM(tiny_config(vocab_size=VOCAB, **overrides))
    ids = tokenizer(CORPUS * 2)["input_ids"]
    rows = [{"input_ids": ids[i : i + 48], "labels": ids[i : i + 48]} for i in range(0, len(ids) // 2, 3)]
    args = TrainingArguments(
        output_dir=str(folder / "run"),
        max_steps=60,
        learning_rate=1e-2,
        per_device_train_batch_size=8,
        warmup_steps=5,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        seed=0,
        disable_tqdm=True,
        logging_steps=60,
    )
    Trainer(model=model, args=args, train_dataset=Dataset.from_list(rows)).train()
    shutil.rmtree(folder / "run", ignore_errors=True)
    return save_with_tokenizer(model.eval(), tokenizer, folder)


def minimind_format_tokenizer(folder: Path) -> PreTrainedTokenizerFast:
    """A tokenizer made the way MiniMind makes its own (byte-level BPE, ByteLevel(add_prefix_space=False)
    as the only pre-tokenizer, <|endoftext|> <|im_start|> <|im_end|> as ids 0-2, a ChatML template),
    trained here on mixed text so that it has merges across spaces, digits, newlines and Chinese."""
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=900,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator([CORPUS, *PROBES] * 8, trainer)
    template = (
        "{%- if messages[0].role != 'system' %}{{- '<|im_start|>system\\nYou are a helpful assistant<|im_end|>\\n' }}"
        "{%- endif %}{%- for message in messages %}"
        "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}{%- endfor %}"
        "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
    )
    tokenizer = minimind_style_tokenizer(bpe, template)
    tokenizer.save_pretrained(folder)
    return tokenizer


def hf_greedy(folder: Path, ids: list[int], n: int = 16) -> tuple[list[int], float]:
    """transformers' greedy tokens, and the smallest top-1 / top-2 logit gap on the way."""
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    out = model.generate(
        torch.tensor([ids]),
        max_new_tokens=n,
        do_sample=False,
        output_scores=True,
        return_dict_in_generate=True,
        pad_token_id=0,
    )
    gaps = [float(torch.topk(s[0], 2).values.diff().abs()) for s in out.scores]
    return out.sequences[0, len(ids) :].tolist(), min(gaps)


def llama_greedy(llm, ids: list[int], n: int = 16) -> list[int]:
    tokens = []
    for token in llm.generate(ids, temp=0.0, reset=True):
        tokens.append(token)
        if len(tokens) == n or llm.token_eos() == token:
            break
    return tokens


# ----------------------------------------------------------------------------- without llama.cpp


def test_pre_tokenizer_types_are_read_from_tokenizer_json(tmp_path):
    shipped = json.loads((Path(minimind_hf.__file__).parent / "assets" / "tokenizer" / "tokenizer.json").read_text())
    assert pre_tokenizer_type(shipped) == "smollm"  # newline split (a no-op here), single digits, GPT-2 regex
    minimind_format_tokenizer(tmp_path / "orig")
    assert pre_tokenizer_type(json.loads((tmp_path / "orig" / "tokenizer.json").read_text())) == "gpt-2"
    unknown = {**shipped, "pre_tokenizer": {"type": "Metaspace", "replacement": "▁"}}
    with pytest.raises(GGUFExportError, match="no llama.cpp pre-tokenizer .* Metaspace"):
        pre_tokenizer_type(unknown)
    joined = {**shipped, "model": {**shipped["model"], "vocab": {**shipped["model"]["vocab"], "ĊĊ": VOCAB}}}
    with pytest.raises(GGUFExportError, match="joins newlines"):
        pre_tokenizer_type(joined)


def test_gguf_export_refuses_what_llama_cpp_would_compute_differently(tmp_path):
    save_with_tokenizer(
        tiny_model(vocab_size=VOCAB, use_moe=True, qk_norm=True, num_experts=4, norm_topk_prob=False),
        load_tokenizer(),
        tmp_path / "moe",
    )
    with pytest.raises(GGUFExportError, match="norm_topk_prob"):
        export_model(tmp_path / "moe", tmp_path / "out", fmt="gguf")
    with pytest.raises(ExportError, match="quantisation"):
        export_model(tmp_path / "moe", tmp_path / "out2", fmt="gguf", quant="q4_k")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_llama_cpp_dir_must_hold_the_converter(tmp_path, monkeypatch):
    monkeypatch.setenv("LLAMA_CPP_DIR", str(tmp_path))
    with pytest.raises(GGUFExportError, match="conversion/"):
        converter_dir()


def test_gguf_cli_errors_are_one_line(tmp_path, capsys):
    save_with_tokenizer(tiny_model(vocab_size=VOCAB), load_tokenizer(), tmp_path / "src")
    for argv, message in [
        (["--format", "llama", "--quant", "f16"], "--quant applies"),
        (["--format", "gguf", "--dtype", "float16"], "--dtype applies"),
    ]:
        with pytest.raises(SystemExit) as exit_info:
            export_cli.main([str(tmp_path / "src"), str(tmp_path / "out"), *argv])
        assert exit_info.value.code == 2 and message in capsys.readouterr().err


# ----------------------------------------------------------------------------- llama.cpp


@pytest.mark.parametrize("which", ["shipped", "minimind-format"])
def test_llama_cpp_tokenizes_like_our_tokenizer(which, llama_cpp, tmp_path):
    if which == "shipped":
        tokenizer = load_tokenizer()
        model = tiny_model(vocab_size=VOCAB)
    else:
        tokenizer = minimind_format_tokenizer(tmp_path / "tok")
        model = tiny_model(vocab_size=len(tokenizer))
    save_with_tokenizer(model, tokenizer, tmp_path / "src")
    export_model(tmp_path / "src", tmp_path / "gguf", fmt="gguf", quant="f32")
    llm = load_gguf(llama_cpp, tmp_path / "gguf", vocab_only=True)
    try:
        for text in PROBES:
            ours = tokenizer.encode(text, add_special_tokens=True)
            # special=True: <|im_start|> etc. in the text are the special tokens, as transformers reads them
            assert llm.tokenize(text.encode(), add_bos=True, special=True) == ours, text
        assert llm.detokenize(tokenizer.encode(PROBES[0])).decode() == PROBES[0]
        meta = llm.metadata
        assert meta["tokenizer.ggml.pre"] == ("smollm" if which == "shipped" else "gpt-2")
        assert (
            int(meta["tokenizer.ggml.eos_token_id"])
            == int(meta["tokenizer.ggml.eot_token_id"])
            == tokenizer.eos_token_id
        )
        assert int(meta["tokenizer.ggml.bos_token_id"]) == tokenizer.bos_token_id
        assert int(meta["tokenizer.ggml.padding_token_id"]) == tokenizer.pad_token_id
    finally:
        llm.close()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return trained_minimind(tmp_path_factory.mktemp("trained") / "llama")


@pytest.mark.parametrize("quant", ["f32", "f16"])
def test_llama_cpp_greedy_generation_equals_transformers(quant, trained, llama_cpp, tmp_path):
    out = export_model(trained, tmp_path / "gguf", fmt="gguf", quant=quant)
    ids = load_tokenizer(trained).encode(PROMPT)
    expected, gap = hf_greedy(trained, ids)
    # The model learned CORPUS: each greedy choice wins by a clear margin, which f16 weights
    # (relative error ~1e-3) cannot overturn, so equality is the right test for both types.
    assert len(expected) == 16 and gap > 0.5, (expected, gap)
    llm = load_gguf(llama_cpp, out)
    try:
        assert llama_greedy(llm, ids) == expected
    finally:
        llm.close()


@pytest.fixture(scope="module")
def trained_qwen3(tmp_path_factory):
    return trained_minimind(tmp_path_factory.mktemp("trained") / "qwen3", qk_norm=True)


def upcycled_moe(dense_folder: Path, folder: Path) -> Path:
    """An MoE MiniMind (4 experts, top-2) whose experts are perturbed copies of a trained dense
    MiniMind's MLP and whose router is random but decisive: every expert and the routing change
    the output, which stays close to a trained model's (clear greedy margins). Training an MoE
    here would take minutes."""
    dense = AutoModelForCausalLM.from_pretrained(dense_folder)
    moe = MiniMindForCausalLM(
        tiny_config(vocab_size=VOCAB, qk_norm=True, use_moe=True, num_experts=4, num_experts_per_tok=2)
    )
    gen = torch.Generator().manual_seed(0)
    state = moe.state_dict()
    for name, value in dense.state_dict().items():
        if ".mlp." not in name:
            state[name] = value
            continue
        for expert in range(4):
            state[name.replace(".mlp.", f".mlp.experts.{expert}.")] = value * (
                1 + 0.2 * torch.randn(value.shape, generator=gen)
            )
    for name in [n for n in state if n.endswith(".mlp.gate.weight")]:
        state[name] = torch.randn(state[name].shape, generator=gen)
    moe.load_state_dict(state)
    return save_with_tokenizer(moe.eval(), load_tokenizer(dense_folder), folder)


@pytest.mark.parametrize("layout", ["qwen3", "qwen3-moe"])
def test_llama_cpp_runs_the_qwen3_layouts_like_transformers(layout, trained_qwen3, llama_cpp, tmp_path):
    src = trained_qwen3 if layout == "qwen3" else upcycled_moe(trained_qwen3, tmp_path / "moe")
    out = export_model(src, tmp_path / "gguf", fmt="gguf", quant="f32")
    ids = load_tokenizer(src).encode(PROMPT)
    expected, gap = hf_greedy(src, ids)
    assert len(expected) == 16 and gap > 0.5, (expected, gap)
    llm = load_gguf(llama_cpp, out)
    try:
        assert llm.metadata["general.architecture"] == layout.replace("-", "")
        assert llama_greedy(llm, ids) == expected
    finally:
        llm.close()


def test_llama_cpp_chat_uses_the_embedded_template(trained, llama_cpp, tmp_path):
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    out = export_model(trained, tmp_path / "gguf", fmt="gguf", quant="f32")
    tokenizer = load_tokenizer(trained)
    llm = load_gguf(llama_cpp, out)
    try:
        template = llm.metadata["tokenizer.chat_template"]
        assert "generation %}" not in template and llm.chat_format == "chat_template.default"
        ours = tokenizer.apply_chat_template(TWO_TURNS, add_generation_prompt=True, tokenize=False)
        formatter = Jinja2ChatFormatter(template, eos_token="<|im_end|>", bos_token="<|im_start|>")
        assert formatter(messages=TWO_TURNS).prompt == ours
        thinking = tokenizer.apply_chat_template(
            TWO_TURNS, add_generation_prompt=True, tokenize=False, enable_thinking=True
        )
        assert formatter(messages=TWO_TURNS, enable_thinking=True).prompt == thinking != ours
        # The whole chat path: llama_cpp renders the embedded template, tokenizes and decodes greedily.
        # (The model never saw a chat: its reply is arbitrary, the same in both is what counts.)
        expected, _ = hf_greedy(trained, tokenizer.encode(ours), n=12)
        end = [i for i, token in enumerate(expected) if token in (tokenizer.eos_token_id, tokenizer.pad_token_id)]
        reply = llm.create_chat_completion(TWO_TURNS, temperature=0.0, max_tokens=12)["choices"][0]["message"][
            "content"
        ]
        assert reply == tokenizer.decode(expected[: end[0] if end else None])
    finally:
        llm.close()


# ----------------------------------------------------------------------------- Ollama

GO_RENDER = """package main

import (
	"encoding/json"
	"os"
	"text/template"
)

type Message struct{ Role, Content, Thinking string }

// What Ollama's template.Execute passes to a template that uses .Messages.
func main() {
	var in struct {
		Messages []Message
		Think    bool
	}
	if err := json.Unmarshal([]byte(os.Args[2]), &in); err != nil {
		panic(err)
	}
	data := map[string]any{"System": "", "Messages": in.Messages, "Tools": nil, "Response": "",
		"Think": in.Think, "ThinkLevel": "", "IsThinkSet": in.Think}
	if err := template.Must(template.New("").Parse(os.Args[1])).Execute(os.Stdout, data); err != nil {
		panic(err)
	}
}
"""


def test_ollama_export_writes_the_gguf_and_a_modelfile(trained, tmp_path, capsys):
    export_cli.main([str(trained), str(tmp_path / "minimind-ollama"), "--format", "ollama", "--quant", "q8_0"])
    printed = capsys.readouterr().out
    out = tmp_path / "minimind-ollama"
    assert (out / "minimind-ollama-q8_0.gguf").is_file()
    modelfile = (out / "Modelfile").read_text()
    assert modelfile.startswith("FROM ./minimind-ollama-q8_0.gguf\n")
    assert f'TEMPLATE """{OLLAMA_TEMPLATE}"""' in modelfile and 'PARAMETER stop "<|im_end|>"' in modelfile
    assert f"ollama create minimind-ollama -f {out / 'Modelfile'}" in printed


def test_ollama_template_renders_our_chat_template(tmp_path):
    """Go's text/template (what Ollama runs) renders the Modelfile TEMPLATE as transformers renders
    our Jinja template: a 2-turn conversation, thinking off (default) and on, and a reasoning turn."""
    if os.environ.get("MINIMIND_SKIP_GO") == "1":
        pytest.skip("MINIMIND_SKIP_GO=1")
    go = shutil.which("go")
    if go is None:
        pytest.fail("no Go toolchain: .ci/run installs golang-go (set MINIMIND_SKIP_GO=1 to skip locally)")
    (tmp_path / "render.go").write_text(GO_RENDER)
    env = {**os.environ, "GO111MODULE": "off"}  # one file, no module
    subprocess.run(
        [go, "build", "-o", str(tmp_path / "render"), str(tmp_path / "render.go")], check=True, env=env, cwd=tmp_path
    )
    tokenizer = load_tokenizer()
    reasoning = TWO_TURNS[:2] + [{"role": "assistant", "content": "5", "reasoning_content": "2 plus 3"}] + TWO_TURNS[3:]
    for messages, think in [(TWO_TURNS, False), (TWO_TURNS, True), (reasoning, False), (TWO_TURNS[1:2], False)]:
        ours = tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=False, enable_thinking=think
        )
        ollama_messages = [
            {"Role": m["role"], "Content": m["content"], "Thinking": m.get("reasoning_content", "")} for m in messages
        ]
        rendered = subprocess.run(
            [str(tmp_path / "render"), OLLAMA_TEMPLATE, json.dumps({"Messages": ollama_messages, "Think": think})],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        assert rendered == ours, (messages, think)


def test_bench_gguf_smoke(llama_cpp, tmp_path):
    """benchmarks/bench_gguf.py runs at its toy size and writes both files' figures (never speed)."""
    import sys

    root = str(Path(__file__).resolve().parents[1])
    if root not in sys.path:  # `benchmarks` is a folder of the repository, not an installed package
        sys.path.insert(0, root)
    from benchmarks import bench_gguf

    bench_gguf.main(["--quick", "--out", str(tmp_path)])
    result = json.loads((tmp_path / "gguf.json").read_text())
    assert result["measured"] and {t["name"] for t in result["targets"]} == {
        "llama_cpp_f16_tokens_per_s",
        "llama_cpp_q8_0_tokens_per_s",
    }
    for quant in ("f16", "q8_0"):
        figures = result["figures"][quant]
        assert figures["llama_tokens_per_s"] > 0 and figures["gguf_bytes"] > 0
