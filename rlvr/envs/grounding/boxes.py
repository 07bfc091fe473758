"""Reading a grounding turn (an answer or a box) and mapping boxes from the model's view to the original.

Actions (:func:`parse_action`, never raises; linear in the message length, at most
:data:`MAX_JSON_STARTS` JSON values tried):

* an answer: ``\\boxed{B}`` or ``<answer>B</answer>`` (the last one wins); it ends the episode, and
  wins over a box in the same message;
* a box: ``{"bbox_2d": [x1, y1, x2, y2]}`` bare, in a fenced ``json`` block (also MGPO's list
  ``[{"bbox_2d": [...], "label": "..."}]``), or as a ``<tool_call>`` to ``zoom_in``
  (``{"name": "zoom_in", "arguments": {"bbox_2d": [...]}}``). The last box of the message is used.

Coordinates (:data:`COORD_MODES`): ``abs_resized`` pixels of the view the model was shown (Qwen2.5-VL,
MGPO), ``rel1000`` thousandths of its sides (Qwen2-VL, Qwen3-VL), ``rel1`` fractions (Mini-o3, Pixel
Reasoner). :func:`resolve_box` checks a box, clamps a box that partly overflows, expands one thinner than
``min_side`` view pixels around its centre, and maps it **by ratio** to original pixels; the crop is
then cut from the original, never from the view's coordinates applied to the original.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Sequence

from rlvr.envs.parsers import json_values

__all__ = ["COORD_MODES", "GroundingAction", "Resolved", "box_iou", "from_view", "parse_action", "resolve_box",
           "to_view"]

COORD_MODES = ("abs_resized", "rel1000", "rel1")
MAX_JSON_STARTS = 64
ZOOM_TOOL = "zoom_in"
_BOXED = "\\boxed{"
_ANS_OPEN, _ANS_CLOSE = "<answer>", "</answer>"


@dataclass(slots=True)
class GroundingAction:
    """What one assistant message asked for: an answer, boxes (raw ``bbox_2d`` values) and problems."""

    answer: str | None = None
    boxes: list[Any] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _last_boxed(text: str) -> tuple[str | None, str | None]:
    """Content of the last ``\\boxed{...}`` (braces balanced), or a problem for an unclosed one."""
    i = text.rfind(_BOXED)
    if i < 0:
        return None, None
    depth, start = 1, i + len(_BOXED)
    for j in range(start, len(text)):
        c = text[j]
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return text[start:j].strip(), None
    return None, "Found \\boxed{ without its closing brace; write the final answer as \\boxed{B}."


def _last_answer_tag(text: str) -> tuple[str | None, str | None]:
    i = text.rfind(_ANS_OPEN)
    if i < 0:
        return None, None
    j = text.find(_ANS_CLOSE, i + len(_ANS_OPEN))
    if j < 0:
        return None, "Found <answer> without a closing </answer>; write the final answer as <answer>B</answer>."
    return text[i + len(_ANS_OPEN): j].strip(), None


def _boxes_in(value: Any, problems: list[str]) -> list[Any]:
    """The ``bbox_2d`` values inside a decoded JSON value: a box object, a list of them, or a zoom call."""
    out: list[Any] = []
    stack = [value]
    seen = 0
    while stack and seen < 256:
        v = stack.pop(0)
        seen += 1
        if isinstance(v, list):
            stack[:0] = v
        elif isinstance(v, dict):
            if "bbox_2d" in v:
                out.append(v["bbox_2d"])
            elif isinstance(v.get("name"), str) and isinstance(v.get("arguments"), dict):
                if v["name"] != ZOOM_TOOL:
                    problems.append(f"Unknown tool {v['name'][:40]!r}: the only tool is {ZOOM_TOOL!r}, "
                                    f'called as {{"name": "{ZOOM_TOOL}", "arguments": {{"bbox_2d": [x1, y1, x2, y2]}}}}.')
                else:
                    stack.insert(0, v["arguments"])
    return out


def parse_action(text: str) -> GroundingAction:
    """Read one assistant message (see the module docstring); anything unreadable is listed in ``problems``."""
    out = GroundingAction()
    boxed, p1 = _last_boxed(text)
    tagged, p2 = _last_answer_tag(text)
    if boxed is not None and tagged is not None:  # both given: the later one
        out.answer = boxed if text.rfind(_BOXED) > text.rfind(_ANS_OPEN) else tagged
    else:
        out.answer = boxed if boxed is not None else tagged
    if out.answer is not None:
        return out
    out.problems += [p for p in (p1, p2) if p]
    for obj in json_values(text, MAX_JSON_STARTS):
        out.boxes += _boxes_in(obj, out.problems)
    if not out.boxes and "bbox_2d" in text:
        out.problems.append('Found "bbox_2d" but could not read it as JSON; write {"bbox_2d": [x1, y1, x2, y2]} '
                            "with numbers.")
    return out


# ----------------------------------------------------------------------------- coordinates
def to_view(box: Sequence[float], mode: str, size: tuple[int, int]) -> tuple[float, float, float, float]:
    """A box in ``mode`` coordinates as view pixels; ``size`` is the view's ``(width, height)``."""
    w, h = size
    x1, y1, x2, y2 = (float(v) for v in box)
    if mode == "abs_resized":
        return x1, y1, x2, y2
    s = 1000.0 if mode == "rel1000" else 1.0
    return x1 / s * w, y1 / s * h, x2 / s * w, y2 / s * h


def from_view(box: Sequence[float], mode: str, size: tuple[int, int]) -> tuple[float, float, float, float]:
    """A box in view pixels written in ``mode`` coordinates (the inverse of :func:`to_view`)."""
    w, h = size
    x1, y1, x2, y2 = (float(v) for v in box)
    if mode == "abs_resized":
        return x1, y1, x2, y2
    s = 1000.0 if mode == "rel1000" else 1.0
    return x1 / w * s, y1 / h * s, x2 / w * s, y2 / h * s


@dataclass(frozen=True, slots=True)
class Resolved:
    """A checked box: ``region`` in original pixels (what is cropped), ``requested`` the model's box in
    original pixels after clamping and before expansion (what grounding IoU is measured on), ``view_box``
    the box finally used in view pixels, and a ``note`` on what was adjusted (or ``None``)."""

    region: tuple[int, int, int, int]
    requested: tuple[float, float, float, float]
    view_box: tuple[float, float, float, float]
    note: str | None


def _example(mode: str, size: tuple[int, int]) -> str:
    w, h = size
    box = from_view((w * 0.25, h * 0.25, w * 0.5, h * 0.5), mode, size)
    fmt = "{:.0f}" if mode != "rel1" else "{:.2f}"
    return "[" + ", ".join(fmt.format(v) for v in box) + "]"


def _convention(mode: str, size: tuple[int, int]) -> str:
    w, h = size
    return {"abs_resized": f"pixels of the image you were shown ({w}x{h})",
            "rel1000": "thousandths of the image's width and height (0 to 1000)",
            "rel1": "fractions of the image's width and height (0 to 1)"}[mode]


def resolve_box(raw: Any, mode: str, view_size: tuple[int, int], original_size: tuple[int, int], *,
                min_side: float = 28.0, max_aspect: float = 100.0) -> Resolved | str:
    """Check and map one raw ``bbox_2d`` value; returns a :class:`Resolved` or the reason it was rejected.

    Rejected: not a list of exactly 4 numbers (booleans, strings, nulls included), non-finite values,
    ``x1 >= x2`` or ``y1 >= y2`` (inverted or zero area), a box with no overlap with the image, an aspect
    ratio over ``max_aspect`` (after clamping), and numbers that read as another convention (all within
    [0, 1] outside ``rel1``; above 1 in ``rel1``). A box that partly overflows is clamped; one thinner
    than ``min_side`` view pixels is expanded around its centre (shifted to stay inside).
    """
    hint = f"Write {{\"bbox_2d\": [x1, y1, x2, y2]}} in {_convention(mode, view_size)}, e.g. {_example(mode, view_size)}."
    if not isinstance(raw, (list, tuple)):
        return f"bbox_2d must be a list of 4 numbers, got {type(raw).__name__} {json.dumps(raw, default=str)[:60]}. {hint}"
    if len(raw) != 4:
        return f"bbox_2d must have exactly 4 numbers [x1, y1, x2, y2], got {len(raw)}. {hint}"
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in raw):
        bad = next(v for v in raw if not (isinstance(v, (int, float)) and not isinstance(v, bool)))
        return f"bbox_2d must hold numbers, got {json.dumps(bad, default=str)[:40]} ({type(bad).__name__}). {hint}"
    if not all(math.isfinite(v) for v in raw):
        return f"bbox_2d holds a non-finite value ({', '.join(str(v) for v in raw)}). {hint}"
    vals = [float(v) for v in raw]
    if mode != "rel1" and max(abs(v) for v in vals) <= 1.0:
        return (f"bbox_2d {vals} looks like fractions of the image, but coordinates here are "
                f"{_convention(mode, view_size)}. {hint}")
    if mode == "rel1" and max(vals) > 1.0:
        return (f"bbox_2d {vals} has values above 1, but coordinates here are {_convention(mode, view_size)}. {hint}")
    x1, y1, x2, y2 = to_view(vals, mode, view_size)
    w, h = view_size
    if x1 >= x2 or y1 >= y2:
        return f"bbox_2d needs x1 < x2 and y1 < y2 (a box of positive area), got {vals}. {hint}"
    if x2 <= 0 or y2 <= 0 or x1 >= w or y1 >= h:
        return f"bbox_2d {vals} lies entirely outside the image. {hint}"
    notes = []
    cx1, cy1, cx2, cy2 = max(0.0, x1), max(0.0, y1), min(float(w), x2), min(float(h), y2)
    if (cx1, cy1, cx2, cy2) != (x1, y1, x2, y2):
        notes.append("clamped to the image")
    bw, bh = cx2 - cx1, cy2 - cy1
    if max(bw, bh) / min(bw, bh) > max_aspect:
        return (f"bbox_2d {vals} is a {bw:.0f}x{bh:.0f} sliver (aspect ratio {max(bw, bh) / min(bw, bh):.0f}, "
                f"at most {max_aspect:.0f}). {hint}")
    sx, sy = original_size[0] / w, original_size[1] / h
    requested = (cx1 * sx, cy1 * sy, cx2 * sx, cy2 * sy)
    ex1, ex2 = _expand(cx1, cx2, min_side, float(w))
    ey1, ey2 = _expand(cy1, cy2, min_side, float(h))
    if (ex1, ey1, ex2, ey2) != (cx1, cy1, cx2, cy2):
        notes.append(f"enlarged to at least {min_side:g} pixels a side")
    ow, oh = original_size
    region = (max(0, math.floor(ex1 * sx)), max(0, math.floor(ey1 * sy)),
              min(ow, math.ceil(ex2 * sx)), min(oh, math.ceil(ey2 * sy)))
    if region[2] - region[0] < 1 or region[3] - region[1] < 1:
        return f"bbox_2d {vals} covers less than one pixel of the original image. {hint}"
    return Resolved(region, requested, (ex1, ey1, ex2, ey2), "; ".join(notes) or None)


def _expand(a: float, b: float, min_side: float, limit: float) -> tuple[float, float]:
    """``[a, b]`` widened around its centre to ``min(min_side, limit)``, shifted to stay within ``[0, limit]``."""
    side = min(min_side, limit)
    if b - a >= side:
        return a, b
    c = (a + b) / 2
    a, b = c - side / 2, c + side / 2
    if a < 0:
        a, b = 0.0, side
    if b > limit:
        a, b = limit - side, limit
    return a, b


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two ``(x1, y1, x2, y2)`` boxes (0 when either has no area)."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0
