"""MiniMind-V processor: tokenizer + image processor.

Text may mark images the way each data family does - MiniMind-V's `<image>`, MiniCPM-V's
`<image_00>`, or the chat template's `<|vision_start|><|image_pad|><|vision_end|>` - and
each becomes `<|vision_start|>` + `image_seq_length` x `<|image_pad|>` + `<|vision_end|>`.
Images are taken in reading order across the batch.

Self-contained (copied into trust_remote_code exports): imports only transformers.
"""

import re

from transformers.processing_utils import ProcessorMixin

VISION_START, VISION_END = "<|vision_start|>", "<|vision_end|>"
# Image markers users write in text; <image_NN> is MiniCPM-V's multi-image key form.
USER_IMAGE_MARKER = re.compile(r"<image(?:_\d+)?>")


class MiniMindVProcessor(ProcessorMixin):
    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, image_seq_length: int = 16, **kwargs):
        self.image_token = getattr(tokenizer, "image_token", None) or "<|image_pad|>"
        self.image_token_id = tokenizer.convert_tokens_to_ids(self.image_token)
        self.image_seq_length = image_seq_length
        # One template for text and images: the tokenizer's renders image content parts.
        chat_template = chat_template or getattr(tokenizer, "chat_template", None)
        super().__init__(image_processor, tokenizer, chat_template=chat_template)

    @property
    def image_block(self) -> str:
        """One unexpanded image in text; `__call__` expands its placeholder."""
        return VISION_START + self.image_token + VISION_END

    def normalize_image_markers(self, text: str) -> str:
        """`<image>` / `<image_NN>` -> the single-placeholder image block."""
        return USER_IMAGE_MARKER.sub(self.image_block, text)

    def replace_image_token(self, image_inputs: dict, image_idx: int, **kwargs) -> str:
        return self.image_token * self.image_seq_length

    def __call__(self, images=None, text=None, **kwargs):
        if text is not None:
            texts = [text] if isinstance(text, str) else list(text)
            texts = [self.normalize_image_markers(t) for t in texts]
            found = sum(t.count(self.image_token) for t in texts)
            given = 0 if images is None else len(_flatten(images))
            if found != given:
                raise ValueError(
                    f"the text has {found} image placeholder(s) but {given} image(s) were given; "
                    f"mark each image with <image> (or {self.image_block}) exactly once"
                )
            text = texts
        return super().__call__(images=images, text=text, **kwargs)

    @property
    def model_input_names(self):
        return ["input_ids", "attention_mask", "pixel_values"]


def _flatten(images) -> list:
    if isinstance(images, (list, tuple)):
        return [leaf for item in images for leaf in _flatten(item)]
    return [images]


__all__ = ["MiniMindVProcessor"]
