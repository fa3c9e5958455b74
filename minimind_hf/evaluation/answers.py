"""How a generated reply is checked against a reference answer (shared by evaluation and RL rewards)."""

from __future__ import annotations

import re

from ..tokenizer import THINK_END

_INTEGER = re.compile(r"-?\d+")


def answer_part(text: str) -> str:
    """What follows the last `</think>`: the answer of a reply that reasons first."""
    return text.rsplit(THINK_END, 1)[-1].strip()


def is_correct(reply: str, answer: str) -> bool:
    """Integer answers: the LAST integer in the reply must equal the answer, so "7",
    "The answer is 7." and "3 + 4 = 7" all count, and a reply cut off mid-number does not.
    Text answers (identity): the answer must appear in the reply (case-sensitive).
    """
    if _INTEGER.fullmatch(answer):
        numbers = _INTEGER.findall(reply)
        return bool(numbers) and int(numbers[-1]) == int(answer)
    return answer in reply


def names_option(reply: str, answer: str, options=()) -> bool:
    """The answer appears in the reply as a whole word (case-insensitive).

    ``options``: the closed set the answer comes from; a reply that also names another option
    ("red or blue", "the first or the second") does not count, so echoing the question's
    choices is not rewarded.
    """

    def mentions(word: str) -> bool:
        return re.search(rf"(?<!\w){re.escape(word)}(?!\w)", reply, re.IGNORECASE) is not None

    return mentions(answer) and not any(mentions(o) for o in options if o.lower() != answer.lower())
