"""MiniMind-V processor: tokenizer + image processor.

Text may mark images the way each data family does - MiniMind-V's `<image>`, MiniCPM-V's
`<image_00>`, or the chat template's `<|vision_start|><|image_pad|><|vision_end|>` - and
each becomes one image block of `image_seq_length` placeholder tokens: by default
`<|vision_start|>` + N x `<|image_pad|>` + `<|vision_end|>` (this project's layout). Converted
original MiniMind-V models keep the layout they were trained on, saved as processor
settings: the placeholder (`image_token`, e.g. MiniMind2-V's plain-text `@`) and no start/end
markers (`image_block_markers=False`). Images are taken in reading order across the batch.

Self-contained (copied into trust_remote_code exports): imports only transformers. The
placeholder expansion is done here, not by ProcessorMixin's hooks (which transformers 4.57
lacks), so the processor behaves the same on 4.57 and 5.x.
"""

import re

import transformers
from transformers.feature_extraction_utils import BatchFeature
from transformers.processing_utils import ProcessorMixin

VISION_START, VISION_END = "<|vision_start|>", "<|vision_end|>"
DEFAULT_IMAGE_TOKEN = "<|image_pad|>"
# Image markers users write in text; <image_NN> is MiniCPM-V's multi-image key form.
USER_IMAGE_MARKER = r"<image(?:_\d+)?>"


class MiniMindVProcessor(ProcessorMixin):
    if int(transformers.__version__.split(".")[0]) < 5:
        # How transformers 4.x finds the parts; 5.x reads them from __init__'s signature (and
        # calls these attributes deprecated).
        attributes = ["image_processor", "tokenizer"]
        image_processor_class = "AutoImageProcessor"
        tokenizer_class = "AutoTokenizer"

    def __init__(
        self,
        image_processor=None,
        tokenizer=None,
        chat_template=None,
        image_seq_length: int = 16,
        image_token: str | None = None,
        image_block_markers: bool = True,
        **kwargs,
    ):
        # The placeholder of one image position: the tokenizer's named image token unless set
        # (MiniMind2-V's `@` is plain text that its tokenizer names nowhere).
        self.image_token = image_token or getattr(tokenizer, "image_token", None) or DEFAULT_IMAGE_TOKEN
        self.image_token_id = tokenizer.convert_tokens_to_ids(self.image_token)
        self.image_seq_length = image_seq_length
        # False: bare placeholders, as the original MiniMind-V models were trained.
        self.image_block_markers = image_block_markers
        # One template for text and images: the tokenizer's renders image content parts.
        chat_template = chat_template or getattr(tokenizer, "chat_template", None)
        super().__init__(image_processor, tokenizer, chat_template=chat_template)

    @property
    def image_block(self) -> str:
        """One unexpanded image in text; `__call__` expands its placeholder."""
        return VISION_START + self.image_token + VISION_END if self.image_block_markers else self.image_token

    def normalize_image_markers(self, text: str) -> str:
        """`<image>` / `<image_NN>` and the marked single-placeholder block -> this layout's image block."""
        marked_block = re.escape(VISION_START + self.image_token + VISION_END)
        return re.sub(f"{USER_IMAGE_MARKER}|{marked_block}", lambda _: self.image_block, text)

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
                    f"mark each image with <image> (or {self.image_block}) exactly once, and write "
                    f"{self.image_token!r} nowhere else"
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
