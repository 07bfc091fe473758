"""The grounding task record and the option helpers shared by the generator and the loaders."""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass, field
from typing import Any, Sequence

from rlvr.errors import ConfigError

__all__ = ["GroundingTask", "LETTERS", "letter_of", "match_option", "shuffled"]

LETTERS = "ABCDEFGHIJ"


@dataclass(frozen=True, slots=True, eq=False)
class GroundingTask:
    """One question about one image.

    Args:
        task_id: unique within a task list (``reset(options={"task_id": ...})`` replays it).
        image: the original: a path, encoded bytes, a PIL image, or a callable returning a PIL image
            (the generator renders lazily); opened and checked at reset.
        question: the question text, without the options.
        options: the answer choices, in the order they are lettered (A, B, ...).
        answer: index of the correct option.
        bbox: the gold region ``(x1, y1, x2, y2)`` in original pixels, when known.
        meta: anything else (``source``, ``category``, ``cycle_category``, ``difficulty``).
    """

    task_id: str
    image: Any
    question: str
    options: tuple[str, ...]
    answer: int
    bbox: tuple[float, float, float, float] | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 2 <= len(self.options) <= len(LETTERS):
            raise ConfigError(f"task {self.task_id!r}: needs 2 to {len(LETTERS)} options, got {len(self.options)}")
        if not 0 <= self.answer < len(self.options):
            raise ConfigError(f"task {self.task_id!r}: answer index {self.answer} is not one of its "
                              f"{len(self.options)} options")
        if self.bbox is not None:
            x1, y1, x2, y2 = self.bbox
            if not (x2 > x1 and y2 > y1):
                raise ConfigError(f"task {self.task_id!r}: gold bbox {self.bbox} needs x1 < x2 and y1 < y2 "
                                  "(x1, y1, x2, y2 in original pixels)")

    @property
    def letter(self) -> str:
        """The correct option's letter."""
        return LETTERS[self.answer]

    def options_text(self) -> str:
        """``(A) red\\n(B) blue...``: the lettered options, one a line."""
        return "\n".join(f"({LETTERS[i]}) {o}" for i, o in enumerate(self.options))


def shuffled(options: Sequence[str], correct: int, key: str) -> tuple[tuple[str, ...], int]:
    """``options`` in an order drawn from ``key`` (a stable string such as ``"seed:task_id"``), and the
    new index of the correct one. Used where a format lists the correct option first (V*)."""
    rng = random.Random(hashlib.sha256(key.encode("utf-8")).digest())
    order = list(range(len(options)))
    rng.shuffle(order)
    return tuple(options[i] for i in order), order.index(correct)


def letter_of(index: int) -> str:
    return LETTERS[index]


_LEAD = re.compile(r"^\s*[\(\[]?\s*([A-Za-z])\s*[\)\]\.:]?(?:\s|$)")


def _norm(s: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", s.lower()).split())


def match_option(answer: str, options: Sequence[str]) -> int | None:
    """The option an answer names: a letter (``B``, ``(B)``, ``B. blue``, ``b``) or the option's text
    (case and punctuation ignored); ``None`` when it names none of them."""
    text = answer.strip()
    m = _LEAD.match(text)
    if m:
        i = LETTERS.find(m.group(1).upper())
        if 0 <= i < len(options):
            return i
    norm = _norm(text)
    for i, o in enumerate(options):
        if norm and norm == _norm(o):
            return i
    return None
