"""The end of every stage: train (resuming if asked), save a complete folder, record and report.

A finished folder holds the model (or adapter, plus `merged/`), the tokenizer (or processor),
generation_config.json, run_info.json (world size, losses, data report, tokens seen, and the
stage's own results), training_curves.png, and the trainer state; the run ends with three
lines: where it is saved, how good it got, what to run next.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from pathlib import Path

from ..utils import CHECKOUT_ROOT, RUN_INFO_FILE, print_main, set_generation_defaults
from .adapters import save_merged
from .args import RecipeError, StageInputs

logger = logging.getLogger(__name__)


def train_and_save(
    trainer,
    inputs: StageInputs,
    tokenizer,
    report,
    processor=None,
    results: Callable[[object], dict] | None = None,
    result_lines: Callable[[dict], list[str]] | None = None,
    plots: tuple[Callable[[str, list], object], ...] = (),
    next_stage: str | None = None,
    show_eval_loss: bool = True,
) -> dict:
    """Train, save, evaluate `eval_dataset` once more, write run_info.json, plot, print the closing lines.

    Stage hooks: `results(model)` adds the stage's measurements to run_info (called on every
    rank: it may gather), `result_lines(info)` adds "result:" lines, each of `plots` draws
    one more figure from the log history, `next_stage` names the NEXT_STEP entry to suggest;
    `show_eval_loss=False` leaves the held-out loss out of the result line (a pairwise loss has no perplexity).
    """
    args = trainer.args
    result = trainer.train(resume_from_checkpoint=resolve_resume(args.resume_from_checkpoint, args.output_dir))
    model = trainer.model
    if getattr(model, "generation_config", None) is not None:  # (a reward model does not generate)
        set_generation_defaults(model, tokenizer)
    trainer.save_model(args.output_dir)  # model (or adapter) + tokenizer / processor + generation config
    if inputs.adapter_args.use_lora and inputs.adapter_args.merge_lora and trainer.is_world_process_zero():
        save_merged(trainer.accelerator.unwrap_model(model), tokenizer, args.output_dir, processor)
    if trainer.eval_dataset is not None:  # the held-out loss at the end (logged, so it is plotted too)
        trainer.evaluate()
    trainer.save_state()
    info = run_info(trainer, inputs.stage, report, mean_train_loss=result.training_loss)
    if results is not None:
        info.update(results(trainer.accelerator.unwrap_model(model)))
    if trainer.is_world_process_zero():
        Path(args.output_dir).mkdir(parents=True, exist_ok=True)
        Path(args.output_dir, RUN_INFO_FILE).write_text(json.dumps(info, indent=2))
        for plot in (plot_training_curves, *plots):
            try:  # a plotting problem never fails a finished run
                plot(args.output_dir, trainer.state.log_history)
            except (ValueError, OSError) as error:  # e.g. a run too short to have logged anything
                logger.warning("no %s plotted: %s", getattr(plot, "figure", "figure"), error)
        shown = info if show_eval_loss else {**info, "eval_loss": None}
        lines = closing_lines(shown, args.output_dir, next_stage or inputs.stage)
        lines[2:2] = result_lines(info) if result_lines is not None else []  # after the train-loss line
        print_main("\n".join(lines))
    trainer.accelerator.wait_for_everyone()
    return info


def plot_training_curves(output_dir: str, history: list) -> None:
    from ..plotting import plot_training

    plot_training(output_dir)


plot_training_curves.figure = "training curves"


def run_info(trainer, stage: str, report, mean_train_loss: float | None = None) -> dict:
    """A small record of how the run went: tests and users read world size and data counts here."""
    args, history = trainer.args, trainer.state.log_history

    def last(key):
        return next((h[key] for h in reversed(history) if key in h), None)

    info = {
        "stage": stage,
        "world_size": args.world_size,
        "distributed_type": str(trainer.accelerator.distributed_type),
        "deepspeed": bool(trainer.is_deepspeed_enabled),
        "global_step": trainer.state.global_step,
        "train_loss_first": next((h["loss"] for h in history if "loss" in h), None),
        "train_loss_last": last("loss"),
        "train_loss_mean": mean_train_loss,
        "eval_loss": last("eval_loss"),
        # GRPO counts its prompt + completion tokens itself; DPO / reward trainers do not count.
        "tokens_seen": trainer.state.num_input_tokens_seen or last("num_tokens"),
        "train_runtime": last("train_runtime"),
    }
    if report is not None:
        info["data"] = report.to_dict()
    return info


def resolve_resume(value: str | None, output_dir: str) -> str | None:
    """`auto` -> the newest complete checkpoint in output_dir (or None to start fresh)."""
    if not value:
        return None
    if value != "auto":
        if not Path(value).is_dir():
            raise RecipeError(f"resume_from_checkpoint {value} is not a folder")
        return value
    checkpoints = sorted(
        (
            (int(path.name.split("-")[-1]), path)
            for path in Path(output_dir).glob("checkpoint-*")
            if path.name.split("-")[-1].isdigit()
        ),
        reverse=True,
    )
    for _, path in checkpoints:
        problem = _incomplete(path)
        if problem is None:
            return str(path)
        print_main(f"resume: skipping {path} ({problem}); trying the previous checkpoint")
    return None


def _incomplete(checkpoint: Path) -> str | None:
    """Why a checkpoint cannot be resumed from (a run killed while saving), or None."""
    state = checkpoint / "trainer_state.json"
    if not state.is_file():  # written last when saving: its absence means the save did not finish
        return "no trainer_state.json"
    try:
        json.loads(state.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return "trainer_state.json is half-written"
    weights = [
        f for f in checkpoint.iterdir() if f.suffix in (".safetensors", ".bin", ".pt") or f.name == "pytorch_model"
    ]
    if not weights and not any(checkpoint.glob("global_step*")):  # DeepSpeed keeps its own folder
        return "no weights"
    from safetensors import safe_open

    for file in checkpoint.glob("*.safetensors"):
        try:
            with safe_open(str(file), "pt") as handle:
                handle.keys()
        except Exception:  # SafetensorError: truncated
            return f"{file.name} is truncated"
    return None


# What to run after each stage (the shipped chain); a custom output folder is passed on.
NEXT_STEP = {
    "pretrain": ("recipe", "recipes/sft.yaml"),
    "sft": ("recipe", "recipes/dpo.yaml"),
    "dpo": ("command", "python scripts/chat.py {out}"),
    "lora": ("command", "python scripts/chat.py {out}/merged"),
    "distill": ("command", "python scripts/eval.py {out} --task ppl"),
    "reward": (
        "command",
        "accelerate launch scripts/train.py recipes/grpo.yaml --reward_funcs '[exact_answer, reward_model]' "
        "--reward_weights '[1.0, 0.1]' --reward_model_path {out}",
    ),
    "grpo": ("command", "python scripts/eval.py {out} --task arithmetic --thinking"),
    "agent": ("command", "python scripts/eval.py {out} --task toolcall"),  # grpo with tools
    "vlm_pretrain": ("recipe", "recipes/vlm_sft.yaml"),
    "vlm_sft": ("command", "python scripts/chat.py {out} --image PICTURE.png"),
}


def closing_lines(info: dict, output_dir: str, stage: str) -> list[str]:
    """Where the model is, how good it got, what to run next."""
    lines = [f"saved:  {output_dir} (model, tokenizer, run_info.json, training_curves.png)"]
    first, last, evaluated = info.get("train_loss_first"), info.get("train_loss_last"), info.get("eval_loss")
    if first is not None and last is not None:
        result = f"train loss {first:.4g} -> {last:.4g}"
    elif info.get("train_loss_mean") is not None:  # a run shorter than logging_steps
        result = f"train loss {info['train_loss_mean']:.4g} (mean)"
    else:
        result = "no train loss"
    if evaluated is not None:
        result += f"; held-out eval loss {evaluated:.4g} (perplexity {math.exp(min(evaluated, 50)):.4g})"
    lines.append(f"result: {result} after {info.get('global_step')} steps")
    kind, target = NEXT_STEP.get(stage, ("command", "python scripts/export.py {out} exports/NAME"))
    if kind == "recipe":
        import yaml

        recipe = CHECKOUT_ROOT / target  # a source checkout ships the recipes
        expected = (yaml.safe_load(recipe.read_text()) if recipe.is_file() else None) or {}
        command = f"accelerate launch scripts/train.py {target}"
        if Path(expected.get("model_name_or_path", "")) != Path(output_dir):
            command += f" --model_name_or_path {output_dir}"
    else:
        command = target.format(out=output_dir)
    lines.append(f"next:   {command}")
    return lines


def replica_checksums(trainer) -> dict:
    """{"weight_checksum_per_rank": [...]}: the sum of every trained weight on each rank (data-parallel
    replicas must agree); empty for one process or ZeRO-3 (ranks hold shards, not copies). Call on every rank."""
    if trainer.args.world_size <= 1 or trainer.is_deepspeed_enabled:
        return {}
    model = trainer.accelerator.unwrap_model(trainer.model)
    total = sum(p.detach().double().sum() for p in model.parameters() if p.requires_grad)
    gathered = trainer.accelerator.gather(total.reshape(1).to(trainer.accelerator.device)).tolist()
    return {"weight_checksum_per_rank": gathered}
