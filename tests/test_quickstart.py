"""minimind-quickstart at toy size: every stage runs, the card is complete, reruns skip, --force redoes."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from minimind_hf.cli.quickstart import main
from minimind_hf.cli.quickstart.chain import STAGE_NAMES, ChainError, plan

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow
TOY = ["--max_steps", "2", "--eval_limit", "4", "--exports", "remote-code,llama"]


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    out = tmp_path_factory.mktemp("quickstart")
    assert main(["--output", str(out), *TOY]) == 0
    return out


def test_the_whole_chain_fills_the_report_card(chain):
    report = json.loads((chain / "report.json").read_text())
    assert list(report["stages"]) == list(STAGE_NAMES)
    for name, entry in report["stages"].items():
        assert entry["steps"] == 2 and entry["wall_seconds"] > 0, name
        assert entry["train_loss_first"] is not None and entry["train_loss_last"] is not None, name
        metric = entry["metric"]
        # a number measured from the run, or a reason - never a bare null
        assert isinstance(metric["value"], float) or metric.get("why"), (name, metric)
        assert metric["metric"], name
        assert entry["tokens_seen"] is not None or entry["tokens_why"], name
    stages = report["stages"]
    assert (
        stages["tool_sft"]["metric"]["details"]["prompts"] == 4
        and "no_tool_baseline" in stages["tool_sft"]["metric"]["details"]
    )
    assert stages["grpo"]["metric"]["details"].keys() == {
        "thinking_before",
        "thinking_after",
        "plain_before",
        "plain_after",
    }
    assert stages["pretrain"]["metric"]["details"]["unigram_baseline_bpb"] > 0
    assert stages["sft"]["metric"]["samples"] and stages["vlm_sft"]["metric"]["samples"]
    assert report["machine"]["versions"]["transformers"] and report["seed"] == 42
    assert {fmt: bool(e["path"]) for fmt, e in report["exports"].items()} == {"remote-code": True, "llama": True}
    card = (chain / "REPORT.md").read_text()
    assert all(f"| {name} |" in card for name in STAGE_NAMES) and (chain / "report.png").stat().st_size > 0
    assert all((chain / "logs" / f"{name}.log").is_file() for name in STAGE_NAMES)


def test_rerun_skips_finished_stages_and_force_redoes_from_there(chain, capsys):
    stamps = {name: (chain / name / "run_info.json").stat().st_mtime_ns for name in STAGE_NAMES}
    assert main(["--output", str(chain), *TOY, "--exports", ""]) == 0
    assert "sft: done, skipped" in capsys.readouterr().out
    assert {name: (chain / name / "run_info.json").stat().st_mtime_ns for name in STAGE_NAMES} == stamps
    assert main(["--output", str(chain), *TOY, "--exports", "", "--force", "vlm_pretrain"]) == 0
    after = {name: (chain / name / "run_info.json").stat().st_mtime_ns for name in STAGE_NAMES}
    redone = {name for name in STAGE_NAMES if after[name] != stamps[name]}
    assert redone == {"vlm_pretrain", "vlm_sft"}


def test_plan_errors_and_subsets(tmp_path, capsys):
    assert [s.name for s in plan(tmp_path, ["pretrain", "sft"], [])] == ["pretrain", "sft"]
    with pytest.raises(ChainError, match="stage grpo starts from .*sft, which is not trained: add sft"):
        plan(tmp_path, ["grpo"], [])
    assert main(["--output", str(tmp_path), "--stages", "pretrain,sfft"]) == 2
    assert "unknown stage 'sfft'; the chain is: pretrain, sft" in capsys.readouterr().err


def test_console_script_and_script_agree():
    help_script = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "quickstart.py"), "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "--force STAGE" in help_script and "minimind-quickstart" in help_script
