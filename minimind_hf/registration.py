"""Make `import minimind_hf` register the models with transformers' Auto classes without
importing torch and transformers up front (so every CLI answers `--help` and checks a recipe
first).

The registration itself is :mod:`minimind_hf.models` (importing it registers). If transformers
is already imported, :func:`register_when_transformers_loads` imports that package now;
otherwise a one-shot import hook imports it right after `transformers/__init__.py` has run,
before the importing statement gets the module. Either way, by the time user code can write
`AutoModelForCausalLM.from_pretrained(...)`, minimind is known without remote code.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import os
import sys

MODELS = "minimind_hf.models"


def register_models() -> None:
    import torch

    # accelerate imports DeepSpeed whenever it is installed, and DeepSpeed then announces
    # "Setting accelerator to CPU" on every CPU-only run; naming the accelerator keeps it quiet.
    if "DS_ACCELERATOR" not in os.environ and not torch.cuda.is_available():
        os.environ["DS_ACCELERATOR"] = "cpu"
    # A models package already being imported registers when it finishes (it is what imported
    # transformers, in that case).
    if MODELS not in sys.modules:
        importlib.import_module(MODELS)


class _RegisterAfterTransformers(importlib.abc.MetaPathFinder):
    """Finds `transformers` with the normal finders and registers at the end of its module body;
    removes itself first (it acts once)."""

    def find_spec(self, name, path=None, target=None):
        if name != "transformers":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        run_body = spec.loader.exec_module

        def exec_module(module):
            run_body(module)
            register_models()

        spec.loader.exec_module = exec_module
        return spec


def register_when_transformers_loads() -> None:
    if "transformers" in sys.modules:
        register_models()
    elif not any(isinstance(finder, _RegisterAfterTransformers) for finder in sys.meta_path):
        sys.meta_path.insert(0, _RegisterAfterTransformers())
