"""RL stages on TRL: reward functions (exact numbers on constructed completions), the MiniMind
reward model (score head, stage `reward`, pairwise accuracy on held-out pairs), RL data
(MiniMind rlaif and prompt/answer jsonl, FILE:LINE errors), stage `grpo` end to end (metrics
in run_info.json, held-out accuracy before / after) and `scripts/eval.py --task arithmetic`."""

import json
import sys
from pathlib import Path

import pytest
import torch

import minimind_hf  # noqa: F401
from minimind_hf import MiniMindForCausalLM, MiniMindForSequenceClassification, preset_config
from minimind_hf.cli.train import main
from minimind_hf.data import DataValidationError
from minimind_hf.data.embedded.rl import make_rl_records, split_pairs
from minimind_hf.data.rl import load_rl_records
from minimind_hf.tokenizer import load_tokenizer
from minimind_hf.training.rewards import (
    ExactAnswer,
    LengthWindow,
    RepetitionPenalty,
    RewardModelScore,
    ThinkFormat,
    build_reward_funcs,
    repeated_share,
)

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "recipes"
QUIET = ["--disable_tqdm", "true"]


def train(recipe: str, start, out, *overrides: str) -> int:
    """`scripts/train.py recipes/RECIPE.yaml` from `start` into `out` (quiet), with `--key value` overrides."""
    return main(
        [
            str(RECIPES / f"{recipe}.yaml"),
            "--model_name_or_path",
            str(start),
            "--output_dir",
            str(out),
            *overrides,
            *QUIET,
        ]
    )


# GRPO proof. Start: recipes/sft.yaml from random init, SFT_STEPS steps (a model that answers sums with
# a number, rarely right with thinking on). Then recipes/grpo.yaml for GRPO_STEPS steps with every rollout
# in thinking mode, at half its batch (4 prompts x 8 rollouts, lr 5e-4: GRPO_FAST; the shipped 8 x 8 at
# 3e-4 takes twice the time). Measured on 2 CPU cores, GRPO seeds 1, 2, 3 (data seed kept at 42): held-out
# exact-answer accuracy (greedy, thinking on, 140 prompts) 0.007 -> 0.071 / 0.107 / 0.093 (the shipped
# batch, seed 1: 0.121). MARGIN asks for at least 6 more right answers than the start, below the smallest
# measured gain (9). The shipped mix of modes (thinking_ratio 0.5) runs in the LoRA and DDP tests.
SFT_STEPS, GRPO_STEPS, GRPO_SEED = "150", "80", 1
GRPO_FAST = [
    "--per_device_train_batch_size",
    "32",
    "--learning_rate",
    "5e-4",
    "--thinking_ratio",
    "null",
    "--chat_template_kwargs",
    "{enable_thinking: true}",
]
REWARD_STEPS = "30"
MARGIN = 0.04


def as_messages(texts):
    return [[{"role": "assistant", "content": t}] for t in texts]


def always_half(prompts, completions, **kwargs):
    """A user reward (`test_rl:always_half`)."""
    return [0.5] * len(completions)


# ----------------------------------------------------------------------------- reward functions

REPLIES = [
    "7",
    "The answer is 7.",
    "8",
    "<think>\n3 + 4\n</think>\n\n7",
    "<think>a</think>7</think>",
    "<think>unclosed 7",
    "go go go go go go",
    "",
]


def test_exact_answer_reads_the_reference_column():
    reward = ExactAnswer("answer")
    assert reward(None, as_messages(REPLIES), answer=["7"] * len(REPLIES)) == [1.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0]
    # plain-text completions, text answers, and rows without an answer (None: TRL leaves them out)
    assert reward(None, ["I am MiniMind.", "I am ChatGPT.", "12"], answer=["MiniMind", "MiniMind", ""]) == [
        1.0,
        0.0,
        None,
    ]
    assert ExactAnswer("solution")(None, ["41"], solution=["41"]) == [1.0]
    with pytest.raises(KeyError, match="column 'answer'"):
        reward(None, ["7"], solution=["7"])


def test_shaping_rewards_exact_values():
    assert LengthWindow(1, 3)(None, REPLIES) == [0.5, -0.5, 0.5, 0.5, -0.5, -0.5, -0.5, -0.5]
    # the window measures the answer after the think block: "7" (1 character) here
    assert LengthWindow(2, 800, reward=1.0)(None, ["<think>\nlong reasoning\n</think>\n\n7"]) == [-1.0]
    assert ThinkFormat()(None, as_messages(REPLIES)) == [0.0, 0.0, 0.0, 0.25, -0.25, -0.25, 0.0, 0.0]
    assert ThinkFormat(1.0)(None, ["7</think> <think>"]) == [-1.0]  # reopened after the answer began
    assert repeated_share("go go go go go go") == 0.75  # 4 trigrams, 1 distinct
    assert repeated_share("a b c a b c") == 0.25  # 4 trigrams, 3 distinct
    assert repeated_share("one two") == 0.0  # no trigram at all
    assert RepetitionPenalty()(None, ["go go go go go go", "a b c a b c", "no repeats in this reply"]) == [
        -0.5,
        -0.25,
        0.0,
    ]
    assert RepetitionPenalty(n=1, cap=1.0)(None, ["a a b b"]) == [-1.0]


def test_build_reward_funcs_names_and_errors():
    funcs = build_reward_funcs(
        ["exact_answer", "length_window", "think_format", "repetition", "test_rl:always_half"], length_window=[1, 4]
    )
    assert [f.__name__ for f in funcs] == ["exact_answer", "length_window", "think_format", "repetition", "always_half"]
    assert funcs[1](None, ["12345"]) == [-0.5] and funcs[4](None, ["x", "y"]) == [0.5, 0.5]
    for names, message in (
        ([], "reward_funcs is empty"),
        (["exact"], "expected one of exact_answer"),
        (["no_such_module_xyz:f"], "cannot import module"),
        (["test_rl:nothing"], "has no attribute"),
        (["test_rl:ROOT"], "not callable"),
        (["reward_model"], "needs reward_model_path"),
    ):
        with pytest.raises(ValueError, match=message):
            build_reward_funcs(names)


# ----------------------------------------------------------------------------- RL data


def test_rl_data_formats_and_errors(tmp_path):
    good = tmp_path / "rl.jsonl"
    good.write_text(
        "\n".join(
            json.dumps(r)
            for r in [
                {
                    "conversations": [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": ""}]
                },  # MiniMind rlaif
                {
                    "conversations": [
                        {"role": "system", "content": "Be brief."},
                        {"role": "user", "content": "2 + 2?"},
                        {"role": "assistant", "content": "4"},
                    ],
                    "answer": 4,
                },  # SFT record with an answer
                {"prompt": "Which is larger, 3 or 9?", "answer": "9", "kind": "max1"},
                {"prompt": [{"role": "user", "content": "1 + 1?"}], "answer": "2"},
            ]
        )
        + "\n"
    )
    rows, report = load_rl_records([str(good)])
    assert [r["prompt"] for r in rows] == [
        [{"role": "user", "content": "Hi?"}],
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2 + 2?"}],
        [{"role": "user", "content": "Which is larger, 3 or 9?"}],
        [{"role": "user", "content": "1 + 1?"}],
    ]
    assert list(rows["answer"]) == ["", "4", "9", "2"] and rows["kind"][2] == "max1"
    assert rows["location"][1] == f"{good}:2" and report.kept == 4
    other = tmp_path / "solution.jsonl"
    other.write_text('{"prompt": "3 + 4?", "solution": 7}\n')
    assert load_rl_records([str(other)], answer_field="solution")[0]["answer"] == ["7"]

    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        '{"prompt": "ok", "answer": "1"}\n{"answer": "3"}\n{"prompt": "x", "answer": [1]}\n'
        '{"conversations": [{"role": "assistant", "content": "hi"}]}\nnot json\n'
    )
    with pytest.raises(
        DataValidationError, match=rf"{bad}:2: missing field 'conversations' \(MiniMind rlaif\) or 'prompt'"
    ):
        load_rl_records([str(bad)])
    rows, report = load_rl_records([str(bad)], skip_invalid=True)
    assert len(rows) == 1 and report.read == 5 and report.kept == 1
    assert dict(report.skipped_by_reason) == {
        "missing field": 1,
        "wrong type": 1,
        "no user turn": 1,
        "malformed JSON": 1,
    }


def test_render_prompts_mixes_thinking_on_and_off():
    from minimind_hf.data.embedded import embedded_path
    from minimind_hf.training.grpo import render_prompts

    tokenizer = load_tokenizer()
    rows, _ = load_rl_records([embedded_path("embedded:rl_train", 42)])
    rendered = render_prompts(rows.select(range(200)), tokenizer, 0.5, seed=42)
    thinking = rendered["thinking"]
    assert 80 <= sum(thinking) <= 120  # a seeded half
    assert render_prompts(rows.select(range(200)), tokenizer, 0.5, seed=42)["thinking"] == thinking  # deterministic
    for row, text, on in zip(rows.select(range(200)), rendered["prompt"], thinking):
        assert text == tokenizer.apply_chat_template(
            row["prompt"], add_generation_prompt=True, tokenize=False, enable_thinking=on
        )
        assert text.endswith("<|im_start|>assistant\n" if on else "<|im_start|>assistant\n<think>\n\n</think>\n\n")


def test_embedded_rl_sets_are_disjoint_from_training():
    from minimind_hf.data.embedded.arithmetic import QUESTION_TEMPLATES, split_problems

    # sums: the SFT quickstart's own split, so a held-out pair was never trained by SFT nor RL
    sft_held_out = {p.text for p in split_problems("add1", 42)[1]}
    eval_records = make_rl_records("held_out", "add1", seed=42)
    assert {r["problem"] for r in eval_records} == sft_held_out and len(eval_records) == 20 * len(QUESTION_TEMPLATES)
    train_records = make_rl_records("train", "add1", per_kind=1000, seed=42)
    assert len(train_records) == 1000 and not {r["problem"] for r in train_records} & sft_held_out
    assert all(r["answer"] == str(sum(map(int, r["problem"].split(" + ")))) for r in eval_records + train_records)
    assert train_records[0]["conversations"][-1] == {"role": "assistant", "content": ""}  # MiniMind rlaif
    # "which is larger": split over unordered pairs, both orders held out, every held-out answer also trained
    train, held_out = split_pairs(seed=42)
    assert len(train) == 36 and len(held_out) == 9 and not set(train) & set(held_out)
    assert {max(p) for p in held_out} <= {max(p) for p in train}
    larger = make_rl_records("held_out", "max1", seed=42)
    assert len(larger) == 9 * 2 * 5
    assert not {r["problem"] for r in make_rl_records("train", "max1", per_kind=500, seed=42)} & {
        r["problem"] for r in larger
    }
    assert all(r["answer"] == str(max(map(int, r["problem"][4:-1].split(", ")))) for r in larger)
    # reward pairs: the same splits; the chosen reply is the concise or the MiniMind one
    from minimind_hf.data.embedded.rl import make_preference_records

    pairs = {split: make_preference_records(split, seed=42) for split in ("train", "held_out")}
    assert not {r["problem"] for r in pairs["train"]} & {r["problem"] for r in pairs["held_out"]}
    loop = next(r for r in pairs["train"] if r["kind"] == "add1_loop")
    assert loop["rejected"][-1]["content"].split() == [loop["chosen"][-1]["content"]] * len(
        loop["rejected"][-1]["content"].split()
    )


# ----------------------------------------------------------------------------- reward model


def test_sequence_classification_pools_the_last_real_token(tmp_path):
    from helpers import tiny_config
    from transformers import AutoModelForSequenceClassification

    torch.manual_seed(0)
    model = MiniMindForSequenceClassification(tiny_config(num_labels=1, pad_token_id=0)).eval()
    right = model(
        input_ids=torch.tensor([[5, 6, 7, 8], [9, 10, 0, 0]]), attention_mask=torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
    ).logits
    alone = model(input_ids=torch.tensor([[9, 10]])).logits
    left = model(input_ids=torch.tensor([[0, 0, 9, 10]]), attention_mask=torch.tensor([[0, 0, 1, 1]])).logits
    by_pad_id = model(input_ids=torch.tensor([[9, 10, 0, 0]])).logits  # no mask: the pad id marks the end
    assert right.shape == (2, 1)
    torch.testing.assert_close(right[1:], alone)
    torch.testing.assert_close(left, alone, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(by_pad_id, alone)
    model.save_pretrained(tmp_path)
    reloaded = AutoModelForSequenceClassification.from_pretrained(tmp_path)
    assert type(reloaded) is MiniMindForSequenceClassification
    torch.testing.assert_close(reloaded(input_ids=torch.tensor([[9, 10]])).logits, alone)


@pytest.fixture(scope="module")
def start_model(tmp_path_factory):
    """A tiny causal LM folder with the shipped tokenizer (random init)."""
    folder = tmp_path_factory.mktemp("start")
    tokenizer = load_tokenizer()
    torch.manual_seed(0)
    config = preset_config(
        "tiny",
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    MiniMindForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def pairwise_accuracy(folder: Path, records: list[dict]) -> float:
    scorer = RewardModelScore(str(folder), clip=(-1e9, 1e9))
    prompts = [r["chosen"][:-1] for r in records]
    chosen = scorer(prompts, [r["chosen"][-1:] for r in records])
    rejected = scorer(prompts, [r["rejected"][-1:] for r in records])
    return sum(c > r for c, r in zip(chosen, rejected)) / len(records)


def test_reward_stage_ranks_held_out_pairs_above_chance(start_model, tmp_path):
    from transformers import AutoModelForSequenceClassification

    from minimind_hf.data.embedded.files import write_jsonl
    from minimind_hf.data.embedded.rl import make_preference_records

    held_out = make_preference_records("held_out", seed=42)
    assert len(held_out) == 142  # 20 held-out sums x 7 phrasings + 2 held-out identity questions
    # the prompt / chosen / rejected form of the same pairs, as a second input format
    write_jsonl(
        tmp_path / "eval.jsonl",
        [{"prompt": r["chosen"][:1], "chosen": r["chosen"][1:], "rejected": r["rejected"][1:]} for r in held_out],
    )
    out = tmp_path / "reward"
    code = train(
        "reward",
        start_model,
        out,
        "--eval_files",
        str(tmp_path / "eval.jsonl"),
        "--max_steps",
        REWARD_STEPS,
        "--logging_steps",
        "10",
    )
    assert code == 0
    model = AutoModelForSequenceClassification.from_pretrained(out)
    assert type(model) is MiniMindForSequenceClassification and model.config.num_labels == 1
    info = json.loads((out / "run_info.json").read_text())
    assert info["stage"] == "reward" and info["global_step"] == int(REWARD_STEPS)
    # Held-out problems, in no training pair: chance is 0.5. Measured (random init, seed 42, 30 steps): 1.0.
    assert info["eval_accuracy"] >= 0.9, info["eval_accuracy"]
    assert pairwise_accuracy(out, held_out) >= 0.9  # our own scoring (RewardModelScore) agrees with TRL's
    # as a GRPO reward: scores clipped to the recipe's range
    prompts = [r["chosen"][:-1] for r in held_out]
    raw = RewardModelScore(str(out), clip=(-1e9, 1e9))(prompts, [r["chosen"][-1:] for r in held_out])
    clipped = RewardModelScore(str(out), clip=(-0.05, 0.05))(prompts, [r["chosen"][-1:] for r in held_out])
    assert clipped == [min(0.05, max(-0.05, x)) for x in raw] and len(set(raw)) > 1


def test_reward_model_exports_as_remote_code(tmp_path):
    """A reward folder exports like the causal LM (remote code, AutoModelForSequenceClassification in
    auto_map) and refuses native formats, which have no score head."""
    from transformers import AutoModelForSequenceClassification

    from minimind_hf.export import export_model
    from minimind_hf.export.native import NativeExportError

    tokenizer = load_tokenizer()
    torch.manual_seed(0)
    model = MiniMindForSequenceClassification(preset_config("tiny", num_labels=1, pad_token_id=tokenizer.pad_token_id))
    model.save_pretrained(tmp_path / "reward")
    tokenizer.save_pretrained(tmp_path / "reward")
    out = export_model(tmp_path / "reward", tmp_path / "export")
    config = json.loads((out / "config.json").read_text())
    assert (
        config["auto_map"]["AutoModelForSequenceClassification"]
        == "modeling_minimind.MiniMindForSequenceClassification"
    )
    reloaded = AutoModelForSequenceClassification.from_pretrained(out, trust_remote_code=True)
    ids = torch.tensor([[5, 6, 7]])
    torch.testing.assert_close(reloaded(input_ids=ids).logits, model(input_ids=ids).logits)
    with pytest.raises(NativeExportError, match="reward model"):
        export_model(tmp_path / "reward", tmp_path / "native", fmt="llama")


# ----------------------------------------------------------------------------- grpo


def test_grpo_recipe_errors_exit_2_before_any_work(start_model, tmp_path, capsys):
    grpo = str(RECIPES / "grpo.yaml")
    base = ["--model_name_or_path", str(start_model), "--output_dir", str(tmp_path / "o"), *QUIET]
    cases = [
        (
            ["--reward_funcs", "[exact_answer, lenght_window]", "--reward_weights", "[1, 1]"],
            "reward 'lenght_window': expected one of exact_answer, length_window",
        ),
        (
            ["--reward_weights", "[1.0]"],
            "reward_weights has 1 value(s) for 2 reward function(s) (exact_answer, think_format)",
        ),
        (["--reward_funcs", "[reward_model]", "--reward_weights", "[1]"], "needs reward_model_path"),
        (
            [
                "--reward_funcs",
                "[reward_model]",
                "--reward_weights",
                "[1]",
                "--reward_model_path",
                str(tmp_path / "nope"),
            ],
            "is not a folder: train one with stage 'reward'",
        ),
    ]
    for extra, message in cases:
        assert main([grpo, *base, *extra]) == 2, extra
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, err
    bad = tmp_path / "rl.jsonl"
    bad.write_text('{"prompt": "What is 1 + 1?", "answer": "2"}\n{"question": "no prompt"}\n')
    assert main([grpo, *base, "--train_files", str(bad)]) == 2
    assert f"{bad}:2: missing field 'conversations' (MiniMind rlaif) or 'prompt'" in capsys.readouterr().err


@pytest.fixture(scope="module")
def sft_start(start_model, tmp_path_factory):
    """The SFT recipe from random init, shortened: a model that answers sums with a number."""
    out = tmp_path_factory.mktemp("sft")
    assert train("sft", start_model, out, "--max_steps", SFT_STEPS, "--logging_steps", "50") == 0
    return out


@pytest.fixture(scope="module")
def grpo_run(sft_start, tmp_path_factory):
    out = tmp_path_factory.mktemp("grpo")
    assert (
        train(
            "grpo",
            sft_start,
            out,
            "--max_steps",
            GRPO_STEPS,
            "--logging_steps",
            "20",
            "--seed",
            str(GRPO_SEED),
            "--data_seed_offset",
            str(42 - GRPO_SEED),
            *GRPO_FAST,
        )
        == 0
    )
    return out


def test_grpo_logs_rewards_kl_lengths_and_clip_ratio(grpo_run):
    info = json.loads((grpo_run / "run_info.json").read_text())
    assert info["stage"] == "grpo" and info["global_step"] == int(GRPO_STEPS)
    rl = info["rl"]
    for key in (
        "rewards/exact_answer/mean",
        "rewards/think_format/mean",
        "reward",
        "kl",
        "completions/mean_length",
        "cispo_clip_ratio",
        "entropy",
    ):
        assert key in rl, (key, sorted(rl))
    assert rl["kl"]["last"] > 0  # the policy moved away from its frozen reference (beta 0.1)
    assert 1.0 <= rl["completions/mean_length"]["mean"] <= 16  # max_completion_length
    assert 0.0 <= rl["rewards/exact_answer/mean"]["mean"] <= 1.0
    history = json.loads((grpo_run / "trainer_state.json").read_text())["log_history"]
    assert sum("kl" in h for h in history) == int(GRPO_STEPS) // 20  # every logged step
    assert (grpo_run / "rl_curves.png").stat().st_size > 10_000 and (grpo_run / "training_curves.png").exists()
    from transformers import AutoModelForCausalLM

    assert type(AutoModelForCausalLM.from_pretrained(grpo_run)) is MiniMindForCausalLM


def test_grpo_raises_held_out_accuracy_above_the_sft_start(grpo_run):
    accuracy = json.loads((grpo_run / "run_info.json").read_text())["held_out_accuracy"]
    assert set(accuracy) == {"thinking", "plain", "max_new_tokens"}  # both modes are reported
    before, after = accuracy["thinking"]["before"], accuracy["thinking"]["after"]
    print("held-out exact-answer accuracy (thinking on):", before, "->", after)
    assert before["total"] == after["total"] == 140
    assert after["accuracy"] >= before["accuracy"] + MARGIN, (before, after)


def test_eval_arithmetic_reports_the_same_metric(grpo_run, capsys):
    from minimind_hf.cli import eval as cli

    summary = cli.main([str(grpo_run), "--task", "arithmetic", "--thinking"])
    printed = json.loads(capsys.readouterr().out)
    after = json.loads((grpo_run / "run_info.json").read_text())["held_out_accuracy"]["thinking"]["after"]
    assert printed["accuracy"] == summary["accuracy"] == after["accuracy"]
    assert (printed["correct"], printed["total"]) == (after["correct"], after["total"])
    assert printed["per_kind"]["add1"]["total"] == 140 and printed["data"] == "embedded:rl_eval"


def test_grpo_with_lora_and_a_user_reward(sft_start, tmp_path):
    out = tmp_path / "lora"
    code = train(
        "grpo",
        sft_start,
        out,
        "--use_lora",
        "true",
        "--tune_llm",
        "false",
        "--max_steps",
        "4",
        "--logging_steps",
        "2",
        "--per_device_train_batch_size",
        "16",
        "--reward_funcs",
        "[exact_answer, test_rl:always_half]",
        "--reward_weights",
        "[1.0, 1.0]",
        "--eval_files",
        "[]",
    )
    assert code == 0
    assert (out / "adapter_config.json").exists() and not (out / "model.safetensors").exists()
    rl = json.loads((out / "run_info.json").read_text())["rl"]
    assert rl["rewards/always_half/mean"] == {"first": 0.5, "last": 0.5, "mean": 0.5}
    assert "kl" in rl  # the reference is the base model with the adapter disabled


def test_grpo_on_a_moe_model_adds_the_load_balancing_loss(tmp_path):
    """A Mixture-of-Experts start model: TRL's GRPOTrainer asks for the router logits, adds
    router_aux_loss_coef x the load-balancing loss (as MiniMind's train_grpo.py adds aux_loss), and
    logs it; a near-uniform router gives a loss near num_experts_per_tok (num_experts x sum f_i P_i with
    top-2 routing counted per choice: 2 here)."""
    start, out = tmp_path / "moe", tmp_path / "grpo"
    tokenizer = load_tokenizer()
    torch.manual_seed(0)
    config = preset_config(
        "tiny",
        use_moe=True,
        num_experts=4,
        num_experts_per_tok=2,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    assert config.router_aux_loss_coef == 0.01
    MiniMindForCausalLM(config).save_pretrained(start)
    tokenizer.save_pretrained(start)
    args = [
        str(RECIPES / "grpo.yaml"),
        "--model_name_or_path",
        str(start),
        "--output_dir",
        str(out),
        "--max_steps",
        "2",
        "--logging_steps",
        "1",
        "--per_device_train_batch_size",
        "8",
        "--num_generations",
        "4",
        "--max_completion_length",
        "8",
        "--eval_files",
        "[]",
        *QUIET,
    ]
    assert main(args) == 0
    aux = json.loads((out / "run_info.json").read_text())["rl"]["aux_loss"]
    assert 1.5 < aux["first"] < 3.0 and 1.5 < aux["last"] < 3.0, aux


@pytest.mark.slow
def test_grpo_two_process_ddp_ranks_agree(sft_start, tmp_path):
    """accelerate launch with the shipped 2-process CPU config: both ranks end with the same weights."""
    import os
    import subprocess

    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_PORT": str(29500 + os.getpid() % 1000)}
    command = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(ROOT / "accelerate_configs" / "cpu_ddp.yaml"),
        str(ROOT / "scripts" / "train.py"),
        str(RECIPES / "grpo.yaml"),
        "--model_name_or_path",
        str(sft_start),
        "--output_dir",
        str(out),
        "--max_steps",
        "3",
        "--per_device_train_batch_size",
        "16",
        "--logging_steps",
        "1",
        "--eval_files",
        "[]",
        *QUIET,
    ]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    info = json.loads((out / "run_info.json").read_text())
    assert info["world_size"] == 2 and info["global_step"] == 3
    first, second = info["weight_checksum_per_rank"]
    assert first == second
    assert "kl" in info["rl"] and "rewards/exact_answer/mean" in info["rl"]


def test_ppo_is_refused_with_the_reason(tmp_path, capsys, monkeypatch):
    """TRL 1.16 has no PPO trainer at all; when a release brings one back this test fails, as a reminder."""
    import importlib.util

    import trl

    monkeypatch.setenv("TRL_EXPERIMENTAL_SILENCE", "1")
    assert not hasattr(trl, "PPOTrainer") and importlib.util.find_spec("trl.experimental.ppo") is None
    recipe = tmp_path / "ppo.yaml"
    recipe.write_text("stage: ppo\nmodel_name_or_path: outputs/sft\n")
    assert main([str(recipe)]) == 2
    assert f"stage 'ppo' is not available: TRL {trl.__version__} ships no PPOTrainer" in capsys.readouterr().err


# ----------------------------------------------------------------------------- agentic RL (grpo + tools)


def test_agent_recipe_runs_tool_rollouts_and_reports_tool_use(start_model, tmp_path, capsys):
    """recipes/agent.yaml end to end at toy size: TRL's tool loop is on (tools/* metrics logged), the
    tool rewards are scored, and the held-out --task toolcall metrics are measured before and after."""
    from minimind_hf.data.embedded.files import write_jsonl
    from minimind_hf.data.embedded.tools import make_split

    prompts = make_split("held_out", seed=42, per_kind=10, eval_per_kind=1)[1]
    write_jsonl(tmp_path / "eval.jsonl", prompts[:4])
    out = tmp_path / "agent"
    code = train(
        "agent",
        start_model,
        out,
        "--eval_files",
        f"[{tmp_path / 'eval.jsonl'}]",
        "--max_steps",
        "2",
        "--per_device_train_batch_size",
        "8",
        "--num_generations",
        "4",
        "--max_completion_length",
        "24",
        "--eval_max_new_tokens",
        "16",
        "--logging_steps",
        "1",
    )
    assert code == 0
    info = json.loads((out / "run_info.json").read_text())
    assert {
        "tools/call_frequency",
        "rewards/tool_format/mean",
        "rewards/tool_call_match/mean",
        "rewards/exact_answer/mean",
    } <= set(info["rl"])
    tool_use = info["held_out_tool_use"]
    for phase in ("before", "after"):
        assert tool_use[phase]["total"] == 4 and set(tool_use[phase]["per_kind"]) == {
            "calculator",
            "convert_units",
            "add_days",
            "lookup_capital",
        }
        assert all(
            0.0 <= tool_use[phase][m] <= 1.0
            for m in ("format_validity", "right_tool_rate", "argument_accuracy", "final_answer_accuracy")
        )
    printed = capsys.readouterr().out
    assert "held-out tool use before GRPO: final_answer_accuracy" in printed
    assert "result: held-out tool use final_answer_accuracy" in printed
    assert f"next:   python scripts/eval.py {out} --task toolcall" in printed


def test_agent_recipe_errors_exit_2(start_model, tmp_path, capsys):
    base = [
        str(RECIPES / "agent.yaml"),
        "--model_name_or_path",
        str(start_model),
        "--output_dir",
        str(tmp_path / "o"),
        *QUIET,
    ]
    for extra, message in (
        (["--tools", "[web_search]"], "unknown tool 'web_search'"),
        (["--thinking_ratio", "0.5"], "tools and thinking_ratio do not combine"),
    ):
        assert main([*base, *extra]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, err
