"""What an export can be asked for: the format names, and `ExportError` for a request that
cannot be met (NativeExportError and GGUFExportError sit next to the rules they enforce)."""

from __future__ import annotations

from .native import NATIVE_FORMATS

REMOTE_CODE = "remote-code"
GGUF_FORMATS = ("gguf", "ollama")
EXPORT_FORMATS = (REMOTE_CODE, *NATIVE_FORMATS, *GGUF_FORMATS)


class ExportError(ValueError):
    """The source cannot be exported as asked (with the reason and what to do instead)."""
