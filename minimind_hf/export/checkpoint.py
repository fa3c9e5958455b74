"""An original MiniMind checkpoint as a state dict: a `.pth` (or `.safetensors`) file read as
tensors only, wrapper prefixes removed, and the strict key check every conversion makes.
`CheckpointError` is the error of every conversion step (the command line prints its
message and exits with code 2)."""

from __future__ import annotations

import re
from pathlib import Path

import torch

# Wrappers that prefix every key: torch.compile and DistributedDataParallel.
WRAPPER_PREFIXES = ("_orig_mod.", "module.")
# The projector of a MiniMind-V checkpoint: what tells one from a language-model checkpoint.
VISION_PROJ_PREFIX = "vision_proj."


class CheckpointError(ValueError):
    """The checkpoint does not match the layout it is being converted from."""


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a `.pth` (or `.safetensors`) checkpoint, wrapper prefixes removed."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint file {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            # weights_only: a checkpoint is data, never code to run.
            state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as error:  # torch / pickle / safetensors each raise their own kinds
        raise CheckpointError(f"cannot read {path} as a state dict: {error}") from error
    for wrapper in ("model", "state_dict"):  # resume checkpoints: {"model": ..., "optimizer": ...}
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path} does not hold a state dict of tensors")
    return {_strip_wrappers(key): value for key, value in state.items()}


def _strip_wrappers(key: str) -> str:
    stripped = True
    while stripped:
        stripped = False
        for prefix in WRAPPER_PREFIXES:
            if key.startswith(prefix):
                key, stripped = key[len(prefix) :], True
    return key


def check_keys(present: set[str], wanted: set[str], optional: set[str], what: str) -> None:
    """Every wanted key but the optional ones present, nothing else: otherwise an error headed
    `what` that lists the missing and the unexpected keys (never a silent `strict=False`)."""
    missing = sorted(wanted - optional - present, key=natural_order)
    unexpected = sorted(present - wanted, key=natural_order)
    if missing or unexpected:
        raise CheckpointError(
            f"{what}:\n"
            f"  missing ({len(missing)}): {', '.join(missing) or '-'}\n"
            f"  unexpected ({len(unexpected)}): {', '.join(unexpected) or '-'}"
        )


def natural_order(key: str):
    """Sort key: `layers.2` before `layers.10`."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", key)]
