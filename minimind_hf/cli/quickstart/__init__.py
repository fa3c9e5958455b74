"""`minimind-quickstart` (or `python scripts/quickstart.py`): the whole life cycle on embedded data,
one command, one report card.

    minimind-quickstart                      # every stage, CPU, outputs/ ; reruns skip finished stages
    minimind-quickstart --force sft          # redo sft and everything after it
    minimind-quickstart --stages pretrain,sft --max_steps 20
    minimind-quickstart --config_file accelerate_configs/ddp.yaml   # each stage under accelerate launch

Stages: chain.CHAIN (each the shipped recipe a user can run alone); after each one its held-out
result is measured (metrics.py) and the card - OUTPUT/REPORT.md, report.json, report.png - is
rewritten, so an interrupted chain still leaves a card of what finished. Then the SFT model is
exported (remote code, native Llama, GGUF when llama-cpp-python is installed).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from .chain import CHAIN, STAGE_NAMES, ChainError, command, is_done, plan, run_stage, stage_dir
from .metrics import measure, run_info
from .report import load, machine, save, today

EXPORTS = ("remote-code", "llama", "gguf")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="minimind-quickstart", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--output", default="outputs", help="root folder: one subfolder per stage, logs/, the card")
    parser.add_argument("--stages", default=None, help=f"comma-separated subset of: {','.join(STAGE_NAMES)}")
    parser.add_argument(
        "--force",
        action="append",
        default=[],
        metavar="STAGE",
        help="redo STAGE and every stage after it (repeatable, or comma-separated)",
    )
    parser.add_argument("--config_file", default=None, help="accelerate config: run each stage under accelerate launch")
    parser.add_argument("--max_steps", type=int, default=None, help="override every recipe's max_steps (smoke runs)")
    parser.add_argument(
        "--eval_limit", type=int, default=None, help="score only the first N held-out prompts per stage"
    )
    parser.add_argument("--seed", type=int, default=42, help="every stage's seed (the recipes' 42)")
    parser.add_argument(
        "--exports",
        default=",".join(EXPORTS),
        help=f"formats to export the SFT model to (comma-separated, of {','.join(EXPORTS)}; '' for none)",
    )
    return parser


def _names(values) -> list[str]:
    return [name.strip() for value in values for name in value.split(",") if name.strip()]


def _stage_entry(stage, output: Path, wall: float | None, seed: int, limit: int | None) -> dict:
    info = run_info(stage_dir(output, stage.name))
    entry = {
        "what": stage.what,
        "folder": str(stage_dir(output, stage.name)),
        "wall_seconds": wall,
        "steps": info.get("global_step"),
        "tokens_seen": info.get("tokens_seen"),
        "train_loss_first": info.get("train_loss_first"),
        "train_loss_last": info.get("train_loss_last"),
        "train_loss_mean": info.get("train_loss_mean"),
        "eval_loss": info.get("eval_loss"),
    }
    if entry["tokens_seen"] is None:
        entry["tokens_why"] = "TRL's DPO / reward trainers do not count tokens"
    entry["metric"] = measure(stage.name, stage_dir(output, stage.name), seed, limit)
    return entry


def export_all(output: Path, formats: list[str]) -> dict:
    from ...export import export_model

    source = stage_dir(output, "sft")
    results = {}
    for fmt in formats:
        target = output / "exports" / fmt
        if target.exists():  # our own earlier export: replaced by this run's
            shutil.rmtree(target)
        if fmt == "gguf":
            try:
                import llama_cpp  # noqa: F401
            except ImportError:
                results[fmt] = {"path": None, "why": "llama-cpp-python is not installed (pip install -e '.[gguf]')"}
                continue
        try:
            results[fmt] = {"path": str(export_model(source, target, fmt=fmt))}
        except Exception as error:  # the card says why; the chain's trained models are unaffected
            results[fmt] = {"path": None, "why": f"{type(error).__name__}: {error}"}
    return results


def main(argv: list[str] | None = None) -> int:
    from tqdm.auto import tqdm
    from transformers.utils import logging as hf_logging

    args = build_parser().parse_args(argv)
    hf_logging.disable_progress_bar()  # this process only measures and exports: no loading bars
    output = Path(args.output)
    stages = _names([args.stages]) if args.stages else None
    try:
        todo = plan(output, stages, _names(args.force))
    except ChainError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    report = load(output)
    report.update(date=today(), seed=args.seed, machine=machine())
    selected = [s for s in CHAIN if stages is None or s.name in stages]
    for index, stage in enumerate(selected, 1):
        if stage not in todo:
            print(
                f"[{index}/{len(selected)}] {stage.name}: done, skipped ({stage_dir(output, stage.name)}; "
                f"--force {stage.name} redoes it)",
                flush=True,
            )
            if stage.name not in report["stages"] and is_done(output, stage.name):
                report["stages"][stage.name] = _stage_entry(stage, output, None, args.seed, args.eval_limit)
            continue
        previous = report["stages"].get(stage.name, {}).get("wall_seconds")
        eta = f", last time {previous:.0f} s" if previous else ""
        print(
            f"[{index}/{len(selected)}] {stage.name}: {stage.what} (recipes/{stage.name}.yaml{eta}; "
            f"log: {output / 'logs' / (stage.name + '.log')})",
            flush=True,
        )
        bar = tqdm(total=None, desc=stage.name, unit="step", leave=True)

        def progress(step, total, bar=bar):
            if bar.total != total:
                bar.reset(total=total)
            bar.n = step
            bar.refresh()

        extra = ["--seed", str(args.seed)] + (["--logging_steps", "1"] if args.max_steps else [])  # smoke: every loss
        cmd = command(stage, output, args.max_steps, args.config_file, extra)
        code, wall = run_stage(stage, cmd, output / "logs" / f"{stage.name}.log", progress)
        bar.close()
        if code != 0:
            print(
                f"error: stage {stage.name} failed (exit {code}); see {output / 'logs' / (stage.name + '.log')}",
                file=sys.stderr,
            )
            report["stages"][stage.name] = {"what": stage.what, "failed": f"exit {code}", "wall_seconds": wall}
            save(output, report)
            return code if code == 2 else 1
        report["stages"][stage.name] = _stage_entry(stage, output, wall, args.seed, args.eval_limit)
        metric = report["stages"][stage.name]["metric"]
        shown = f"{metric['value']:.3f}" if metric.get("value") is not None else f"none ({metric.get('why')})"
        print(
            f"    {metric['metric']}: {shown}"
            + (f" (target {metric['target']:.3f}, met: {metric['met']})" if metric.get("target") is not None else ""),
            flush=True,
        )
        save(output, report)
    formats = _names([args.exports])
    if formats and is_done(output, "sft"):
        print(f"exporting {stage_dir(output, 'sft')}: {', '.join(formats)}", flush=True)
        report["exports"] = export_all(output, formats)
    paths = save(output, report)
    print(f"report card: {paths['md']} ({paths['json'].name}, {paths['png'].name})", flush=True)
    return 0


def run() -> None:
    sys.exit(main())
