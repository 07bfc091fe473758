"""From an assistant message to the one game command it sends, and how the game's answer is read.

A turn sends exactly one command: text games take one command per input line, and several commands in
one input crash TextWorld's state tracking. :func:`parse_command` takes the first ``<action>...</action>``
block (plain text is accepted as a fallback), keeps its first command (up to a line break, ``.``, ``;``,
``!``, ``?`` or a ``then``), drops control characters and cuts it to ``max_chars`` UTF-8 bytes. Whatever it had to
drop or repair is reported as a problem (the ``format`` component), and the command is sent all the same
so that the game answers in its own words. The scan is linear in the length of the message.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

__all__ = ["ParsedCommand", "parse_command", "not_understood", "NOT_UNDERSTOOD", "MAX_COMMAND_CHARS"]

MAX_COMMAND_CHARS = 180
"""Longest command sent to a game, in UTF-8 bytes; longer ones are cut (the Z-machine interpreter takes
under 198 bytes; the longest admissible command of the generated games is under 80)."""

_OPEN = re.compile(r"<action>", re.I)
_CLOSE = re.compile(r"</action>", re.I)
_THINK_CLOSE = re.compile(r"</think>", re.I)
_THINK_OPEN = re.compile(r"<think>", re.I)
_SPLIT = re.compile(r"[\n\r.;!?]|\bthen\b", re.I)

NOT_UNDERSTOOD = (
    "that's not a verb i recognise",
    "you can't see any such thing",
    "i beg your pardon",
    "i didn't understand that sentence",
    "i only understood you as far as",
    "you seem to have said too little",
    "that noun did not make sense in this context",
    "you can't use multiple objects with that verb",
    "you must name something more substantial",
    "i didn't understand the way that finished",
    "nothing happens.",  # ALFWorld's answer to any command that is not one of its actions
    "invalid command.",
    "that command is not available in this game",
)
"""Openings of the answers a game gives to a command it did not understand (the Inform 7 parser's
refusals, ALFWorld's ``Nothing happens.``). Matched case-insensitively at the start of the feedback."""


@dataclass(frozen=True, slots=True)
class ParsedCommand:
    """The command a turn sends and what was wrong with the message, if anything.

    ``problem`` is ``None`` for a clean turn (one command, in tags or as plain text), else a sentence
    for the model: an empty command, an unclosed tag, several commands, control characters or a command
    over the length limit.
    """

    command: str
    problem: str | None = None


def _clean(text: str) -> tuple[str, bool]:
    """``text`` with whitespace of any kind as plain spaces and control, format and surrogate characters
    removed; whether any character was removed."""
    kept = [" " if ch.isspace() else ch for ch in text if ch.isspace() or unicodedata.category(ch)[0] != "C"]
    return "".join(kept), len(kept) != len(text)


def _without_think(text: str) -> str:
    """``text`` without its closed ``<think>...</think>`` blocks (one left-to-right scan)."""
    out, pos = [], 0
    while (opened := _THINK_OPEN.search(text, pos)) and (closed := _THINK_CLOSE.search(text, opened.end())):
        out.append(text[pos:opened.start()])
        pos = closed.end()
    out.append(text[pos:])
    return " ".join(out)


def parse_command(text: str, max_chars: int = MAX_COMMAND_CHARS) -> ParsedCommand:
    """The one command of an assistant message (see the module docstring). Never raises on a string."""
    problems: list[str] = []
    opened = _OPEN.search(text)
    if opened:
        closed = _CLOSE.search(text, opened.end())
        if closed is None:
            body = text[opened.end():]
            problems.append("the <action> tag is not closed")
        else:
            body = text[opened.end():closed.start()]
            if _OPEN.search(text, closed.end()):
                problems.append("only the first <action> block was sent")
    else:
        body = _without_think(text)
        stray = None
        for stray in _THINK_CLOSE.finditer(body):  # an unmatched </think>: keep what follows the last one
            pass
        if stray is not None:
            body = body[stray.end():]
    body = body.strip()
    m = _SPLIT.search(body)
    command = body[: m.start()] if m else body
    if m and body[m.end():].strip(" \n\r\t.;!?"):
        problems.append("only the first command was sent (one command per turn)")
    too_long = len(command) > 4 * max_chars  # cleaning only looks at what can be sent
    command, dirty = _clean(command[: 4 * max_chars])
    command = " ".join(command.split())
    if dirty and command:
        problems.append("control characters were removed")
    if too_long or len(command.encode("utf-8")) > max_chars:
        command = command.encode("utf-8")[:max_chars].decode("utf-8", "ignore").rstrip()
        problems.append(f"the command was cut to {max_chars} bytes")
    if not command:
        problems.append("no command found")
    return ParsedCommand(command, "; ".join(problems) if problems else None)


def not_understood(feedback: str) -> bool:
    """Whether the game's ``feedback`` says it did not understand the command (:data:`NOT_UNDERSTOOD`)."""
    head = feedback.lstrip().lower()[:80]
    return head.startswith(NOT_UNDERSTOOD)
