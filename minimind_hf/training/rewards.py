"""Reward functions for the `grpo` stage, all with TRL's reward-function signature:
``f(prompts, completions, **dataset_columns) -> list[float | None]`` (one score per completion).

- verifiable: :class:`ExactAnswer` - 1.0 when the reply's number (or text) matches the
  reference answer read from a dataset column, else 0.0;
- shaping, as MiniMind's ``train_grpo.py`` shapes its rollouts: :class:`LengthWindow`
  (answer length inside a window), :class:`ThinkFormat` (a think block, when there is
  one, closed exactly once), :class:`RepetitionPenalty` (share of repeated word n-grams);
- tool use (rollouts through TRL's tool loop, whose completions are message lists):
  :class:`ToolFormat` (calls that parse vs tool-call markup that does not) and
  :class:`ToolCallMatch` (the first call names the expected tool with the expected arguments);
- a reward model: :class:`RewardModelScore` - any ``AutoModelForSequenceClassification``
  folder (ours from stage ``reward``) scoring prompt + reply, clipped to a range;
- the user's own: ``module:function`` (:func:`import_reward`).

:func:`build_reward_funcs` turns the recipe's names into these objects. Each object has a
``__name__``, which TRL logs as ``rewards/NAME/mean`` per step.
"""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Callable, Sequence

from ..evaluation.answers import answer_part, is_correct
from ..evaluation.toolcall import same_arguments
from ..tokenizer import THINK_END, THINK_START, TOOL_CALL_END, TOOL_CALL_START

_WORD = re.compile(r"\w+|[^\w\s]")

BUILTIN_REWARDS = (
    "exact_answer",
    "length_window",
    "think_format",
    "repetition",
    "tool_format",
    "tool_call_match",
    "reward_model",
)
TOOL_MARKUP = (TOOL_CALL_START, TOOL_CALL_END)


def completion_text(completion) -> str:
    """A completion as text: TRL passes strings (standard prompts) or message lists (conversational)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list):
        return "".join(
            m.get("content") or "" for m in completion if isinstance(m, dict) and m.get("role") == "assistant"
        )
    raise TypeError(f"unsupported completion type {type(completion).__name__}")


class ExactAnswer:
    """1.0 when the answer part of the reply is right, 0.0 when it is wrong, None (no score:
    TRL leaves the reward out for that row) when the row has no reference answer.

    Integer references: the last integer in the reply must equal it ("7", "3 + 4 = 7");
    text references must appear in the reply (see `evaluation.answers.is_correct`)."""

    __name__ = "exact_answer"

    def __init__(self, column: str = "answer"):
        self.column = column

    def __call__(self, prompts, completions, **columns) -> list[float | None]:
        if self.column not in columns:
            raise KeyError(
                f"exact_answer reads the reference answer from the dataset column {self.column!r}, which the data "
                f"does not have (columns: {', '.join(sorted(k for k in columns if not k.startswith(('trainer_', 'log_'))))})"  # noqa: E501
            )
        scores = []
        for completion, answer in zip(completions, columns[self.column]):
            if answer is None or str(answer).strip() == "":
                scores.append(None)
            else:
                scores.append(1.0 if is_correct(answer_part(completion_text(completion)), str(answer).strip()) else 0.0)
        return scores


class LengthWindow:
    """+`reward` when the answer part has `low`..`high` characters (inclusive), else -`reward`.
    MiniMind rewards 20-800 characters with +-0.5."""

    __name__ = "length_window"

    def __init__(self, low: int = 20, high: int = 800, reward: float = 0.5):
        if not 0 <= low <= high:
            raise ValueError(f"length_window needs 0 <= low <= high, got [{low}, {high}]")
        self.low, self.high, self.reward = low, high, reward

    def __call__(self, prompts, completions, **columns) -> list[float]:
        return [
            self.reward if self.low <= len(answer_part(completion_text(c))) <= self.high else -self.reward
            for c in completions
        ]


class FormatReward:
    """+`reward`, -`reward` or 0.0 per completion, as `verdict(completion)` says (1, -1 or 0)."""

    def __init__(self, reward: float = 0.5):
        self.reward = reward

    def verdict(self, completion) -> int:
        raise NotImplementedError

    def __call__(self, prompts, completions, **columns) -> list[float]:
        return [float(self.reward * self.verdict(c)) for c in completions]


class ThinkFormat(FormatReward):
    """A reply that reasons must close its think block exactly once: +`reward` for one
    `</think>` (and at most one `<think>` before it), -`reward` for an unclosed block, two
    closings or a block reopened after the answer began; 0.0 for a reply without think tags
    (thinking off: the template already put the empty block in the prompt)."""

    __name__ = "think_format"

    def __init__(self, reward: float = 0.25):
        super().__init__(reward)

    def verdict(self, completion) -> int:
        text = completion_text(completion)
        opened, closed = text.count(THINK_START), text.count(THINK_END)
        if opened == 0 and closed == 0:
            return 0
        return (
            1
            if closed == 1 and opened <= 1 and (opened == 0 or text.index(THINK_START) < text.index(THINK_END))
            else -1
        )


def repeated_share(text: str, n: int = 3) -> float:
    """Share of the word n-grams of `text` that repeat an earlier one (0.0: none; lowercased words and
    punctuation marks are the tokens, so the measure does not depend on a tokenizer)."""
    words = _WORD.findall(text.lower())
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    return 1.0 - len(set(grams)) / len(grams) if grams else 0.0


class RepetitionPenalty:
    """-min(`cap`, 2 * `cap` * repeated share of word n-grams) of the answer part: 0.0 for a
    reply that never repeats itself, -`cap` once half of its n-grams are repeats."""

    __name__ = "repetition"

    def __init__(self, n: int = 3, cap: float = 0.5):
        if n < 1:
            raise ValueError(f"repetition n-gram size must be >= 1, got {n}")
        self.n, self.cap = n, cap

    def __call__(self, prompts, completions, **columns) -> list[float]:
        penalties = [
            min(self.cap, 2 * self.cap * repeated_share(answer_part(completion_text(c)), self.n)) for c in completions
        ]
        return [-p if p else 0.0 for p in penalties]


def _assistant_turns(completion) -> list[dict]:
    if isinstance(completion, str):
        return [{"role": "assistant", "content": completion}]
    return [m for m in completion if isinstance(m, dict) and m.get("role") == "assistant"]


class ToolFormat(FormatReward):
    """+`reward` when the rollout made tool calls and every one parsed (TRL executed them),
    -`reward` when any turn holds tool-call markup that did not parse (bad JSON, unbalanced or
    unterminated tags: TRL's parser leaves it in the content), 0.0 for a plain answer."""

    __name__ = "tool_format"

    def verdict(self, completion) -> int:
        turns = _assistant_turns(completion)
        if any(marker in (t.get("content") or "") for t in turns for marker in TOOL_MARKUP):
            return -1
        return 1 if any(t.get("tool_calls") for t in turns) else 0


class ToolCallMatch:
    """1.0 when the rollout's first tool call names the expected tool with the expected arguments
    (numbers as numbers, text without case and surrounding space), 0.5 for the right tool with
    other arguments, 0.0 otherwise; None (no score) for rows without an expected call."""

    __name__ = "tool_call_match"

    def __init__(self, column: str = "expected_call"):
        self.column = column

    def __call__(self, prompts, completions, **columns) -> list[float | None]:
        import json

        if self.column not in columns:
            raise KeyError(
                f"tool_call_match reads the expected call from the dataset column {self.column!r}, "
                "which the data does not have"
            )
        scores = []
        for completion, expected in zip(completions, columns[self.column]):
            if not expected:
                scores.append(None)
                continue
            expected = json.loads(expected) if isinstance(expected, str) else expected
            calls = [c for t in _assistant_turns(completion) for c in t.get("tool_calls") or []]
            function = (calls[0].get("function") or {}) if calls else {}
            arguments = function.get("arguments")
            if isinstance(arguments, str):
                try:
                    arguments = json.loads(arguments)
                except json.JSONDecodeError:
                    arguments = None
            if function.get("name") != expected["name"]:
                scores.append(0.0)
            else:
                scores.append(
                    1.0
                    if same_arguments(arguments if isinstance(arguments, dict) else None, expected.get("arguments", {}))
                    else 0.5
                )
        return scores


class RewardModelScore:
    """A sequence-classification reward model's score of prompt + reply, clipped to [low, high]
    (MiniMind clips its reward model to +-3). The model is loaded once, strictly, in float32
    on this process's device; conversational prompts are rendered with the reward model's
    own chat template (thinking off, as the policy's prompts)."""

    __name__ = "reward_model"

    def __init__(
        self, path: str, clip: Sequence[float] = (-3.0, 3.0), batch_size: int = 16, max_length: int | None = 1024
    ):
        low, high = (float(x) for x in clip)
        if not low < high:
            raise ValueError(f"reward_clip needs low < high, got {list(clip)}")
        self.path, self.low, self.high, self.batch_size, self.max_length = str(path), low, high, batch_size, max_length
        self._model = self._tokenizer = None

    def _load(self):
        if self._model is None:
            import torch
            from accelerate import PartialState
            from transformers import AutoModelForSequenceClassification, AutoTokenizer

            import minimind_hf  # noqa: F401  (registers MiniMind with the Auto classes)

            from ..utils import load_pretrained

            self._tokenizer = AutoTokenizer.from_pretrained(self.path)
            model = load_pretrained(self.path, auto_class=AutoModelForSequenceClassification, dtype=torch.float32)
            if model.config.num_labels != 1:
                from ..utils import ModelLoadError

                raise ModelLoadError(
                    f"reward model {self.path} has num_labels={model.config.num_labels}; a reward model has 1"
                )
            if self._tokenizer.pad_token_id is not None:
                model.config.pad_token_id = self._tokenizer.pad_token_id
            self._model = model.to(PartialState().device).eval().requires_grad_(False)
        return self._model, self._tokenizer

    def texts(self, prompts, completions) -> list[str]:
        _, tokenizer = self._load()
        texts = []
        for prompt, completion in zip(prompts, completions):
            if isinstance(prompt, list):  # conversational: the same template the reward model was trained with
                reply = completion if isinstance(completion, list) else [{"role": "assistant", "content": completion}]
                texts.append(tokenizer.apply_chat_template(prompt + reply, tokenize=False))
            else:
                texts.append(prompt + completion_text(completion))
        return texts

    def scores(self, texts: list[str]) -> list[float]:
        import torch

        model, tokenizer = self._load()
        out = []
        for start in range(0, len(texts), self.batch_size):
            batch = tokenizer(
                texts[start : start + self.batch_size],
                add_special_tokens=False,
                padding=True,
                padding_side="right",
                truncation=self.max_length is not None,
                max_length=self.max_length,
                return_tensors="pt",
            ).to(model.device)
            with torch.inference_mode():
                out += model(**batch).logits[:, 0].float().tolist()
        return out

    def __call__(self, prompts, completions, **columns) -> list[float]:
        return [min(self.high, max(self.low, score)) for score in self.scores(self.texts(prompts, completions))]


def import_reward(spec: str) -> Callable:
    """`package.module:function` -> the function (any callable with TRL's reward signature)."""
    from ..utils import import_attribute

    try:
        target = import_attribute(spec, "reward")
    except ValueError as error:
        if ":" not in spec:
            raise ValueError(
                f"reward {spec!r}: expected one of {', '.join(BUILTIN_REWARDS)} or a 'module:function' path"
            ) from None
        raise error from None
    try:
        inspect.signature(target).bind(prompts=[], completions=[])
    except TypeError:
        raise ValueError(
            f"reward {spec!r}: must accept TRL's reward arguments (prompts=..., completions=..., **kwargs)"
        ) from None
    except ValueError:  # builtins without a signature: let TRL call them
        pass
    return target


def build_reward_funcs(
    names: Sequence[str],
    *,
    answer_column: str = "answer",
    length_window=(20, 800),
    length_reward: float = 0.5,
    think_reward: float = 0.25,
    repetition_ngram: int = 3,
    repetition_cap: float = 0.5,
    reward_model_path: str | None = None,
    reward_clip=(-3.0, 3.0),
) -> list[Callable]:
    """The recipe's `reward_funcs` names as reward objects, in order (weights are TRL's `reward_weights`)."""
    if not names:
        raise ValueError(
            f"reward_funcs is empty; name at least one of {', '.join(BUILTIN_REWARDS)} or 'module:function'"
        )
    funcs = []
    for name in names:
        if name == "exact_answer":
            funcs.append(ExactAnswer(answer_column))
        elif name == "length_window":
            if len(length_window) != 2:
                raise ValueError(f"length_window must be [low, high], got {list(length_window)}")
            funcs.append(LengthWindow(int(length_window[0]), int(length_window[1]), length_reward))
        elif name == "think_format":
            funcs.append(ThinkFormat(think_reward))
        elif name == "repetition":
            funcs.append(RepetitionPenalty(repetition_ngram, repetition_cap))
        elif name == "tool_format":
            funcs.append(ToolFormat())
        elif name == "tool_call_match":
            funcs.append(ToolCallMatch())
        elif name == "reward_model":
            if not reward_model_path:
                raise ValueError("reward 'reward_model' needs reward_model_path (a folder from stage 'reward')")
            if len(reward_clip) != 2 or any(not math.isfinite(float(x)) for x in reward_clip):
                raise ValueError(f"reward_clip must be [low, high], got {list(reward_clip)}")
            funcs.append(RewardModelScore(reward_model_path, reward_clip))
        else:
            funcs.append(import_reward(name))
    return funcs


__all__ = [
    "BUILTIN_REWARDS",
    "ExactAnswer",
    "LengthWindow",
    "RepetitionPenalty",
    "RewardModelScore",
    "ThinkFormat",
    "ToolCallMatch",
    "ToolFormat",
    "answer_part",
    "build_reward_funcs",
    "completion_text",
    "import_reward",
    "repeated_share",
]
