"""Images as OpenAI `image_url` content parts (data URLs), ready for MiniMind-V.

Text-only models reject image parts before anything is decoded (see `ChatEngine.encode_chat`);
these helpers are the one path by which the terminal (`--image PATH`), the web demo (upload)
and the server (data URLs) will hand pictures to a vision-language processor.
"""

from __future__ import annotations

import base64
import binascii
import io
import mimetypes
import re
from pathlib import Path

from PIL import Image

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


def load_image(url: str) -> Image.Image:
    """Decode a base64 data URL into an RGB image. Remote URLs are refused: the server never fetches."""
    match = _DATA_URL.match(url)
    if match is None:
        raise ValueError("image_url must be a base64 data URL (data:image/...;base64,...); remote URLs are not fetched")
    try:
        image = Image.open(io.BytesIO(base64.b64decode(match["data"], validate=True)))
        image.load()
    except (binascii.Error, OSError, Image.DecompressionBombError) as exc:
        raise ValueError(f"image_url does not hold a readable image: {exc}") from exc
    return image.convert("RGB")
