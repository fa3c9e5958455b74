"""`minimind-train RECIPE.yaml [--key value ...]` (= `accelerate launch scripts/train.py ...`):
parse the recipe, check it, seed, run its stage."""

from __future__ import annotations

import dataclasses
import os
import sys

USAGE = "usage: accelerate launch scripts/train.py RECIPE.yaml [--key value ...]   (or: minimind-train ...)"


def recipe_help() -> str:
    """Every recipe key by group, with its default and help text (TrainingArguments: see transformers)."""
    from ..training.recipe import ARGUMENT_GROUPS
    from ..training.stages import STAGES

    lines = [
        USAGE,
        "",
        "A recipe is a YAML file of the keys below (any key may be overridden as --key value);",
        f"`stage` is one of: {', '.join(STAGES)}. Shipped recipes: recipes/*.yaml.",
        "",
    ]
    for group in ARGUMENT_GROUPS:
        lines.append(
            f"{group.__name__}:"
            + (
                f" {group.__doc__.splitlines()[0]}"
                if group.__doc__ and not group.__doc__.startswith(group.__name__)
                else ""
            )
        )
        for field in dataclasses.fields(group):
            default = (
                field.default
                if field.default is not dataclasses.MISSING
                else (field.default_factory() if field.default_factory is not dataclasses.MISSING else None)
            )
            text = field.metadata.get("help", "")
            lines.append(f"  {field.name} (default {default!r})" + (f": {text}" if text else ""))
        lines.append("")
    lines.append(
        "Plus every field of the stage's trainer arguments: transformers TrainingArguments (pretrain, sft, "
        "lora, distill, vlm_*), TRL DPOConfig (dpo), RewardConfig (reward), GRPOConfig (grpo)."
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(recipe_help() if argv else USAGE)
        return 0 if argv else 2
    from ..data.report import DataError
    from ..errors import ModelLoadError
    from ..training.args import RecipeError
    from ..training.recipe import parse, validate
    from ..training.stages import stage_module

    try:
        inputs = parse(argv[0], argv[1:], check_paths=True)  # paths before torch is imported
        validate(inputs)
        from transformers import set_seed

        # Before any model, vision tower or data is built: the same recipe gives the same weights.
        set_seed(inputs.training_args.seed)
        stage_module(inputs.stage).run(inputs)
    except (RecipeError, DataError, ModelLoadError) as error:  # user mistakes: one clear message, no traceback
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


def run() -> None:
    """Console entry: exit without interpreter teardown after DeepSpeed, which sometimes
    aborts at exit ("terminate called without an active exception") after a saved run."""
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    if "deepspeed" in sys.modules:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    run()
