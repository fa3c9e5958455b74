"""Multi-process runs of the shipped recipes with the shipped accelerate configs (CPU, gloo).

`accelerate launch --cpu --num_processes 2` silently runs one process, so every test checks
the world size the run recorded."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """A tiny pretrained model to start SFT from (single process, a few steps)."""
    from minimind_hf.cli.train import main

    out = tmp_path_factory.mktemp("dist") / "pretrain"
    assert (
        main(
            [
                str(ROOT / "recipes/pretrain.yaml"),
                "--output_dir",
                str(out),
                "--max_steps",
                "2",
                "--max_length",
                "64",
                "--disable_tqdm",
                "true",
            ]
        )
        == 0
    )
    return out


def launch(config: str, output_dir: Path, start: Path, home: str) -> dict:
    env = {
        **os.environ,
        "MINIMIND_HF_HOME": home,
        "OMP_NUM_THREADS": "1",
        "MASTER_PORT": str(29500 + os.getpid() % 1000),
    }
    command = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(ROOT / "accelerate_configs" / config),
        str(ROOT / "scripts/train.py"),
        str(ROOT / "recipes/sft.yaml"),
        "--model_name_or_path",
        str(start),
        "--output_dir",
        str(output_dir),
        "--max_steps",
        "3",
        "--per_device_train_batch_size",
        "4",
        "--max_length",
        "64",
        "--logging_steps",
        "1",
        "--disable_tqdm",
        "true",
    ]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return json.loads((output_dir / "run_info.json").read_text())


@pytest.mark.parametrize(
    "config, distributed_type, deepspeed",
    [
        ("cpu_ddp.yaml", "DistributedType.MULTI_CPU", False),
        ("zero2.yaml", "DistributedType.DEEPSPEED", True),
        ("zero3.yaml", "DistributedType.DEEPSPEED", True),
    ],
)
def test_two_process_run(pretrained, tmp_path, config, distributed_type, deepspeed):
    from transformers import AutoModelForCausalLM

    import minimind_hf  # noqa: F401

    info = launch(config, tmp_path / "out", pretrained, os.environ["MINIMIND_HF_HOME"])
    assert info["world_size"] == 2 and info["distributed_type"] == distributed_type
    assert info["deepspeed"] is deepspeed and info["global_step"] == 3
    # The saved model (gathered from shards under ZeRO-3) reloads and differs from the start.
    trained = AutoModelForCausalLM.from_pretrained(tmp_path / "out")
    start = AutoModelForCausalLM.from_pretrained(pretrained)
    diffs = [(a - b).abs().max().item() for a, b in zip(trained.state_dict().values(), start.state_dict().values())]
    assert max(diffs) > 0 and all(torch.isfinite(p).all() for p in trained.parameters())
