"""Export a trained MiniMind so that it loads anywhere transformers runs, and push it to the Hub.

Two kinds of folder come out of `export_model`:

- "remote-code" (default): our own classes travel with the weights. config.json carries an
  `auto_map` and the self-contained model files are copied next to it, so
  `AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True)` works where
  `minimind_hf` is not installed.
- native ("llama", "qwen3", "qwen3-moe"): the same weights as a stock transformers
  architecture (see `native.py`). No remote code, so vLLM, llama.cpp's GGUF converter and
  everything else that knows Llama / Qwen3 can read it.

A LoRA adapter folder plus its base is merged first (`merge_lora=True`), then exported in
any of these formats. Every folder also gets the tokenizer, generation_config.json and a
README.md model card.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM, LlamaForCausalLM, Qwen3ForCausalLM, Qwen3MoeForCausalLM

from .models import MiniMindForCausalLM
from .native import NATIVE_FORMATS, NativeExportError, native_config, to_native_state_dict
from .tokenizer import load_tokenizer

REMOTE_CODE = "remote-code"
EXPORT_FORMATS = (REMOTE_CODE, *NATIVE_FORMATS)
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
MODELS_DIR = Path(__file__).resolve().parent / "models"


@dataclass(frozen=True)
class RemoteCodeSpec:
    """What a trust_remote_code folder of one model type needs: which self-contained files
    from `minimind_hf/models` to copy, and the config.json `auto_map` pointing into them."""

    files: tuple[str, ...]
    auto_map: dict[str, str]


# One entry per exportable model type; MiniMind-V adds its own (its files + AutoProcessor).
REMOTE_CODE_SPECS: dict[str, RemoteCodeSpec] = {
    "minimind": RemoteCodeSpec(
        files=("configuration_minimind.py", "modeling_minimind.py"),
        auto_map={
            "AutoConfig": "configuration_minimind.MiniMindConfig",
            "AutoModel": "modeling_minimind.MiniMindModel",
            "AutoModelForCausalLM": "modeling_minimind.MiniMindForCausalLM",
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
RUN_INFO_FILE = "run_info.json"  # written by scripts/train.py
CONVERSION_INFO_FILE = "conversion_info.json"  # written by scripts/convert_checkpoint.py


class ExportError(ValueError):
    """The source cannot be exported as asked (with the reason and what to do instead)."""


# ----------------------------------------------------------------------------- loading


@dataclass
class Source:
    """A MiniMind ready to export, and the folders it came from (most specific first:
    a LoRA adapter folder, then its base) where tokenizer and run records are looked up."""

    model: MiniMindForCausalLM
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


def _load_minimind(path: str | Path) -> MiniMindForCausalLM:
    # Load in float32 whatever the stored dtype: merging and casting happen after.
    model_type = AutoConfig.from_pretrained(str(path)).model_type
    if model_type not in REMOTE_CODE_SPECS:
        raise ExportError(
            f"{path} holds a {model_type!r} model; only MiniMind models ({', '.join(REMOTE_CODE_SPECS)}) are exported"
        )
    return AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32).eval()


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
) -> Path:
    """Write an export of the MiniMind folder `src` to `out`; returns `out`.

    `repo_id` only personalises the model card's loading snippet (the push is separate).
    """
    if fmt not in EXPORT_FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; choose one of {', '.join(EXPORT_FORMATS)}")
    if dtype not in DTYPES:
        raise ExportError(f"unknown dtype {dtype!r}; choose one of {', '.join(DTYPES)}")
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise ExportError(f"output folder {out} is not empty; choose a new folder")
    source = load_source(src, merge_lora=merge_lora, base=base)
    model = source.model.to(DTYPES[dtype])
    if fmt != REMOTE_CODE:
        native_config(model.config, fmt)  # refuse before writing anything

    out.mkdir(parents=True, exist_ok=True)
    if fmt == REMOTE_CODE:
        write_remote_code(model, out)
    else:
        write_native(model, out, fmt)
    copy_tokenizer(source.folders, out)
    # Oldest first: how the base came to be, then what the adapter added.
    records = [_read_json(folder / name) for folder in reversed(source.folders) for name in (CONVERSION_INFO_FILE, RUN_INFO_FILE)]
    (out / "README.md").write_text(model_card(model, fmt, [r for r in records if r], repo_id or str(out)))
    return out


def write_remote_code(model: MiniMindForCausalLM, out: Path) -> None:
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


def _read_json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


# ----------------------------------------------------------------------------- model card


def parameter_counts(model: MiniMindForCausalLM) -> tuple[int, int]:
    """(total, active per token). Tied embeddings count once; an MoE token runs only its
    top-k routed experts."""
    total = sum(p.numel() for p in model.parameters())
    config = model.config
    if not config.use_moe:
        return total, total
    expert = 3 * config.hidden_size * config.moe_intermediate_size
    idle = config.num_hidden_layers * (config.num_experts - config.num_experts_per_tok) * expert
    return total, total - idle


def model_card(model: MiniMindForCausalLM, fmt: str, records: list[dict], location: str) -> str:
    config = model.config
    total, active = parameter_counts(model)
    remote = fmt == REMOTE_CODE
    class_name = "MiniMindForCausalLM" if remote else NATIVE_CLASSES[native_config(config, fmt).model_type].__name__
    arch = f"{class_name} ({'custom code' if remote else 'stock transformers'})"
    tags = ["minimind", "minimind-hf", "text-generation"] + (["custom_code"] if remote else [])
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
    lines = [
        "---",
        "library_name: transformers",
        "pipeline_tag: text-generation",
        "tags:",
        *[f"- {tag}" for tag in tags],
        "---",
        "",
        f"# {Path(location).name or 'MiniMind'}",
        "",
        "A MiniMind language model (a small Llama/Qwen3-style decoder: RMSNorm, SwiGLU, RoPE, "
        "grouped-query attention), exported by minimind-hf.",
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
        "```python",
        "from transformers import AutoModelForCausalLM, AutoTokenizer",
        "",
        f'tokenizer = AutoTokenizer.from_pretrained("{location}")',
        f'model = AutoModelForCausalLM.from_pretrained("{location}"' + (", trust_remote_code=True)" if remote else ")"),
        'messages = [{"role": "user", "content": "Hello!"}]',
        "inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors=\"pt\", return_dict=True)",
        "output = model.generate(**inputs, max_new_tokens=64)",
        'print(tokenizer.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True))',
        "```",
        "",
    ]
    if remote:
        lines.append("`trust_remote_code=True` runs `modeling_minimind.py` from this folder; "
                     "read it first if you do not trust the source.")
    else:
        lines.append(f"A plain `{class_name}`: no remote code. It also runs with `vllm serve`, "
                     "and converts to GGUF with llama.cpp's `convert_hf_to_gguf.py`.")
    lines.append("The chat template (ChatML with an optional `<think>` block) ships in `chat_template.jinja`.")
    return "\n".join(lines) + "\n"


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
            continue
        loss = ""
        if record.get("train_loss_first") is not None:
            loss = f", training loss {record['train_loss_first']:.4g} -> {record['train_loss_last']:.4g}"
        processes = record.get("world_size", 1)
        lines.append(f"- stage `{record.get('stage', '?')}`: {record.get('global_step', '?')} steps"
                     f" on {processes} process{'es' if processes != 1 else ''}{loss}")
        for name, stats in (record.get("data") or {}).get("files", {}).items():
            skipped = sum(stats.get("skipped", {}).values())
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
    "NativeExportError",
    "REMOTE_CODE_SPECS",
    "RemoteCodeSpec",
    "copy_tokenizer",
    "export_model",
    "load_source",
    "model_card",
    "parameter_counts",
    "push_to_hub",
]
