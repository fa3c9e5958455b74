"""It learns: the shipped quickstart recipes, run as the README runs them, produce models that
answer HELD-OUT questions far above chance.

Only output folders change (and pretraining is shortened to 50 steps: the SFT stage, which
is what these checks measure, runs exactly as shipped). Thresholds were set from measured
runs on 2 CPU cores (see the constants) with a margin below what those runs reached.
"""

import json
from pathlib import Path

import pytest

from minimind_hf.cli.train import main
from minimind_hf.data.embedded import embedded_path

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow

# Held-out single-digit sums (a + b with the (a, b) pair never trained): a guess among the
# 19 possible sums is right ~5% of the time. Measured 2026-12-01 on 2 CPU cores with the
# recipe seed applied before the model is built (so every run of this chain is identical):
# 0.45. Earlier, unseeded inits gave 0.40-0.80: the recipe is init-sensitive (issue 20).
ADD1_THRESHOLD = 0.3
# Held-out colour questions on held-out shapes: chance is 1/6. Measured 2026-12-01 (seeded
# as above): 0.27 - barely above chance; unseeded chains earlier ranged 0.26-1.0. The VLM
# recipes are weak and init-sensitive (issue 20, part 2): this checks only "above chance".
COLOUR_THRESHOLD = 0.22


def run(recipe: str, *overrides: str) -> None:
    assert main([str(ROOT / "recipes" / f"{recipe}.yaml"), "--disable_tqdm", "true", *overrides]) == 0


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    outputs = {name: root / name for name in ("pretrain", "sft", "vlm_pretrain", "vlm_sft")}
    run("pretrain", "--output_dir", str(outputs["pretrain"]), "--max_steps", "50")
    run("sft", "--model_name_or_path", str(outputs["pretrain"]), "--output_dir", str(outputs["sft"]))
    return outputs


def test_sft_recipe_answers_held_out_questions(chain):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    import minimind_hf  # noqa: F401
    from minimind_hf.evaluation import arithmetic_accuracy

    model = AutoModelForCausalLM.from_pretrained(chain["sft"])
    tokenizer = AutoTokenizer.from_pretrained(chain["sft"])
    records = [json.loads(line) for line in open(embedded_path("embedded:sft_basic_eval", 42))]
    accuracy = arithmetic_accuracy(model, tokenizer, records)
    print("held-out accuracy after recipes/sft.yaml:", accuracy)
    assert accuracy["add1"] >= ADD1_THRESHOLD, accuracy


def test_vlm_recipes_answer_held_out_colour_questions(chain):
    from transformers import AutoModelForCausalLM, AutoProcessor

    import minimind_hf  # noqa: F401
    from minimind_hf.evaluation.vision import vision_accuracy

    run("vlm_pretrain", "--model_name_or_path", str(chain["sft"]), "--output_dir", str(chain["vlm_pretrain"]))
    run("vlm_sft", "--model_name_or_path", str(chain["vlm_pretrain"]), "--output_dir", str(chain["vlm_sft"]))
    model = AutoModelForCausalLM.from_pretrained(chain["vlm_sft"])
    processor = AutoProcessor.from_pretrained(chain["vlm_sft"])
    records = [json.loads(line) for line in open(embedded_path("embedded:vlm_sft_basic_eval", 42))]
    accuracy = vision_accuracy(model, processor, records, embedded_path("embedded:images", 42))
    print("held-out accuracy after recipes/vlm_*.yaml:", accuracy)
    assert accuracy["colour"] >= COLOUR_THRESHOLD, accuracy
