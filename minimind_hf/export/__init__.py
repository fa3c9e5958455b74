"""Export a trained MiniMind so that it loads anywhere transformers runs, push it to the Hub,
and import original MiniMind checkpoints.

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

One module per job:

- `core.py`: `export_model` (checks the request, runs the writers); `formats.py`: the format
  names and `ExportError`; `source.py`: what to export (a folder, or LoRA + base merged).
- Writers: `remote_code.py`, `native.py`, `gguf.py` (llama.cpp / Ollama); `side_files.py`:
  tokenizer and processor files; `card.py`: the README.md model card; `hub.py`: the upload.
- Original checkpoints in: `checkpoint.py` (reading a .pth), `generations.py` (its layouts,
  releases and implied config), `convert.py` (language models), `convert_vlm.py` (MiniMind-V).
"""

from ..utils import DTYPES
from .card import model_card, parameter_counts
from .checkpoint import CheckpointError
from .convert import convert_checkpoint
from .convert_vlm import VLM_LAYOUTS, convert_vlm_checkpoint
from .core import export_model
from .formats import EXPORT_FORMATS, GGUF_FORMATS, REMOTE_CODE, ExportError
from .generations import GENERATIONS, read_original_config
from .gguf import GGUF_QUANTS, GGUFExportError, ollama_command
from .hub import push_to_hub
from .native import NATIVE_FORMATS, NativeExportError
from .remote_code import REMOTE_CODE_SPECS, RemoteCodeSpec
from .side_files import copy_tokenizer, save_processor
from .source import language_model_of, load_source

__all__ = [
    "CheckpointError",
    "DTYPES",
    "EXPORT_FORMATS",
    "ExportError",
    "GENERATIONS",
    "GGUFExportError",
    "GGUF_FORMATS",
    "GGUF_QUANTS",
    "NATIVE_FORMATS",
    "NativeExportError",
    "REMOTE_CODE",
    "REMOTE_CODE_SPECS",
    "RemoteCodeSpec",
    "VLM_LAYOUTS",
    "convert_checkpoint",
    "convert_vlm_checkpoint",
    "copy_tokenizer",
    "export_model",
    "language_model_of",
    "load_source",
    "model_card",
    "ollama_command",
    "parameter_counts",
    "push_to_hub",
    "read_original_config",
    "save_processor",
]
