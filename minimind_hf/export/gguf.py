"""GGUF files for llama.cpp and an Ollama Modelfile, written by llama.cpp's own converter.

`write_gguf` turns a native export folder (Llama / Qwen3 / Qwen3-MoE, see `native.py`) holding
the tokenizer into one .gguf file with the model classes of llama.cpp's `convert_hf_to_gguf.py`
and the `gguf` writer package (gguf-py) of the same llama.cpp commit; nothing here re-implements
the format. Neither ships in a wheel that matches: the converter is in no wheel, and the `gguf`
release on PyPI lags the converter that llama-cpp-python vendors (0.3.36's needs an unreleased
`gguf.LazyChunkedTensor`). So both are read from the llama-cpp-python source distribution that
matches the installed `llama_cpp` (it vendors llama.cpp), fetched once with pip and cached, or
from a llama.cpp checkout named by $LLAMA_CPP_DIR (`converter_dir`).

Three things the stock converter cannot know are settled here, without editing its files:

- The BPE pre-tokenizer. llama.cpp names each pre-tokenizer it implements (a list of split
  regexes in llama-vocab.cpp) and the converter recognises a tokenizer by hashing how it splits a
  probe text; MiniMind's tokenizers are not in its list. `pre_tokenizer_type` reads the
  pre-tokenizer from tokenizer.json and names the llama.cpp type that splits the same way; a
  subclass of the converter's model class reports it. tests/test_gguf.py checks the token ids
  against llama.cpp itself.
- The end-of-turn token: llama.cpp would guess it by text and may take <|endoftext|>; the
  tokenizer's eos (<|im_end|>) is written as eot.
- The chat template without transformers' `{% generation %}` markers, which only mark the
  assistant span for training masks, render nothing, and are not Jinja other engines know.

The converter reads the tokenizer files of the folder it converts, so `write_gguf` hands it a
view of the folder with rewritten tokenizer_config.json and chat template. `write_gguf_export`
is the gguf / ollama export format: a scratch native export, converted, plus a Modelfile and card.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from ..tokenizer import load_tokenizer
from ..utils import CHECKOUT_ROOT
from .native import default_native_format, write_native
from .side_files import copy_tokenizer

GGUF_QUANTS = ("f32", "f16", "bf16", "q8_0")
CONVERTER_ENV = "LLAMA_CPP_DIR"  # a llama.cpp checkout to take the converter from instead
# The llama-cpp-python release whose vendored converter is used when llama_cpp is not installed.
DEFAULT_LLAMA_CPP_PYTHON = "0.3.36"

# llama.cpp pre-tokenizer types by the HF pre-tokenizer steps they reproduce (see `pre_tokenizer_type`).
# "gpt-2": the GPT-2 regex alone (what `ByteLevel(use_regex=True)` applies).
# "smollm": every digit on its own, then the GPT-2 regex; also keeps the text's spaces on decode
# (clean_up_tokenization_spaces=False, as our tokenizer_config says).
LLAMA_CPP_PRE_TYPES = {("ByteLevel",): "gpt-2", ("Digits", "ByteLevel"): "smollm"}

# Ollama's prompt template (Go text/template) rendering what our chat template renders for system,
# user and assistant messages: ChatML turns, an empty think block before each reply while thinking
# is off (the default; `ollama run --think` turns it on). Tools are not templated.
OLLAMA_TEMPLATE = """\
{{- range .Messages }}
{{- if eq .Role "system" }}<|im_start|>system
{{ .Content }}<|im_end|>
{{ else if eq .Role "user" }}<|im_start|>user
{{ .Content }}<|im_end|>
{{ else if eq .Role "assistant" }}<|im_start|>assistant
<think>
{{ .Thinking }}
</think>

{{ .Content }}<|im_end|>
{{ end }}
{{- end }}<|im_start|>assistant
{{ if not $.Think }}<think>

</think>

{{ end }}"""
# Sampling as in `minimind-chat`; generation stops at the end of the turn.
OLLAMA_PARAMETERS = (("temperature", 0.85), ("top_p", 0.85), ("stop", '"<|im_end|>"'), ("stop", '"<|im_start|>"'))


class GGUFExportError(ValueError):
    """The model or its tokenizer cannot become a GGUF file (with the reason and what to do)."""


# ----------------------------------------------------------------------------- what llama.cpp can run


def check_convertible(config) -> None:
    """Refuse, before anything is written, a MiniMind that llama.cpp would compute differently."""
    if config.use_moe and not config.norm_topk_prob:
        raise GGUFExportError(
            "llama.cpp's Qwen3-MoE always renormalises the top-k routing weights, but this MiniMind has "
            "norm_topk_prob=False, so its GGUF would compute another model; export it as --format qwen3-moe "
            "(vLLM, SGLang, transformers) instead"
        )


def pre_tokenizer_type(tokenizer_json: dict) -> str:
    """The llama.cpp pre-tokenizer type that splits text as this tokenizer.json does.

    A `Split("\\n", isolated)` step is dropped: the GPT-2 regex only ever puts a newline next to
    whitespace, and a vocabulary trained with newlines isolated has no token joining a newline to
    anything, so BPE yields the same ids either way (checked on the vocabulary here)."""
    model = tokenizer_json.get("model") or {}
    if model.get("type") != "BPE" or tokenizer_json.get("normalizer"):
        raise GGUFExportError(
            f"only byte-level BPE tokenizers without a normalizer convert to GGUF here (this one: "
            f"model {model.get('type')}, normalizer {tokenizer_json.get('normalizer')})"
        )
    pre = tokenizer_json.get("pre_tokenizer") or {}
    steps = pre.get("pretokenizers", [pre]) if pre.get("type") == "Sequence" else [pre]
    kept = []
    for step in steps:
        kind = step.get("type")
        if kind == "Split" and step.get("pattern") == {"String": "\n"} and step.get("behavior") == "Isolated":
            if any("Ċ" in token and len(token) > 1 for token in model.get("vocab", {})):  # Ċ: byte-level "\n"
                raise GGUFExportError(
                    "the vocabulary joins newlines to other text although the pre-tokenizer isolates "
                    "them; no llama.cpp pre-tokenizer reproduces that"
                )
            continue
        if kind == "Digits" and not step.get("individual_digits"):
            kind = "Digits(grouped)"
        if kind == "ByteLevel" and (step.get("add_prefix_space") or not step.get("use_regex", True)):
            kind = "ByteLevel(prefix space or no regex)"
        kept.append(kind)
    name = LLAMA_CPP_PRE_TYPES.get(tuple(kept))
    if name is None:
        raise GGUFExportError(
            f"no llama.cpp pre-tokenizer known to minimind-hf splits like {' -> '.join(kept) or 'nothing'}"
            f"; supported: {', '.join(' -> '.join(k) for k in LLAMA_CPP_PRE_TYPES)}"
        )
    return name


def portable_chat_template(template: str) -> str:
    """The template with transformers' `{% generation %}` / `{% endgeneration %}` markers turned into
    `{% if true %}` / `{% endif %}`: the same text with the same whitespace control, in plain Jinja."""
    template = re.sub(r"\{%(-?)\s*generation\s*(-?)%\}", r"{%\1 if true \2%}", template)
    return re.sub(r"\{%(-?)\s*endgeneration\s*(-?)%\}", r"{%\1 endif \2%}", template)


# ----------------------------------------------------------------------------- the converter


def converter_dir() -> Path:
    """A llama.cpp tree holding the converter (`convert_hf_to_gguf.py` and its `conversion` package)
    and `gguf-py`: $LLAMA_CPP_DIR, else the one vendored by the installed llama-cpp-python's source
    distribution, fetched with pip once and cached."""
    if os.environ.get(CONVERTER_ENV):
        folder = Path(os.environ[CONVERTER_ENV]).expanduser().resolve()
        if not _has_converter(folder):
            raise GGUFExportError(
                f"${CONVERTER_ENV}={folder} holds no conversion/ package or gguf-py/gguf: point it at "
                "a llama.cpp checkout recent enough to have conversion/ (older ones kept everything "
                "in convert_hf_to_gguf.py), or unset it"
            )
        return folder
    try:
        version = importlib.metadata.version("llama-cpp-python")
    except importlib.metadata.PackageNotFoundError:
        version = DEFAULT_LLAMA_CPP_PYTHON
    cache = (
        Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")).expanduser().resolve()
        / "minimind_hf"
        / f"llama.cpp-{version}"
    )
    if not _has_converter(cache):
        _fetch_converter(version, cache)
    return cache


def _has_converter(folder: Path) -> bool:
    return (folder / "conversion" / "__init__.py").is_file() and (folder / "gguf-py" / "gguf" / "__init__.py").is_file()


def _fetch_converter(version: str, cache: Path) -> None:
    print(f"fetching llama.cpp's converter from the llama-cpp-python {version} source distribution (once) ...")
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--no-binary",
                ":all:",
                "--dest",
                tmp,
                f"llama-cpp-python=={version}",
            ],
            capture_output=True,
            text=True,
        )
        archives = list(Path(tmp).glob("*.tar.gz"))
        if done.returncode != 0 or not archives:
            raise GGUFExportError(
                f"could not download the llama-cpp-python {version} sdist with pip "
                f"({done.stderr.strip()[-300:]}); without network, set ${CONVERTER_ENV} to a llama.cpp checkout"
            )
        staging = Path(tmp) / "converter"
        wanted = ("convert_hf_to_gguf.py", "LICENSE", "conversion/", "gguf-py/gguf/")
        with tarfile.open(archives[0]) as archive:
            for member in archive:  # regular files only, written by us: no path from the archive is trusted
                _, _, inner = member.name.partition("/vendor/llama.cpp/")
                if member.isfile() and inner.startswith(wanted) and ".." not in Path(inner).parts:
                    target = staging / inner
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(archive.extractfile(member).read())
        cache.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(cache, ignore_errors=True)
        shutil.move(str(staging), cache)


# ----------------------------------------------------------------------------- writing


def write_gguf(native_dir: Path, out_file: Path, quant: str = "f16", name: str | None = None) -> Path:
    """Convert the native export `native_dir` (with tokenizer files) into the GGUF file `out_file`.

    The converter runs in a child process: it must import the `gguf` package it was vendored with
    (gguf-py, as convert_hf_to_gguf.py itself does), which can be ahead of any `gguf` release and
    must not meet another `gguf` already imported here."""
    if quant not in GGUF_QUANTS:
        raise GGUFExportError(f"unknown GGUF quantisation {quant!r}; choose one of {', '.join(GGUF_QUANTS)}")
    native_dir, out_file = Path(native_dir).resolve(), Path(out_file).resolve()
    folder = converter_dir()
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp)
        for item in native_dir.iterdir():  # weights by link; the tokenizer files are rewritten below
            (source / item.name).symlink_to(item)
        pre = _prepare_tokenizer_files(native_dir, source)
        out_file.parent.mkdir(parents=True, exist_ok=True)
        package_root = str(CHECKOUT_ROOT)  # minimind_hf's parent, wherever it was imported from
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
        code = "import sys; from minimind_hf.export.gguf import _run_converter; _run_converter(*sys.argv[1:])"
        done = subprocess.run(
            [sys.executable, "-c", code, str(folder), str(source), str(out_file), quant, pre, name or out_file.stem],
            capture_output=True,
            text=True,
            env=env,
        )
    if done.returncode != 0 or not out_file.is_file():
        out_file.unlink(missing_ok=True)  # no half-written file
        raise GGUFExportError(f"llama.cpp's converter ({folder}) failed:\n{done.stderr.strip()[-2000:]}")
    return out_file


def _run_converter(folder: str, source: str, out_file: str, quant: str, pre: str, name: str) -> None:
    """The child process of `write_gguf`: the converter's class for the folder's architecture,
    told our pre-tokenizer type and special tokens, writes the file."""
    sys.path[:0] = [folder, str(Path(folder) / "gguf-py")]
    import gguf
    import torch
    from conversion import get_model_class  # convert_hf_to_gguf.py's model classes

    architecture = json.loads((Path(source) / "config.json").read_text())["architectures"][0]
    base = get_model_class(architecture)

    class MiniMindConverter(base):
        model_arch = base.model_arch  # the converter checks that each subclass names its architecture

        def get_vocab_base_pre(self, tokenizer) -> str:
            return pre  # instead of the probe-text hash lookup, which does not know our tokenizers

        def set_vocab(self) -> None:
            # The converter's byte-level BPE path (_set_vocab_gpt2), with eot among the special tokens.
            tokens, toktypes, tokpre = self.get_vocab_base()
            self.gguf_writer.add_tokenizer_model("gpt2")
            self.gguf_writer.add_tokenizer_pre(tokpre)
            self.gguf_writer.add_token_list(tokens)
            self.gguf_writer.add_token_types(toktypes)
            special = gguf.SpecialVocab(
                self.dir_model, load_merges=True, special_token_types=("bos", "eos", "eot", "unk", "pad")
            )
            special.add_to_gguf(self.gguf_writer)

    ftype = {
        "f32": gguf.LlamaFileType.ALL_F32,
        "f16": gguf.LlamaFileType.MOSTLY_F16,
        "bf16": gguf.LlamaFileType.MOSTLY_BF16,
        "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0,
    }[quant]
    with torch.inference_mode():
        MiniMindConverter(Path(source), ftype, Path(out_file), model_name=name).write()


def _prepare_tokenizer_files(src: Path, dst: Path) -> str:
    """Write into `dst` the tokenizer files the converter reads: tokenizer.json as it is, the chat
    template without generation markers, eot = eos and no BOS added (as the HF tokenizer does).
    Returns the llama.cpp pre-tokenizer type."""
    if not (src / "tokenizer.json").is_file():
        raise GGUFExportError(f"{src} has no tokenizer.json (a byte-level BPE tokenizer is needed for GGUF)")
    pre = pre_tokenizer_type(json.loads((src / "tokenizer.json").read_text(encoding="utf-8")))
    tokenizer = load_tokenizer(src)
    if tokenizer.eos_token is None:
        raise GGUFExportError(f"the tokenizer in {src} names no eos_token; llama.cpp would not know where a turn ends")
    for name in ("tokenizer_config.json", "chat_template.jinja", "chat_template.json"):
        (dst / name).unlink(missing_ok=True)
    config = src / "tokenizer_config.json"
    settings = json.loads(config.read_text(encoding="utf-8")) if config.is_file() else {}
    settings.pop("chat_template", None)
    settings.update(
        bos_token=tokenizer.bos_token,
        eos_token=tokenizer.eos_token,
        pad_token=tokenizer.pad_token,
        unk_token=tokenizer.unk_token,
        eot_token=tokenizer.eos_token,
        add_bos_token=False,
        add_eos_token=False,
    )
    (dst / "tokenizer_config.json").write_text(json.dumps(settings, indent=2, ensure_ascii=False), encoding="utf-8")
    if tokenizer.chat_template:
        (dst / "chat_template.jinja").write_text(portable_chat_template(tokenizer.chat_template), encoding="utf-8")
    return pre


def write_gguf_export(model, folders: list[Path], out: Path, quant: str, ollama: bool) -> Path:
    """`out/<name>-<quant>.gguf` (+ an Ollama `Modelfile`), converted from a scratch native export."""
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        write_native(model, scratch, default_native_format(model.config))
        copy_tokenizer(folders, scratch)
        path = write_gguf(scratch, out / f"{out.resolve().name}-{quant}.gguf", quant)
    if ollama:
        (out / "Modelfile").write_text(modelfile(path.name))
    (out / "README.md").write_text(gguf_card(path.name, out.resolve().name if ollama else None))
    return out


def modelfile(gguf_name: str) -> str:
    """An Ollama Modelfile for the GGUF file `gguf_name` lying next to it."""
    parameters = "\n".join(f"PARAMETER {key} {value}" for key, value in OLLAMA_PARAMETERS)
    return f'FROM ./{gguf_name}\n\nTEMPLATE """{OLLAMA_TEMPLATE}"""\n\n{parameters}\n'


def ollama_command(folder: Path) -> str:
    """The command that registers and runs an Ollama export folder (named after the folder)."""
    name = shlex.quote(folder.resolve().name)
    return f"ollama create {name} -f {shlex.quote(str(folder / 'Modelfile'))} && ollama run {name}"


def gguf_card(gguf_name: str, ollama_name: str | None = None) -> str:
    """README.md of a GGUF export: what the files are and the commands that run them."""
    lines = [
        f"# {Path(gguf_name).stem}",
        "",
        f"A MiniMind language model as GGUF (`{gguf_name}`), converted by minimind-hf with llama.cpp's "
        "`convert_hf_to_gguf.py`. The file holds the tokenizer and the chat template.",
        "",
        "```bash",
        f"llama-cli -m {gguf_name} -cnv --jinja",
        f"llama-server -m {gguf_name} --jinja",
    ]
    if ollama_name:
        lines += [f"ollama create {shlex.quote(ollama_name)} -f Modelfile && ollama run {shlex.quote(ollama_name)}"]
    lines += ["```", ""]
    return "\n".join(lines)


__all__ = [
    "GGUFExportError",
    "GGUF_QUANTS",
    "OLLAMA_TEMPLATE",
    "check_convertible",
    "converter_dir",
    "gguf_card",
    "modelfile",
    "ollama_command",
    "portable_chat_template",
    "pre_tokenizer_type",
    "write_gguf",
    "write_gguf_export",
]
