"""Byte-level BPE tokenizer and ChatML chat template for MiniMind / MiniMind-V.

The BPE algorithm is the `tokenizers` library's; this module only fixes the special
tokens, the training settings and the chat template, and wraps the result in a
`PreTrainedTokenizerFast` so that `AutoTokenizer.from_pretrained(folder)` loads it.

Chat template conventions (see CHAT_TEMPLATE):

- ChatML turns: `<|im_start|>{role}\\n{content}<|im_end|>\\n`. No default system prompt.
- `tools=[...]` are listed as JSON in the system turn; the model answers with
  `<tool_call>\\n{"name": ..., "arguments": ...}\\n</tool_call>` (arguments may be given as a
  dict or as a JSON string, as in MiniMind data). Consecutive `tool` messages are grouped
  into ONE user turn of `<tool_response>\\n...\\n</tool_response>` blocks (Qwen style).
- Every assistant turn carries a think block. With reasoning (`reasoning_content`, or a
  `<think>...</think>` prefix inside `content`) it is `<think>\\n{reasoning}\\n</think>\\n\\n`
  and belongs to the supervised span. Without reasoning it is the empty block
  `<think>\\n\\n</think>\\n\\n`, which is exactly the thinking-off generation prompt, so it
  stays on the prompt side. Hence `render(messages[:-1], add_generation_prompt=True)` is
  a prefix of `render(messages)` and the supervised span starts where the prompt ends.
  Reasoning is rendered in every turn that has it (history included, unlike Qwen3).
- Thinking switch: `open_thinking` (MiniMind's name) or its alias `enable_thinking`;
  default off. With `add_generation_prompt=True` the prompt ends
  `<|im_start|>assistant\\n<think>\\n\\n</think>\\n\\n` (off) or `<|im_start|>assistant\\n` (on).
- `{% generation %}` wraps each assistant turn's supervised span: reasoning block,
  content, tool calls and the closing `<|im_end|>`; never the `<|im_start|>assistant\\n`
  header, the empty think block, or the newline after `<|im_end|>`.
  transformers maps that character span to tokens by offsets, so a token straddling its
  start would be ambiguous. It cannot happen here: the span starts after a "\\n" (always its
  own token, see the pre-tokenizer) or with an added token (`<think>`, `<tool_call>`), and
  ends with the `<|im_end|>` special token. Leading newlines of a reply are dropped.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerFast

PAD_TOKEN = UNK_TOKEN = "<|endoftext|>"
BOS_TOKEN = "<|im_start|>"
EOS_TOKEN = "<|im_end|>"
IMAGE_TOKEN = "<|image_pad|>"
VISION_START_TOKEN = "<|vision_start|>"
VISION_END_TOKEN = "<|vision_end|>"
THINK_START, THINK_END = "<think>", "</think>"
TOOL_CALL_START, TOOL_CALL_END = "<tool_call>", "</tool_call>"
TOOL_RESPONSE_START, TOOL_RESPONSE_END = "<tool_response>", "</tool_response>"
NUM_RESERVED_TOKENS = 4

# The order fixes the ids (0 = pad/unk, 1 = bos, 2 = eos, ...): never reorder, only use the reserved slots.
SPECIAL_TOKENS = [
    PAD_TOKEN,
    BOS_TOKEN,
    EOS_TOKEN,
    IMAGE_TOKEN,
    VISION_START_TOKEN,
    VISION_END_TOKEN,
    THINK_START,
    THINK_END,
    TOOL_CALL_START,
    TOOL_CALL_END,
    TOOL_RESPONSE_START,
    TOOL_RESPONSE_END,
] + [f"<|reserved_{i}|>" for i in range(NUM_RESERVED_TOKENS)]

# How a reply splits into reasoning / content / tool calls, in transformers' `response_template`
# form (`tokenizer.parse_response`, which TRL's tool loop calls): the ChatML + Qwen3 layout our
# template writes, so it is the same parse as minimind_hf.parsing's.
RESPONSE_TEMPLATE = {
    "defaults": {"role": "assistant"},
    "start_anchor": f"{BOS_TOKEN}assistant\n",
    "fields": {
        "reasoning_content": {"open": THINK_START, "close_pattern": r"</think>\s*", "content": "text"},
        "tool_calls": {
            "open": TOOL_CALL_START,
            "close_pattern": r"</tool_call>\s*",
            "repeats": True,
            "content": "json",
            "transform": {"type": "function", "function": "{content}"},
        },
        "content": {"close_pattern": r"<\|im_end\|>\s*", "content": "text"},
    },
}

# Never split, but not "special": decode(skip_special_tokens=True) keeps them, so the
# reasoning and tool calls of a generated reply can still be parsed (as Qwen3 does).
TEXT_MARKUP_TOKENS = [THINK_START, THINK_END, TOOL_CALL_START, TOOL_CALL_END, TOOL_RESPONSE_START, TOOL_RESPONSE_END]

MODEL_MAX_LENGTH = 32768

CHAT_TEMPLATE = r"""{#- minimind-hf ChatML template; conventions are documented in minimind_hf/tokenizer.py -#}
{%- macro render_content(content) -%}
    {%- if content is string -%}
        {{- content -}}
    {%- elif content is mapping -%}
        {{- content | tojson -}}
    {%- elif content is iterable -%}
        {#- list of blocks: text is kept, each image becomes one placeholder for the processor to expand -#}
        {%- for block in content -%}
            {%- if block.type == 'image' or block.type == 'image_url' -%}
                {{- '<|vision_start|><|image_pad|><|vision_end|>' -}}
            {%- elif block.text is defined -%}
                {{- block.text -}}
            {%- endif -%}
        {%- endfor -%}
    {%- endif -%}
{%- endmacro -%}
{%- if open_thinking is defined and open_thinking is not none -%}
    {%- set thinking = open_thinking -%}
{%- elif enable_thinking is defined and enable_thinking is not none -%}
    {%- set thinking = enable_thinking -%}
{%- else -%}
    {%- set thinking = false -%}
{%- endif -%}
{%- set has_system = messages and messages[0].role == 'system' -%}
{%- if tools -%}
    {{- '<|im_start|>system\n' -}}
    {%- if has_system -%}
        {{- render_content(messages[0].content) + '\n\n' -}}
    {%- endif -%}
    {{- '# Tools\n\nYou can call the functions whose JSON signatures are listed inside <tools></tools>:\n<tools>' -}}
    {%- for tool in tools -%}
        {{- '\n' + (tool | tojson) -}}
    {%- endfor -%}
    {{- '\n</tools>\n\nTo call a function, write one JSON object per call inside <tool_call></tool_call> tags:\n' -}}
    {{- '<tool_call>\n{"name": <function-name>, "arguments": <arguments-json-object>}\n</tool_call><|im_end|>\n' -}}
{%- elif has_system -%}
    {{- '<|im_start|>system\n' + render_content(messages[0].content) + '<|im_end|>\n' -}}
{%- endif -%}
{%- for message in messages -%}
    {%- if message.role == 'system' -%}
        {%- if not loop.first -%}
            {{- '<|im_start|>system\n' + render_content(message.content) + '<|im_end|>\n' -}}
        {%- endif -%}
    {%- elif message.role == 'user' -%}
        {{- '<|im_start|>user\n' + render_content(message.content) + '<|im_end|>\n' -}}
    {%- elif message.role == 'assistant' -%}
        {%- set content = render_content(message.content) -%}
        {%- set reasoning = '' -%}
        {%- if message.reasoning_content is string -%}
            {%- set reasoning = message.reasoning_content -%}
        {%- elif '</think>' in content -%}
            {%- set reasoning = content.split('</think>')[0].split('<think>')[-1] -%}
            {%- set content = content.split('</think>')[1:] | join('</think>') -%}
        {%- endif -%}
        {%- set reasoning = reasoning.strip('\n') -%}
        {%- set content = content.lstrip('\n') -%}
        {{- '<|im_start|>assistant\n' -}}
        {%- if not reasoning -%}
            {{- '<think>\n\n</think>\n\n' -}}
        {%- endif -%}
        {%- generation -%}
            {%- if reasoning -%}
                {{- '<think>\n' + reasoning + '\n</think>\n\n' -}}
            {%- endif -%}
            {{- content -}}
            {%- if message.tool_calls -%}
                {%- for call in message.tool_calls -%}
                    {%- set fn = call.function if call.function is defined else call -%}
                    {%- if content or not loop.first -%}
                        {{- '\n' -}}
                    {%- endif -%}
                    {{- '<tool_call>\n{"name": ' + (fn.name | tojson) + ', "arguments": ' -}}
                    {%- if fn.arguments is string -%}
                        {{- fn.arguments -}}
                    {%- elif fn.arguments is defined -%}
                        {{- fn.arguments | tojson -}}
                    {%- else -%}
                        {{- '{}' -}}
                    {%- endif -%}
                    {{- '}\n</tool_call>' -}}
                {%- endfor -%}
            {%- endif -%}
            {{- '<|im_end|>' -}}
        {%- endgeneration -%}
        {{- '\n' -}}
    {%- elif message.role == 'tool' -%}
        {%- if loop.first or messages[loop.index0 - 1].role != 'tool' -%}
            {{- '<|im_start|>user' -}}
        {%- endif -%}
        {{- '\n<tool_response>\n' + render_content(message.content) + '\n</tool_response>' -}}
        {%- if loop.last or messages[loop.index0 + 1].role != 'tool' -%}
            {{- '<|im_end|>\n' -}}
        {%- endif -%}
    {%- else -%}
        {{- raise_exception('Unknown message role: ' + (message.role | string)) -}}
    {%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{- '<|im_start|>assistant\n' -}}
    {%- if not thinking -%}
        {{- '<think>\n\n</think>\n\n' -}}
    {%- endif -%}
{%- endif -%}
"""


def _wrap(tokenizer: Tokenizer) -> PreTrainedTokenizerFast:
    """Give a raw `tokenizers` BPE the transformers interface: named special tokens and the template."""
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        unk_token=UNK_TOKEN,
        # Named so processors can read `tokenizer.image_token` / `tokenizer.image_token_id`.
        extra_special_tokens={
            "image_token": IMAGE_TOKEN,
            "vision_start_token": VISION_START_TOKEN,
            "vision_end_token": VISION_END_TOKEN,
        },
        model_max_length=MODEL_MAX_LENGTH,
        chat_template=CHAT_TEMPLATE,
        clean_up_tokenization_spaces=False,  # byte-level BPE round-trips exactly; no space fix-ups
    )


def train_tokenizer(
    texts: Iterable[str],
    output_dir: str | Path | None = None,
    vocab_size: int = 6400,
    min_frequency: int = 2,
) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE on `texts`; save it to `output_dir` (if given) and return it.

    Deterministic: the same texts and settings give a byte-identical tokenizer.json.
    """
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    if vocab_size < len(SPECIAL_TOKENS) + len(alphabet):
        raise ValueError(f"vocab_size={vocab_size} is smaller than the special tokens plus the 256 byte symbols")

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            # Every "\n" is its own token, so no token straddles a chat-template line break: the
            # supervised span after "assistant\n" or "</think>\n\n" starts on a token boundary, and
            # a generation prompt ending in "\n\n" tokenizes as in training, whatever the corpus.
            pre_tokenizers.Split("\n", behavior="isolated"),
            # One token per digit: numbers are spelled the same way everywhere (helps arithmetic).
            pre_tokenizers.Digits(individual_digits=True),
            # GPT-2 style byte-level pieces; no prefix space, so text encodes exactly as written.
            pre_tokenizers.ByteLevel(add_prefix_space=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=SPECIAL_TOKENS,  # first, so their ids are 0..len-1
        initial_alphabet=alphabet,  # all 256 bytes: any text (Chinese, emoji) encodes, nothing is unknown
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    # The trainer marks every special token "special"; demote the text markup tokens (same ids).
    tokenizer.add_tokens([AddedToken(t, special=False, normalized=False) for t in TEXT_MARKUP_TOKENS])

    fast = _wrap(tokenizer)
    if output_dir is not None:
        fast.save_pretrained(str(output_dir))
    return fast


# The class name transformers 4.x and 5.x both resolve (5.x writes `TokenizersBackend`, which 4.x lacks).
PORTABLE_TOKENIZER_CLASS = "PreTrainedTokenizerFast"
_STANDARD_SPECIAL_KEYS = {"bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"}


def make_tokenizer_config_portable(path: str | Path) -> None:
    """Rewrite a tokenizer_config.json so that transformers 4.57 loads it as 5.x does: a
    fast-tokenizer class both lines know, named extra tokens (`image_token`, ...) also in
    the `extra_special_tokens` mapping 4.x reads them from (5.x writes them as top-level keys
    next to an empty list), and the model inputs 5.x returns. The chat template stays in
    chat_template.jinja, which both read."""
    import json

    path = Path(path)
    config = json.loads(path.read_text(encoding="utf-8"))
    if config.get("tokenizer_class") in (None, "TokenizersBackend"):
        config["tokenizer_class"] = PORTABLE_TOKENIZER_CLASS
    named = {
        key: value
        for key, value in config.items()
        if key.endswith("_token") and key not in _STANDARD_SPECIAL_KEYS and isinstance(value, str)
    }
    extra = config.get("extra_special_tokens")
    if named and not extra:
        config["extra_special_tokens"] = named
    # 4.x's fast tokenizer also returns token_type_ids, which generate() then refuses.
    config.setdefault("model_input_names", ["input_ids", "attention_mask"])
    config.pop("backend", None)  # 5.x-only marker; the class name above says the same
    path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def default_tokenizer_path() -> Path:
    """The tokenizer shipped with the package (trained on the embedded pydoc corpus, vocab 6400)."""
    return Path(__file__).resolve().parent / "assets" / "tokenizer"


def load_tokenizer(name_or_path: str | Path | None = None) -> PreTrainedTokenizerFast:
    """The shipped default tokenizer, or any tokenizer `AutoTokenizer` can load."""
    return AutoTokenizer.from_pretrained(str(name_or_path if name_or_path is not None else default_tokenizer_path()))
