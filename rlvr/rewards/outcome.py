"""Outcome rewards for question answering: exact match, token F1 and a format check.

All functions are pure and take the model's final answer text plus the gold answer, given either
as one string or as a list of aliases (the best alias counts).

Normalisation follows the SQuAD evaluation script, the convention of HotpotQA, 2Wiki, MuSiQue and
Search-R1: lower-case, drop punctuation, drop the articles "a", "an", "the", collapse whitespace.
Token F1 follows HotpotQA: when either side normalises to "yes", "no" or "noanswer" and the two
differ, F1 is 0.

A final answer may carry an explanation with citations. :func:`extract_exact_answer` picks the
part to score: the text after an ``Exact answer:`` label (``## Exact Answer`` heading form too),
else the whole text with ``[doc_id]`` citation markers removed.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from typing import Sequence

__all__ = [
    "normalize_answer",
    "exact_match",
    "token_f1",
    "extract_exact_answer",
    "format_ok",
    "format_reward",
]

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)
_WS = re.compile(r"\s+")
_SPECIAL = ("yes", "no", "noanswer")
# "Exact answer: X", "**Exact Answer:** X", "## Exact Answer\nX" (case-insensitive); the last label wins.
_EXACT_LABEL = re.compile(r"(?im)^[ \t]*(?:#+[ \t]*)?(?:\*\*)?exact[ \t]+answer(?:\*\*)?[ \t]*:?(?:\*\*)?[ \t]*")
_CITATION = re.compile(r"\[[^\[\]\n]{1,200}\](?!\()")
_SECTION = re.compile(r"(?m)^[ \t]*#+[ \t]")


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lower-case, remove punctuation and articles, collapse whitespace."""
    text = text.lower().translate(_PUNCT)
    text = _ARTICLES.sub(" ", text)
    return _WS.sub(" ", text).strip()


def _aliases(answers: str | Sequence[str]) -> list[str]:
    if isinstance(answers, str):
        return [answers]
    out = [a for a in answers if isinstance(a, str)]
    if not out:
        raise ValueError(f"expected a gold answer string or a non-empty list of alias strings, got {answers!r}")
    return out


def exact_match(prediction: str, answers: str | Sequence[str]) -> float:
    """1.0 when the normalised prediction equals the normalised form of any alias, else 0.0."""
    pred = normalize_answer(prediction)
    return float(any(pred == normalize_answer(a) for a in _aliases(answers)))


def _f1(pred: str, gold: str) -> float:
    p, g = normalize_answer(pred), normalize_answer(gold)
    if (p in _SPECIAL or g in _SPECIAL) and p != g:
        return 0.0
    pt, gt = p.split(), g.split()
    if not pt or not gt:
        return float(pt == gt)
    common = sum((Counter(pt) & Counter(gt)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pt), common / len(gt)
    return 2 * precision * recall / (precision + recall)


def token_f1(prediction: str, answers: str | Sequence[str]) -> float:
    """Token-level F1 between the normalised prediction and the best alias, in [0, 1]."""
    return max(_f1(prediction, a) for a in _aliases(answers))


def extract_exact_answer(text: str) -> str:
    """The part of a final answer to score.

    With an ``Exact answer:`` label (or ``## Exact Answer`` heading), the text after the last label up
    to the next markdown heading; otherwise the whole text. Citation markers ``[doc_id]`` are removed
    either way and whitespace is collapsed.
    """
    labels = list(_EXACT_LABEL.finditer(text))
    if labels:
        rest = text[labels[-1].end():]
        nxt = _SECTION.search(rest)
        text = rest[: nxt.start()] if nxt else rest
    text = _CITATION.sub(" ", text)
    return _WS.sub(" ", text).strip().strip("*").strip()


_TAGS = ("answer", "tool_call", "think")


def format_ok(text: str, *, require_answer: bool = True) -> bool:
    """True when every ``<answer>``, ``<tool_call>`` and ``<think>`` tag is opened and closed in order
    without nesting, and (with ``require_answer``) exactly one non-empty ``<answer>`` block exists."""
    for tag in _TAGS:
        depth = 0
        for m in re.finditer(rf"<(/?){tag}>", text):
            depth += -1 if m.group(1) else 1
            if depth not in (0, 1):
                return False
        if depth != 0:
            return False
    if require_answer:
        blocks = re.findall(r"<answer>(.*?)</answer>", text, flags=re.DOTALL)
        return len(blocks) == 1 and bool(blocks[0].strip())
    return True


def format_reward(text: str, *, reward: float = 1.0, penalty: float = 0.0, require_answer: bool = True) -> float:
    """``reward`` when :func:`format_ok` holds, else ``penalty`` (IGPO's form: ``reward=0, penalty=-2``)."""
    return reward if format_ok(text, require_answer=require_answer) else penalty
