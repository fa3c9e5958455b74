"""The files that travel with the weights: the tokenizer (copied from the source folders) or a
MiniMind-V's processor, written so that transformers 4.57 reads them as well as 5.x."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from transformers import AutoProcessor

from ..models import MiniMindVProcessor
from ..tokenizer import load_tokenizer
from ..vlm import default_image_processor
from .formats import ExportError

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
PROCESSOR_FILES = ("processor_config.json", "preprocessor_config.json")


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


def save_processor(config, folders: list[Path], out: Path) -> None:
    """A MiniMind-V's processor (image processor + tokenizer + chat template), registered for
    trust_remote_code: transformers writes `auto_map: {AutoProcessor: ...}` into
    processor_config.json and tokenizer_config.json and copies processing_minimind_v.py.
    The first folder holding a processor wins; without one, a default is built."""
    folder = next((f for f in folders if any((f / name).is_file() for name in PROCESSOR_FILES)), None)
    if folder is not None:
        processor = AutoProcessor.from_pretrained(str(folder))
    else:
        print(
            f"warning: no processor_config.json in {', '.join(map(str, folders))}; writing a default image "
            f"processor for the {config.vision_config.model_type} tower"
        )
        tokenizer_folder = next((f for f in folders if (f / "tokenizer.json").is_file()), None)
        processor = MiniMindVProcessor(
            image_processor=default_image_processor(config.vision_config),
            tokenizer=load_tokenizer(tokenizer_folder),
            image_seq_length=config.image_seq_length,
        )
    if processor.image_seq_length != config.image_seq_length or processor.image_token_id != config.image_token_id:
        raise ExportError(
            f"the processor in {folder} writes {processor.image_seq_length} x token {processor.image_token_id} per image "  # noqa: E501
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


def drop_key(path: Path, key: str) -> None:
    """Remove `key` from the JSON file at `path` (if both exist)."""
    data = read_json(path)
    if data is not None and key in data:
        del data[key]
        path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def read_json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None
