"""Every wrong input gets a clear answer: exit code 2, no traceback, a message that names the
file / key / tensor and the problem - and nothing a user passes makes the program read a
file it was not given. (Data-record validation has its own tests in test_data_sources.py;
the server's in test_server.py.)"""

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import minimind_hf  # noqa: F401
from minimind_hf import MiniMindConfig, MiniMindForCausalLM, preset_config
from minimind_hf.cli.train import main
from minimind_hf.data.sources import resolve_sources
from minimind_hf.tokenizer import load_tokenizer
from minimind_hf.training import data as training_data
from minimind_hf.training.finish import resolve_resume
from minimind_hf.training.recipe import parse
from minimind_hf.utils import ModelLoadError, load_pretrained

ROOT = Path(__file__).resolve().parents[1]
SFT = str(ROOT / "recipes" / "sft.yaml")
PRETRAIN = str(ROOT / "recipes" / "pretrain.yaml")
FAST = ["--max_steps", "2", "--per_device_train_batch_size", "2", "--max_length", "64", "--disable_tqdm", "true"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("start")
    torch.manual_seed(0)
    MiniMindForCausalLM(preset_config("tiny")).save_pretrained(folder)
    load_tokenizer().save_pretrained(folder)
    return folder


def run(argv, capsys) -> tuple[int, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    output = captured.out + captured.err
    assert "Traceback" not in output
    return code, captured.err


@pytest.fixture
def no_heavy_work(monkeypatch):
    """Fail the test if data loading or model building starts: validation must come first."""

    def forbidden(*args, **kwargs):
        raise AssertionError("heavy work started before the recipe was validated")

    from minimind_hf.training import dpo, grpo, loading, text

    monkeypatch.setattr(training_data, "load_split", forbidden)
    monkeypatch.setattr(training_data, "load_rl_split", forbidden)
    for module in (loading, text, dpo, grpo):
        monkeypatch.setattr(module, "build_model", forbidden)


# ----------------------------------------------------------------------------- recipes


def test_a_single_path_string_is_one_file_not_its_characters(tmp_path):
    data = tmp_path / "data.jsonl"
    data.write_text('{"conversations": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}\n')
    inputs = parse(SFT, ["--train_files", str(data), "--eval_files", str(data)])
    assert inputs.data_args.train_files == [str(data)] and inputs.data_args.eval_files == [str(data)]
    assert resolve_sources(str(data), seed=0) == [str(data)]  # also when called with a bare string
    records, report = training_data.load_split(inputs.data_args, inputs.data_args.train_files, "sft", seed=0)
    assert len(records) == 1 and list(report.files) == [str(data)]


def test_wrong_typed_values_are_all_reported_before_any_work(capsys, no_heavy_work):
    path = Path(SFT)
    # Our own keys are checked first, before torch is imported: all of them at once ...
    code, err = run([path, "--learning_rate", "fast", "--packing", "maybe", "--max_length", "long"], capsys)
    assert code == 2
    assert "packing: expected bool, got 'maybe'" in err and "max_length: expected int, got 'long'" in err
    # ... then the trainer's arguments, all at once too.
    code, err = run([PRETRAIN, "--learning_rate", "fast", "--max_steps", "abc"], capsys)
    assert code == 2
    assert "learning_rate: expected float, got 'fast'" in err and "max_steps: expected int, got 'abc'" in err


@pytest.mark.parametrize(
    "kernel, words",
    [
        ("flash_attention_2", "needs a CUDA GPU and the flash_attn package"),
        ("flex_attention", "flex_attention cannot train on the CPU"),
        ("sdpa_fast", "expected one of 'eager', 'sdpa', 'document_sdpa'"),
    ],
)
def test_attention_kernels_that_cannot_train_here_are_refused(kernel, words, capsys, no_heavy_work):
    import torch

    if torch.cuda.is_available() and kernel != "sdpa_fast":
        pytest.skip("these kernels can train on a CUDA machine")
    code, err = run([PRETRAIN, "--attn_implementation", kernel], capsys)
    assert code == 2 and words in err


def test_a_bad_choice_names_the_valid_ones(capsys, no_heavy_work):
    code, err = run([PRETRAIN, "--lr_scheduler_type", "cosinus"], capsys)
    assert code == 2 and "cosinus is not a valid SchedulerType" in err and "cosine_with_min_lr" in err


def test_yaml_syntax_error_has_line_and_column(tmp_path, capsys, no_heavy_work):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("stage: sft\nmax_steps: 3\n  learning_rate: [1e-3\n")
    code, err = run([recipe], capsys)
    assert code == 2 and f"{recipe}:3:" in err and "YAML syntax error" in err


@pytest.mark.parametrize(
    "overrides, words",
    [
        (["--model_config", "{hiden_size: 64}"], ["unknown key(s) hiden_size", "did you mean hidden_size"]),
        (
            ["--model_config", "{hidden_size: 66, num_attention_heads: 4}"],
            ["hidden_size (66) must be a multiple of num_attention_heads (4)"],
        ),
        (["--model_config", "{num_hidden_layers: -1}"], ["num_hidden_layers must be a positive integer, got -1"]),
        (["--model_config", "{num_attention_heads: 6, num_key_value_heads: 4}"], ["multiple of num_key_value_heads"]),
        (["--model_config", "{dtype: float33}"], ["dtype 'float33' is not one of float32"]),
        (["--preset", "minimind-9"], ["unknown MiniMind preset 'minimind-9'", "minimind-3"]),
    ],
)
def test_impossible_model_configs_are_refused_before_any_work(overrides, words, capsys, no_heavy_work):
    code, err = run([PRETRAIN, *overrides], capsys)
    assert code == 2
    for word in words:
        assert word in err


def test_model_config_refuses_sizes_that_would_be_floored():
    with pytest.raises(ValueError, match="must be a multiple"):
        MiniMindConfig(hidden_size=66, num_attention_heads=4, num_key_value_heads=2)
    with pytest.raises(ValueError, match="must be even"):
        MiniMindConfig(hidden_size=60, num_attention_heads=4, num_key_value_heads=2)  # head size 15
    assert MiniMindConfig(hidden_size=64, num_attention_heads=4, head_dim=32).head_dim == 32  # explicit: allowed


def test_missing_files_and_other_problems_are_reported_together(tmp_path, capsys, no_heavy_work):
    # The first pass (before torch is imported) lists all its problems at once ...
    missing = ["--train_files", tmp_path / "nope.jsonl", "--model_name_or_path", tmp_path / "no_model"]
    code, err = run([PRETRAIN, *missing], capsys)
    assert code == 2 and "2 problems" in err
    assert f"train_files: {tmp_path / 'nope.jsonl'}: no such file" in err and "no_model not found" in err
    # ... and so does the second, for what needs the model code.
    code, err = run([PRETRAIN, "--model_config", "{hiden_size: 64}", "--use_lora", "true"], capsys)
    assert code == 2 and "2 problems" in err and "hiden_size" in err and "use_lora" in err


# ----------------------------------------------------------------------------- data


@pytest.mark.parametrize("streaming", ["false", "true"])
@pytest.mark.parametrize(
    "content, words",
    [
        ("", ["no records", "empty"]),
        ("\n  \n\n", ["no records"]),
        ('{"conversations": []}\n{"text": "no conversation"}\n', ["none of the 2 record(s) read is usable", "skipped"]),
    ],
)
def test_inputs_with_no_usable_record_say_which_file_and_why(content, words, streaming, model_dir, tmp_path, capsys):
    data = tmp_path / "data.jsonl"
    data.write_text(content)
    code, err = run(
        [
            SFT,
            "--model_name_or_path",
            model_dir,
            "--train_files",
            data,
            "--eval_files",
            "[]",
            "--skip_invalid",
            "true",
            "--streaming",
            streaming,
            "--output_dir",
            tmp_path / "out",
            *FAST,
        ],
        capsys,
    )
    assert code == 2 and str(data) in err
    for word in words:
        assert word in err
    assert not (tmp_path / "out" / "model.safetensors").exists()


# ----------------------------------------------------------------------------- weights


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_a_renamed_tensor_is_an_error_naming_it(model_dir, tmp_path, capsys):
    folder = _copy(model_dir, tmp_path / "renamed")
    weights = load_file(folder / "model.safetensors")
    weights["model.layers.1.mlp.up_proj.weight_renamed"] = weights.pop("model.layers.1.mlp.up_proj.weight")
    save_file(weights, str(folder / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(ModelLoadError, match=r"missing keys \(1\): model\.layers\.1\.mlp\.up_proj\.weight") as error:
        load_pretrained(folder)
    assert "unexpected keys (1): model.layers.1.mlp.up_proj.weight_renamed" in str(error.value)
    # ... and the training CLI says so, exit code 2, before training anything.
    code, err = run([SFT, "--model_name_or_path", folder, "--output_dir", tmp_path / "out", *FAST], capsys)
    assert code == 2 and "model.layers.1.mlp.up_proj.weight" in err and "random values" in err


def test_a_config_with_more_layers_than_the_weights_is_refused(model_dir, tmp_path, capsys):
    folder = _copy(model_dir, tmp_path / "deeper")
    config = json.loads((folder / "config.json").read_text())
    config["num_hidden_layers"] += 1
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="model.layers.2.self_attn.q_proj.weight"):
        load_pretrained(folder)
    from minimind_hf.cli import export as export_cli

    with pytest.raises(SystemExit) as exited:
        export_cli.main([str(folder), str(tmp_path / "export")])
    assert exited.value.code == 2
    assert "model.layers.2" in capsys.readouterr().err


@pytest.mark.parametrize("damaged", ["model.safetensors", "config.json"])
def test_a_truncated_file_is_named(damaged, model_dir, tmp_path):
    folder = _copy(model_dir, tmp_path / "truncated")
    data = (folder / damaged).read_bytes()
    (folder / damaged).write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match=damaged.replace(".", r"\.")):
        load_pretrained(folder)


def test_auto_resume_skips_a_half_written_newest_checkpoint(tmp_path, capsys):
    weights = {"w": torch.zeros(2)}
    for step in (2, 4):
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        save_file(weights, str(folder / "model.safetensors"))
        (folder / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    (tmp_path / "checkpoint-4" / "trainer_state.json").write_text('{"global_step": 4, "log_hist')  # killed mid-write
    assert resolve_resume("auto", str(tmp_path)) == str(tmp_path / "checkpoint-2")
    assert "checkpoint-4 (trainer_state.json is half-written)" in capsys.readouterr().out
    data = (tmp_path / "checkpoint-2" / "model.safetensors").read_bytes()
    (tmp_path / "checkpoint-2" / "model.safetensors").write_bytes(data[:-4])  # truncated weights: not resumable
    assert resolve_resume("auto", str(tmp_path)) is None


def test_streaming_report_counts_each_record_once_over_several_passes(model_dir, tmp_path, capsys):
    good = {"conversations": [{"role": "user", "content": "1+1?"}, {"role": "assistant", "content": "2"}]}
    data = tmp_path / "data.jsonl"
    data.write_text("\n".join([json.dumps(good)] * 3 + ['{"conversations": []}']) + "\n")
    out = tmp_path / "out"
    code, _ = run(
        [
            SFT,
            "--model_name_or_path",
            model_dir,
            "--train_files",
            data,
            "--eval_files",
            "[]",
            "--streaming",
            "true",
            "--skip_invalid",
            "true",
            "--output_dir",
            out,
            "--max_steps",
            "6",
            "--per_device_train_batch_size",
            "2",
            "--max_length",
            "64",
            "--disable_tqdm",
            "true",
        ],
        capsys,
    )
    assert code == 0
    stats = json.loads((out / "run_info.json").read_text())["data"]["files"][str(data)]
    assert (stats["read"], stats["kept"], sum(stats["skipped"].values())) == (4, 3, 1)  # 6 steps x 2 rows = 4 passes
