"""Model speed vs the oracles: forward+backward tokens/s of MiniMind vs transformers' own class.

Two shapes: a dense MiniMind without q/k norm against ``LlamaForCausalLM`` (MiniMind2 layout:
8 q / 2 kv heads) and one with q/k norm against ``Qwen3ForCausalLM`` (MiniMind-3 layout:
8 q / 4 kv heads, rope_theta 1e6). The oracle is built from our ``state_dict`` with
``minimind_hf.export.native`` (the same weights, bit for bit) and both run the same batch: one
training step = ``model(input_ids, labels=labels).loss.backward()`` with SDPA attention,
gradients cleared in between (no optimizer: it is identical for both).

Timing: warm-up rounds, then ``--repeats`` rounds that run ours and the oracle one after the
other, alternating which goes first; each sample is enough back-to-back steps to last
``--min-sample`` seconds. The ratio is the median over rounds of oracle_time / our_time (>1:
ours faster); tokens/s are from the median times. Clock: with one CPU thread (the default,
``--threads``) the process CPU time, which leaves out time spent waiting for a core on a shared
machine; wall-clock figures are recorded next to it (``--clock wall`` to use them).
When a target is missed (or with ``--profile``) both sides are profiled (torch.profiler op
times and counts, module calls) and the finding goes into the JSON ``notes``.
Target: ours >= 0.95x the oracle. Default sizes use the published widths with fewer
layers so a round takes about a second on 2 CPU cores; ``--layers 8`` gives the full models.

    python -m benchmarks.bench_model [--quick] [--repeats 7] [--batch 2] [--seq 256]
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import common  # noqa: E402

DESCRIPTION = "forward+backward tokens/s: MiniMind vs the Llama / Qwen3 oracle, identical weights"
TARGET = 0.95

# name -> (preset, oracle class name)
SHAPES = {"llama": ("minimind2-small", "LlamaForCausalLM"), "qwen3": ("minimind-3", "Qwen3ForCausalLM")}
QUICK_SHAPE = dict(hidden_size=64, num_attention_heads=4, intermediate_size=192, num_hidden_layers=2)


def parse_args(argv=None):
    parser = common.base_parser("model", __doc__)
    parser.add_argument("--shapes", nargs="+", choices=list(SHAPES), default=list(SHAPES))
    parser.add_argument("--layers", type=int, default=None, help="decoder layers (default 2; quick 2)")
    parser.add_argument("--batch", type=int, default=None, help="rows per step (default 2; quick 2)")
    parser.add_argument("--seq", type=int, default=None, help="tokens per row (default 256; quick 64)")
    rounds = common.round_options(parser, repeats=(7, 2), min_sample=(0.3, 0.02), warmup=(2, 1))
    parser.add_argument("--attn", default="sdpa", choices=["sdpa", "eager"])
    parser.add_argument("--profile", action="store_true", help="profile both sides even when the target is met")
    parser.add_argument(
        "--copies",
        type=int,
        default=None,
        help="separately allocated copies of each model, used in turn (default 2; quick 1): "
        "where a model's weights land in memory changes its speed by a few percent",
    )
    parser.add_argument("--no-aa", action="store_true", help="skip the A/A control (ours vs other copies of ours)")
    args = rounds(parser.parse_args(argv))
    quick = args.quick
    args.layers = args.layers or 2
    args.batch = args.batch or 2
    args.seq = args.seq or (64 if quick else 256)
    args.copies = args.copies or (1 if quick else 2)
    return args


def build_pair(shape: str, args):
    import torch

    from minimind_hf import preset_config

    preset, _ = SHAPES[shape]
    overrides = dict(num_hidden_layers=args.layers, max_position_embeddings=max(1024, args.seq))
    if args.quick:
        overrides.update(QUICK_SHAPE, num_key_value_heads=2)
    config = preset_config(preset, **overrides)
    ours = common.fresh_model(config, seed=args.seed, attn=args.attn).train()
    oracle = common.oracle_for(ours, args.attn).train()
    gen = torch.Generator().manual_seed(args.seed)
    ids = torch.randint(0, config.vocab_size, (args.batch, args.seq), generator=gen)
    with torch.no_grad():  # same weights -> same loss: a cheap guard that the pair is really identical
        ours.eval(), oracle.eval()
        diff = (ours(ids, labels=ids).loss - oracle(ids, labels=ids).loss).abs().item()
        ours.train(), oracle.train()
    return config, ours, oracle, ids, diff


def train_step(model, ids):
    def step():
        model.zero_grad(set_to_none=True)
        model(input_ids=ids, labels=ids).loss.backward()

    return step


def candidates(ours, oracle, ids, args) -> dict:
    """ours / oracle (and the A/A control ours_aa), each cycling over ``--copies`` allocations."""
    import copy

    def copies(model, n):
        return [model] + [copy.deepcopy(model) for _ in range(n - 1)]

    runs = {
        "ours": common.cycle([train_step(m, ids) for m in copies(ours, args.copies)]),
        "oracle": common.cycle([train_step(m, ids) for m in copies(oracle, args.copies)]),
    }
    if not args.no_aa:
        runs["ours_aa"] = common.cycle([train_step(copy.deepcopy(ours), ids) for _ in range(args.copies)])
    return runs


def measure_shape(shape: str, args, result) -> dict:
    """One shape, ours vs its oracle: figures, the target and notes go into ``result``; returns the
    table row."""
    config, ours, oracle, ids, loss_diff = build_pair(shape, args)
    tokens = ids.numel()
    times = common.interleaved(
        candidates(ours, oracle, ids, args),
        repeats=args.repeats,
        warmup=args.warmup,
        min_sample_s=args.min_sample,
        clock=args.clock,
        calls_multiple=args.copies,
    )
    comparison = common.compare(times, "ours", "oracle", tokens)
    aa = None if args.no_aa else common.ratio_spread(times, "ours_aa", "ours")
    spread = comparison["ratio"]
    ratio = spread["median"]
    figures = {
        "preset": SHAPES[shape][0],
        "oracle_class": SHAPES[shape][1],
        "hidden_size": config.hidden_size,
        "layers": config.num_hidden_layers,
        "heads": f"{config.num_attention_heads}/{config.num_key_value_heads}",
        "qk_norm": config.qk_norm,
        "parameters": common.count_parameters(ours),
        "tokens_per_step": tokens,
        "loss_abs_diff": loss_diff,
        "ours_tokens_per_s": comparison["ours_per_s"],
        "oracle_tokens_per_s": comparison["theirs_per_s"],
        "speed_ratio_ours_vs_oracle": ratio,
        "comparison": comparison,
        "aa_control_ours_copy_vs_ours": aa,
        "copies": args.copies,
    }
    result["figures"][shape] = figures
    met = result.target(
        f"{shape}_fwd_bwd",
        f"ours/{SHAPES[shape][1]} fwd+bwd tokens/s ({args.clock} clock, paired median)",
        TARGET,
        ratio,
    )
    if met is False and common.within_noise(spread, TARGET):
        result.note(
            f"{shape}: missed at {ratio} but {TARGET} lies inside the interquartile range of the per-round "
            f"ratios [{spread['q1']}, {spread['q3']}]: not distinguishable from noise at this repeat count"
        )
    if met is False and aa and common.aa_verdict(ratio, aa, TARGET):
        result.note(f"{shape}: " + common.aa_verdict(ratio, aa, TARGET))
    if met is False or args.profile:
        figures["profile"] = common.profile_pair(train_step(ours, ids), train_step(oracle, ids))
        result.note(f"{shape}: " + common.explain_profile(figures["profile"]))
    return {
        "shape": shape,
        "oracle": SHAPES[shape][1],
        "tokens/step": tokens,
        f"ours tok/{args.clock}-s": figures["ours_tokens_per_s"],
        f"oracle tok/{args.clock}-s": figures["oracle_tokens_per_s"],
        "ratio": ratio,
        "ratio (wall)": comparison["ratio_wall"]["median"],
        "A/A": aa["median"] if aa else None,
        "loss diff": loss_diff,
    }


@common.restores_globals
def main(argv=None) -> dict:
    args = parse_args(argv)
    result = common.start(args, "model", DESCRIPTION)
    import torch

    rows = [measure_shape(shape, args, result) for shape in args.shapes]
    result.note(
        f"torch threads {torch.get_num_threads()}, clock {args.clock}; ratios are paired per round (ABBA "
        "order); absolute tokens/s are context only on a shared machine"
    )
    return common.finish(result, args, rows)


if __name__ == "__main__":
    main()
