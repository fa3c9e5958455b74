"""Training curves from trainer_state.json."""

import json
import runpy
import sys

import pytest
from PIL import Image
from serving_helpers import REPO

from minimind_hf.plotting import DEFAULT_NAME, DPI, FIGSIZE, plot_training

SIZE = (FIGSIZE[0] * DPI, FIGSIZE[1] * DPI)


def write_state(folder, history):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": 100, "log_history": history}))
    return folder


def synthetic_history(steps=100):
    history = [
        {
            "step": s,
            "epoch": s / 100,
            "loss": 8.0 / (1 + s / 10),
            "learning_rate": 5e-4 * (1 - s / steps),
            "grad_norm": 3.0 / (1 + s / 20),
        }
        for s in range(10, steps + 1, 10)
    ]
    history.insert(5, {"step": 50, "eval_loss": 2.5})
    history.append({"step": steps, "train_runtime": 12.0, "train_loss": 3.1})  # Trainer's final summary line
    return history


def test_plot_written_with_expected_size(tmp_path):
    run = write_state(tmp_path / "run", synthetic_history())
    path = plot_training(run)
    assert path == run / DEFAULT_NAME and path.stat().st_size > 10_000
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size == SIZE
        # three panels with curves: plenty of distinct grey levels, not a blank canvas
        assert len(set(image.convert("L").getdata())) > 20
    custom = plot_training(run / "trainer_state.json", tmp_path / "out" / "curves.png")
    assert custom == tmp_path / "out" / "curves.png" and custom.exists()


def test_partial_logs_and_checkpoint_fallback(tmp_path):
    run = tmp_path / "run"
    write_state(run / "checkpoint-20", [{"step": 10, "loss": 3.0}])
    write_state(run / "checkpoint-100", [{"step": 10, "loss": 3.0}, {"step": 20, "loss": 2.0}])  # no lr / grad_norm
    path = plot_training(run)  # stopped before the final save: the newest checkpoint's state is used
    assert path == run / DEFAULT_NAME
    with Image.open(path) as image:
        assert image.size == SIZE


def test_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no trainer_state.json in"):
        plot_training(tmp_path)
    write_state(tmp_path / "empty", [{"step": 1, "train_runtime": 1.0}])
    with pytest.raises(ValueError, match="no logged loss"):
        plot_training(tmp_path / "empty")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "trainer_state.json").write_text("{not json")
    with pytest.raises(ValueError, match="not a trainer state"):
        plot_training(tmp_path / "bad")


def test_script(tmp_path, monkeypatch, capsys):
    """scripts/plot.py as `python scripts/plot.py DIR` runs it (in process: no second torch import)."""
    script = str(REPO / "scripts" / "plot.py")
    run = write_state(tmp_path / "run", synthetic_history(30))
    monkeypatch.setattr(sys, "argv", [script, str(run)])
    runpy.run_path(script, run_name="__main__")
    assert capsys.readouterr().out.strip() == str(run / DEFAULT_NAME)
    monkeypatch.setattr(sys, "argv", [script, str(tmp_path / "nope")])
    with pytest.raises(SystemExit, match="error: no trainer_state.json"):
        runpy.run_path(script, run_name="__main__")
