"""MiniMind-V processor: tokenizer + image processor.

Text may mark images the way each data family does - MiniMind-V's `<image>`, MiniCPM-V's
`<image_00>`, or the chat template's `<|vision_start|><|image_pad|><|vision_end|>` - and
each becomes `<|vision_start|>` + `image_seq_length` x `<|image_pad|>` + `<|vision_end|>`.
Images are taken in reading order across the batch.

Self-contained (copied into trust_remote_code exports): imports only transformers. The
placeholder expansion is done here, not by ProcessorMixin's hooks (which transformers 4.57
lacks), so the processor behaves the same on 4.57 and 5.x.
"""

import re

from transformers.feature_extraction_utils import BatchFeature
from transformers.processing_utils import ProcessorMixin

VISION_START, VISION_END = "<|vision_start|>", "<|vision_end|>"
# Image markers users write in text; <image_NN> is MiniCPM-V's multi-image key form.
USER_IMAGE_MARKER = re.compile(r"<image(?:_\d+)?>")


class MiniMindVProcessor(ProcessorMixin):
    # How transformers 4.x finds the parts (5.x reads them from __init__'s signature).
    attributes = ["image_processor", "tokenizer"]
    image_processor_class = "AutoImageProcessor"
    tokenizer_class = "AutoTokenizer"

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

    def __call__(self, images=None, text=None, return_tensors=None, **kwargs):
        """Tokenise `text` with every image marker expanded to `image_seq_length` placeholders,
        and preprocess `images` (reading order across the batch) into `pixel_values`.
        Tokenizer keyword arguments (padding, padding_side, truncation, ...) pass through."""
        if text is None and images is None:
            raise ValueError("pass text, images or both")
        image_list = [] if images is None else _flatten(images)
        outputs = {}
        if text is not None:
            texts = [text] if isinstance(text, str) else list(text)
            texts = [self.normalize_image_markers(t) for t in texts]
            found = sum(t.count(self.image_token) for t in texts)
            if found != len(image_list):
                raise ValueError(
                    f"the text has {found} image placeholder(s) but {len(image_list)} image(s) were given; "
                    f"mark each image with <image> (or {self.image_block}) exactly once"
                )
            expanded = [t.replace(self.image_token, self.image_token * self.image_seq_length) for t in texts]
            outputs.update(self.tokenizer(expanded, return_tensors=return_tensors, **kwargs))
        if image_list:
            outputs.update(self.image_processor(image_list, return_tensors=return_tensors))
        return BatchFeature(outputs, tensor_type=return_tensors)

    @property
    def model_input_names(self):
        return ["input_ids", "attention_mask", "pixel_values"]


def _flatten(images) -> list:
    if isinstance(images, (list, tuple)):
        return [leaf for item in images for leaf in _flatten(item)]
    return [images]


__all__ = ["MiniMindVProcessor"]
