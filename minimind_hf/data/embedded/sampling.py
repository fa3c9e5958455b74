"""Seeded sampling shared by the generators."""

from __future__ import annotations

import random
from typing import TypeVar

T = TypeVar("T")


def even_stream(pool: list[T], n: int, rng: random.Random) -> list[T]:
    """n draws covering every element of `pool` as evenly as possible (reshuffled each pass).

    Draw i does not depend on n: longer streams only append."""
    out: list[T] = []
    while len(out) < n:
        shuffled = pool[:]
        rng.shuffle(shuffled)
        out += shuffled[: n - len(out)]
    return out
