"""Load every folder `make_exports.py` wrote, in this environment, and compare with what the
training environment computed: logits (max abs difference <= --atol), greedy tokens
(identical), tokenizer ids and rendered chat templates (identical strings).

    python tests/compat/check_exports.py OUT [--json results.json]

Needs only torch, transformers, tokenizers, safetensors and pillow - minimind_hf must NOT be
importable, so remote-code folders run their own copied files. Exit code 1 if any case fails.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import traceback
from pathlib import Path

import torch
import transformers
from PIL import Image
from transformers import AutoModelForCausalLM, AutoProcessor, AutoTokenizer

sys.path.insert(0, str(Path(__file__).resolve().parent))  # this folder, however the script is started
from conversations import CONVERSATIONS  # noqa: E402

GREEDY = dict(do_sample=False, pad_token_id=0)


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    if a.shape != b.shape:
        return float("inf")
    return float((a.float() - b.float()).abs().max())


def load_strictly(folder: Path, trust_remote_code: bool):
    """The model, refusing any weight left at its random initialisation or ignored in the file
    (transformers only warns; a renamed tower once loaded this way, silently random)."""
    model, info = AutoModelForCausalLM.from_pretrained(
        folder, trust_remote_code=trust_remote_code, output_loading_info=True
    )
    problems = {kind: keys for kind, keys in info.items() if kind != "error_msgs" and keys}
    if problems or info.get("error_msgs"):
        raise AssertionError(f"weights did not load one to one: { {k: list(v)[:4] for k, v in problems.items()} }")
    return model.eval()


def check_text(folder: Path, expected: dict, atol: float) -> dict:
    remote = expected["format"] == "remote-code"
    # As the model card says: transformers 5.24 loads the config (remote code) for the tokenizer too.
    tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=remote)
    model = load_strictly(folder, trust_remote_code=remote)
    if remote:
        assert type(model).__module__.startswith("transformers_modules."), "remote code did not come from the folder"
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is 2+3?"}], add_generation_prompt=True, return_tensors="pt", return_dict=True
    )["input_ids"]
    with torch.no_grad():
        logits = model(expected["ids"]).logits
    generated = model.generate(
        expected["prompt_ids"],
        max_new_tokens=expected["generated"].shape[1] - expected["prompt_ids"].shape[1],
        **GREEDY,
    )
    templates = {
        name: tokenizer.apply_chat_template(conv, tokenize=False, add_generation_prompt=True, **extra)
        for name, conv, extra in _conversations(expected["templates"])
    }
    # The everyday call: tokenizer output straight into generate() (no stray token_type_ids).
    model.generate(
        **tokenizer(["Hello", "A longer prompt"], padding=True, return_tensors="pt"), max_new_tokens=2, **GREEDY
    )
    return {
        "class": type(model).__name__,
        "tokenizer_class": type(tokenizer).__name__,
        "logits_max_diff": max_diff(logits, expected["logits"]),
        "logits_ok": max_diff(logits, expected["logits"]) <= atol,
        "prompt_ids_ok": torch.equal(prompt, expected["prompt_ids"]),
        "greedy_ok": torch.equal(generated, expected["generated"]),
        "templates_ok": templates == expected["templates"],
    }


def _conversations(templates: dict):
    """The conversations the expectations were rendered from (the same CONVERSATIONS as make_exports)."""
    for name in templates:
        base, _, variant = name.partition("+")
        yield name, CONVERSATIONS[base], ({"enable_thinking": True} if variant == "thinking" else {})


def check_vlm(folder: Path, expected: dict, atol: float, image_folder: Path) -> dict:
    processor = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
    model = load_strictly(folder, trust_remote_code=True)
    for obj in (processor, model):
        assert type(obj).__module__.startswith("transformers_modules."), f"{type(obj).__name__} is not remote code"
    images = [Image.open(image_folder / name) for name in expected["images"]]
    inputs = processor(text=expected["prompts"], images=images, padding=True, padding_side="left", return_tensors="pt")
    with torch.no_grad():
        logits = model(**inputs).logits
    generated = model.generate(
        **inputs, max_new_tokens=expected["generated"].shape[1] - expected["input_ids"].shape[1], **GREEDY
    )
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Describe."}]}]
    template = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return {
        "class": type(model).__name__,
        "tokenizer_class": type(processor.tokenizer).__name__,
        "logits_max_diff": max_diff(logits, expected["logits"]),
        "logits_ok": max_diff(logits, expected["logits"]) <= atol,
        "prompt_ids_ok": torch.equal(inputs["input_ids"], expected["input_ids"])
        and max_diff(inputs["pixel_values"], expected["pixel_values"]) <= 1e-6,
        "greedy_ok": torch.equal(generated, expected["generated"]),
        "templates_ok": template == expected["templates"]["image-message"],
    }


CHECKS = ("logits_ok", "prompt_ids_ok", "greedy_ok", "templates_ok")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="the folder make_exports.py wrote")
    parser.add_argument("--atol", type=float, default=1e-5)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    if importlib.util.find_spec("minimind_hf") is not None:
        print("error: minimind_hf is importable here; run this where it is not installed", file=sys.stderr)
        return 2
    cases = json.loads((args.out / "cases.json").read_text())
    results = {}
    for case in cases:
        expected = torch.load(args.out / f"{case}.expected.pt", weights_only=True)
        try:
            if expected["kind"] == "vlm":
                result = check_vlm(args.out / case, expected, args.atol, args.out / "images")
            else:
                result = check_text(args.out / case, expected, args.atol)
            result["ok"] = all(result[name] for name in CHECKS)
        except Exception as error:  # a case that cannot even load is a failed case, reported with the rest
            result = {"ok": False, "error": f"{type(error).__name__}: {error}", "trace": traceback.format_exc()}
        results[case] = result

    print(f"transformers {transformers.__version__}, torch {torch.__version__}")
    for case, result in results.items():
        if "error" in result:
            print(f"  FAIL {case:26s} {result['error'][:300]}")
            continue
        failed = [name for name in CHECKS if not result[name]]
        status = "ok  " if result["ok"] else "FAIL"
        print(
            f"  {status} {case:26s} {result['class']:24s} logits diff {result['logits_max_diff']:.2e}"
            + (f"  failed: {', '.join(failed)}" if failed else "")
        )
    if args.json:
        args.json.write_text(
            json.dumps(
                {"transformers": transformers.__version__, "torch": torch.__version__, "results": results}, indent=1
            )
            + "\n"
        )
    return 0 if all(r["ok"] for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
