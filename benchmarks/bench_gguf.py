"""What the GGUF export buys on a CPU: greedy tokens/s of llama.cpp (through llama-cpp-python)
on the f16 and q8_0 GGUF files of a model vs transformers' ``generate`` on the same model.

The model is a randomly initialised ``minimind2-small`` (26M parameters: speed does not depend
on the weights' values), exported with ``scripts/export.py --format gguf``. Every side decodes
the same chat prompt for exactly ``--new-tokens`` greedy tokens (transformers with
``min_new_tokens``, llama.cpp ignoring end-of-turn), KV cache on, batch 1, prefill included
(as a user sees it). transformers runs in float32 with ``--threads`` torch threads, llama.cpp
with as many threads. Rounds are interleaved (ABBA); ratios are medians of per-round
transformers_time / llama_time (>1: llama.cpp faster). Target: >= 1.0x for both files.
Whether each file's greedy tokens equal transformers' is recorded (random weights have close
calls, so f16 / q8_0 may differ; tests/test_gguf.py checks equality on a trained model).

    python -m benchmarks.bench_gguf [--quick] [--new-tokens 64] [--threads 1]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import common  # noqa: E402

DESCRIPTION = "greedy tokens/s: llama.cpp on the f16 / q8_0 GGUF export vs transformers generate"
TARGET = 1.0
QUANTS = ("f16", "q8_0")
QUESTION = "Explain in a few sentences why small language models are useful on a laptop."


def parse_args(argv=None):
    parser = common.base_parser("gguf", __doc__)
    parser.add_argument("--new-tokens", type=int, default=None, help="tokens generated (default 64; quick 8)")
    parser.add_argument("--repeats", type=int, default=None, help="timed rounds (default 5; quick 2)")
    args = parser.parse_args(argv)
    args.new_tokens = args.new_tokens or (8 if args.quick else 64)
    args.repeats = args.repeats or (2 if args.quick else 5)
    return args


def export_model_folder(folder: Path, quick: bool, seed: int) -> Path:
    """A random-weight MiniMind saved with the shipped tokenizer, as training would leave it."""
    from minimind_hf import preset_config
    from minimind_hf.tokenizer import load_tokenizer
    from minimind_hf.utils import set_generation_defaults

    overrides = (
        dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, intermediate_size=128)
        if quick
        else {}
    )
    model = common.fresh_model(preset_config("minimind2-small", **overrides), seed=seed).eval()
    tokenizer = load_tokenizer()
    set_generation_defaults(model, tokenizer)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@common.restores_globals
def main(argv=None) -> dict:
    args = parse_args(argv)
    result = common.start(args, "gguf", DESCRIPTION)
    try:
        import llama_cpp
    except ImportError:
        result.not_measured("llama_cpp is not installed (pip install -e '.[gguf]')").write(args.out)
        print(result.summary())
        return result
    import time

    import torch
    from transformers import AutoModelForCausalLM

    from minimind_hf.export import export_model
    from minimind_hf.tokenizer import load_tokenizer

    n, threads = args.new_tokens, torch.get_num_threads()
    with tempfile.TemporaryDirectory() as tmp:
        src = export_model_folder(Path(tmp) / "model", args.quick, args.seed)
        tokenizer = load_tokenizer(src)
        ids = tokenizer.encode(
            tokenizer.apply_chat_template(
                [{"role": "user", "content": QUESTION}], add_generation_prompt=True, tokenize=False
            )
        )
        model = AutoModelForCausalLM.from_pretrained(src).eval()
        llms, convert_s, sizes = {}, {}, {}
        for quant in QUANTS:
            start = time.perf_counter()
            out = export_model(src, Path(tmp) / quant, fmt="gguf", quant=quant)
            convert_s[quant] = round(time.perf_counter() - start, 2)
            (path,) = out.glob("*.gguf")
            sizes[quant] = path.stat().st_size
            llms[quant] = llama_cpp.Llama(
                model_path=str(path), n_ctx=len(ids) + n + 8, n_threads=threads, n_threads_batch=threads, verbose=False
            )
        outputs = {}

        def transformers_run():
            with torch.inference_mode():
                tokens = model.generate(
                    torch.tensor([ids]),
                    max_new_tokens=n,
                    min_new_tokens=n,
                    do_sample=False,
                    pad_token_id=tokenizer.pad_token_id,
                )
            outputs["transformers"] = tokens[0, len(ids) :].tolist()

        def llama_run(quant):
            def run():
                tokens = []
                llms[quant].reset()  # else the next call would reuse the cached prompt: prefill is part of the run
                for token in llms[quant].generate(ids, temp=0.0, reset=True):  # greedy; EOS does not stop it
                    tokens.append(token)
                    if len(tokens) == n:
                        break
                outputs[quant] = tokens

            return run

        runs = {"transformers": transformers_run, **{quant: llama_run(quant) for quant in QUANTS}}
        times = common.interleaved(runs, repeats=args.repeats, warmup=1, clock=args.clock)
        for llm in llms.values():
            llm.close()
    rows = [
        {
            "engine": "transformers (float32)",
            "tok/s": round(n / common.median(times["transformers"]), 1),
            "ratio": 1.0,
            "(wall)": 1.0,
            "file MB": None,
            "convert s": None,
            "same tokens": True,
        }
    ]
    for quant in QUANTS:
        comparison = common.compare(times, quant, "transformers", n)
        same = outputs[quant] == outputs["transformers"]
        result["figures"][quant] = {
            "llama_tokens_per_s": comparison["ours_per_s"],
            "transformers_tokens_per_s": comparison["theirs_per_s"],
            "ratio_transformers_time_over_llama": comparison["ratio"]["median"],
            "comparison": comparison,
            "gguf_bytes": sizes[quant],
            "convert_s": convert_s[quant],
            "same_tokens_as_transformers": same,
        }
        result.target(
            f"llama_cpp_{quant}_tokens_per_s",
            f"llama.cpp {quant} / transformers greedy tokens/s ({args.clock} clock)",
            TARGET,
            comparison["ratio"]["median"],
        )
        rows.append(
            {
                "engine": f"llama.cpp {quant}",
                "tok/s": comparison["ours_per_s"],
                "ratio": comparison["ratio"]["median"],
                "(wall)": comparison["ratio_wall"]["median"],
                "file MB": round(sizes[quant] / 2**20, 2),
                "convert s": convert_s[quant],
                "same tokens": same,
            }
        )
    result["figures"]["prompt_tokens"], result["figures"]["new_tokens"] = len(ids), n
    result.note(
        f"clock {args.clock}; torch threads = llama.cpp threads = {threads}; batch 1, prefill included; "
        "absolute figures are context only on a shared machine"
    )
    return common.finish(result, args, rows)


if __name__ == "__main__":
    main()
