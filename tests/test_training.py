"""Training stages from the shipped recipes: parsing, every stage learning something, LoRA,
DPO, distillation, resume and gradient accumulation. Runs in-process on small step counts;
the multi-process runs live in test_distributed.py."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from minimind_hf.cli.train import main
from minimind_hf.training.args import RecipeError, parse_overrides, read_recipe
from minimind_hf.training.recipe import parse

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "recipes"
# Small shapes for speed: the shipped recipes' model, data and schedule, fewer tokens.
FAST = ["--per_device_train_batch_size", "8", "--max_length", "96", "--logging_steps", "5", "--disable_tqdm", "true"]


def train(recipe: str, output_dir: Path, *extra: str) -> dict:
    code = main([str(RECIPES / f"{recipe}.yaml"), "--output_dir", str(output_dir), *FAST, *extra])
    assert code == 0
    return json.loads((output_dir / "run_info.json").read_text())


def logged(output_dir: Path, key: str) -> list[float]:
    state = json.loads((output_dir / "trainer_state.json").read_text())
    return [entry[key] for entry in state["log_history"] if key in entry]


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """pretrain -> sft, shared by the later stages' tests."""
    root = tmp_path_factory.mktemp("chain")
    pretrain = root / "pretrain"
    train("pretrain", pretrain, "--max_steps", "40", "--max_length", "128")
    sft = root / "sft"
    train("sft", sft, "--model_name_or_path", str(pretrain), "--max_steps", "60")
    return {"pretrain": pretrain, "sft": sft, "root": root}


# ----------------------------------------------------------------------------- recipes


def test_unknown_key_lists_valid_keys(capsys, tmp_path):
    assert main([str(RECIPES / "sft.yaml"), "--model_name_or_path", str(tmp_path), "--learning_rat", "1e-3"]) == 2
    err = capsys.readouterr().err
    assert "unknown recipe key(s): learning_rat (did you mean learning_rate" in err
    assert "Valid keys:" in err and "lora_target_modules" in err and "per_device_train_batch_size" in err


def test_missing_predecessor_names_recipe_to_run(tmp_path, capsys):
    code = main(
        [
            str(RECIPES / "sft.yaml"),
            "--model_name_or_path",
            str(tmp_path / "nowhere"),
            "--output_dir",
            str(tmp_path / "o"),
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert f"starting model folder {tmp_path / 'nowhere'} not found" in err
    assert "run `accelerate launch scripts/train.py recipes/pretrain.yaml` first" in err


def test_overrides_are_typed_and_win():
    assert parse_overrides(
        ["--max_steps", "7", "--packing=false", "--lr_scheduler_kwargs", "{min_lr_rate: 0.2}", "--bf16"]
    ) == {
        "max_steps": 7,
        "packing": False,
        "lr_scheduler_kwargs": {"min_lr_rate": 0.2},
        "bf16": True,
    }
    recipe = read_recipe(RECIPES / "sft.yaml", ["--learning_rate", "1e-4"])
    assert recipe["learning_rate"] == 1e-4 and recipe["stage"] == "sft"
    inputs = parse(str(RECIPES / "pretrain.yaml"), ["--max_steps", "3"])
    assert inputs.training_args.max_steps == 3
    # MiniMind's schedule by default: cosine decay to 10% of the peak learning rate ...
    assert inputs.training_args.lr_scheduler_type == "cosine_with_min_lr"
    assert inputs.training_args.lr_scheduler_kwargs == {"min_lr_rate": 0.1}
    # ... and a recipe naming another schedule does not inherit its arguments.
    inputs = parse(str(RECIPES / "pretrain.yaml"), ["--lr_scheduler_type", "cosine"])
    assert inputs.training_args.lr_scheduler_type == "cosine" and not inputs.training_args.lr_scheduler_kwargs


def test_lora_with_tune_llm_is_an_error(capsys, tmp_path):
    assert main([str(RECIPES / "lora.yaml"), "--model_name_or_path", str(tmp_path), "--tune_llm", "true"]) == 2
    assert "use_lora with tune_llm=true" in capsys.readouterr().err


def test_every_shipped_recipe_parses():
    for path in sorted(RECIPES.glob("**/*.yaml")):
        inputs = parse(str(path), [])
        assert inputs.stage in path.stem or inputs.stage == read_recipe(path)["stage"]


def sft_loss(model, n: int = 64) -> float:
    """Mean assistant-token loss of `model` on the first n embedded SFT training records."""
    from minimind_hf.data.sources import load_records, resolve_sources
    from minimind_hf.data.text import CausalLMCollator, SFTOptions, build_sft_dataset
    from minimind_hf.tokenizer import load_tokenizer

    tokenizer = load_tokenizer()
    records, _ = load_records(resolve_sources(["embedded:sft_train"], seed=42), "sft")
    rows = build_sft_dataset(records.select(range(n)), tokenizer, SFTOptions(max_length=96))
    batch = CausalLMCollator(pad_token_id=tokenizer.pad_token_id)(list(rows))
    with torch.no_grad():
        return model.eval()(**batch).loss.item()


# ----------------------------------------------------------------------------- stages


def test_pretrain_and_sft_losses_fall(chain):
    for stage in ("pretrain", "sft"):
        losses = logged(chain[stage], "loss")
        assert len(losses) >= 4 and losses[-1] < 0.8 * losses[0], (stage, losses)
    folder = chain["sft"]
    for name in ("config.json", "model.safetensors", "tokenizer.json", "generation_config.json", "chat_template.jinja"):
        assert (folder / name).exists(), name
    report = json.loads((folder / "run_info.json").read_text())["data"]
    assert report["supervised_tokens"] > 0 and sum(f["kept"] for f in report["files"].values()) == 1000


def test_lora_trains_only_adapters_and_merge_matches(chain):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    out = chain["root"] / "lora"
    train(
        "lora", out, "--model_name_or_path", str(chain["sft"]), "--max_steps", "15", "--modules_to_save", "[model.norm]"
    )
    adapter = load_file(out / "adapter_model.safetensors")
    assert adapter and all("lora_" in k or "model.norm" in k for k in adapter)
    assert any("q_proj.lora_A" in k for k in adapter) and not any("mlp" in k for k in adapter)

    base = AutoModelForCausalLM.from_pretrained(chain["sft"])
    base_weights = {k: v.clone() for k, v in base.state_dict().items()}
    with_adapter = PeftModel.from_pretrained(base, out).eval()
    merged = AutoModelForCausalLM.from_pretrained(out / "merged").eval()
    ids = torch.randint(3, 6000, (2, 20))
    with torch.no_grad():
        assert (with_adapter(ids).logits - merged(ids).logits).abs().max() < 1e-4
        # The adapter changed the function (it is not a no-op) ...
        plain = AutoModelForCausalLM.from_pretrained(chain["sft"]).eval()
        assert (plain(ids).logits - merged(ids).logits).abs().max() > 1e-4
    # ... for the better on the training distribution, while the base weights were left alone.
    assert sft_loss(merged) < sft_loss(plain)
    reloaded = AutoModelForCausalLM.from_pretrained(chain["sft"]).state_dict()
    assert all(torch.equal(base_weights[k], reloaded[k]) for k in reloaded)


def test_dpo_reward_margin_rises(chain):
    out = chain["root"] / "dpo"
    train("dpo", out, "--model_name_or_path", str(chain["sft"]), "--max_steps", "30", "--max_length", "64")
    margins = logged(out, "rewards/margins")
    assert len(margins) >= 4
    assert sum(margins[-2:]) / 2 > sum(margins[:2]) / 2 + 0.05, margins
    assert (out / "model.safetensors").exists()


def test_distillation_lowers_kl_to_teacher(chain):
    out = chain["root"] / "distill"
    train(
        "distill",
        out,
        "--model_name_or_path",
        str(chain["pretrain"]),
        "--teacher_model_name_or_path",
        str(chain["sft"]),
        "--max_steps",
        "25",
    )
    kl = logged(out, "distill_kl")
    assert len(kl) >= 4 and kl[-1] < 0.7 * kl[0], kl


# ----------------------------------------------------------------------------- numerics


def _weights(folder: Path) -> dict:
    return load_file(folder / "model.safetensors")


def test_resume_auto_equals_uninterrupted_run(tmp_path):
    common = ["--max_steps", "6", "--max_length", "64", "--packing", "false"]
    straight = tmp_path / "straight"
    train("pretrain", straight, *common)

    resumed = tmp_path / "resumed"
    train("pretrain", resumed, *common, "--save_strategy", "steps", "--save_steps", "3")
    # Simulate a run killed after step 3: drop everything written later.
    import shutil

    shutil.rmtree(resumed / "checkpoint-6")
    (resumed / "model.safetensors").unlink()
    train(
        "pretrain",
        resumed,
        *common,
        "--save_strategy",
        "steps",
        "--save_steps",
        "3",
        "--resume_from_checkpoint",
        "auto",
    )
    state = json.loads((resumed / "trainer_state.json").read_text())
    assert state["global_step"] == 6
    a, b = _weights(straight), _weights(resumed)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_resume_auto_without_checkpoint_starts_fresh(tmp_path):
    from minimind_hf.training.finish import resolve_resume

    assert resolve_resume("auto", str(tmp_path)) is None
    (tmp_path / "checkpoint-4").mkdir()  # incomplete: no trainer_state.json
    (tmp_path / "checkpoint-2").mkdir()
    (tmp_path / "checkpoint-2" / "trainer_state.json").write_text("{}")
    (tmp_path / "checkpoint-2" / "model.safetensors").write_bytes(b"")  # no weights file at all is incomplete too
    assert resolve_resume("auto", str(tmp_path)) is None
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(tmp_path / "checkpoint-2" / "model.safetensors"))
    assert resolve_resume("auto", str(tmp_path)) == str(tmp_path / "checkpoint-2")
    with pytest.raises(RecipeError):
        resolve_resume(str(tmp_path / "missing"), str(tmp_path))


def test_gradient_accumulation_matches_large_batch(tmp_path):
    common = ["--max_steps", "3", "--max_length", "64", "--packing", "false", "--learning_rate", "1e-3"]
    big = tmp_path / "big"
    train("pretrain", big, *common, "--per_device_train_batch_size", "8", "--gradient_accumulation_steps", "1")
    accumulated = tmp_path / "accumulated"
    train("pretrain", accumulated, *common, "--per_device_train_batch_size", "2", "--gradient_accumulation_steps", "4")
    a, b = _weights(big), _weights(accumulated)
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-5
    la, lb = logged(big, "train_loss"), logged(accumulated, "train_loss")
    assert abs(la[0] - lb[0]) < 1e-4


def test_streaming_builds_the_same_rows_and_trains(tmp_path):
    """streaming: true reads, tokenises and packs on the fly - same rows as the cached build."""
    from minimind_hf.data.text import build_pretrain_dataset
    from minimind_hf.tokenizer import load_tokenizer
    from minimind_hf.training.args import DataArguments
    from minimind_hf.training.data import load_split

    tokenizer = load_tokenizer()
    cached, _ = load_split(DataArguments(), ["embedded:pretrain_train"], "pretrain", 42)
    streamed, report = load_split(DataArguments(streaming=True), ["embedded:pretrain_train"], "pretrain", 42)
    assert report.read == 0  # nothing is read before iteration
    expected = build_pretrain_dataset(cached, tokenizer, 64, packing=True)
    rows = iter(build_pretrain_dataset(streamed, tokenizer, 64, packing=True))
    for index in range(20):
        row = next(rows)
        assert row["input_ids"] == expected[index]["input_ids"] and row["seq_lengths"] == expected[index]["seq_lengths"]

    out = tmp_path / "stream"
    info = train("pretrain", out, "--streaming", "true", "--max_steps", "4", "--max_length", "64")
    assert info["global_step"] == 4 and info["data"]["files"]  # the report filled while training read
    assert main([str(RECIPES / "dpo.yaml"), "--streaming", "true"]) == 2
