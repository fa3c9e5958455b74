"""The package's front doors: console scripts, script shims, `minimind-train --help`."""

import ast
import configparser
import dataclasses
import importlib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def console_scripts() -> dict[str, str]:
    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    lines = config["options.entry_points"]["console_scripts"].strip().splitlines()
    return dict(tuple(part.strip() for part in line.split("=")) for line in lines)


@pytest.mark.parametrize("name, target", sorted(console_scripts().items()))
def test_every_console_script_resolves_and_answers_help(name, target, capsys):
    module_name, attribute = target.split(":")
    assert module_name.startswith("minimind_hf.cli."), "programs live in minimind_hf.cli"
    module = importlib.import_module(module_name)
    assert callable(getattr(module, attribute))
    try:  # argparse exits after printing help; minimind-train returns 0
        code = module.main(argv=["--help"])
    except SystemExit as exit:
        code = exit.code
    assert code in (0, None), name
    assert "usage:" in capsys.readouterr().out


def test_scripts_are_shims_over_the_cli_package():
    for script in sorted((REPO / "scripts").glob("*.py")):
        tree = ast.parse(script.read_text(encoding="utf-8"))
        body = [node for node in tree.body if not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant))]
        imports = [node for node in body if isinstance(node, ast.ImportFrom)]
        assert any(node.module.startswith("minimind_hf.cli") for node in imports), script.name
        defined = [node for node in body if isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.Assign))]
        assert not defined and len(body) <= 3, f"{script.name} holds logic; move it into minimind_hf/cli"


def test_train_help_lists_every_recipe_key_with_its_help(capsys):
    from minimind_hf.cli.train import main
    from minimind_hf.training.recipe import ARGUMENT_GROUPS

    assert main(["--help"]) == 0
    lines = capsys.readouterr().out.splitlines()
    for group in ARGUMENT_GROUPS:
        for field in dataclasses.fields(group):
            line = next((line for line in lines if line.startswith(f"  {field.name} (default ")), None)
            assert line is not None, f"{group.__name__}.{field.name} is missing from --help"
            assert field.metadata.get("help") and line.endswith(field.metadata["help"]), field.name


FAST_START = """
import json, sys
from minimind_hf.cli.train import main

heavy = lambda: sorted(m for m in ("torch", "transformers", "deepspeed", "datasets") if m in sys.modules)
seen = {"import": heavy()}
seen["help"] = [main(["--help"]), heavy()]
seen["bad value"] = [main([sys.argv[1], "--packing", "maybe", "--train_files", "nope.jsonl"]), heavy()]
seen["missing file"] = [main([sys.argv[1], "--train_files", "nope.jsonl"]), heavy()]
from transformers import AutoConfig, AutoModelForCausalLM  # the registration follows transformers in
seen["registered"] = [AutoConfig.for_model("minimind").model_type, AutoModelForCausalLM._model_mapping[
    type(AutoConfig.for_model("minimind"))].__name__, AutoConfig.for_model("minimind-v").model_type]
print(json.dumps(seen))
"""


def test_help_and_recipe_checks_finish_before_torch_is_imported(tmp_path):
    import json
    import subprocess
    import sys

    recipe = Path(__file__).resolve().parents[1] / "recipes" / "pretrain.yaml"
    done = subprocess.run(
        [sys.executable, "-c", FAST_START, str(recipe)], capture_output=True, text=True, cwd=tmp_path, timeout=300
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["import"] == [] and seen["help"] == [0, []]
    assert seen["bad value"] == [2, []] and seen["missing file"] == [2, []]
    assert "packing: expected bool, got 'maybe'" in done.stderr and "nope.jsonl: no such file" in done.stderr
    assert seen["registered"] == ["minimind", "MiniMindForCausalLM", "minimind-v"]
