"""The report card: OUTPUT/report.json, OUTPUT/REPORT.md and OUTPUT/report.png from the stage entries."""

from __future__ import annotations

import datetime
import json
import os
import platform
from pathlib import Path

REPORT_JSON, REPORT_MD, REPORT_PNG = "report.json", "REPORT.md", "report.png"


def machine() -> dict:
    import importlib.metadata as metadata

    versions = {}
    for package in ("torch", "transformers", "trl", "peft", "accelerate", "datasets", "tokenizers"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    import torch

    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "versions": versions,
    }


def load(output: Path) -> dict:
    path = Path(output) / REPORT_JSON
    return json.loads(path.read_text()) if path.is_file() else {"stages": {}}


def save(output: Path, report: dict) -> dict[str, Path]:
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    paths = {"json": output / REPORT_JSON, "md": output / REPORT_MD, "png": output / REPORT_PNG}
    paths["json"].write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
    paths["md"].write_text(markdown(report), encoding="utf-8")
    plot(report, paths["png"])
    return paths


def _number(value, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.{digits}g}" if abs(value) >= 1000 else f"{value:.{digits}f}"


def markdown(report: dict) -> str:
    lines = [
        f"# MiniMind quickstart report card ({report.get('date', '')})",
        "",
        f"Machine: {report['machine']['platform']}, {report['machine']['cpus']} CPUs, "
        f"{report['machine']['device']}; seed {report.get('seed')}; "
        + ", ".join(f"{k} {v}" for k, v in report["machine"]["versions"].items()),
        "",
        "| stage | what | wall (s) | tokens seen | train loss first -> last | eval loss | held-out metric | value | "
        "target | met |",
        "|" + " --- |" * 10,
    ]
    for name, entry in report["stages"].items():
        metric = entry.get("metric", {})
        loss = (
            f"{_number(entry.get('train_loss_first'))} -> {_number(entry.get('train_loss_last'))}"
            if entry.get("train_loss_first") is not None
            else f"mean {_number(entry.get('train_loss_mean'))}"
        )
        value = _number(metric.get("value")) if metric.get("value") is not None else f"- ({metric.get('why', '')})"
        tokens = entry.get("tokens_seen")
        lines.append(
            f"| {name} | {entry.get('what', '')} | {_number(entry.get('wall_seconds'), 1)} | "
            f"{_number(tokens) if tokens is not None else '- (' + entry.get('tokens_why', '') + ')'} | {loss} | "
            f"{_number(entry.get('eval_loss'))} | {metric.get('metric', '')} | {value} | "
            f"{_number(metric.get('target'))} | {_number(metric.get('met'))} |"
        )
    lines += ["", "Details per stage (the metric's parts):", ""]
    for name, entry in report["stages"].items():
        details = entry.get("metric", {}).get("details") or {}
        if details:
            lines.append(f"- **{name}**: " + ", ".join(f"{k} {_number(v)}" for k, v in details.items()))
    lines += ["", "## Sample answers (greedy, held-out prompts)", ""]
    for name, entry in report["stages"].items():
        for sample in entry.get("metric", {}).get("samples") or []:
            lines.append(
                f"- **{name}**: {json.dumps(sample['prompt'], ensure_ascii=False)} -> "
                f"{json.dumps(sample['reply'], ensure_ascii=False)}"
            )
    if report.get("exports"):
        lines += ["", "## Exports", ""]
        for fmt, entry in report["exports"].items():
            lines.append(f"- {fmt}: {entry.get('path') or 'not written: ' + entry.get('why', '')}")
    return "\n".join(lines) + "\n"


def plot(report: dict, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names = list(report["stages"])
    walls = [report["stages"][n].get("wall_seconds") or 0 for n in names]
    scored = [
        (n, report["stages"][n]["metric"])
        for n in names
        if report["stages"][n].get("metric", {}).get("value") is not None
    ]
    figure = Figure(figsize=(11, 4))
    FigureCanvasAgg(figure)
    left, right = figure.subplots(1, 2)
    left.barh(names, walls, color="#4c72b0")
    left.set_xlabel("wall time (s)")
    left.invert_yaxis()
    labels = [n for n, _ in scored]
    right.barh(
        labels, [m["value"] for _, m in scored], color=["#55a868" if m.get("met") else "#c44e52" for _, m in scored]
    )
    for i, (_, m) in enumerate(scored):
        if m.get("target") is not None:
            right.plot([m["target"]] * 2, [i - 0.4, i + 0.4], color="black")
    right.set_xlabel("held-out metric (green: target met; black line: target)")
    right.invert_yaxis()
    figure.suptitle(f"MiniMind quickstart, {report.get('date', '')}")
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def today() -> str:
    return datetime.date.today().isoformat()
