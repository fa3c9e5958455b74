"""The README.md model card of an export: architecture table, how it was trained (from the
run and conversion records) and how to load it. It travels (Hub, colleagues), so it names
the repo or the folder, never a local path."""

from __future__ import annotations

from pathlib import Path

from ..models import MiniMindForCausalLM, MiniMindVForCausalLM
from ..utils import is_vlm
from .formats import REMOTE_CODE
from .native import NATIVE_CLASSES, native_config


def parameter_counts(model: MiniMindForCausalLM | MiniMindVForCausalLM) -> tuple[int, int]:
    """(total, active per token). Tied embeddings count once; an MoE token runs only its
    top-k routed experts. A MiniMind-V's total includes its vision tower and projector."""
    total = sum(p.numel() for p in model.parameters())
    config = getattr(model.config, "text_config", model.config)
    if not config.use_moe:
        return total, total
    expert = 3 * config.hidden_size * config.moe_intermediate_size
    idle = config.num_hidden_layers * (config.num_experts - config.num_experts_per_tok) * expert
    return total, total - idle


def model_card(model: MiniMindForCausalLM | MiniMindVForCausalLM, fmt: str, records: list[dict], location: str) -> str:
    vlm = is_vlm(model)
    config = model.config.text_config if vlm else model.config
    total, active = parameter_counts(model)
    remote = fmt == REMOTE_CODE
    if remote:
        class_name = type(model).__name__
    else:
        class_name = NATIVE_CLASSES[native_config(config, fmt).model_type].__name__
    arch = f"{class_name} ({'custom code' if remote else 'stock transformers'})"
    task = "image-text-to-text" if vlm else "text-generation"
    tags = ["minimind", "minimind-hf", task] + (["minimind-v", "vision-language"] if vlm else [])
    tags += ["custom_code"] if remote else []
    rows = [
        ("architecture", arch),
        (
            "parameters",
            f"{total / 1e6:.2f} M" + (f" ({active / 1e6:.2f} M active per token)" if config.use_moe else ""),
        ),
        ("hidden size", config.hidden_size),
        ("layers", config.num_hidden_layers),
        ("attention heads (query / key-value)", f"{config.num_attention_heads} / {config.num_key_value_heads}"),
        ("head dim", config.head_dim),
        ("FFN size", config.moe_intermediate_size if config.use_moe else config.intermediate_size),
        ("vocabulary", config.vocab_size),
        ("q/k RMSNorm", config.qk_norm),
        ("RoPE", _describe_rope(config.rope_parameters)),
        ("tied embeddings", config.tie_word_embeddings),
        ("weights dtype", str(model.dtype).replace("torch.", "")),
    ]
    if config.use_moe:
        rows.append(
            (
                "mixture of experts",
                f"{config.num_experts} routed experts, top-{config.num_experts_per_tok}, "
                f"{config.num_shared_experts} shared",
            )
        )
    if vlm:
        rows += _vision_rows(model)
        summary = (
            "A MiniMind-V vision-language model: a MiniMind language model (a small Llama/Qwen3-style "
            "decoder) reading image features from a vision tower through a projector, exported by minimind-hf."
        )
    else:
        summary = (
            "A MiniMind language model (a small Llama/Qwen3-style decoder: RMSNorm, SwiGLU, RoPE, "
            "grouped-query attention), exported by minimind-hf."
        )
    lines = [
        "---",
        "library_name: transformers",
        f"pipeline_tag: {task}",
        "tags:",
        *[f"- {tag}" for tag in tags],
        "---",
        "",
        f"# {Path(location).name or 'MiniMind'}",
        "",
        summary,
        "",
        "## Architecture",
        "",
        "| | |",
        "|---|---|",
        *[f"| {name} | {value} |" for name, value in rows],
        "",
        "## How it was trained",
        "",
        *(_describe_records(records) or ["Not recorded: the exported folder had no run_info.json."]),
        "",
        "## How to load",
        "",
        *(_vlm_loading_snippet(location) if vlm else _text_loading_snippet(location, remote)),
        "",
    ]
    lines.append(
        "Requirements: `torch` and `transformers` (4.57.x or 5.x)"
        + (", plus `pillow` for the images (the image processor's PIL path needs no torchvision)." if vlm else ".")
    )
    if vlm:
        lines.append(
            "`trust_remote_code=True` runs `modeling_minimind_v.py` (with `modeling_minimind.py`) and "
            "`processing_minimind_v.py` from this folder; read them first if you do not trust the source. "
            "Mark each image in text with `<image>` (the processor expands it to the placeholder tokens) "
            'or use `{"type": "image"}` content parts with the chat template.'
        )
    elif remote:
        lines.append(
            "`trust_remote_code=True` runs `modeling_minimind.py` from this folder; "
            "read it first if you do not trust the source."
        )
    else:
        lines.append(
            f"A plain `{class_name}`: no remote code. It also runs with `vllm serve`, "
            "and converts to GGUF with llama.cpp's `convert_hf_to_gguf.py`."
        )
    lines.append("The chat template (ChatML with an optional `<think>` block) ships in `chat_template.jinja`.")
    return "\n".join(lines) + "\n"


def _text_loading_snippet(location: str, remote: bool) -> list[str]:
    return [
        "```python",
        "from transformers import AutoModelForCausalLM, AutoTokenizer",
        "",
        f'tokenizer = AutoTokenizer.from_pretrained("{location}"' + (", trust_remote_code=True)" if remote else ")"),
        f'model = AutoModelForCausalLM.from_pretrained("{location}"' + (", trust_remote_code=True)" if remote else ")"),
        'messages = [{"role": "user", "content": "Hello!"}]',
        'inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)',  # noqa: E501
        "output = model.generate(**inputs, max_new_tokens=64)",
        'print(tokenizer.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True))',
        "```",
    ]


def _vlm_loading_snippet(location: str) -> list[str]:
    return [
        "```python",
        "from PIL import Image",
        "from transformers import AutoModelForCausalLM, AutoProcessor",
        "",
        f'processor = AutoProcessor.from_pretrained("{location}", trust_remote_code=True)',
        f'model = AutoModelForCausalLM.from_pretrained("{location}", trust_remote_code=True)',
        'messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is in this picture?"}]}]',  # noqa: E501
        "prompt = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)",
        'inputs = processor(text=prompt, images=[Image.open("photo.jpg")], return_tensors="pt")',
        "output = model.generate(**inputs, max_new_tokens=64)",
        'print(processor.tokenizer.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True))',
        "```",
    ]


def _vision_rows(model: MiniMindVForCausalLM) -> list[tuple[str, object]]:
    config, vision = model.config, model.config.vision_config
    tower = sum(p.numel() for p in model.vision_tower.parameters())
    projector = sum(p.numel() for p in model.projector.parameters())
    origin = f", from `{_public_name(config.vision_tower_name_or_path)}`" if config.vision_tower_name_or_path else ""
    grid = config.patch_grid
    kind = "linear" if config.projector_type == "linear" else "LayerNorm-MLP (LayerNorm, Linear, GELU, Linear)"
    reduction = {
        "none": "",
        "pixel_shuffle": f" after {config.reduction_factor}x{config.reduction_factor} pixel shuffle",
        "avg_pool": f" after {config.reduction_factor}x{config.reduction_factor} average pooling",
    }
    return [
        (
            "vision tower",
            f"{vision.model_type}, {tower / 1e6:.2f} M parameters ({vision.num_hidden_layers} layers, "
            f"hidden {vision.hidden_size}){origin}; frozen: {config.freeze_vision_tower}",
        ),
        (
            "image input",
            f"{vision.image_size}x{vision.image_size} pixels, {vision.patch_size}px patches ({grid}x{grid} grid)",
        ),
        (
            "image tokens",
            f"{config.image_seq_length} `{config.image_token}` placeholders per image "
            f"(token id {config.image_token_id})",
        ),
        ("projector", f"{kind}{reduction[config.token_reduction]}, {projector / 1e6:.2f} M parameters"),
    ]


def _public_name(name_or_path) -> str:
    """A hub id as it is; a local folder by its name only (the card must not leak local paths)."""
    text = str(name_or_path)
    return Path(text).name if Path(text).is_absolute() or Path(text).exists() or text.startswith((".", "~")) else text


def _describe_rope(rope: dict) -> str:
    kind = rope.get("rope_type", "default")
    text = f"theta {rope['rope_theta']:g}"
    return text if kind == "default" else f"{text}, {kind} (factor {rope.get('factor')})"


def _describe_records(records: list[dict]) -> list[str]:
    lines = []
    for record in records:
        if "converted_from" in record:
            lines.append(
                f"- imported from an original MiniMind checkpoint (generation {record.get('generation')}): "
                f"`{Path(record['converted_from']).name}`"
            )
            if record.get("vlm_layout"):
                lines.append(
                    f"  - MiniMind-V layout: {record.get('vlm_layout_name', record['vlm_layout'])}; vision "
                    f"tower from `{_public_name(record.get('vision_tower'))}`"
                )
            continue
        loss = ""
        if record.get("train_loss_first") is not None:
            loss = f", training loss {record['train_loss_first']:.4g} -> {record['train_loss_last']:.4g}"
        processes = record.get("world_size", 1)
        lines.append(
            f"- stage `{record.get('stage', '?')}`: {record.get('global_step', '?')} steps"
            f" on {processes} process{'es' if processes != 1 else ''}{loss}"
        )
        for name, stats in (record.get("data") or {}).get("files", {}).items():
            skipped = sum(stats.get("skipped", {}).values())
            name = Path(name).name  # the file, not where it sat on the training machine
            lines.append(
                f"  - data `{name}`: {stats.get('kept')} of {stats.get('read')} records used"
                + (f" ({skipped} skipped)" if skipped else "")
            )
    return lines
