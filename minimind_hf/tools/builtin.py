"""The built-in tools: small, deterministic Python functions a tiny model learns to call.

Each is a plain typed function with a Google-style docstring, so `transformers`'
``get_json_schema`` (what ``apply_chat_template(tools=[fn])`` and TRL's tool loop use)
derives its JSON schema, and the embedded tool-use data (``data/embedded/tools.py``)
renders exactly the schemas a rollout or a chat session shows the model.

Tools return text (what goes into the ``tool`` message). Bad arguments raise ``ToolError``
with a message meant for the model; :func:`execute` turns any failure into an
``"error: ..."`` result, as a real agent runtime does, instead of stopping the loop.
"""

from __future__ import annotations

import ast
import datetime
import json
import operator
from collections.abc import Callable


class ToolError(ValueError):
    """A tool refused its arguments; the message is what the model reads back."""


# ----------------------------------------------------------------------------- calculator

_BINARY = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}
MAX_EXPRESSION = 200  # characters
MAX_EXPONENT = 64  # keeps 9**9**9 from hanging the loop


def _evaluate(node):
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return node.value
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_evaluate(node.operand))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _evaluate(node.left), _evaluate(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > MAX_EXPONENT:
            raise ToolError(f"exponent {right} is too large (at most {MAX_EXPONENT})")
        try:
            return _BINARY[type(node.op)](left, right)
        except ZeroDivisionError:
            raise ToolError("division by zero") from None
    raise ToolError("only numbers, + - * / // % ** and parentheses are allowed")


def format_number(value: float) -> str:
    """Integers as integers, other numbers with at most 4 decimals and no trailing zeros."""
    if isinstance(value, int) or float(value).is_integer():
        return str(int(value))
    return f"{value:.4f}".rstrip("0").rstrip(".")


def calculator(expression: str) -> str:
    """Evaluate arithmetic exactly.

    Args:
        expression: e.g. "347 * 29"
    """
    text = str(expression).replace("×", "*").replace("÷", "/").strip()
    if not text or len(text) > MAX_EXPRESSION:
        raise ToolError(f"expression must have 1 to {MAX_EXPRESSION} characters")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError:
        raise ToolError(f"cannot parse {text!r} as arithmetic") from None
    return format_number(_evaluate(tree.body))


# ----------------------------------------------------------------------------- units

# Factor to the base unit of each dimension (metre, kilogram); temperatures convert by formula.
_LENGTH = {"m": 1.0, "km": 1000.0, "cm": 0.01, "mm": 0.001, "mile": 1609.344, "foot": 0.3048, "inch": 0.0254}
_MASS = {"kg": 1.0, "g": 0.001, "lb": 0.45359237, "ounce": 0.028349523125}
_TO_KELVIN = {"celsius": lambda v: v + 273.15, "fahrenheit": lambda v: (v - 32) * 5 / 9 + 273.15, "kelvin": lambda v: v}
_FROM_KELVIN = {
    "celsius": lambda k: k - 273.15,
    "fahrenheit": lambda k: (k - 273.15) * 9 / 5 + 32,
    "kelvin": lambda k: k,
}
UNITS = (*_LENGTH, *_MASS, *_TO_KELVIN)


def _number(value, name: str) -> float:
    if isinstance(value, bool):
        raise ToolError(f"{name} must be a number")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ToolError(f"{name} must be a number, got {value!r}") from None


def convert_units(value: float, from_unit: str, to_unit: str) -> str:
    """Convert between units of length, mass or temperature.

    Args:
        value: the amount
        from_unit: m, km, cm, mm, mile, foot, inch, kg, g, lb, ounce, celsius, fahrenheit or kelvin
        to_unit: the same units
    """
    amount = _number(value, "value")
    source, target = str(from_unit).strip().lower(), str(to_unit).strip().lower()
    for unit in (source, target):
        if unit not in UNITS:
            raise ToolError(f"unknown unit {unit!r}; known units: {', '.join(UNITS)}")
    for table in (_LENGTH, _MASS):
        if source in table and target in table:
            return format_number(round(amount * table[source] / table[target], 2))
    if source in _TO_KELVIN and target in _TO_KELVIN:
        return format_number(round(_FROM_KELVIN[target](_TO_KELVIN[source](amount)), 2))
    raise ToolError(f"cannot convert {source} to {target}: different kinds of quantity")


# ----------------------------------------------------------------------------- dates


def add_days(date: str, days: int) -> str:
    """Add days to a date (negative: go back).

    Args:
        date: YYYY-MM-DD
        days: days to add
    """
    try:
        start = datetime.date.fromisoformat(str(date).strip())
    except ValueError:
        raise ToolError(f"date must be YYYY-MM-DD, got {date!r}") from None
    count = _number(days, "days")
    if not count.is_integer():
        raise ToolError(f"days must be a whole number, got {days!r}")
    try:
        return (start + datetime.timedelta(days=int(count))).isoformat()
    except OverflowError:
        raise ToolError("the resulting date is out of range") from None


# ----------------------------------------------------------------------------- lookup

CAPITALS = {
    "Argentina": "Buenos Aires",
    "Australia": "Canberra",
    "Austria": "Vienna",
    "Belgium": "Brussels",
    "Brazil": "Brasilia",
    "Canada": "Ottawa",
    "Chile": "Santiago",
    "China": "Beijing",
    "Colombia": "Bogota",
    "Cuba": "Havana",
    "Denmark": "Copenhagen",
    "Egypt": "Cairo",
    "Ethiopia": "Addis Ababa",
    "Finland": "Helsinki",
    "France": "Paris",
    "Germany": "Berlin",
    "Ghana": "Accra",
    "Greece": "Athens",
    "Hungary": "Budapest",
    "Iceland": "Reykjavik",
    "India": "New Delhi",
    "Indonesia": "Jakarta",
    "Iran": "Tehran",
    "Ireland": "Dublin",
    "Italy": "Rome",
    "Japan": "Tokyo",
    "Kenya": "Nairobi",
    "Mexico": "Mexico City",
    "Mongolia": "Ulaanbaatar",
    "Morocco": "Rabat",
    "Nepal": "Kathmandu",
    "Netherlands": "Amsterdam",
    "Nigeria": "Abuja",
    "Norway": "Oslo",
    "Pakistan": "Islamabad",
    "Peru": "Lima",
    "Poland": "Warsaw",
    "Portugal": "Lisbon",
    "Russia": "Moscow",
    "Senegal": "Dakar",
    "South Korea": "Seoul",
    "Spain": "Madrid",
    "Sweden": "Stockholm",
    "Switzerland": "Bern",
    "Thailand": "Bangkok",
    "Turkey": "Ankara",
    "Ukraine": "Kyiv",
    "Vietnam": "Hanoi",
}


def lookup_capital(country: str) -> str:
    """Look up the capital of a country.

    Args:
        country: English name, e.g. "Peru"
    """
    wanted = str(country).strip().casefold()
    for name, capital in CAPITALS.items():
        if name.casefold() == wanted:
            return capital
    raise ToolError(f"no country named {country!r} in the table")


# ----------------------------------------------------------------------------- registry

BUILTIN_TOOLS: dict[str, Callable[..., str]] = {
    fn.__name__: fn for fn in (calculator, convert_units, add_days, lookup_capital)
}


def tool_schema(fn: Callable) -> dict:
    """The JSON schema `apply_chat_template(tools=[fn])` renders for `fn` (transformers' own derivation)."""
    from transformers.utils import get_json_schema

    return get_json_schema(fn)


def resolve_tools(names) -> dict[str, Callable[..., str]]:
    """Recipe / CLI tool names -> {name: function}: `builtin` (every built-in tool), a built-in
    tool's name, or `module:function` for the user's own."""
    from ..utils import import_attribute

    tools: dict[str, Callable[..., str]] = {}
    for name in names:
        if name == "builtin":
            tools.update(BUILTIN_TOOLS)
        elif name in BUILTIN_TOOLS:
            tools[name] = BUILTIN_TOOLS[name]
        elif ":" in name:
            fn = import_attribute(name, "tool")
            tools[fn.__name__] = fn
        else:
            raise ValueError(
                f"unknown tool {name!r}: use 'builtin', one of {', '.join(BUILTIN_TOOLS)}, or a 'module:function' path"
            )
    return tools


def execute(name: str, arguments, tools: dict[str, Callable[..., str]]) -> str:
    """Run one call and return the text for its `tool` message; failures come back as 'error: ...'.

    `arguments` is a JSON object string (OpenAI's form) or an already decoded dict."""
    if name not in tools:
        return f"error: unknown tool {name!r}; available: {', '.join(tools)}"
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except json.JSONDecodeError:
            return "error: arguments are not valid JSON"
    if not isinstance(arguments, dict):
        return "error: arguments must be a JSON object"
    try:
        result = tools[name](**arguments)
    except ToolError as error:
        return f"error: {error}"
    except TypeError as error:  # missing / unexpected argument names
        return f"error: bad arguments for {name}: {error}"
    return result if isinstance(result, str) else json.dumps(result, ensure_ascii=False)
