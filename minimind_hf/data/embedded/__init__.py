"""Built-in data sets (no downloads): generators that write them on first use, and their names.

``embedded:NAME`` in a recipe resolves to a file (or the image folder) under
``$MINIMIND_HF_HOME/embedded/seed<SEED>/``, written by the generator module that owns NAME.
The generators build records only; scoring a model on them lives in ``minimind_hf.evaluation``.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

from ..report import DataSourceError

EMBEDDED_PREFIX = "embedded:"
# (module, writer): text sets first; the image sets (drawn with Pillow) are imported only when asked for.
GENERATORS = (
    ("arithmetic", "write_embedded_datasets"),
    ("rl", "write_embedded_rl_datasets"),
    ("tools", "write_embedded_tool_datasets"),
    ("vision", "write_embedded_vision_datasets"),
)


def cache_home() -> Path:
    return Path(os.environ.get("MINIMIND_HF_HOME", Path.home() / ".cache" / "minimind_hf"))


def embedded_path(name: str, seed: int) -> str:
    """`embedded:NAME` (or NAME) -> the file (or folder) of a built-in data set, written on first use."""
    key = name[len(EMBEDDED_PREFIX) :] if name.startswith(EMBEDDED_PREFIX) else name
    folder = cache_home() / "embedded" / f"seed{seed}"
    available = []
    for module_name, writer in GENERATORS:
        module = importlib.import_module(f".{module_name}", __name__)
        if key in module.EMBEDDED_NAMES:
            return str(getattr(module, writer)(folder, seed=seed)[key])
        available += module.EMBEDDED_NAMES
    raise DataSourceError(f"unknown embedded data set {name!r}; available: {', '.join(sorted(available))}")
