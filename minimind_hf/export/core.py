"""`export_model`: check one export request, load its source, then hand the model to the
writer of the asked format and add the side files and the model card."""

from __future__ import annotations

from pathlib import Path

from ..tokenizer import make_tokenizer_config_portable
from ..utils import CONVERSION_INFO_FILE, DTYPES, RUN_INFO_FILE, is_vlm
from .card import model_card
from .formats import EXPORT_FORMATS, GGUF_FORMATS, REMOTE_CODE, ExportError
from .gguf import GGUF_QUANTS, check_convertible, write_gguf_export
from .native import NativeExportError, native_config, write_native
from .remote_code import REWARD_MODEL_CLASS, write_remote_code
from .side_files import copy_tokenizer, drop_key, read_json, save_processor
from .source import language_model_of, load_source


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
        raise NativeExportError(
            f"{src} is a MiniMind reward model (a score head, no LM head): export it as "
            "--format remote-code (AutoModelForSequenceClassification with trust_remote_code)"
        )
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
        drop_key(out / "tokenizer_config.json", "processor_class")
    if (out / "tokenizer_config.json").is_file():  # loads under transformers 4.57 as well as 5.x
        make_tokenizer_config_portable(out / "tokenizer_config.json")
    # Oldest first: how the base came to be, then what the adapter added.
    records = [
        read_json(folder / name)
        for folder in reversed(source.folders)
        for name in (CONVERSION_INFO_FILE, RUN_INFO_FILE)
    ]
    # The card travels (Hub, colleagues): it names the repo or the folder, never a local path.
    (out / "README.md").write_text(model_card(model, fmt, [r for r in records if r], repo_id or out.resolve().name))
    return out
