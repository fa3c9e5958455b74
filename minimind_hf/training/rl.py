"""Stages `reward` (TRL RewardTrainer) and `grpo` (TRL GRPOTrainer: grpo / dapo / cispo losses).

reward: preference pairs (every DPO format we read) train a MiniMindForSequenceClassification
    started from a causal-LM folder (only the `score` head is new); the held-out pairwise
    accuracy is TRL's `eval_accuracy`.
grpo: rollouts with `generate()` (KV cache) on RL prompts (MiniMind rlaif or prompt/answer
    jsonl), scored by the recipe's reward functions (minimind_hf/rewards.py) and summed with
    `reward_weights`. Held-out exact-answer accuracy on `eval_files` is measured with greedy
    replies before and after training, printed at the end and kept in run_info.json with the
    per-step rewards, KL, completion length and clip ratios (plotted in rl_curves.png).
    With `tools:` the rollouts are multi-turn (agentic RL): TRL parses each reply's
    `<tool_call>`s, runs the tools, appends their results and lets the model go on; the
    result tokens are masked out of the loss. Held-out tool use is then measured in our
    own tool loop (`tools.loop`, the `--task toolcall` metrics) before and after.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
from pathlib import Path

import torch

from ..data.sources import DataError
from ..utils import RUN_INFO_FILE
from .args import RecipeError
from .common import build_model, closing_lines, load_split, load_tokenizer_for, resolve_resume, resolve_sources
from .common import set_generation_defaults, write_run_info

logger = logging.getLogger(__name__)

# Per-step GRPO metrics kept in run_info.json (besides every `rewards/NAME/mean`).
RL_METRICS = ("reward", "reward_std", "kl", "completions/mean_length", "completions/clipped_ratio",
              "clip_ratio/region_mean", "cispo_clip_ratio", "entropy", "tools/call_frequency",
              "tools/failure_frequency")
RL_CURVES = "rl_curves.png"


# ----------------------------------------------------------------------------- checks (before anything is built)


def check_rl_recipe(inputs) -> None:
    """grpo: the reward and tool names resolve (user functions import), one weight per reward, a
    local reward-model folder exists, tools get conversational prompts."""
    if inputs.stage != "grpo":
        return
    rl, args = inputs.rl_args, inputs.training_args
    try:
        funcs = _reward_funcs(rl)  # names resolve, user functions import; a reward model loads on first use
        _tools(rl)
    except ValueError as error:
        raise RecipeError(str(error)) from None
    if rl.tools and rl.thinking_ratio is not None:
        raise RecipeError("tools and thinking_ratio do not combine: TRL's tool loop needs conversational prompts, and "
                          "thinking_ratio renders them to text; set enable_thinking in chat_template_kwargs instead")
    if args.reward_weights is not None and len(args.reward_weights) != len(funcs):
        raise RecipeError(
            f"reward_weights has {len(args.reward_weights)} value(s) for {len(funcs)} reward function(s) "
            f"({', '.join(rl.reward_funcs)}); give one weight per reward"
        )
    path = rl.reward_model_path
    local = path and (path.startswith((".", "/", "~")) or path.count("/") != 1)  # else maybe a hub id: org/name
    if "reward_model" in rl.reward_funcs and local and not Path(path).expanduser().is_dir():
        raise RecipeError(f"reward_model_path {rl.reward_model_path} is not a folder: train one with stage 'reward' "
                          "(recipes/reward.yaml) first")


def _reward_funcs(rl):
    from ..rewards import build_reward_funcs

    return build_reward_funcs(
        rl.reward_funcs, answer_column="answer", length_window=rl.length_window, length_reward=rl.length_reward,
        think_reward=rl.think_reward, repetition_ngram=rl.repetition_ngram, repetition_cap=rl.repetition_cap,
        reward_model_path=rl.reward_model_path, reward_clip=rl.reward_clip,
    )


def _tools(rl) -> dict:
    from ..tools import resolve_tools

    return resolve_tools(rl.tools) if rl.tools else {}


# ----------------------------------------------------------------------------- reward


def build_reward_model(inputs, tokenizer):
    """A MiniMindForSequenceClassification (num_labels=1) from a causal-LM or reward-model folder."""
    from transformers import AutoModelForSequenceClassification

    from .common import require_model_path
    from ..utils import load_pretrained

    model_args = inputs.model_args
    if model_args.preset or model_args.model_config:
        raise RecipeError("stage 'reward' starts from a trained model folder; remove preset / model_config")
    path = require_model_path(model_args, "reward")
    attn = {"attn_implementation": model_args.attn_implementation} if model_args.attn_implementation else {}
    # Only the score head is new; anything else missing from the folder is an error (strict loader).
    model = load_pretrained(path, auto_class=AutoModelForSequenceClassification, allow_new=("score.",),
                            num_labels=1, dtype=torch.float32, **attn)
    model.config.pad_token_id = tokenizer.pad_token_id
    return model


def run_reward(inputs) -> None:
    from trl import RewardTrainer

    from ..data.text import build_dpo_dataset
    from .stages import lora_config

    data_args, seed = inputs.data_args, inputs.training_args.seed + inputs.data_args.data_seed_offset
    tokenizer = load_tokenizer_for(inputs.model_args)
    train, report = load_split(data_args, data_args.train_files, "dpo", seed)
    if train is None:
        raise RecipeError("stage 'reward' needs train_files (preference pairs: chosen / rejected)")
    evaluation, _ = load_split(data_args, data_args.eval_files, "dpo", seed)
    print(report.summary(), flush=True)
    train = build_dpo_dataset(train)
    evaluation = build_dpo_dataset(evaluation) if evaluation is not None else None

    model = build_reward_model(inputs, tokenizer)
    peft_config = None
    if inputs.adapter_args.use_lora:  # the new head is trained in full next to the adapters
        peft_config = lora_config(inputs.adapter_args, modules_to_save=inputs.adapter_args.modules_to_save or ["score"])
        peft_config.task_type = "SEQ_CLS"
    trainer = RewardTrainer(model=model, args=inputs.training_args, train_dataset=train, eval_dataset=evaluation,
                            processing_class=tokenizer, peft_config=peft_config)
    finish(trainer, inputs, tokenizer, report)


# ----------------------------------------------------------------------------- grpo


def load_rl_split(data_args, files: list, seed: int, answer_field: str = "answer"):
    from ..data.rl import load_rl_records

    if not files:
        return None, None
    return load_rl_records(resolve_sources(files, seed), skip_invalid=data_args.skip_invalid, seed=seed,
                           answer_field=answer_field)


MODES = {"thinking": True, "plain": False}  # held-out accuracy is measured with thinking on and off


def held_out_accuracy(model, tokenizer, dataset, max_new_tokens: int, chat_template_kwargs: dict | None = None,
                      batch_size: int = 32) -> dict | None:
    """{"thinking": ..., "plain": ...}: greedy exact-answer accuracy on the rows of `dataset` that
    have an answer, prompts rendered with thinking on and off (None: no row has an answer). Both
    modes, because training one can cost the other."""
    from ..evaluation import exact_answer_accuracy

    rows = [row for row in dataset if row["answer"]]
    if not rows:
        return None
    return {mode: exact_answer_accuracy(model, tokenizer, [r["prompt"] for r in rows], [r["answer"] for r in rows],
                                        [r["kind"] for r in rows], max_new_tokens=max_new_tokens, batch_size=batch_size,
                                        chat_template_kwargs={**(chat_template_kwargs or {}), "enable_thinking": on})
            for mode, on in MODES.items()}


def held_out_tool_use(model, tokenizer, dataset, tools: dict, max_new_tokens: int, max_turns: int,
                      chat_template_kwargs: dict | None = None) -> dict | None:
    """The `--task toolcall` metrics of greedy episodes in our tool loop on the rows with an answer."""
    from ..tools.loop import greedy_generator, run_tool_episodes, score_episodes

    rows = [row for row in dataset if row["answer"]]
    if not rows:
        return None
    generate = greedy_generator(model, tokenizer, max_new_tokens, chat_template_kwargs=chat_template_kwargs)
    episodes = run_tool_episodes(generate, [r["prompt"] for r in rows], tools, max_turns)
    return score_episodes(episodes, [r["answer"] for r in rows],
                          [json.loads(r["expected_call"]) if r["expected_call"] else None for r in rows],
                          [r["kind"] for r in rows])


TOOL_METRICS = ("final_answer_accuracy", "format_validity", "right_tool_rate", "argument_accuracy")


def render_prompts(dataset, tokenizer, thinking_ratio: float, seed: int, chat_template_kwargs: dict | None = None):
    """Conversational prompts -> text prompts (TRL's standard format), a seeded `thinking_ratio`
    share rendered with thinking on and the rest with it off (TRL applies one template setting
    to every prompt)."""
    import random

    def render(row, index):
        thinking = random.Random(f"{seed}:{index}").random() < thinking_ratio
        kwargs = {**(chat_template_kwargs or {}), "enable_thinking": thinking}
        text = tokenizer.apply_chat_template(row["prompt"], add_generation_prompt=True, tokenize=False, **kwargs)
        return {"prompt": text, "thinking": thinking}

    return dataset.map(render, with_indices=True, desc="Rendering prompts (thinking on / off)")


@contextlib.contextmanager
def reference_is_a_copy_of(model):
    """While GRPOTrainer is built, its reference model (beta > 0, no LoRA) is a frozen copy of
    the start model instead of a reload from `config._name_or_path`: TRL 1.16's
    `create_model_from_path` reads `config.auto_map`, which a registered (not remote-code)
    model's config does not have (AttributeError), and a copy is the start model exactly."""
    from trl.trainer import grpo_trainer

    original = getattr(grpo_trainer, "create_model_from_path", None)
    if original is None:  # a TRL that builds its reference differently: nothing to replace
        yield
        return
    start = getattr(model.config, "_name_or_path", None)

    def create(model_id, *args, **kwargs):
        if model_id != start or args:
            return original(model_id, *args, **kwargs)
        reference = copy.deepcopy(model).eval().requires_grad_(False)
        dtype = kwargs.get("dtype")
        return reference.to(dtype) if isinstance(dtype, torch.dtype) else reference

    grpo_trainer.create_model_from_path = create
    try:
        yield
    finally:
        grpo_trainer.create_model_from_path = original


def run_grpo(inputs) -> None:
    from accelerate import PartialState
    from trl import GRPOTrainer

    from .stages import lora_config

    data_args, args, rl = inputs.data_args, inputs.training_args, inputs.rl_args
    seed = args.seed + data_args.data_seed_offset
    if not data_args.train_files:
        raise RecipeError("stage 'grpo' needs train_files (RL prompts: MiniMind rlaif or prompt/answer jsonl)")
    train, report = load_rl_split(data_args, data_args.train_files, seed, rl.answer_column)
    evaluation, _ = load_rl_split(data_args, data_args.eval_files, seed, rl.answer_column)
    print(report.summary(), flush=True)
    if "exact_answer" in rl.reward_funcs and not any(train["answer"]):
        raise DataError(f"exact_answer needs reference answers, and no training record has a {rl.answer_column!r} field")
    try:
        reward_funcs = _reward_funcs(rl)
        tools = _tools(rl)
    except ValueError as error:
        raise RecipeError(str(error)) from None

    tokenizer = load_tokenizer_for(inputs.model_args)
    if tools and getattr(tokenizer, "response_template", None) is None:
        from ..tokenizer import RESPONSE_TEMPLATE

        tokenizer.response_template = RESPONSE_TEMPLATE  # how TRL's tool loop finds the calls in a reply
    model = build_model(inputs.model_args, tokenizer, "grpo")
    set_generation_defaults(model, tokenizer)  # rollouts stop at the end-of-turn token
    state = PartialState()
    eval_tokens = rl.eval_max_new_tokens or args.max_completion_length
    template_kwargs = args.chat_template_kwargs or {}
    if rl.thinking_ratio is not None:
        if not 0.0 <= rl.thinking_ratio <= 1.0:
            raise RecipeError(f"thinking_ratio must be in [0, 1], got {rl.thinking_ratio}")
        train = render_prompts(train, tokenizer, rl.thinking_ratio, seed, template_kwargs)
    max_turns = 1 + (args.max_tool_calling_iterations if args.max_tool_calling_iterations is not None else 2)

    def measure(current):
        if evaluation is None:
            return None
        if tools:
            return held_out_tool_use(current, tokenizer, evaluation, tools, eval_tokens, max_turns, template_kwargs)
        return held_out_accuracy(current, tokenizer, evaluation, eval_tokens, template_kwargs)

    before = measure(model) if state.is_main_process else None
    if tools and before:
        print("held-out tool use before GRPO: " + ", ".join(f"{m} {before[m]:.3f}" for m in TOOL_METRICS), flush=True)
    for mode, result in ({} if tools else before or {}).items():
        print(f"held-out exact-answer accuracy before GRPO ({mode}): {result['accuracy']:.3f} "
              f"({result['correct']}/{result['total']})", flush=True)

    peft_config = lora_config(inputs.adapter_args) if inputs.adapter_args.use_lora else None
    with reference_is_a_copy_of(model):
        trainer = GRPOTrainer(model=model, reward_funcs=reward_funcs, args=args, train_dataset=train,
                              processing_class=tokenizer, peft_config=peft_config,
                              tools=list(tools.values()) or None)

    def accuracy_after(trained) -> dict:
        if evaluation is None or not trainer.is_world_process_zero():
            return {}
        after = measure(trained)
        if tools:
            return {"held_out_tool_use": {"before": before, "after": after, "max_new_tokens": eval_tokens,
                                          "max_turns": max_turns}} if after else {}
        if after is None:
            return {}
        return {"held_out_accuracy": {mode: {"before": before[mode], "after": after[mode]} for mode in MODES}
                | {"max_new_tokens": eval_tokens}}

    finish(trainer, inputs, tokenizer, report, extra=accuracy_after)


# ----------------------------------------------------------------------------- end of a run


def rl_summary(log_history: list[dict]) -> dict:
    """{metric: {"first", "last", "mean"}} of the logged per-step RL metrics."""
    keys = [k for k in dict.fromkeys(k for h in log_history for k in h)
            if k in RL_METRICS or (k.startswith("rewards/") and k.endswith("/mean"))]
    out = {}
    for key in keys:
        values = [h[key] for h in log_history if isinstance(h.get(key), (int, float)) and "train_runtime" not in h]
        if values:
            out[key] = {"first": values[0], "last": values[-1], "mean": sum(values) / len(values)}
    return out


def finish(trainer, inputs, tokenizer, report, extra=None) -> None:
    """Train, save (model + tokenizer + state), record run_info.json, plot, print where / how good / next."""
    args = trainer.args
    result = trainer.train(resume_from_checkpoint=resolve_resume(args.resume_from_checkpoint, args.output_dir))
    model = trainer.model
    if getattr(model, "generation_config", None) is not None:
        set_generation_defaults(model, tokenizer)
    trainer.save_model(args.output_dir)
    if inputs.adapter_args.use_lora and inputs.adapter_args.merge_lora and trainer.is_world_process_zero():
        from .stages import save_merged

        save_merged(trainer.accelerator.unwrap_model(model), tokenizer, args.output_dir)
    if trainer.eval_dataset is not None:
        trainer.evaluate()
    trainer.save_state()
    info = write_run_info(trainer, args.output_dir, inputs.stage, report, mean_train_loss=result.training_loss)
    history = trainer.state.log_history
    if inputs.stage == "reward":
        info["eval_accuracy"] = next((h["eval_accuracy"] for h in reversed(history) if "eval_accuracy" in h), None)
    else:
        info["rl"] = rl_summary(history)
    if extra is not None:
        info.update(extra(trainer.accelerator.unwrap_model(model)))
    if args.world_size > 1 and not trainer.is_deepspeed_enabled:  # (ZeRO-3 ranks hold shards, not copies)
        info["weight_checksum_per_rank"] = rank_checksums(trainer)
    if trainer.is_world_process_zero():
        Path(args.output_dir, RUN_INFO_FILE).write_text(json.dumps(info, indent=2))
        from .stages import plot_curves

        plot_curves(args.output_dir)
        if inputs.stage == "grpo":
            try:
                plot_rl_curves(args.output_dir, history)
            except (ValueError, OSError) as error:
                logger.warning("no RL curves plotted: %s", error)
        # A pairwise loss has no perplexity: the reward stage reports its held-out accuracy instead.
        shown = {**info, "eval_loss": None} if inputs.stage == "reward" else info
        stage = "agent" if inputs.stage == "grpo" and inputs.rl_args.tools else inputs.stage
        lines = closing_lines(shown, args.output_dir, stage)
        lines[2:2] = _result_lines(info)  # after the train-loss line
        print("\n".join(lines), flush=True)
    trainer.accelerator.wait_for_everyone()


def rank_checksums(trainer) -> list[float]:
    """The sum of every trained weight, on each rank: data-parallel replicas must agree."""
    model = trainer.accelerator.unwrap_model(trainer.model)
    total = sum(p.detach().double().sum() for p in model.parameters() if p.requires_grad)
    return trainer.accelerator.gather(total.reshape(1).to(trainer.accelerator.device)).tolist()


def _result_lines(info: dict) -> list[str]:
    lines = []
    if info.get("eval_accuracy") is not None:
        lines.append(f"result: held-out pairwise accuracy (chosen scored above rejected) {info['eval_accuracy']:.3f}")
    rewards = {k: v for k, v in info.get("rl", {}).items() if k.startswith("rewards/")}
    if rewards:
        lines.append("result: mean reward first -> last logged step: " + "; ".join(
            f"{k.split('/')[1]} {v['first']:.3g} -> {v['last']:.3g}" for k, v in rewards.items()))
    tool_use = info.get("held_out_tool_use")
    if tool_use:
        lines.append("result: held-out tool use " + "; ".join(
            f"{m} {tool_use['before'][m]:.3f} -> {tool_use['after'][m]:.3f}" for m in TOOL_METRICS))
    for mode in MODES:
        accuracy = (info.get("held_out_accuracy") or {}).get(mode)
        if accuracy:
            before, after = accuracy["before"], accuracy["after"]
            lines.append(f"result: held-out exact-answer accuracy ({mode}) {before['accuracy']:.3f} "
                         f"({before['correct']}/{before['total']}) -> {after['accuracy']:.3f} "
                         f"({after['correct']}/{after['total']})")
    return lines


def plot_rl_curves(output_dir: str, history: list[dict]) -> Path:
    """rl_curves.png: mean reward per function, KL, completion length, clip ratios per logged step."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    panels = [
        ("rewards", [k for k in dict.fromkeys(k for h in history for k in h) if k.startswith("rewards/") and k.endswith("/mean")]
         + ["reward"]),
        ("KL to the reference", ["kl"]),
        ("completion length (tokens)", ["completions/mean_length"]),
        ("clip ratio", ["clip_ratio/region_mean", "cispo_clip_ratio", "completions/clipped_ratio"]),
    ]
    fig = Figure(figsize=(16, 4), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    plotted = 0
    for ax, (title, keys) in zip(fig.subplots(1, len(panels)), panels):
        for key in keys:
            points = [(h["step"], h[key]) for h in history if isinstance(h.get(key), (int, float)) and "step" in h
                      and "train_runtime" not in h]
            if points:
                ax.plot(*zip(*points), marker="." if len(points) < 30 else None, label=key)
                plotted += 1
        if ax.lines:
            ax.legend(fontsize=7)
        else:
            ax.text(0.5, 0.5, "not logged", ha="center", va="center", transform=ax.transAxes, color="grey")
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    if not plotted:
        raise ValueError("no RL metrics were logged (a run shorter than logging_steps?)")
    target = Path(output_dir) / RL_CURVES
    fig.savefig(target)
    return target
