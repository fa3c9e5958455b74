"""Generation speed vs the oracles: greedy decoding with the KV cache, batch 1 and 8, and
time to first token, MiniMind vs transformers' Llama / Qwen3 class holding identical weights.

For each shape (dense MiniMind2 layout vs ``LlamaForCausalLM``, q/k-norm MiniMind-3 layout vs
``Qwen3ForCausalLM``, SDPA) and batch size:

* decode: ``generate(max_new_tokens=N, min_new_tokens=N, do_sample=False)`` - every row makes
  exactly N tokens; tokens/s = batch * N / wall time (prefill included, as a user sees it);
* time to first token: ``generate(max_new_tokens=1)`` (prefill + one greedy token);
* decode-only tokens/s = batch * (N - 1) / (t_decode - t_ttft), from the medians.

Batch 1 has one prompt of ``--prompt`` tokens; batch 8 has prompts of different lengths
(``--prompt`` / 2 to ``--prompt``), left-padded with an attention mask, as a server batches
them. Both models get the same tensors; the run checks that they generate the same tokens.
Rounds alternate ours / oracle (ABBA); ratios are medians of per-round oracle_time / our_time
(>1: ours faster), on the process CPU clock with one thread (wall clock recorded too; see
bench_model). Target: >= 1.0x for decode tokens/s and for time to first token. A missed
target is profiled (op times and counts, module calls) into the JSON ``notes``; a miss whose
threshold lies inside the interquartile range of the per-round ratios is flagged as noise.

    python -m benchmarks.bench_generate [--quick] [--new-tokens 32] [--prompt 64] [--batches 1 8]
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import common  # noqa: E402
from benchmarks.bench_model import QUICK_SHAPE, SHAPES  # noqa: E402

DESCRIPTION = "greedy generation with KV cache: MiniMind vs the Llama / Qwen3 oracle, identical weights"
TARGET = 1.0


def parse_args(argv=None):
    parser = common.base_parser("generate", __doc__)
    parser.add_argument("--shapes", nargs="+", choices=list(SHAPES), default=list(SHAPES))
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--profile", action="store_true", help="profile both sides even when the targets are met")
    parser.add_argument(
        "--copies",
        type=int,
        default=None,
        help="separately allocated copies of each model, used in turn (default 2; quick 1)",
    )
    parser.add_argument("--no-aa", action="store_true", help="skip the A/A control (ours vs other copies of ours)")
    parser.add_argument("--layers", type=int, default=None, help="decoder layers (default 2)")
    parser.add_argument("--prompt", type=int, default=None, help="prompt tokens (default 64; quick 16)")
    parser.add_argument("--new-tokens", type=int, default=None, help="tokens generated (default 32; quick 4)")
    rounds = common.round_options(parser, repeats=(5, 2), min_sample=(0.2, 0.02), warmup=(1, 1))
    args = rounds(parser.parse_args(argv))
    args.layers = args.layers or 2
    args.prompt = args.prompt or (16 if args.quick else 64)
    args.new_tokens = args.new_tokens or (4 if args.quick else 32)
    args.copies = args.copies or (1 if args.quick else 2)
    return args


def build_pair(shape: str, args):
    from minimind_hf import preset_config

    overrides = dict(num_hidden_layers=args.layers, max_position_embeddings=1024)
    if args.quick:
        overrides.update(QUICK_SHAPE, num_key_value_heads=2)
    config = preset_config(SHAPES[shape][0], pad_token_id=0, **overrides)
    ours = common.fresh_model(config, seed=args.seed).eval()
    return config, ours, common.oracle_for(ours).eval()


def prompts(batch: int, length: int, vocab: int, seed: int):
    """Random prompts; batch > 1 gets lengths from length/2 to length, left-padded."""
    import torch

    gen = torch.Generator().manual_seed(seed + batch)
    ids = torch.randint(3, vocab, (batch, length), generator=gen)
    mask = torch.ones_like(ids)
    if batch > 1:
        for row in range(batch):
            pad = (row * (length // 2)) // max(1, batch - 1)
            ids[row, :pad], mask[row, :pad] = 0, 0
    return ids, mask


def measure_shape(shape: str, args, result) -> list[dict]:
    """Every batch size of one shape, ours vs its oracle: figures, targets and notes go into
    ``result``; returns the table rows."""
    import torch

    config, ours, oracle = build_pair(shape, args)
    result["figures"][shape] = {
        "preset": SHAPES[shape][0],
        "oracle_class": SHAPES[shape][1],
        "hidden_size": config.hidden_size,
        "layers": config.num_hidden_layers,
        "parameters": common.count_parameters(ours),
        "batches": {},
    }
    rows = []
    for batch in args.batches:
        ids, mask = prompts(batch, args.prompt, config.vocab_size, args.seed)
        n = args.new_tokens
        greedy = dict(do_sample=False, pad_token_id=0, eos_token_id=config.eos_token_id, use_cache=True)

        def generate(model, new, out=None):
            def run():
                with torch.inference_mode():
                    tokens = model.generate(ids, attention_mask=mask, max_new_tokens=new, min_new_tokens=new, **greedy)
                if out is not None and not out:
                    out.append(tokens)

            return run

        outputs = {"ours": [], "oracle": []}
        sides = {
            "ours": [ours] + [copy.deepcopy(ours) for _ in range(args.copies - 1)],
            "oracle": [oracle] + [copy.deepcopy(oracle) for _ in range(args.copies - 1)],
        }
        if not args.no_aa:
            sides["ours_aa"] = [copy.deepcopy(ours) for _ in range(args.copies)]

        def runs(new):
            return {
                side: common.cycle([generate(m, new, outputs.get(side) if new == n else None) for m in models])
                for side, models in sides.items()
            }

        timing = dict(
            repeats=args.repeats,
            warmup=args.warmup,
            min_sample_s=args.min_sample,
            clock=args.clock,
            calls_multiple=args.copies,
        )
        decode_times = common.interleaved(runs(n), **timing)
        ttft_times = common.interleaved(runs(1), **timing)
        same = all(torch.equal(a, b) for a, b in zip(outputs["ours"], outputs["oracle"]))
        new_tokens = outputs["ours"][-1].shape[1] - ids.shape[1]
        decode = common.compare(decode_times, "ours", "oracle", batch * n)
        ttft = common.compare(ttft_times, "ours", "oracle", 1)  # "per second" of TTFT = 1 / TTFT
        aa = (
            {}
            if args.no_aa
            else {
                "tokens_per_s": common.ratio_spread(decode_times, "ours_aa", "ours"),
                "ttft": common.ratio_spread(ttft_times, "ours_aa", "ours"),
            }
        )
        sides.clear()  # frees the model copies

        def decode_only(side):  # tokens after the first, from the medians of both measurements
            gap = common.median(decode_times[side]) - common.median(ttft_times[side])
            return round(batch * (n - 1) / gap, 1) if gap > 0 and n > 1 else None

        fig = {
            "prompt_tokens": args.prompt,
            "new_tokens": new_tokens,
            "left_padded": batch > 1,
            "outputs_identical": same,
            "clock": args.clock,
            "ours_tokens_per_s": decode["ours_per_s"],
            "oracle_tokens_per_s": decode["theirs_per_s"],
            "ours_decode_only_tokens_per_s": decode_only("ours"),
            "oracle_decode_only_tokens_per_s": decode_only("oracle"),
            "ours_ttft_ms": round(1000 / ttft["ours_per_s"], 3),
            "oracle_ttft_ms": round(1000 / ttft["theirs_per_s"], 3),
            "tokens_per_s_ratio": decode["ratio"]["median"],
            "ttft_ratio_oracle_over_ours": ttft["ratio"]["median"],
            "decode": decode,
            "ttft": ttft,
            "aa_control_ours_copy_vs_ours": aa or None,
            "copies": args.copies,
        }
        result["figures"][shape]["batches"][str(batch)] = fig
        for label, comparison in (("tokens_per_s", decode), ("ttft", ttft)):
            spread = comparison["ratio"]
            metric = (
                "ours/oracle greedy tokens/s"
                if label == "tokens_per_s"
                else "oracle/ours time to first token (>1: ours faster)"
            ) + f" ({args.clock} clock)"
            met = result.target(f"{shape}_batch{batch}_{label}", metric, TARGET, spread["median"])
            if met is False and common.within_noise(spread, TARGET):
                result.note(
                    f"{shape} batch {batch} {label}: missed at {spread['median']} but {TARGET} lies inside the "
                    f"interquartile range of the per-round ratios [{spread['q1']}, {spread['q3']}]: "
                    "not distinguishable from noise at this repeat count"
                )
            if met is False and aa and common.aa_verdict(spread["median"], aa[label], TARGET):
                result.note(f"{shape} batch {batch} {label}: " + common.aa_verdict(spread["median"], aa[label], TARGET))
        if any(t["target_met"] is False for t in result["targets"][-2:]) or args.profile:
            fig["profile"] = common.profile_pair(generate(ours, n), generate(oracle, n), steps=2)
            result.note(f"{shape} batch {batch}: " + common.explain_profile(fig["profile"]))
        if not same:
            result.note(f"{shape} batch {batch}: ours and the oracle generated different tokens")
        rows.append(
            {
                "shape": shape,
                "batch": batch,
                "ours tok/s": fig["ours_tokens_per_s"],
                "oracle tok/s": fig["oracle_tokens_per_s"],
                "ratio": fig["tokens_per_s_ratio"],
                "(wall)": decode["ratio_wall"]["median"],
                "ours TTFT ms": fig["ours_ttft_ms"],
                "oracle TTFT ms": fig["oracle_ttft_ms"],
                "TTFT ratio": fig["ttft_ratio_oracle_over_ours"],
                "(wall) ": ttft["ratio_wall"]["median"],
                "A/A tok/s": aa["tokens_per_s"]["median"] if aa else None,
                "A/A TTFT": aa["ttft"]["median"] if aa else None,
                "same tokens": same,
            }
        )
    return rows


@common.restores_globals
def main(argv=None) -> dict:
    args = parse_args(argv)
    result = common.start(args, "generate", DESCRIPTION)
    import torch

    rows = [row for shape in args.shapes for row in measure_shape(shape, args, result)]
    result.note(
        f"clock {args.clock}, torch threads {torch.get_num_threads()}; ratios are per-round paired medians "
        "(ABBA order); absolute figures are context only on a shared machine"
    )
    return common.finish(result, args, rows)


if __name__ == "__main__":
    main()
