"""Seeded V*-style tasks: small targets on large cluttered canvases, with exact gold boxes.

A canvas is 2048-4096 pixels wide (height 0.56-1.0 of that), painted with clutter: a smooth colour
field, patches of the photos and textures scikit-image bundles (brick, grass, gravel, coffee, rocket,
Hubble deep field...) when it is installed, striped patches, and a few hundred muted distractor shapes. On it go
the targets, each ``target_frac`` (1-3 % by default) of the canvas's long side: shapes in saturated
colours, short words on small signs, three-digit numbers on tags. Downscaled into the model's pixel
budget they are a few pixels wide, unreadable without zooming in. Questions (4 options each):

* ``colour``: the colour of the one star / triangle / diamond / cross / hexagon;
* ``text``: the word on the small white sign;
* ``digits``: the number on the small yellow tag;
* ``count``: how many small shapes of one kind and colour there are (1-4, in one cluster);
* ``position``: where one small shape is relative to another (left / right / above / below).

The layout (question, options, gold box) is drawn from ``(seed, index)`` without rendering; the image is
rendered when a task is first shown (about 0.1 s for a 4K canvas). ``meta["difficulty"]`` is the target
size over the canvas's long side.
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rlvr.envs.grounding.tasks import GroundingTask
from rlvr.errors import ConfigError

__all__ = ["KINDS", "SyntheticConfig", "bundled_textures", "generate_tasks", "render_layout"]

KINDS = ("colour", "text", "digits", "count", "position")
COLOURS = {"red": (220, 30, 30), "green": (20, 170, 40), "blue": (30, 60, 230), "yellow": (245, 215, 0),
           "orange": (250, 130, 0), "purple": (140, 40, 200), "pink": (255, 90, 180), "cyan": (0, 200, 220)}
SHAPES = ("star", "triangle", "diamond", "cross", "hexagon")
WORDS = ("MAPLE", "RIVER", "STONE", "CLOUD", "AMBER", "CEDAR", "FROST", "LEMON", "OLIVE", "PEARL", "RAVEN", "TULIP",
         "BRICK", "DELTA", "EMBER", "GLASS", "HAVEN", "IVORY", "JUMBO", "KAYAK", "LUNAR", "MOCHA", "NOBLE", "OCEAN")


@dataclass(frozen=True, slots=True)
class SyntheticConfig:
    """Generator settings.

    Args:
        seed: the task list's seed (with the index, it fixes each task).
        n_tasks: tasks in the list (question kinds cycle through :data:`KINDS`).
        min_side, max_side: range of the canvas's long side in pixels.
        target_frac: range of a target's size as a fraction of the canvas's long side (the difficulty).
        distractors: muted clutter shapes per canvas.
    """

    seed: int = 0
    n_tasks: int = 64
    min_side: int = 2048
    max_side: int = 4096
    target_frac: tuple[float, float] = (0.01, 0.03)
    distractors: int = 300

    def __post_init__(self) -> None:
        if not isinstance(self.n_tasks, int) or self.n_tasks < 1:
            raise ConfigError(f"n_tasks must be a positive integer, got {self.n_tasks!r}")
        if not 256 <= self.min_side <= self.max_side <= 8192:
            raise ConfigError(f"need 256 <= min_side <= max_side <= 8192, got {self.min_side}, {self.max_side}")
        lo, hi = self.target_frac
        if not 0.002 <= lo <= hi <= 0.06:  # a five-letter sign is 2.5 targets wide: larger ones crowd the canvas
            raise ConfigError(f"target_frac must be (lo, hi) with 0.002 <= lo <= hi <= 0.06, got {self.target_frac}")


@dataclass(frozen=True, slots=True)
class _Item:
    kind: str  # a shape name, "sign" or "tag"
    colour: tuple[int, int, int]
    box: tuple[int, int, int, int]
    text: str = ""


def _place(rng: np.random.Generator, w: int, h: int, s: int, taken: list[tuple[int, int, int, int]],
           near: tuple[int, int] | None = None, spread: int = 0) -> tuple[int, int, int, int]:
    """A free ``s``-sized square (not overlapping ``taken``), anywhere or within ``spread`` of ``near``."""
    for _ in range(200):
        if near is None:
            x, y = int(rng.integers(s, w - 2 * s)), int(rng.integers(s, h - 2 * s))
        else:
            x = int(np.clip(near[0] + rng.integers(-spread, spread + 1), s, w - 2 * s))
            y = int(np.clip(near[1] + rng.integers(-spread, spread + 1), s, h - 2 * s))
        box = (x, y, x + s, y + s)
        pad = s // 2
        if all(box[2] + pad <= t[0] or t[2] + pad <= box[0] or box[3] + pad <= t[1] or t[3] + pad <= box[1]
               for t in taken):
            taken.append(box)
            return box
    raise ConfigError(f"could not place a {s}-pixel target on a {w}x{h} canvas; lower target_frac")


def _union(boxes: list[tuple[int, int, int, int]]) -> tuple[float, float, float, float]:
    return (float(min(b[0] for b in boxes)), float(min(b[1] for b in boxes)),
            float(max(b[2] for b in boxes)), float(max(b[3] for b in boxes)))


def _options(rng: np.random.Generator, correct: str, pool: list[str]) -> tuple[tuple[str, ...], int]:
    others = [p for p in pool if p != correct]
    picks = [others[i] for i in rng.choice(len(others), size=3, replace=False)]
    opts = [correct, *picks]
    order = rng.permutation(4)
    return tuple(opts[i] for i in order), int(np.nonzero(order == 0)[0][0])


def _layout(cfg: SyntheticConfig, index: int) -> tuple[dict[str, Any], GroundingTask]:
    rng = np.random.default_rng([cfg.seed, index, 7919])
    w = int(rng.integers(cfg.min_side, cfg.max_side + 1))
    h = int(w * rng.uniform(0.56, 1.0))
    frac = float(rng.uniform(*cfg.target_frac))
    s = max(8, int(round(frac * w)))
    kind = KINDS[index % len(KINDS)]
    taken: list[tuple[int, int, int, int]] = []
    items: list[_Item] = []
    names = list(COLOURS)
    if kind == "colour":
        shape, colour = SHAPES[int(rng.integers(len(SHAPES)))], names[int(rng.integers(len(names)))]
        items.append(_Item(shape, COLOURS[colour], _place(rng, w, h, s, taken)))
        question = f"What is the colour of the small {shape}?"
        options, answer = _options(rng, colour, names)
    elif kind in ("text", "digits"):
        if kind == "text":
            word = WORDS[int(rng.integers(len(WORDS)))]
            pool, colour, thing = list(WORDS), (255, 255, 255), "white sign"
        else:
            word = str(int(rng.integers(100, 1000)))
            pool = sorted({str(int(v)) for v in rng.integers(100, 1000, size=12)} | {word})
            colour, thing = (245, 215, 0), "yellow tag"
        sw = s * max(2, len(word)) // 2
        box = _place(rng, w, h, sw, taken)
        box = (box[0], box[1], box[2], box[1] + max(8, sw * 2 // 5))
        items.append(_Item("sign" if kind == "text" else "tag", colour, box, word))
        question = f"What is written on the small {thing}?"
        options, answer = _options(rng, word, pool)
    elif kind == "count":
        shape, colour = SHAPES[int(rng.integers(len(SHAPES)))], names[int(rng.integers(len(names)))]
        n = int(rng.integers(1, 5))
        centre = _place(rng, w, h, s, taken)
        boxes = [centre] + [_place(rng, w, h, s, taken, near=(centre[0], centre[1]), spread=4 * s) for _ in range(n - 1)]
        items += [_Item(shape, COLOURS[colour], b) for b in boxes]
        question = f"How many small {colour} {shape}s are there in the image?"
        options, answer = ("1", "2", "3", "4"), n - 1
    else:
        a_shape, b_shape = (SHAPES[i] for i in rng.choice(len(SHAPES), size=2, replace=False))
        a_col, b_col = (names[i] for i in rng.choice(len(names), size=2, replace=False))
        relation = ("left", "right", "above", "below")[int(rng.integers(4))]
        a = _place(rng, w, h, s, taken)
        dx, dy = {"left": (3 * s, 0), "right": (-3 * s, 0), "above": (0, 3 * s), "below": (0, -3 * s)}[relation]
        if not (s <= a[0] + dx <= w - 2 * s and s <= a[1] + dy <= h - 2 * s):  # no room on that side: the other
            dx, dy = -dx, -dy
        b_near = (int(np.clip(a[0] + dx, s, w - 2 * s)), int(np.clip(a[1] + dy, s, h - 2 * s)))
        b = _place(rng, w, h, s, taken, near=b_near, spread=s // 2)
        truth = _relation(a, b)
        items += [_Item(a_shape, COLOURS[a_col], a), _Item(b_shape, COLOURS[b_col], b)]
        question = f"Where is the small {a_col} {a_shape} relative to the small {b_col} {b_shape}?"
        options = ("left of it", "right of it", "above it", "below it")
        answer = ("left", "right", "above", "below").index(truth)
    gold = _union([it.box for it in items])
    layout = {"size": (w, h), "items": items, "seed": int(rng.integers(2**31)), "distractors": cfg.distractors,
              "taken": taken}
    task = GroundingTask(f"synthetic-{cfg.seed}-{index}", None, question, options, answer, gold,
                         {"source": "synthetic", "category": kind, "difficulty": s / w})
    return layout, task


def _relation(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> str:
    """Where box ``a`` lies relative to box ``b``, along the axis of their larger separation."""
    dx = (a[0] + a[2]) / 2 - (b[0] + b[2]) / 2
    dy = (a[1] + a[3]) / 2 - (b[1] + b[3]) / 2
    if abs(dx) >= abs(dy):
        return "left" if dx < 0 else "right"
    return "above" if dy < 0 else "below"


def _polygon(kind: str, box: tuple[int, int, int, int]) -> list[tuple[float, float]]:
    x1, y1, x2, y2 = box
    cx, cy, r = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) / 2
    if kind == "triangle":
        return [(cx, y1), (x2, y2), (x1, y2)]
    if kind == "diamond":
        return [(cx, y1), (x2, cy), (cx, y2), (x1, cy)]
    if kind == "hexagon":
        return [(cx + r * math.cos(a), cy + r * math.sin(a)) for a in np.linspace(0, 2 * math.pi, 7)[:-1]]
    if kind == "star":
        return [(cx + (r if i % 2 == 0 else r * 0.45) * math.sin(i * math.pi / 5),
                 cy - (r if i % 2 == 0 else r * 0.45) * math.cos(i * math.pi / 5)) for i in range(10)]
    t = r / 3  # cross
    return [(cx - t, y1), (cx + t, y1), (cx + t, cy - t), (x2, cy - t), (x2, cy + t), (cx + t, cy + t), (cx + t, y2),
            (cx - t, y2), (cx - t, cy + t), (x1, cy + t), (x1, cy - t), (cx - t, cy - t)]


def render_layout(layout: dict[str, Any]) -> Any:
    """Paint a layout from :func:`generate_tasks`: clutter first, then the targets."""
    from PIL import Image, ImageDraw, ImageFont

    w, h = layout["size"]
    rng = np.random.default_rng(layout["seed"])
    field = rng.integers(90, 200, size=(max(2, h // 256), max(2, w // 256), 3), dtype=np.uint8)
    small = Image.fromarray(field, "RGB").resize((max(1, w // 4), max(1, h // 4)), Image.Resampling.BILINEAR)
    img = small.resize((w, h), Image.Resampling.NEAREST)  # a smooth field in 4-pixel cells: 10x cheaper at 4K
    textures = bundled_textures()
    for _ in range(14 if textures else 0):  # photo and texture patches, half desaturated
        tex = _texture(textures[int(rng.integers(len(textures)))])
        side = int(max(w, h) * rng.uniform(0.08, 0.3))
        pw, ph = min(w, side), min(h, max(8, int(side * tex.height / tex.width)))
        patch = tex.resize((pw, ph), Image.Resampling.BILINEAR)
        if rng.random() < 0.5:
            patch = Image.blend(patch, patch.convert("L").convert("RGB"), 0.6)
        img.paste(patch, (int(rng.integers(0, w - pw + 1)), int(rng.integers(0, h - ph + 1))))
    draw = ImageDraw.Draw(img)
    for _ in range(6 if textures else 12):  # striped and checkered patches
        pw, ph = int(rng.integers(w // 20, w // 6)), int(rng.integers(h // 20, h // 6))
        px, py = int(rng.integers(0, w - pw)), int(rng.integers(0, h - ph))
        step = int(rng.integers(6, 24))
        c1 = tuple(int(v) for v in rng.integers(80, 170, 3))
        for k in range(0, pw if rng.random() < 0.5 else ph, 2 * step):
            if pw > ph:
                draw.rectangle((px + k, py, px + k + step, py + ph), fill=c1)
            else:
                draw.rectangle((px, py + k, px + pw, py + k + step), fill=c1)
    taken = layout["taken"]
    long_side = max(w, h)
    for _ in range(layout["distractors"]):  # muted circles, rectangles and lines away from the targets
        size = int(rng.integers(long_side // 150, long_side // 25))
        x, y = int(rng.integers(0, w - size)), int(rng.integers(0, h - size))
        box = (x, y, x + size, y + size)
        if any(not (box[2] < t[0] - 4 or t[2] + 4 < box[0] or box[3] < t[1] - 4 or t[3] + 4 < box[1]) for t in taken):
            continue
        grey = int(rng.integers(60, 190))
        tint = tuple(min(255, max(0, grey + int(d))) for d in rng.integers(-25, 26, 3))
        r = rng.random()
        if r < 0.45:
            draw.ellipse(box, fill=tint)
        elif r < 0.85:
            draw.rectangle((x, y, x + size, y + size // 2), fill=tint)
        else:
            draw.line((x, y, x + size, y + size), fill=tint, width=max(2, size // 12))
    for it in layout["items"]:
        if it.kind in ("sign", "tag"):
            x1, y1, x2, y2 = it.box
            draw.rectangle(it.box, fill=it.colour, outline=(0, 0, 0), width=max(1, (y2 - y1) // 16))
            size = max(6, int((y2 - y1) * 0.7))
            font = ImageFont.load_default(size=size)
            tw = draw.textlength(it.text, font=font)
            draw.text(((x1 + x2 - tw) / 2, (y1 + y2) / 2), it.text, fill=(0, 0, 0), font=font, anchor="lm")
        else:
            draw.polygon(_polygon(it.kind, it.box), fill=it.colour, outline=(0, 0, 0))
    return img


_TEXTURE_FILES = ("brick.png", "grass.png", "gravel.png", "coffee.png", "rocket.jpg", "hubble_deep_field.jpg",
                  "chelsea.png", "motorcycle_left.png", "astronaut.png", "retina.jpg", "coins.png", "page.png")


def bundled_textures() -> list[Path]:
    """The photos and textures bundled with scikit-image, when it is installed (read with Pillow; scikit-image
    itself is not imported); empty otherwise, and the clutter is procedural only."""
    spec = importlib.util.find_spec("skimage")
    if spec is None or spec.origin is None:
        return []
    folder = Path(spec.origin).parent / "data"
    return [folder / n for n in _TEXTURE_FILES if (folder / n).is_file()]


def _texture(path: Path) -> Any:
    """A bundled texture as RGB, decoded once per process (in the ``grounding.images`` cache)."""
    from PIL import Image

    from rlvr.caches import GROUNDING_IMAGES

    def load() -> tuple[Any]:
        with Image.open(path) as im:
            return (im.convert("RGB"),)
    return GROUNDING_IMAGES.get_or_build(("texture", str(path)), load)[0]


def generate_tasks(cfg: SyntheticConfig) -> list[GroundingTask]:
    """The ``cfg.n_tasks`` tasks of a seed; each task's ``image`` renders its canvas when called."""
    out = []
    for i in range(cfg.n_tasks):
        layout, task = _layout(cfg, i)
        out.append(GroundingTask(task.task_id, _Renderer(layout), task.question, task.options, task.answer, task.bbox,
                                 task.meta))
    return out


class _Renderer:
    """A picklable zero-argument callable that renders one layout."""

    def __init__(self, layout: dict[str, Any]) -> None:
        self.layout = layout

    def __call__(self) -> Any:
        return render_layout(self.layout)

    def __repr__(self) -> str:
        w, h = self.layout["size"]
        return f"<synthetic canvas {w}x{h}>"
