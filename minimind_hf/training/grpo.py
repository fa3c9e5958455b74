"""Stage grpo: TRL's GRPOTrainer (cispo by default, dapo / grpo) with verifiable and shaping rewards.

Rollouts with `generate()` (KV cache) on RL prompts (MiniMind rlaif or prompt/answer jsonl),
scored by the recipe's reward functions (:mod:`.rewards`) and summed with `reward_weights`.
Held-out exact-answer accuracy on `eval_files` is measured with greedy replies before and after
training, with thinking on and off, printed at the end and kept in run_info.json with the
per-step rewards, KL, completion length and clip ratios (plotted in rl_curves.png).
With `tools:` the rollouts are multi-turn (agentic RL): TRL parses each reply's `<tool_call>`s,
runs the tools, appends their results and lets the model go on; the result tokens are masked
out of the loss. Held-out tool use is then measured in our own tool loop
(`evaluation.toolcall`, the `--task toolcall` metrics) before and after.
"""

from __future__ import annotations

import contextlib
import copy
import json
from pathlib import Path

import torch

from ..data.report import DataError
from ..evaluation.arithmetic import exact_answer_accuracy
from ..evaluation.toolcall import greedy_generator, run_tool_episodes, score_episodes
from ..plotting import plot_rl_curves
from ..utils import print_main, set_generation_defaults
from .adapters import peft_config_for
from .args import RecipeError, StageInputs
from .data import load_rl_split
from .finish import replica_checksums, train_and_save
from .loading import build_model, load_tokenizer_for

# Per-step GRPO metrics kept in run_info.json (besides every `rewards/NAME/mean`).
RL_METRICS = (
    "reward",
    "reward_std",
    "kl",
    "completions/mean_length",
    "completions/clipped_ratio",
    "clip_ratio/region_mean",
    "cispo_clip_ratio",
    "entropy",
    "tools/call_frequency",
    "tools/failure_frequency",
    "aux_loss",  # MoE load balancing, added to the loss by TRL times router_aux_loss_coef
)


def check(inputs: StageInputs) -> None:
    """Recipe checks before anything is built (see :func:`check_rl_recipe`)."""
    check_rl_recipe(inputs)


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
        raise RecipeError(
            "tools and thinking_ratio do not combine: TRL's tool loop needs conversational prompts, and "
            "thinking_ratio renders them to text; set enable_thinking in chat_template_kwargs instead"
        )
    if args.reward_weights is not None and len(args.reward_weights) != len(funcs):
        raise RecipeError(
            f"reward_weights has {len(args.reward_weights)} value(s) for {len(funcs)} reward function(s) "
            f"({', '.join(rl.reward_funcs)}); give one weight per reward"
        )
    path = rl.reward_model_path
    local = path and (path.startswith((".", "/", "~")) or path.count("/") != 1)  # else maybe a hub id: org/name
    if "reward_model" in rl.reward_funcs and local and not Path(path).expanduser().is_dir():
        raise RecipeError(
            f"reward_model_path {rl.reward_model_path} is not a folder: train one with stage 'reward' "
            "(recipes/reward.yaml) first"
        )


def _reward_funcs(rl):
    from .rewards import build_reward_funcs

    return build_reward_funcs(
        rl.reward_funcs,
        answer_column="answer",
        length_window=rl.length_window,
        length_reward=rl.length_reward,
        think_reward=rl.think_reward,
        repetition_ngram=rl.repetition_ngram,
        repetition_cap=rl.repetition_cap,
        reward_model_path=rl.reward_model_path,
        reward_clip=rl.reward_clip,
    )


def _tools(rl) -> dict:
    from ..tools import resolve_tools

    return resolve_tools(rl.tools) if rl.tools else {}


MODES = {"thinking": True, "plain": False}  # held-out accuracy is measured with thinking on and off


def held_out_accuracy(
    model, tokenizer, dataset, max_new_tokens: int, chat_template_kwargs: dict | None = None, batch_size: int = 32
) -> dict | None:
    """{"thinking": ..., "plain": ...}: greedy exact-answer accuracy on the rows of `dataset` that
    have an answer, prompts rendered with thinking on and off (None: no row has an answer). Both
    modes, because training one can cost the other."""
    rows = [row for row in dataset if row["answer"]]
    if not rows:
        return None
    return {
        mode: exact_answer_accuracy(
            model,
            tokenizer,
            [r["prompt"] for r in rows],
            [r["answer"] for r in rows],
            [r["kind"] for r in rows],
            max_new_tokens=max_new_tokens,
            batch_size=batch_size,
            chat_template_kwargs={**(chat_template_kwargs or {}), "enable_thinking": on},
        )
        for mode, on in MODES.items()
    }


def held_out_tool_use(
    model,
    tokenizer,
    dataset,
    tools: dict,
    max_new_tokens: int,
    max_turns: int,
    chat_template_kwargs: dict | None = None,
) -> dict | None:
    """The `--task toolcall` metrics of greedy episodes in our tool loop on the rows with an answer."""
    rows = [row for row in dataset if row["answer"]]
    if not rows:
        return None
    generate = greedy_generator(model, tokenizer, max_new_tokens, chat_template_kwargs=chat_template_kwargs)
    episodes = run_tool_episodes(generate, [r["prompt"] for r in rows], tools, max_turns)
    return score_episodes(
        episodes,
        [r["answer"] for r in rows],
        [json.loads(r["expected_call"]) if r["expected_call"] else None for r in rows],
        [r["kind"] for r in rows],
    )


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


def run(inputs: StageInputs) -> None:
    from accelerate import PartialState
    from trl import GRPOTrainer

    data_args, args, rl = inputs.data_args, inputs.training_args, inputs.rl_args
    seed = inputs.data_seed
    if not data_args.train_files:
        raise RecipeError("stage 'grpo' needs train_files (RL prompts: MiniMind rlaif or prompt/answer jsonl)")
    train, report = load_rl_split(data_args, data_args.train_files, seed, rl.answer_column)
    evaluation, _ = load_rl_split(data_args, data_args.eval_files, seed, rl.answer_column)
    print_main(report.summary())
    if "exact_answer" in rl.reward_funcs and not any(train["answer"]):
        raise DataError(
            f"exact_answer needs reference answers, and no training record has a {rl.answer_column!r} field"
        )
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
        print_main("held-out tool use before GRPO: " + ", ".join(f"{m} {before[m]:.3f}" for m in TOOL_METRICS))
    for mode, result in ({} if tools else before or {}).items():
        print(
            f"held-out exact-answer accuracy before GRPO ({mode}): {result['accuracy']:.3f} "
            f"({result['correct']}/{result['total']})",
            flush=True,
        )

    peft_config = peft_config_for(inputs.adapter_args)
    with reference_is_a_copy_of(model):
        trainer = GRPOTrainer(
            model=model,
            reward_funcs=reward_funcs,
            args=args,
            train_dataset=train,
            processing_class=tokenizer,
            peft_config=peft_config,
            tools=list(tools.values()) or None,
        )

    def results(trained) -> dict:
        out = {"rl": rl_summary(trainer.state.log_history)}
        if evaluation is not None and trainer.is_world_process_zero():
            after = measure(trained)
            if tools and after:
                out["held_out_tool_use"] = {
                    "before": before,
                    "after": after,
                    "max_new_tokens": eval_tokens,
                    "max_turns": max_turns,
                }
            elif after is not None and not tools:
                out["held_out_accuracy"] = {mode: {"before": before[mode], "after": after[mode]} for mode in MODES} | {
                    "max_new_tokens": eval_tokens
                }
        return out | replica_checksums(trainer)

    train_and_save(
        trainer,
        inputs,
        tokenizer,
        report,
        results=results,
        result_lines=result_lines,
        plots=(plot_rl_curves,),
        next_stage="agent" if tools else None,
    )


def rl_summary(log_history: list[dict]) -> dict:
    """{metric: {"first", "last", "mean"}} of the logged per-step RL metrics."""
    keys = [
        k
        for k in dict.fromkeys(k for h in log_history for k in h)
        if k in RL_METRICS or (k.startswith("rewards/") and k.endswith("/mean"))
    ]
    out = {}
    for key in keys:
        values = [h[key] for h in log_history if isinstance(h.get(key), (int, float)) and "train_runtime" not in h]
        if values:
            out[key] = {"first": values[0], "last": values[-1], "mean": sum(values) / len(values)}
    return out


def result_lines(info: dict) -> list[str]:
    lines = []
    rewards = {k: v for k, v in info.get("rl", {}).items() if k.startswith("rewards/")}
    if rewards:
        lines.append(
            "result: mean reward first -> last logged step: "
            + "; ".join(f"{k.split('/')[1]} {v['first']:.3g} -> {v['last']:.3g}" for k, v in rewards.items())
        )
    tool_use = info.get("held_out_tool_use")
    if tool_use:
        lines.append(
            "result: held-out tool use "
            + "; ".join(f"{m} {tool_use['before'][m]:.3f} -> {tool_use['after'][m]:.3f}" for m in TOOL_METRICS)
        )
    for mode in MODES:
        accuracy = (info.get("held_out_accuracy") or {}).get(mode)
        if accuracy:
            before, after = accuracy["before"], accuracy["after"]
            lines.append(
                f"result: held-out exact-answer accuracy ({mode}) {before['accuracy']:.3f} "
                f"({before['correct']}/{before['total']}) -> {after['accuracy']:.3f} "
                f"({after['correct']}/{after['total']})"
            )
    return lines
