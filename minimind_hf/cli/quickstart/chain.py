"""The quickstart chain: every shipped recipe in order, each in its own process, skipped when done.

A stage is the same command a user runs alone (`scripts/train.py recipes/NAME.yaml`, or
`accelerate launch --config_file F` for scale-out), with only its output folder (under `--output`)
and its start model (the previous stage's folder) passed on. Its full log goes to
`OUTPUT/logs/NAME.log`; the terminal shows one banner and one progress bar per stage, read off
the Trainer's own progress bar in that log.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ...utils import CHECKOUT_ROOT, RUN_INFO_FILE

RECIPES = CHECKOUT_ROOT / "recipes"  # a source checkout ships the recipes


@dataclass(frozen=True)
class Stage:
    name: str
    start: str | None  # the stage whose output folder this one starts from
    what: str  # one line for the banner and the report card


CHAIN = (
    Stage("pretrain", None, "pretrain a tiny MiniMind on the embedded Python docs"),
    Stage("sft", "pretrain", "SFT: single-digit sums, assistant-only loss"),
    Stage("reward", "sft", "reward model on preference pairs"),
    Stage("grpo", "sft", "GRPO with verifiable rewards (sums, thinking on and off)"),
    Stage("dpo", "sft", "DPO on preference pairs"),
    Stage("tool_sft", "sft", "tool-use SFT (four built-in tools)"),
    Stage("agent", "tool_sft", "agentic RL: GRPO rollouts with tools that run"),
    Stage("vlm_pretrain", "sft", "MiniMind-V projector pretraining on embedded pictures"),
    Stage("vlm_sft", "vlm_pretrain", "MiniMind-V SFT: questions about pictures"),
)
STAGE_NAMES = tuple(s.name for s in CHAIN)
BY_NAME = {s.name: s for s in CHAIN}


class ChainError(ValueError):
    """A chain that cannot run as asked (unknown stage, a missing predecessor)."""


def stage_dir(output: Path, name: str) -> Path:
    return Path(output) / name


def is_done(output: Path, name: str) -> bool:
    return (stage_dir(output, name) / RUN_INFO_FILE).is_file()


def plan(output: Path, stages: list[str] | None, force: list[str]) -> list[Stage]:
    """The stages to (re)run, in chain order: the selection (default all) minus the finished ones,
    plus every `force` stage and all that follow it. A stage whose start is neither finished nor
    planned is an error naming it."""
    for name in [*(stages or []), *force]:
        if name not in BY_NAME:
            raise ChainError(f"unknown stage {name!r}; the chain is: {', '.join(STAGE_NAMES)}")
    selected = [s for s in CHAIN if stages is None or s.name in stages]
    first_forced = min((STAGE_NAMES.index(n) for n in force), default=len(CHAIN))
    todo = [s for s in selected if STAGE_NAMES.index(s.name) >= first_forced or not is_done(output, s.name)]
    planned = {s.name for s in todo}
    for stage in todo:
        if stage.start and stage.start not in planned and not is_done(output, stage.start):
            raise ChainError(
                f"stage {stage.name} starts from {stage_dir(output, stage.start)}, which is not trained: "
                f"add {stage.start} to --stages (or run it first)"
            )
    return todo


def command(stage: Stage, output: Path, max_steps: int | None, config_file: str | None, extra: list[str]) -> list[str]:
    recipe = RECIPES / f"{stage.name}.yaml"
    launcher = (
        [sys.executable, "-m", "accelerate.commands.launch", "--config_file", config_file]
        if config_file
        else [sys.executable]
    )
    args = [
        *launcher,
        "-m",
        "minimind_hf.cli.train",
        str(recipe),
        "--output_dir",
        str(stage_dir(output, stage.name)),
        "--disable_tqdm",
        "false",
    ]
    if stage.start:
        args += ["--model_name_or_path", str(stage_dir(output, stage.start))]
    if max_steps is not None:
        args += ["--max_steps", str(max_steps)]
    return args + extra


# The Trainer's bar has no description ("  45%|####  | 90/200 [00:30<00:40, ...]"); data and
# loading bars do ("Map: 10%|..."), so only bars that start with the percentage count.
_TRAINER_BAR = re.compile(r"(?:^|[\r\n])\s*\d+%\|[^|\r\n]*\|\s*(\d+)/(\d+) \[")


def run_stage(stage: Stage, cmd: list[str], log_path: Path, progress) -> tuple[int, float]:
    """Run one stage's command, its output into `log_path`; `progress(step, total)` as it trains.
    Returns (exit code, wall seconds)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    start = time.perf_counter()
    with log_path.open("w", encoding="utf-8") as log:
        log.write("$ " + " ".join(cmd) + "\n")
        log.flush()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
        tail, total = "", None
        while True:
            chunk = proc.stdout.read1(4096) if hasattr(proc.stdout, "read1") else proc.stdout.read(4096)
            if not chunk:
                break
            text = chunk.decode("utf-8", errors="replace")
            log.write(text)
            tail = (tail + text)[-400:]
            for step, steps in _TRAINER_BAR.findall(tail):
                total = total or int(steps)  # the first bar is training; later ones (evaluation) are not shown
                if int(steps) == total:
                    progress(int(step), total)
        code = proc.wait()
    return code, time.perf_counter() - start
