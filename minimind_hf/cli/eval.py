"""Evaluate a causal LM folder (MiniMind, exported remote-code, stock Llama / Qwen3).

    minimind-eval MODEL --task ppl [--data pydoc|FILE.txt|FILE.jsonl] [--max-length 1024 --stride 512]
    minimind-eval MODEL --task ceval --data CEVAL_DIR [--split val] [--shots 5] [--style plain|chat] [--output DIR]
    minimind-eval MODEL --task lm-eval --data CEVAL_DIR [--shots 5] [--output DIR]
    minimind-eval MODEL --task arithmetic [--data embedded:rl_eval|FILE.jsonl] [--thinking] [--max-new-tokens 16]
    minimind-eval MODEL --task toolcall [--data embedded:tool_rl_eval|FILE.jsonl] [--tools builtin] [--no-tools]

`lm-eval` runs lm-evaluation-harness's HF backend on task YAMLs written from the same CSV
folder, with the same prompt as `--task ceval --style plain`. See docs/evaluation.md.
`arithmetic` prints held-out exact-answer accuracy of greedy replies (the metric the `grpo`
stage reports before and after training) on RL prompts with answers: the embedded held-out
set by default, or any prompt/answer or MiniMind rlaif jsonl with an `answer` field;
`--thinking` renders the prompts with thinking on, as recipes/grpo.yaml's rollouts are.
`toolcall` plays held-out tool-use prompts in a real tool loop (generate, parse the call, run
the tool, feed the result back, up to --max-turns replies) and prints format_validity,
right_tool_rate, argument_accuracy and final_answer_accuracy; `--no-tools` asks the same
questions without tools (one reply): the baseline a tool-using model should beat.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from .. import evaluation


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="folder with a causal LM and its tokenizer")
    parser.add_argument("--task", choices=["ppl", "ceval", "lm-eval", "arithmetic", "toolcall"], required=True)
    parser.add_argument(
        "--data", default=None, help="ppl: pydoc (default), .txt or .jsonl; ceval / lm-eval: CSV folder"
    )
    parser.add_argument(
        "--max-length", type=int, default=None, help="context tokens (default: the model context; ppl caps it at 2048)"
    )
    parser.add_argument("--stride", type=int, default=None, help="ppl window step (default: max-length / 2)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument(
        "--limit", type=int, default=None, help="ppl: first N documents; ceval: first N questions per subject"
    )
    parser.add_argument("--split", default="val", help="CSV split to score: {subject}_{split}.csv (default val)")
    parser.add_argument("--subjects", default=None, help="comma-separated subjects (default: all in the folder)")
    parser.add_argument("--shots", type=int, default=0, help="k-shot examples from {subject}_dev.csv")
    parser.add_argument("--style", choices=["plain", "chat"], default="plain")
    parser.add_argument("--answer-cue", default="Answer:", help="plain prompt's last line, e.g. '答案：'")
    parser.add_argument("--output", default=None, help="folder for summary.json (and per-question results)")
    parser.add_argument("--trust-remote-code", action="store_true", help="for exported remote-code folders")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="auto", help="auto, float32, bfloat16, ...")
    parser.add_argument(
        "--max-new-tokens", type=int, default=None, help="reply length (default: arithmetic 16, toolcall 64 per reply)"
    )
    parser.add_argument("--thinking", action="store_true", help="arithmetic: prompts with thinking on")
    parser.add_argument("--seed", type=int, default=42, help="arithmetic: seed of the embedded split (the recipes' 42)")
    parser.add_argument(
        "--tools",
        default="builtin",
        help="toolcall: comma-separated tools: builtin, a built-in tool's name, or module:function",
    )
    parser.add_argument("--no-tools", action="store_true", help="toolcall: the no-tool baseline (one plain reply)")
    parser.add_argument("--max-turns", type=int, default=3, help="toolcall: model replies per prompt at most")
    return parser.parse_args(argv)


def run_lm_eval(args) -> dict:
    from transformers import AutoTokenizer

    with tempfile.TemporaryDirectory() as scratch:  # task files are kept only under --output
        task_dir = Path(args.output or scratch) / "lm_eval_tasks"
        tokenizer = AutoTokenizer.from_pretrained(args.model, trust_remote_code=args.trust_remote_code)
        group = evaluation.write_lm_eval_tasks(
            args.data, task_dir, tokenizer, split=args.split, subjects=_subjects(args), answer_cue=args.answer_cue
        )
        output = evaluation.run_lm_eval(
            args.model,
            task_dir,
            [group],
            num_fewshot=args.shots,
            batch_size=args.batch_size,
            trust_remote_code=args.trust_remote_code,
            device=args.device,
            limit=args.limit,
            log_samples=False,
        )
    return {
        task: {k: v for k, v in metrics.items() if k.startswith("acc")} for task, metrics in output["results"].items()
    }


def task_options(args) -> dict:
    """The options of `evaluation.evaluate` for the chosen task, from the command line."""
    generation = dict(
        data=args.data or {"arithmetic": "embedded:rl_eval", "toolcall": "embedded:tool_rl_eval"}.get(args.task),
        seed=args.seed,
        limit=args.limit,
        max_new_tokens=args.max_new_tokens,
        batch_size=args.batch_size,
        thinking=args.thinking,
    )
    return {
        "ppl": lambda: dict(
            data=args.data or "pydoc",
            limit=args.limit,
            max_length=args.max_length,
            stride=args.stride,
            batch_size=args.batch_size,
        ),
        "ceval": lambda: dict(
            data=args.data,
            output=args.output,
            split=args.split,
            subjects=_subjects(args),
            num_shots=args.shots,
            limit=args.limit,
            style=args.style,
            answer_cue=args.answer_cue,
            max_length=args.max_length,
            batch_size=args.batch_size,
        ),
        "arithmetic": lambda: generation,
        "toolcall": lambda: (
            generation | dict(tools=() if args.no_tools else tuple(args.tools.split(",")), max_turns=args.max_turns)
        ),
    }[args.task]()


def _subjects(args):
    return args.subjects.split(",") if args.subjects else None


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.task in ("ceval", "lm-eval") and not args.data:
        sys.exit(f"--task {args.task} needs --data CEVAL_DIR (a folder of {{subject}}_{{split}}.csv files)")
    try:
        if args.task == "lm-eval":
            summary = run_lm_eval(args)
        else:
            model, tokenizer = evaluation.load_model_and_tokenizer(
                args.model, args.trust_remote_code, args.device, args.dtype
            )
            summary = evaluation.evaluate(model, tokenizer, args.task, **task_options(args))
    except (ValueError, OSError) as error:  # bad data, paths or model folders: one clear line, not a traceback
        sys.exit(f"error: {error}")
    text = json.dumps(summary, ensure_ascii=False, indent=1)
    if args.output and args.task != "ceval":  # ceval's write_results already wrote summary.json
        Path(args.output).mkdir(parents=True, exist_ok=True)
        (Path(args.output) / "summary.json").write_text(text, encoding="utf-8")
    print(text)
    return summary


def run() -> None:
    """Console entry (`minimind-eval`): the summary is printed, not returned as an exit status."""
    main()


if __name__ == "__main__":
    run()
