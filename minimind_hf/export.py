"""Export a trained MiniMind so that it loads anywhere transformers runs, and push it to the Hub.

Two kinds of folder come out of `export_model`:

- "remote-code" (default): our own classes travel with the weights. config.json carries an
  `auto_map` and the self-contained model files are copied next to it, so
  `AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True)` works where
  `minimind_hf` is not installed.
- native ("llama", "qwen3", "qwen3-moe"): the same weights as a stock transformers
  architecture (see `native.py`). No remote code, so vLLM, llama.cpp's GGUF converter and
  everything else that knows Llama / Qwen3 can read it.
- "gguf" / "ollama": one .gguf file for llama.cpp made from the native export by llama.cpp's
  converter (see `gguf.py`); "ollama" adds a Modelfile. `quant` picks the GGUF weight type.

A LoRA adapter folder plus its base is merged first (`merge_lora=True`), then exported in
any of these formats. Every folder also gets the tokenizer, generation_config.json and a
README.md model card.

MiniMind-V (vision-language) folders export as remote code only, with their processor
(image processor + tokenizer + chat template) and `processing_minimind_v.py`, so
`AutoProcessor.from_pretrained(folder, trust_remote_code=True)` works too. No stock
transformers class holds a MiniMind LM + vision tower + projector; `language_model_only`
exports just the VLM's language model (in any format) for text-only tools.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import (
    AutoConfig,
    AutoProcessor,
    LlamaForCausalLM,
    Qwen3ForCausalLM,
    Qwen3MoeForCausalLM,
)

from .gguf import GGUF_QUANTS, GGUFExportError, check_convertible, gguf_card, modelfile, write_gguf
from .models import MiniMindForCausalLM, MiniMindVForCausalLM
from .native import NATIVE_FORMATS, NativeExportError, default_native_format, native_config, to_native_state_dict
from .tokenizer import load_tokenizer, make_tokenizer_config_portable
from .utils import CONVERSION_INFO_FILE, DTYPES, RUN_INFO_FILE, is_vlm, load_pretrained

REMOTE_CODE = "remote-code"
GGUF_FORMATS = ("gguf", "ollama")
EXPORT_FORMATS = (REMOTE_CODE, *NATIVE_FORMATS, *GGUF_FORMATS)
MODELS_DIR = Path(__file__).resolve().parent / "models"


@dataclass(frozen=True)
class RemoteCodeSpec:
    """What a trust_remote_code folder of one model type needs: which self-contained files
    from `minimind_hf/models` to copy, and the config.json `auto_map` pointing into them."""

    files: tuple[str, ...]
    auto_map: dict[str, str]


VLM_MODEL_TYPE = "minimind-v"
REWARD_MODEL_CLASS = "MiniMindForSequenceClassification"
# One entry per exportable model type.
REMOTE_CODE_SPECS: dict[str, RemoteCodeSpec] = {
    "minimind": RemoteCodeSpec(
        files=("compat.py", "configuration_minimind.py", "modeling_minimind.py"),
        auto_map={
            "AutoConfig": "configuration_minimind.MiniMindConfig",
            "AutoModel": "modeling_minimind.MiniMindModel",
            "AutoModelForCausalLM": "modeling_minimind.MiniMindForCausalLM",
            "AutoModelForSequenceClassification": "modeling_minimind.MiniMindForSequenceClassification",
        },
    ),
    # The processor's own auto_map (processor_config.json, tokenizer_config.json) is written
    # by `save_processor`; config.json carries AutoProcessor too, AutoProcessor's last resort.
    VLM_MODEL_TYPE: RemoteCodeSpec(
        files=(
            "compat.py",
            "configuration_minimind.py",
            "modeling_minimind.py",
            "configuration_minimind_v.py",
            "modeling_minimind_v.py",
            "processing_minimind_v.py",
        ),
        auto_map={
            "AutoConfig": "configuration_minimind_v.MiniMindVConfig",
            "AutoModelForCausalLM": "modeling_minimind_v.MiniMindVForCausalLM",
            "AutoModelForImageTextToText": "modeling_minimind_v.MiniMindVForCausalLM",
            "AutoProcessor": "processing_minimind_v.MiniMindVProcessor",
        },
    ),
}

# Stock class for each native model_type (native_config(...).model_type).
NATIVE_CLASSES = {"llama": LlamaForCausalLM, "qwen3": Qwen3ForCausalLM, "qwen3_moe": Qwen3MoeForCausalLM}

# Tokenizer files copied verbatim from the source folder (whichever exist).
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "chat_template.jinja",
    "chat_template.json",
    "vocab.json",
    "merges.txt",
    "tokenizer.model",
)

# Side files whose content the model card reports ("how it was trained").


class ExportError(ValueError):
    """The source cannot be exported as asked (with the reason and what to do instead)."""


# ----------------------------------------------------------------------------- loading


@dataclass
class Source:
    """A MiniMind ready to export, and the folders it came from (most specific first:
    a LoRA adapter folder, then its base) where tokenizer and run records are looked up."""

    model: MiniMindForCausalLM | MiniMindVForCausalLM
    folders: list[Path]


def load_source(src: str | Path, merge_lora: bool = False, base: str | Path | None = None) -> Source:
    src = Path(src)
    if not src.is_dir():
        raise ExportError(f"{src} is not a folder (expected a save_pretrained folder or a LoRA adapter folder)")
    adapter_config = src / "adapter_config.json"
    if adapter_config.exists():
        if not merge_lora:
            raise ExportError(
                f"{src} is a LoRA adapter; pass --merge-lora (merge_lora=True) to export base + adapter merged"
            )
        return _load_merged(src, base)
    if merge_lora:
        raise ExportError(f"--merge-lora was given but {src} has no adapter_config.json (not a LoRA adapter folder)")
    return Source(_load_minimind(src), [src])


def _load_minimind(path: str | Path) -> MiniMindForCausalLM | MiniMindVForCausalLM:
    # Load in float32 whatever the stored dtype: merging and casting happen after.
    config = AutoConfig.from_pretrained(str(path))
    model_type = config.model_type
    if model_type not in REMOTE_CODE_SPECS:
        raise ExportError(
            f"{path} holds a {model_type!r} model; only MiniMind models ({', '.join(REMOTE_CODE_SPECS)}) are exported"
        )
    if REWARD_MODEL_CLASS in (getattr(config, "architectures", None) or ()):  # a reward model (stage `reward`)
        from transformers import AutoModelForSequenceClassification

        return load_pretrained(path, auto_class=AutoModelForSequenceClassification, dtype=torch.float32).eval()
    return load_pretrained(path, dtype=torch.float32).eval()


def _load_merged(adapter_dir: Path, base: str | Path | None) -> Source:
    from peft import PeftModel  # only this path needs peft

    if base is None:
        base = json.loads((adapter_dir / "adapter_config.json").read_text()).get("base_model_name_or_path")
        if not base:
            raise ExportError(f"{adapter_dir}/adapter_config.json names no base model; pass --base BASE_FOLDER")
    base = Path(base)
    if not base.is_dir():
        raise ExportError(f"LoRA base model {base} is not a local folder; pass --base BASE_FOLDER")
    merged = PeftModel.from_pretrained(_load_minimind(base), str(adapter_dir)).merge_and_unload()
    return Source(merged.eval(), [adapter_dir, base])


# ----------------------------------------------------------------------------- export


def export_model(
    src: str | Path,
    out: str | Path,
    fmt: str = REMOTE_CODE,
    dtype: str = "float32",
    merge_lora: bool = False,
    base: str | Path | None = None,
    repo_id: str | None = None,
    language_model_only: bool = False,
    quant: str = "f16",
) -> Path:
    """Write an export of the MiniMind (or MiniMind-V) folder `src` to `out`; returns `out`.

    `repo_id` only personalises the model card's loading snippet (the push is separate).
    `language_model_only`: export only a MiniMind-V's language model (no vision tower, no
    projector, no processor) - the way to a native Llama / Qwen3 folder for text-only use.
    `quant`: the GGUF weight type (f32, f16, bf16, q8_0) of the gguf / ollama formats.
    """
    if fmt not in EXPORT_FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; choose one of {', '.join(EXPORT_FORMATS)}")
    if dtype not in DTYPES:
        raise ExportError(f"unknown dtype {dtype!r}; choose one of {', '.join(DTYPES)}")
    if fmt in GGUF_FORMATS and quant not in GGUF_QUANTS:
        raise ExportError(f"unknown GGUF quantisation {quant!r}; choose one of {', '.join(GGUF_QUANTS)}")
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise ExportError(f"output folder {out} is not empty; choose a new folder")
    source = load_source(src, merge_lora=merge_lora, base=base)
    model = source.model
    if language_model_only:
        if not is_vlm(model):
            raise ExportError(f"--language-model-only applies to MiniMind-V folders; {src} holds a text-only MiniMind")
        model = language_model_of(model)
    elif type(model).__name__ == REWARD_MODEL_CLASS and fmt != REMOTE_CODE:
        raise NativeExportError(f"{src} is a MiniMind reward model (a score head, no LM head): export it as "
                                "--format remote-code (AutoModelForSequenceClassification with trust_remote_code)")
    elif is_vlm(model) and fmt != REMOTE_CODE:
        raise NativeExportError(
            f"a MiniMind-V (language model + {model.config.vision_config.model_type} vision tower + projector) has no "
            f"stock transformers class that computes the same thing, so it cannot be exported as {fmt!r}. Use "
            "--format remote-code (the whole VLM), or --language-model-only to export just its language model as "
            f"{fmt!r} for text-only use"
        )
    model = model.to(DTYPES[dtype])
    if fmt in GGUF_FORMATS:  # refuse before writing anything
        native_config(model.config)
        check_convertible(model.config)
    elif fmt != REMOTE_CODE:
        native_config(model.config, fmt)

    out.mkdir(parents=True, exist_ok=True)
    if fmt in GGUF_FORMATS:
        return write_gguf_export(model, source.folders, out, quant, ollama=fmt == "ollama")
    if fmt == REMOTE_CODE:
        write_remote_code(model, out)
    else:
        write_native(model, out, fmt)
    if is_vlm(model):
        save_processor(model.config, source.folders, out)
    else:
        copy_tokenizer(source.folders, out)
    if language_model_only:  # the VLM's tokenizer names its processor; a text-only folder has none
        _drop_key(out / "tokenizer_config.json", "processor_class")
    if (out / "tokenizer_config.json").is_file():  # loads under transformers 4.57 as well as 5.x
        make_tokenizer_config_portable(out / "tokenizer_config.json")
    # Oldest first: how the base came to be, then what the adapter added.
    records = [_read_json(folder / name) for folder in reversed(source.folders) for name in (CONVERSION_INFO_FILE, RUN_INFO_FILE)]
    # The card travels (Hub, colleagues): it names the repo or the folder, never a local path.
    (out / "README.md").write_text(model_card(model, fmt, [r for r in records if r], repo_id or out.resolve().name))
    return out


def language_model_of(model: MiniMindVForCausalLM) -> MiniMindForCausalLM:
    """The VLM's MiniMind language model (its own weights, not a copy), generating as the VLM did."""
    language_model = model.language_model
    language_model.generation_config = model.generation_config
    return language_model


def write_remote_code(model: MiniMindForCausalLM | MiniMindVForCausalLM, out: Path) -> None:
    spec = REMOTE_CODE_SPECS[model.config.model_type]
    previous = getattr(model.config, "auto_map", None)
    model.config.auto_map = dict(spec.auto_map)
    try:
        # save_pretrained writes the tied embedding once (lm_head is re-tied on load).
        model.save_pretrained(out)
    finally:  # the in-memory model stays as it was
        if previous is None:
            del model.config.auto_map
        else:
            model.config.auto_map = previous
    for name in spec.files:
        shutil.copy2(MODELS_DIR / name, out / name)


def write_native(model: MiniMindForCausalLM, out: Path, fmt: str) -> None:
    config = native_config(model.config, fmt)
    native = NATIVE_CLASSES[config.model_type](config).to(model.dtype)
    # strict: every stock parameter must come from ours, nothing of ours may be left over.
    native.load_state_dict(to_native_state_dict(model.state_dict(), model.config, fmt), strict=True)
    native.tie_weights()
    native.generation_config = model.generation_config
    native.save_pretrained(out)
    _add_legacy_config_keys(out / "config.json", config)


def _add_legacy_config_keys(path: Path, config) -> None:
    """transformers 5 writes RoPE settings only inside `rope_parameters` and the expert count
    as `num_local_experts`. Older readers (transformers 4.x, some GGUF converters) would fall
    back to their defaults - a silently different model - so also write the old spellings."""
    data = json.loads(path.read_text())
    rope = dict(config.rope_parameters)
    data.setdefault("rope_theta", rope.pop("rope_theta"))
    if rope.get("rope_type", "default") != "default":
        data.setdefault("rope_scaling", rope)
    if config.model_type == "qwen3_moe":
        data.setdefault("num_experts", config.num_local_experts)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def write_gguf_export(model: MiniMindForCausalLM, folders: list[Path], out: Path, quant: str, ollama: bool) -> Path:
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


PROCESSOR_FILES = ("processor_config.json", "preprocessor_config.json")


def save_processor(config, folders: list[Path], out: Path) -> None:
    """A MiniMind-V's processor (image processor + tokenizer + chat template), registered for
    trust_remote_code: transformers writes `auto_map: {AutoProcessor: ...}` into
    processor_config.json and tokenizer_config.json and copies processing_minimind_v.py.
    The first folder holding a processor wins; without one, a default is built."""
    from .models import MiniMindVProcessor

    folder = next((f for f in folders if any((f / name).is_file() for name in PROCESSOR_FILES)), None)
    if folder is not None:
        processor = AutoProcessor.from_pretrained(str(folder))
    else:
        from .vlm import default_image_processor

        print(f"warning: no processor_config.json in {', '.join(map(str, folders))}; writing a default image "
              f"processor for the {config.vision_config.model_type} tower")
        tokenizer_folder = next((f for f in folders if (f / "tokenizer.json").is_file()), None)
        processor = MiniMindVProcessor(
            image_processor=default_image_processor(config.vision_config),
            tokenizer=load_tokenizer(tokenizer_folder),
            image_seq_length=config.image_seq_length,
        )
    if processor.image_seq_length != config.image_seq_length or processor.image_token_id != config.image_token_id:
        raise ExportError(
            f"the processor in {folder} writes {processor.image_seq_length} x token {processor.image_token_id} per image "
            f"but the model expects {config.image_seq_length} x token {config.image_token_id}"
        )
    processor._auto_class = "AutoProcessor"  # this instance only: the class stays unregistered
    processor.save_pretrained(str(out))
    _make_processor_config_portable(processor, out)


def _make_processor_config_portable(processor, out: Path) -> None:
    """transformers 5 nests the image processor inside processor_config.json; 4.x reads it
    from preprocessor_config.json and would pass the nested copy to the processor's
    constructor a second time. Both lines read the separate file."""
    path = out / "processor_config.json"
    data = json.loads(path.read_text())
    image_processor = data.pop("image_processor", None)
    if image_processor is not None:
        image_processor.pop("auto_map", None)  # the image processor is a stock class
        (out / "preprocessor_config.json").write_text(json.dumps(image_processor, indent=2, sort_keys=True) + "\n")
        path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def copy_tokenizer(folders: list[Path], out: Path) -> None:
    """The first folder holding a tokenizer wins (an adapter's own copy before its base's)."""
    for folder in folders:
        present = [name for name in TOKENIZER_FILES if (folder / name).is_file()]
        if "tokenizer.json" in present or "tokenizer_config.json" in present:
            for name in present:
                shutil.copy2(folder / name, out / name)
            return
    print(f"warning: no tokenizer in {', '.join(map(str, folders))}; writing the tokenizer shipped with minimind_hf")
    load_tokenizer().save_pretrained(str(out))


def _drop_key(path: Path, key: str) -> None:
    data = _read_json(path)
    if data is not None and key in data:
        del data[key]
        path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def _read_json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


# ----------------------------------------------------------------------------- model card


def parameter_counts(model: MiniMindForCausalLM | MiniMindVForCausalLM) -> tuple[int, int]:
    """(total, active per token). Tied embeddings count once; an MoE token runs only its
    top-k routed experts. A MiniMind-V's total includes its vision tower and projector."""
    total = sum(p.numel() for p in model.parameters())
    config = getattr(model.config, "text_config", model.config)
    if not config.use_moe:
        return total, total
    expert = 3 * config.hidden_size * config.moe_intermediate_size
    idle = config.num_hidden_layers * (config.num_experts - config.num_experts_per_tok) * expert
    return total, total - idle


def model_card(model: MiniMindForCausalLM | MiniMindVForCausalLM, fmt: str, records: list[dict], location: str) -> str:
    vlm = is_vlm(model)
    config = model.config.text_config if vlm else model.config
    total, active = parameter_counts(model)
    remote = fmt == REMOTE_CODE
    if remote:
        class_name = type(model).__name__
    else:
        class_name = NATIVE_CLASSES[native_config(config, fmt).model_type].__name__
    arch = f"{class_name} ({'custom code' if remote else 'stock transformers'})"
    task = "image-text-to-text" if vlm else "text-generation"
    tags = ["minimind", "minimind-hf", task] + (["minimind-v", "vision-language"] if vlm else [])
    tags += ["custom_code"] if remote else []
    rows = [
        ("architecture", arch),
        ("parameters", f"{total / 1e6:.2f} M" + (f" ({active / 1e6:.2f} M active per token)" if config.use_moe else "")),
        ("hidden size", config.hidden_size),
        ("layers", config.num_hidden_layers),
        ("attention heads (query / key-value)", f"{config.num_attention_heads} / {config.num_key_value_heads}"),
        ("head dim", config.head_dim),
        ("FFN size", config.moe_intermediate_size if config.use_moe else config.intermediate_size),
        ("vocabulary", config.vocab_size),
        ("q/k RMSNorm", config.qk_norm),
        ("RoPE", _describe_rope(config.rope_parameters)),
        ("tied embeddings", config.tie_word_embeddings),
        ("weights dtype", str(model.dtype).replace("torch.", "")),
    ]
    if config.use_moe:
        rows.append(
            ("mixture of experts", f"{config.num_experts} routed experts, top-{config.num_experts_per_tok}, "
             f"{config.num_shared_experts} shared")
        )
    if vlm:
        rows += _vision_rows(model)
        summary = ("A MiniMind-V vision-language model: a MiniMind language model (a small Llama/Qwen3-style "
                   "decoder) reading image features from a vision tower through a projector, exported by minimind-hf.")
    else:
        summary = ("A MiniMind language model (a small Llama/Qwen3-style decoder: RMSNorm, SwiGLU, RoPE, "
                   "grouped-query attention), exported by minimind-hf.")
    lines = [
        "---",
        "library_name: transformers",
        f"pipeline_tag: {task}",
        "tags:",
        *[f"- {tag}" for tag in tags],
        "---",
        "",
        f"# {Path(location).name or 'MiniMind'}",
        "",
        summary,
        "",
        "## Architecture",
        "",
        "| | |",
        "|---|---|",
        *[f"| {name} | {value} |" for name, value in rows],
        "",
        "## How it was trained",
        "",
        *(_describe_records(records) or ["Not recorded: the exported folder had no run_info.json."]),
        "",
        "## How to load",
        "",
        *(_vlm_loading_snippet(location) if vlm else _text_loading_snippet(location, remote)),
        "",
    ]
    lines.append("Requirements: `torch` and `transformers` (4.57.x or 5.x)" + (", plus `pillow` for the images "
                 "(the image processor's PIL path needs no torchvision)." if vlm else "."))
    if vlm:
        lines.append("`trust_remote_code=True` runs `modeling_minimind_v.py` (with `modeling_minimind.py`) and "
                     "`processing_minimind_v.py` from this folder; read them first if you do not trust the source. "
                     "Mark each image in text with `<image>` (the processor expands it to the placeholder tokens) "
                     "or use `{\"type\": \"image\"}` content parts with the chat template.")
    elif remote:
        lines.append("`trust_remote_code=True` runs `modeling_minimind.py` from this folder; "
                     "read it first if you do not trust the source.")
    else:
        lines.append(f"A plain `{class_name}`: no remote code. It also runs with `vllm serve`, "
                     "and converts to GGUF with llama.cpp's `convert_hf_to_gguf.py`.")
    lines.append("The chat template (ChatML with an optional `<think>` block) ships in `chat_template.jinja`.")
    return "\n".join(lines) + "\n"


def _text_loading_snippet(location: str, remote: bool) -> list[str]:
    return [
        "```python",
        "from transformers import AutoModelForCausalLM, AutoTokenizer",
        "",
        f'tokenizer = AutoTokenizer.from_pretrained("{location}"' + (", trust_remote_code=True)" if remote else ")"),
        f'model = AutoModelForCausalLM.from_pretrained("{location}"' + (", trust_remote_code=True)" if remote else ")"),
        'messages = [{"role": "user", "content": "Hello!"}]',
        "inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors=\"pt\", return_dict=True)",
        "output = model.generate(**inputs, max_new_tokens=64)",
        'print(tokenizer.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True))',
        "```",
    ]


def _vlm_loading_snippet(location: str) -> list[str]:
    return [
        "```python",
        "from PIL import Image",
        "from transformers import AutoModelForCausalLM, AutoProcessor",
        "",
        f'processor = AutoProcessor.from_pretrained("{location}", trust_remote_code=True)',
        f'model = AutoModelForCausalLM.from_pretrained("{location}", trust_remote_code=True)',
        'messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is in this picture?"}]}]',
        "prompt = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)",
        'inputs = processor(text=prompt, images=[Image.open("photo.jpg")], return_tensors="pt")',
        "output = model.generate(**inputs, max_new_tokens=64)",
        'print(processor.tokenizer.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True))',
        "```",
    ]


def _vision_rows(model: MiniMindVForCausalLM) -> list[tuple[str, object]]:
    config, vision = model.config, model.config.vision_config
    tower = sum(p.numel() for p in model.vision_tower.parameters())
    projector = sum(p.numel() for p in model.projector.parameters())
    origin = f", from `{_public_name(config.vision_tower_name_or_path)}`" if config.vision_tower_name_or_path else ""
    grid = config.patch_grid
    kind = "linear" if config.projector_type == "linear" else "LayerNorm-MLP (LayerNorm, Linear, GELU, Linear)"
    reduction = {"none": "", "pixel_shuffle": f" after {config.reduction_factor}x{config.reduction_factor} pixel shuffle",
                 "avg_pool": f" after {config.reduction_factor}x{config.reduction_factor} average pooling"}
    return [
        ("vision tower", f"{vision.model_type}, {tower / 1e6:.2f} M parameters ({vision.num_hidden_layers} layers, "
                         f"hidden {vision.hidden_size}){origin}; frozen: {config.freeze_vision_tower}"),
        ("image input", f"{vision.image_size}x{vision.image_size} pixels, {vision.patch_size}px patches "
                        f"({grid}x{grid} grid)"),
        ("image tokens", f"{config.image_seq_length} `{config.image_token}` placeholders per image "
                         f"(token id {config.image_token_id})"),
        ("projector", f"{kind}{reduction[config.token_reduction]}, {projector / 1e6:.2f} M parameters"),
    ]


def _public_name(name_or_path) -> str:
    """A hub id as it is; a local folder by its name only (the card must not leak local paths)."""
    text = str(name_or_path)
    return Path(text).name if Path(text).is_absolute() or Path(text).exists() or text.startswith((".", "~")) else text


def _describe_rope(rope: dict) -> str:
    kind = rope.get("rope_type", "default")
    text = f"theta {rope['rope_theta']:g}"
    return text if kind == "default" else f"{text}, {kind} (factor {rope.get('factor')})"


def _describe_records(records: list[dict]) -> list[str]:
    lines = []
    for record in records:
        if "converted_from" in record:
            lines.append(f"- imported from an original MiniMind checkpoint (generation {record.get('generation')}): "
                         f"`{Path(record['converted_from']).name}`")
            if record.get("vlm_layout"):
                lines.append(f"  - MiniMind-V layout: {record.get('vlm_layout_name', record['vlm_layout'])}; vision "
                             f"tower from `{_public_name(record.get('vision_tower'))}`")
            continue
        loss = ""
        if record.get("train_loss_first") is not None:
            loss = f", training loss {record['train_loss_first']:.4g} -> {record['train_loss_last']:.4g}"
        processes = record.get("world_size", 1)
        lines.append(f"- stage `{record.get('stage', '?')}`: {record.get('global_step', '?')} steps"
                     f" on {processes} process{'es' if processes != 1 else ''}{loss}")
        for name, stats in (record.get("data") or {}).get("files", {}).items():
            skipped = sum(stats.get("skipped", {}).values())
            name = Path(name).name  # the file, not where it sat on the training machine
            lines.append(f"  - data `{name}`: {stats.get('kept')} of {stats.get('read')} records used"
                         + (f" ({skipped} skipped)" if skipped else ""))
    return lines


# ----------------------------------------------------------------------------- Hub


def push_to_hub(folder: str | Path, repo_id: str, private: bool = False, commit_message: str | None = None) -> str:
    """Create the model repo (if needed) and upload `folder`. The token comes from the usual
    places (HF_TOKEN, `hf auth login`)."""
    from huggingface_hub import HfApi

    api = HfApi()
    url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    api.upload_folder(
        repo_id=repo_id,
        folder_path=str(folder),
        repo_type="model",
        commit_message=commit_message or "Upload MiniMind export (minimind-hf)",
    )
    return str(url)


__all__ = [
    "DTYPES",
    "EXPORT_FORMATS",
    "ExportError",
    "GGUFExportError",
    "GGUF_FORMATS",
    "NativeExportError",
    "REMOTE_CODE_SPECS",
    "RemoteCodeSpec",
    "copy_tokenizer",
    "export_model",
    "language_model_of",
    "load_source",
    "model_card",
    "parameter_counts",
    "push_to_hub",
    "save_processor",
]
