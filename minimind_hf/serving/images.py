"""Images as OpenAI `image_url` content parts (data URLs), ready for MiniMind-V.

Text-only models reject image parts before anything is decoded (see `ChatEngine.encode_prompt`);
these helpers are the one path by which the terminal (`--image PATH`, `/image PATH`), the web
demo (upload) and the server (data URLs) hand pictures to the vision-language processor.
"""

from __future__ import annotations

import base64
import binascii
import io
import mimetypes
import re
from pathlib import Path

from PIL import Image, UnidentifiedImageError

# Decoded images cost width * height * 4 bytes or more; MiniMind-V resizes them to a few hundred
# pixels anyway, so a picture above a large photo's size is refused from its header, before decoding.
MAX_IMAGE_PIXELS = 4096 * 4096

_DATA_URL = re.compile(r"^data:(image/[\w.+-]+)?(;[\w=.-]+)*;base64,(?P<data>.*)$", re.DOTALL)


def data_url(raw: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64," + base64.b64encode(raw).decode("ascii")


def image_part(source: str | Path) -> dict:
    """An OpenAI content part for a local file or an existing data URL."""
    source = str(source)
    if not source.startswith("data:"):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"image not found: {path}")
        source = data_url(path.read_bytes(), mimetypes.guess_type(path.name)[0] or "image/png")
    return {"type": "image_url", "image_url": {"url": source}}


def check_image_file(path: str | Path) -> dict:
    """`image_part(path)` after making sure the file is a readable image (ValueError / FileNotFoundError)."""
    part = image_part(path)
    try:
        load_image(part["image_url"]["url"])
    except ValueError:
        raise ValueError(f"not a readable image: {path}") from None
    return part


def load_image(url: str, max_pixels: int | None = MAX_IMAGE_PIXELS) -> Image.Image:
    """Decode a base64 data URL into an RGB image. Remote URLs are refused: the server never fetches."""
    match = _DATA_URL.match(url)
    if match is None:
        raise ValueError("image_url must be a base64 data URL (data:image/...;base64,...); remote URLs are not fetched")
    try:
        raw = base64.b64decode(match["data"], validate=True)
    except binascii.Error as exc:
        raise ValueError(f"image_url does not hold a readable image: its base64 data is invalid ({exc})") from exc
    try:
        image = Image.open(io.BytesIO(raw))  # reads the header only
        width, height = image.size
        if max_pixels is not None and width * height > max_pixels:
            raise ValueError(
                f"image_url holds a {width}x{height} image ({width * height:,} pixels); "
                f"images may have at most {max_pixels:,} pixels"
            )
        image.load()
    except UnidentifiedImageError:
        raise ValueError(
            "image_url does not hold a readable image: the data is not an image format "
            "Pillow can decode (PNG, JPEG, WebP, GIF, BMP, ...)"
        ) from None
    except (OSError, Image.DecompressionBombError) as exc:
        raise ValueError(f"image_url does not hold a readable image: {exc}") from exc
    return image.convert("RGB")
