"""Exports load elsewhere and compute the same thing: remote code without minimind_hf, stock
Llama / Qwen3 / Qwen3-MoE classes, tied embeddings, merged LoRA, and the Hub upload."""

import json
import os
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest
import torch
from helpers import tiny_model
from safetensors import safe_open
from transformers import AutoModelForCausalLM, LlamaForCausalLM, Qwen3ForCausalLM, Qwen3MoeForCausalLM

import minimind_hf  # noqa: F401  (registers the Auto classes)
from minimind_hf.cli import export as export_cli
from minimind_hf.export import ExportError, NativeExportError, export_model
from minimind_hf.tokenizer import load_tokenizer

VOCAB = 6400  # the shipped tokenizer's size, so tokenized text is valid input
IDS = torch.randint(0, VOCAB, (2, 9), generator=torch.Generator().manual_seed(5))
GREEDY = dict(max_new_tokens=8, do_sample=False, pad_token_id=0)
RUN_INFO = {
    "stage": "sft",
    "global_step": 12,
    "world_size": 1,
    "train_loss_first": 8.5,
    "train_loss_last": 4.25,
    "data": {"files": {"sft.jsonl": {"read": 10, "kept": 9, "skipped": {"empty reply": 1}}}},
}


def training_output(folder: Path, **overrides):
    """What scripts/train.py leaves behind: model, tokenizer, generation config, run_info.json."""
    model = tiny_model(vocab_size=VOCAB, **overrides)
    tokenizer = load_tokenizer()
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    (folder / "run_info.json").write_text(json.dumps(RUN_INFO))
    return model


def tensor_names(folder: Path) -> set[str]:
    with safe_open(str(folder / "model.safetensors"), "pt") as f:
        return set(f.keys())


def prompt_ids():
    tokenizer = load_tokenizer()
    return tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is 2+3?"}], add_generation_prompt=True, return_tensors="pt", return_dict=True
    )["input_ids"]


# ----------------------------------------------------------------------------- remote code

WITHOUT_MINIMIND_HF = textwrap.dedent(
    """
    import importlib.util, sys
    sys.path.append(SITE_PACKAGES)  # third-party packages only: no .pth files, so no editable installs
    assert importlib.util.find_spec("minimind_hf") is None, "minimind_hf must not be importable here"
    """
)


def run_without_minimind_hf(tmp_path: Path, body: str, **values) -> dict:
    """Run `body` in a fresh interpreter where minimind_hf cannot be imported and return what it
    saved to OUTPUTS. -I ignores PYTHONPATH / user site / cwd, -S skips site-packages' .pth files
    (the editable install of minimind_hf is one); a clean HF modules cache. `values` become
    the script's constants (FOLDER, ...)."""
    script = "\n".join(
        [
            f"SITE_PACKAGES = {sysconfig.get_paths()['purelib']!r}",
            *(f"{name} = {value!r}" for name, value in values.items()),
            f"OUTPUTS = {str(tmp_path / 'outputs.pt')!r}",
            WITHOUT_MINIMIND_HF,
            body,
        ]
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(HF_MODULES_CACHE=str(tmp_path / "modules"), HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "modules" / "transformers_modules").is_dir()  # the code really came from the folder
    return torch.load(tmp_path / "outputs.pt")


ISOLATED_LOAD = textwrap.dedent(
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(FOLDER, trust_remote_code=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(FOLDER)
    assert type(model).__module__.startswith("transformers_modules."), type(model).__module__
    data = torch.load(INPUTS)
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "What is 2+3?"}], add_generation_prompt=True,
                                           return_tensors="pt", return_dict=True)["input_ids"]
    with torch.no_grad():
        logits = model(data["ids"]).logits
    generated = model.generate(prompt, max_new_tokens=8, do_sample=False, pad_token_id=0)
    tied = model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    torch.save({"logits": logits, "prompt": prompt, "generated": generated, "tied": tied}, OUTPUTS)
    """
)


def test_remote_code_export_loads_where_minimind_hf_is_not_installed(tmp_path):
    model = training_output(tmp_path / "src")
    out = export_model(tmp_path / "src", tmp_path / "export")

    config = json.loads((out / "config.json").read_text())
    assert config["auto_map"]["AutoModelForCausalLM"] == "modeling_minimind.MiniMindForCausalLM"
    assert config["auto_map"]["AutoConfig"] == "configuration_minimind.MiniMindConfig"
    for name in (
        "compat.py",
        "configuration_minimind.py",
        "modeling_minimind.py",
        "tokenizer.json",
        "chat_template.jinja",
        "generation_config.json",
        "README.md",
    ):
        assert (out / name).is_file(), name
    assert tensor_names(out) >= {"model.embed_tokens.weight"} and "lm_head.weight" not in tensor_names(out)
    card = (out / "README.md").read_text()
    assert "trust_remote_code=True" in card and "custom_code" in card
    assert "0.47 M" in card and "stage `sft`: 12 steps" in card and "8.5 -> 4.25" in card

    torch.save({"ids": IDS}, tmp_path / "inputs.pt")
    loaded = run_without_minimind_hf(tmp_path, ISOLATED_LOAD, FOLDER=str(out), INPUTS=str(tmp_path / "inputs.pt"))
    with torch.no_grad():
        assert (loaded["logits"] - model(IDS).logits).abs().max() < 1e-6
    assert torch.equal(loaded["prompt"], prompt_ids())
    assert torch.equal(loaded["generated"], model.generate(loaded["prompt"], **GREEDY))
    assert loaded["tied"]


# ----------------------------------------------------------------------------- native formats

NATIVE_CASES = {
    "llama": (LlamaForCausalLM, dict()),
    "qwen3": (Qwen3ForCausalLM, dict(qk_norm=True)),
    "qwen3-moe": (Qwen3MoeForCausalLM, dict(qk_norm=True, use_moe=True, num_experts=4, num_experts_per_tok=2)),
}


@pytest.mark.parametrize("fmt", list(NATIVE_CASES))
def test_native_export_loads_with_stock_classes(fmt, tmp_path):
    stock_class, overrides = NATIVE_CASES[fmt]
    model = training_output(tmp_path / "src", **overrides)
    out = export_model(tmp_path / "src", tmp_path / "export", fmt=fmt)

    config = json.loads((out / "config.json").read_text())
    assert "auto_map" not in config and not list(out.glob("*.py"))  # no remote code anywhere
    assert config["rope_theta"] == 1e6  # also spelled the pre-transformers-5 way
    native = stock_class.from_pretrained(out).eval()  # the stock class, not via Auto + minimind_hf
    assert type(AutoModelForCausalLM.from_pretrained(out)) is stock_class
    with torch.no_grad():
        assert (native(IDS).logits - model(IDS).logits).abs().max() < 1e-5
    assert torch.equal(native.generate(IDS[:1], **GREEDY), model.generate(IDS[:1], **GREEDY))
    assert native.generation_config.eos_token_id == 2
    assert (out / "tokenizer.json").is_file() and "no remote code" in (out / "README.md").read_text()
    if fmt == "qwen3-moe":  # per-expert tensors on disk (what vLLM / llama.cpp read), both expert-count spellings
        assert "model.layers.0.mlp.experts.3.down_proj.weight" in tensor_names(out)
        assert config["num_experts"] == config["num_local_experts"] == 4


def test_native_export_refuses_what_does_not_map(tmp_path):
    training_output(tmp_path / "moe", qk_norm=True, use_moe=True, num_experts=4, num_shared_experts=1)
    with pytest.raises(NativeExportError, match="shared expert"):
        export_model(tmp_path / "moe", tmp_path / "out", fmt="qwen3-moe")
    assert not (tmp_path / "out").exists()  # refused before writing anything
    training_output(tmp_path / "dense")
    with pytest.raises(NativeExportError, match="qk_norm=False maps to 'llama'"):
        export_model(tmp_path / "dense", tmp_path / "out", fmt="qwen3")


# ----------------------------------------------------------------------------- tied embeddings / dtype


@pytest.mark.parametrize("fmt", ["remote-code", "llama"])
def test_tied_embeddings_stay_one_tensor(fmt, tmp_path):
    model = training_output(tmp_path / "src")
    out = export_model(tmp_path / "src", tmp_path / "export", fmt=fmt)
    assert tensor_names(out) & {"model.embed_tokens.weight", "lm_head.weight"} == {"model.embed_tokens.weight"}
    reloaded = AutoModelForCausalLM.from_pretrained(out).eval()
    assert reloaded.lm_head.weight.data_ptr() == reloaded.model.embed_tokens.weight.data_ptr()
    prompt = prompt_ids()
    assert torch.equal(reloaded.generate(prompt, **GREEDY), model.generate(prompt, **GREEDY))


def test_untied_embeddings_keep_both_and_dtype_is_applied(tmp_path):
    model = training_output(tmp_path / "src", tie_word_embeddings=False)
    assert not torch.equal(model.lm_head.weight, model.model.embed_tokens.weight)
    out = export_model(tmp_path / "src", tmp_path / "export", dtype="bfloat16")
    assert {"model.embed_tokens.weight", "lm_head.weight"} <= tensor_names(out)
    reloaded = AutoModelForCausalLM.from_pretrained(out)
    assert reloaded.dtype == torch.bfloat16 and json.loads((out / "config.json").read_text())["dtype"] == "bfloat16"
    assert torch.equal(reloaded.lm_head.weight, model.lm_head.weight.to(torch.bfloat16))


# ----------------------------------------------------------------------------- LoRA


def test_lora_adapter_merges_into_an_export(tmp_path):
    from peft import LoraConfig, get_peft_model

    training_output(tmp_path / "base")
    base_model = AutoModelForCausalLM.from_pretrained(tmp_path / "base").eval()  # as training does: records its path
    with torch.no_grad():
        base_logits = base_model(IDS).logits
    peft_model = get_peft_model(
        base_model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"])
    )
    with torch.no_grad():  # LoRA B starts at zero (a no-op adapter); make it count
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.05, generator=torch.Generator().manual_seed(len(name)))
    peft_model.save_pretrained(tmp_path / "adapter")
    load_tokenizer().save_pretrained(tmp_path / "adapter")
    adapter_config = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert adapter_config["base_model_name_or_path"] == str(tmp_path / "base")
    with torch.no_grad():
        expected = peft_model(IDS).logits

    with pytest.raises(ExportError, match="--merge-lora"):
        export_model(tmp_path / "adapter", tmp_path / "x")
    out = export_model(tmp_path / "adapter", tmp_path / "merged", fmt="llama", merge_lora=True)
    merged = LlamaForCausalLM.from_pretrained(out).eval()
    with torch.no_grad():
        assert (merged(IDS).logits - expected).abs().max() < 1e-5
        assert (expected - base_logits).abs().max() > 1e-2  # the adapter really changes the model
    assert not any("lora" in name for name in tensor_names(out))

    # --base wins over the adapter's recorded base path (here: moved away).
    (tmp_path / "base").rename(tmp_path / "moved")
    with pytest.raises(ExportError, match="--base"):
        export_model(tmp_path / "adapter", tmp_path / "y", merge_lora=True)
    out = export_model(tmp_path / "adapter", tmp_path / "z", merge_lora=True, base=tmp_path / "moved")
    reloaded = AutoModelForCausalLM.from_pretrained(out)
    with torch.no_grad():
        assert (reloaded(IDS).logits - expected).abs().max() < 1e-5


# ----------------------------------------------------------------------------- Hub


def test_push_to_hub_uploads_the_export(tmp_path, monkeypatch):
    from huggingface_hub import HfApi

    calls = []

    def create_repo(self, repo_id, **kwargs):
        calls.append(("create_repo", repo_id, kwargs))
        return f"https://huggingface.co/{repo_id}"

    def upload_folder(self, *, repo_id, folder_path, **kwargs):
        files = sorted(str(p.relative_to(folder_path)) for p in Path(folder_path).rglob("*") if p.is_file())
        calls.append(("upload_folder", repo_id, dict(kwargs, files=files)))

    # The boundary: nothing below these two methods (no HTTP) runs.
    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    training_output(tmp_path / "src")
    repo_id = "someone/minimind-tiny"
    export_cli.main([str(tmp_path / "src"), str(tmp_path / "export"), "--push-to-hub", repo_id, "--private"])

    (create, repo, create_kwargs), (upload, upload_repo, upload_kwargs) = calls
    assert (create, repo, upload, upload_repo) == ("create_repo", repo_id, "upload_folder", repo_id)
    assert create_kwargs["private"] is True and create_kwargs["exist_ok"] is True
    assert upload_kwargs["files"] == sorted(
        [
            "README.md",
            "chat_template.jinja",
            "compat.py",
            "config.json",
            "configuration_minimind.py",
            "generation_config.json",
            "model.safetensors",
            "modeling_minimind.py",
            "tokenizer.json",
            "tokenizer_config.json",
        ]
    )
    assert 'from_pretrained("someone/minimind-tiny"' in (tmp_path / "export" / "README.md").read_text()


def test_export_cli_reports_errors_without_traceback(tmp_path, capsys):
    training_output(tmp_path / "src", use_moe=True, qk_norm=True, num_shared_experts=1)
    with pytest.raises(SystemExit) as exit_info:
        export_cli.main([str(tmp_path / "src"), str(tmp_path / "out"), "--format", "qwen3-moe"])
    assert exit_info.value.code == 2 and "shared expert" in capsys.readouterr().err


def test_model_card_names_no_local_path(tmp_path):
    """The card travels to the Hub: it names the folder and the data files, never where they sat."""
    training_output(tmp_path / "src")
    run_info = json.loads((tmp_path / "src" / "run_info.json").read_text())
    run_info["data"]["files"] = {str(tmp_path / "deep" / "sft.jsonl"): {"read": 3, "kept": 3, "skipped": {}}}
    (tmp_path / "src" / "run_info.json").write_text(json.dumps(run_info))
    out = export_model(tmp_path / "src", tmp_path / "minimind-card")
    card = (out / "README.md").read_text()
    assert str(tmp_path) not in card and "/tmp" not in card
    assert 'from_pretrained("minimind-card"' in card and "data `sft.jsonl`: 3 of 3" in card
    assert "Requirements: `torch` and `transformers` (4.57.x or 5.x)" in card
