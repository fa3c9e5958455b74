"""Training curves (loss, learning rate, grad norm) from a run's `trainer_state.json`.

    plot_training("out/sft")            -> out/sft/training_curves.png
    python scripts/plot.py out/sft      (= minimind-plot out/sft)

Uses matplotlib's object API on an Agg canvas (no pyplot, no display, no global state), so it
is safe at the end of a training run, in threads and on headless machines.
"""

from __future__ import annotations

import json
from pathlib import Path

STATE_FILE = "trainer_state.json"
DEFAULT_NAME = "training_curves.png"
FIGSIZE, DPI = (15, 4), 100  # -> 1500 x 400 pixels

# (log key, panel title, y scale); eval_loss shares the loss panel.
PANELS = (("loss", "loss", "linear"), ("learning_rate", "learning rate", "linear"), ("grad_norm", "grad norm", "log"))


def find_trainer_state(path: str | Path) -> Path:
    """`trainer_state.json` in the folder, or else in its newest `checkpoint-N/` (runs that stopped early)."""
    path = Path(path)
    if path.is_file():
        return path
    if (path / STATE_FILE).is_file():
        return path / STATE_FILE
    checkpoints = sorted(
        (int(p.name.split("-")[-1]), p)
        for p in path.glob("checkpoint-*")
        if p.name.split("-")[-1].isdigit() and (p / STATE_FILE).is_file()
    )
    if checkpoints:
        return checkpoints[-1][1] / STATE_FILE
    raise FileNotFoundError(
        f"no {STATE_FILE} in {path} (nor in a checkpoint-*/ folder under it): is this a training output_dir?"
    )


def _series(history: list[dict], key: str) -> tuple[list[float], list[float]]:
    points = [(h.get("step", i), h[key]) for i, h in enumerate(history) if isinstance(h.get(key), (int, float))]
    return [p[0] for p in points], [p[1] for p in points]


def plot_training(output_dir: str | Path, output: str | Path | None = None) -> Path:
    """Write the curves of `output_dir`'s trainer_state.json to a PNG and return its path.

    `output` defaults to `output_dir/training_curves.png` (or next to the state file when a file
    is given). Raises FileNotFoundError if there is no state file and ValueError if it holds no
    logged losses, learning rates or grad norms.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    state_path = find_trainer_state(output_dir)
    try:
        history = json.loads(state_path.read_text(encoding="utf-8")).get("log_history", [])
    except (json.JSONDecodeError, AttributeError) as exc:
        raise ValueError(f"{state_path} is not a trainer state JSON object: {exc}") from exc
    series = {key: _series(history, key) for key, _, _ in PANELS}
    eval_loss = _series(history, "eval_loss")
    if not any(ys for _, ys in series.values()) and not eval_loss[1]:
        raise ValueError(f"{state_path} has no logged loss, learning_rate or grad_norm entries in log_history")

    fig = Figure(figsize=FIGSIZE, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(PANELS))
    for ax, (key, title, scale) in zip(axes, PANELS):
        xs, ys = series[key]
        if ys:
            ax.plot(xs, ys, marker="." if len(ys) < 30 else None, label="train" if key == "loss" else None)
            if scale == "log" and min(ys) > 0:
                ax.set_yscale("log")
        if key == "loss" and eval_loss[1]:
            ax.plot(*eval_loss, marker="o", label="eval")
        if key == "loss" and (ys or eval_loss[1]):
            ax.legend()
        if not ys and not (key == "loss" and eval_loss[1]):
            ax.text(0.5, 0.5, "not logged", ha="center", va="center", transform=ax.transAxes, color="grey")
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    fig.suptitle(f"{state_path.parent.name}: training curves")

    target = Path(output) if output else state_path.parent / DEFAULT_NAME
    if output is None and Path(output_dir).is_dir():
        target = Path(output_dir) / DEFAULT_NAME
    target.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(target, dpi=DPI)
    return target


RL_CURVES = "rl_curves.png"


def plot_rl_curves(output_dir: str, history: list[dict]) -> Path:
    """rl_curves.png: mean reward per function, KL, completion length, clip ratios per logged step."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    panels = [
        (
            "rewards",
            [
                k
                for k in dict.fromkeys(k for h in history for k in h)
                if k.startswith("rewards/") and k.endswith("/mean")
            ]
            + ["reward"],
        ),
        ("KL to the reference", ["kl"]),
        ("completion length (tokens)", ["completions/mean_length"]),
        ("clip ratio", ["clip_ratio/region_mean", "cispo_clip_ratio", "completions/clipped_ratio"]),
    ]
    fig = Figure(figsize=(16, 4), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    plotted = 0
    for ax, (title, keys) in zip(fig.subplots(1, len(panels)), panels):
        for key in keys:
            points = [
                (h["step"], h[key])
                for h in history
                if isinstance(h.get(key), (int, float)) and "step" in h and "train_runtime" not in h
            ]
            if points:
                ax.plot(*zip(*points), marker="." if len(points) < 30 else None, label=key)
                plotted += 1
        if ax.lines:
            ax.legend(fontsize=7)
        else:
            ax.text(0.5, 0.5, "not logged", ha="center", va="center", transform=ax.transAxes, color="grey")
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    if not plotted:
        raise ValueError("no RL metrics were logged (a run shorter than logging_steps?)")
    target = Path(output_dir) / RL_CURVES
    fig.savefig(target)
    return target


plot_rl_curves.figure = "RL curves"
