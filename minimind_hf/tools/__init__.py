"""Tool use: the built-in tools (`builtin`) and the generate -> parse -> execute -> feed-back loop (`loop`)."""

from .builtin import BUILTIN_TOOLS, ToolError, execute, resolve_tools, tool_schema

__all__ = ["BUILTIN_TOOLS", "ToolError", "execute", "resolve_tools", "tool_schema"]
