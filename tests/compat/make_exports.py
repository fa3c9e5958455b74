"""Build the export compatibility matrix: tiny MiniMind / MiniMind-V models exported in every
format, each with what the training environment computes from it.

    python tests/compat/make_exports.py OUT

writes OUT/<case>/ (the exported folder), OUT/<case>.expected.pt (inputs, logits, greedy
tokens, rendered chat templates) and OUT/images/*.png. `check_exports.py` then loads every
folder in another environment (transformers 4.57, the lowest and the newest 5.x) where
minimind_hf is not installed, and compares.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from PIL import Image

import minimind_hf
from minimind_hf.export import export_model
from minimind_hf.tokenizer import load_tokenizer
from minimind_hf.vlm import build_vlm

sys.path.insert(0, str(Path(__file__).resolve().parent))  # this folder, however the script is started
from conversations import CONVERSATIONS  # noqa: E402

VOCAB = 6400  # the shipped tokenizer's
TEXT = dict(
    vocab_size=VOCAB,
    hidden_size=64,
    intermediate_size=96,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=512,
)
# case -> (export format, config overrides). Remote code covers every model feature;
# native formats cover each stock class.
TEXT_CASES = {
    "remote-code-dense": ("remote-code", dict()),
    "remote-code-qknorm-yarn": (
        "remote-code",
        dict(qk_norm=True, inference_rope_scaling=True, max_position_embeddings=32768),
    ),
    "remote-code-moe": (
        "remote-code",
        dict(qk_norm=True, use_moe=True, num_experts=4, num_experts_per_tok=2, num_shared_experts=1),
    ),
    "llama": ("llama", dict()),
    "qwen3": ("qwen3", dict(qk_norm=True)),
    "qwen3-moe": ("qwen3-moe", dict(qk_norm=True, use_moe=True, num_experts=4, num_experts_per_tok=2)),
}
VLM_CASE = "remote-code-vlm"
VLM_PROMPTS = ["<image>\nWhat colour is this?", "Compare <image> with <image>."]
GREEDY_TOKENS = 8


@torch.no_grad()
def randomize(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Non-trivial weights everywhere (norms included), so a wrong computation shows in the logits."""
    gen = torch.Generator().manual_seed(seed)
    for name, param in model.named_parameters():
        noise = torch.randn(param.shape, generator=gen)
        param.copy_(1.0 + 0.1 * noise if "norm" in name else 0.08 * noise)
    return model.eval()


def rendered_templates(tokenizer) -> dict[str, str]:
    out = {}
    for name, messages in CONVERSATIONS.items():
        out[name] = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        out[name + "+thinking"] = tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True, enable_thinking=True
        )
    return out


def text_expectations(model, tokenizer) -> dict:
    ids = torch.randint(0, VOCAB, (2, 11), generator=torch.Generator().manual_seed(5))
    prompt = tokenizer.apply_chat_template(
        CONVERSATIONS["single"], add_generation_prompt=True, return_tensors="pt", return_dict=True
    )["input_ids"]
    with torch.no_grad():
        logits = model(ids).logits
    generated = model.generate(prompt, max_new_tokens=GREEDY_TOKENS, do_sample=False, pad_token_id=0)
    return {
        "kind": "text",
        "ids": ids,
        "logits": logits,
        "prompt_ids": prompt,
        "generated": generated,
        "templates": rendered_templates(tokenizer),
    }


def write_images(folder: Path) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    noise = (torch.rand(40, 40, 3, generator=torch.Generator().manual_seed(0)) * 255).to(torch.uint8).numpy()
    pictures = {
        "red.png": Image.new("RGB", (40, 40), "red"),
        "blue.png": Image.new("RGB", (48, 40), "blue"),
        "noise.png": Image.fromarray(noise),
    }
    for name, picture in pictures.items():
        picture.save(folder / name)
    return list(pictures)


def vlm_expectations(model, processor, image_folder: Path, image_names: list[str]) -> dict:
    images = [Image.open(image_folder / name) for name in image_names]
    inputs = processor(text=VLM_PROMPTS, images=images, padding=True, padding_side="left", return_tensors="pt")
    with torch.no_grad():
        logits = model(**inputs).logits
    generated = model.generate(**inputs, max_new_tokens=GREEDY_TOKENS, do_sample=False, pad_token_id=0)
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Describe."}]}]
    templates = {"image-message": processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)}
    return {
        "kind": "vlm",
        "prompts": VLM_PROMPTS,
        "images": image_names,
        "input_ids": inputs["input_ids"],
        "attention_mask": inputs["attention_mask"],
        "pixel_values": inputs["pixel_values"],
        "logits": logits,
        "generated": generated,
        "templates": templates,
    }


def build(out: Path) -> list[str]:
    tokenizer = load_tokenizer()
    cases = []
    for seed, (case, (fmt, overrides)) in enumerate(TEXT_CASES.items()):
        src = out / "sources" / case
        torch.manual_seed(seed)
        model = randomize(minimind_hf.MiniMindForCausalLM(minimind_hf.MiniMindConfig(**{**TEXT, **overrides})), seed)
        model.generation_config.eos_token_id = tokenizer.eos_token_id
        model.save_pretrained(src)
        tokenizer.save_pretrained(src)
        export_model(src, out / case, fmt=fmt)
        torch.save({"format": fmt, **text_expectations(model, tokenizer)}, out / f"{case}.expected.pt")
        cases.append(case)

    src = out / "sources" / VLM_CASE
    llm = randomize(minimind_hf.MiniMindForCausalLM(minimind_hf.MiniMindConfig(**TEXT)), 10)
    model, processor = build_vlm(llm, tokenizer)
    randomize(model.projector, 11)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(src)
    processor.save_pretrained(src)
    export_model(src, out / VLM_CASE)
    image_names = write_images(out / "images")
    torch.save(
        {"format": "remote-code", **vlm_expectations(model.eval(), processor, out / "images", image_names)},
        out / f"{VLM_CASE}.expected.pt",
    )
    cases.append(VLM_CASE)
    (out / "cases.json").write_text(json.dumps(cases, indent=1) + "\n")
    return cases


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="an empty or new folder")
    args = parser.parse_args(argv)
    if args.out.exists() and any(args.out.iterdir()):
        print(f"error: {args.out} is not empty", file=sys.stderr)
        return 2
    cases = build(args.out)
    print(f"wrote {len(cases)} export cases to {args.out}: {', '.join(cases)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
