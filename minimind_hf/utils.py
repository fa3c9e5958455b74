"""Small helpers every layer shares; the one strict model loader lives here.

transformers' `from_pretrained` initialises any weight the file lacks at random and only
prints a load report; a renamed tensor, a config with more layers than the weights or a
truncated file would then train, serve, export or score a partly random model. Every load
of a model folder in this package goes through `load_pretrained`, which refuses that.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import torch

from .errors import ModelLoadError  # noqa: F401  (raised here; importable from utils as before)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
# Side files next to a model folder's weights: how it was trained / where it was imported from.
# The folder that holds the minimind_hf package: in a source checkout, also recipes/ and scripts/.
CHECKOUT_ROOT = Path(__file__).resolve().parents[1]
RUN_INFO_FILE = "run_info.json"  # written by scripts/train.py
CONVERSION_INFO_FILE = "conversion_info.json"  # written by scripts/convert_checkpoint.py


def resolve_dtype(dtype: str | torch.dtype | None):
    """ "auto" / None pass through (the folder's own dtype); names map to torch dtypes."""
    if dtype is None or dtype == "auto" or isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise ModelLoadError(f"unknown dtype {dtype!r}; choose auto or one of {', '.join(DTYPES)}")
    return DTYPES[dtype]


def load_pretrained(path: str | Path, auto_class=None, allow_new: tuple[str, ...] = (), **kwargs):
    """`auto_class.from_pretrained(path, **kwargs)` (default AutoModelForCausalLM), strict:
    every tensor of the model must come from the folder and every tensor of the folder must
    be used (tied-weight aliases are not reported missing by transformers). `allow_new`
    lists name prefixes a caller deliberately initialises fresh (e.g. a new head)."""
    if auto_class is None:
        from transformers import AutoModelForCausalLM as auto_class
    folder = Path(str(path))
    if folder.is_dir():
        _check_readable(folder)
    try:
        model, info = auto_class.from_pretrained(str(path), output_loading_info=True, **kwargs)
    except (OSError, ValueError, RuntimeError) as error:
        if isinstance(error, ModelLoadError):
            raise
        raise ModelLoadError(f"cannot load the model in {path}: {error}") from error
    except Exception as error:  # safetensors' Rust errors derive from Exception only
        if type(error).__name__ != "SafetensorError":
            raise
        raise ModelLoadError(f"{path}: a weights file is corrupt or truncated ({error})") from error
    problems = []
    for kind in ("missing_keys", "unexpected_keys", "mismatched_keys"):
        keys = sorted(str(k) for k in info.get(kind) or () if not str(k).startswith(allow_new or ("\0",)))
        if keys:
            problems.append(
                f"{kind.replace('_', ' ')} ({len(keys)}): {', '.join(keys[:8])}" + (" ..." if len(keys) > 8 else "")
            )
    if info.get("error_msgs"):
        problems.append("errors: " + "; ".join(map(str, info["error_msgs"]))[:500])
    if problems:
        raise ModelLoadError(
            f"the weights in {path} do not match its config.json - loading would leave tensors at random values:\n  "
            + "\n  ".join(problems)
        )
    return model


def _check_readable(folder: Path) -> None:
    """JSON and safetensors files that are present must parse: name the broken file."""
    for name in ("config.json", "generation_config.json", "model.safetensors.index.json"):
        file = folder / name
        if file.is_file():
            try:
                json.loads(file.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError) as error:
                raise ModelLoadError(
                    f"{file} is not valid JSON ({error}); the file is damaged or half-written"
                ) from error
    from safetensors import safe_open

    for file in sorted(folder.glob("*.safetensors")):
        try:
            with safe_open(str(file), "pt") as handle:
                handle.keys()
        except Exception as error:  # SafetensorError (Rust) or OSError
            raise ModelLoadError(f"{file} is corrupt or truncated ({error})") from error


def set_generation_defaults(model, tokenizer) -> None:
    """The end-of-turn token stops generation; pad is the tokenizer's."""
    config = model.generation_config
    config.eos_token_id = tokenizer.eos_token_id
    config.pad_token_id = tokenizer.pad_token_id
    config.bos_token_id = tokenizer.bos_token_id


def is_vlm(model_or_config) -> bool:
    """A vision-language model (MiniMind-V, or any config with a vision tower), or its config."""
    config = getattr(model_or_config, "config", model_or_config)
    return getattr(config, "model_type", None) == "minimind-v" or getattr(config, "vision_config", None) is not None


__all__ = [
    "CONVERSION_INFO_FILE",
    "DTYPES",
    "RUN_INFO_FILE",
    "ModelLoadError",
    "is_vlm",
    "load_pretrained",
    "resolve_dtype",
    "set_generation_defaults",
]


def import_attribute(spec: str, what: str) -> Callable:
    """`package.module:function` -> the callable (a user's reward function or tool); errors name `what`."""
    import importlib

    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"{what} {spec!r}: expected a 'module:function' path")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ValueError(f"{what} {spec!r}: cannot import module {module_name!r} ({error})") from None
    target = module
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise ValueError(f"{what} {spec!r}: module {module_name!r} has no attribute {attribute!r}")
        target = getattr(target, part)
    if not callable(target):
        raise ValueError(f"{what} {spec!r}: {attribute!r} is not callable")
    return target


def print_main(*lines: str) -> None:
    """Print (flushed) on the main process only: under `accelerate launch` every rank runs the same
    code, and a report printed once per rank says nothing more. RANK is set by the launcher."""
    if os.environ.get("RANK", "0") == "0":
        print(*lines, sep="\n", flush=True)
