"""A new user's first hour: the same recipe gives the same weights, every run ends saying
where the model is / how good it got / what to run next (with the held-out loss of
`eval_files`), and the console carries no warning our code or configuration causes."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from minimind_hf.cli.train import main

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "recipes"
SHORT = ["--max_steps", "3", "--per_device_train_batch_size", "4", "--max_length", "64", "--disable_tqdm", "true"]


def train(recipe: str, out: Path, *extra) -> None:
    assert main([str(RECIPES / f"{recipe}.yaml"), "--output_dir", str(out), *SHORT, *map(str, extra)]) == 0


def identical(a: Path, b: Path) -> bool:
    wa, wb = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    out = tmp_path_factory.mktemp("first_hour") / "pretrain"
    train("pretrain", out)
    return out


def test_the_same_recipe_twice_gives_bit_identical_weights(pretrained, tmp_path):
    torch.manual_seed(1234)  # whatever the global RNG was before: the recipe's seed decides
    train("pretrain", tmp_path / "again")
    assert identical(pretrained, tmp_path / "again")
    for run in ("sft-a", "sft-b"):
        train("sft", tmp_path / run, "--model_name_or_path", pretrained)
    assert identical(tmp_path / "sft-a", tmp_path / "sft-b")
    for run in ("vlm-a", "vlm-b"):  # the random vision tower too
        train("vlm_pretrain", tmp_path / run, "--model_name_or_path", tmp_path / "sft-a")
    assert identical(tmp_path / "vlm-a", tmp_path / "vlm-b")
    # ... and the seed matters: another seed, other weights.
    train("pretrain", tmp_path / "other", "--seed", "7")
    assert not identical(pretrained, tmp_path / "other")


def test_a_run_ends_with_where_how_good_and_what_next(pretrained, tmp_path, capsys):
    out = tmp_path / "sft"
    train("sft", out, "--model_name_or_path", pretrained)
    lines = capsys.readouterr().out.strip().splitlines()[-3:]
    info = json.loads((out / "run_info.json").read_text())
    assert info["eval_loss"] is not None  # eval_files are evaluated at the end
    state = json.loads((out / "trainer_state.json").read_text())
    assert any("eval_loss" in entry for entry in state["log_history"])  # so the curves plot has it
    assert lines[0].startswith(f"saved:  {out}")
    assert f"held-out eval loss {info['eval_loss']:.4g}" in lines[1] and "train loss" in lines[1]
    assert lines[2] == f"next:   accelerate launch scripts/train.py recipes/dpo.yaml --model_name_or_path {out}"


def test_the_console_carries_no_preventable_warning(tmp_path):
    # Python's default warning filters, as in a user's terminal (FutureWarning / UserWarning shown).
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "train.py"),
            str(RECIPES / "pretrain.yaml"),
            "--output_dir",
            str(tmp_path / "out"),
            *SHORT,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    console = result.stdout + result.stderr
    noisy = [
        line for line in console.splitlines() if re.search(r"warn|deprecat|Setting accelerator", line, re.IGNORECASE)
    ]
    assert not noisy, noisy
