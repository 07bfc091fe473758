"""rlvr/Grounding-v0: answer a question about a high-resolution image by zooming into regions (MGPO).

Turn 0 shows the image resized into ``max_pixels`` (sides multiples of 28, Qwen's smart resize) with
the question and lettered options, as an image content part and text in one user message. Each turn
the model answers (``\\boxed{B}`` or ``<answer>B</answer>``, which ends the episode) or asks for a region
with ``{"bbox_2d": [x1, y1, x2, y2]}`` (bare, fenced, or a ``<tool_call>`` to ``zoom_in``) in the
``coord_mode`` convention, always of the opening view (:mod:`rlvr.envs.grounding.boxes`). The region is
mapped by ratio to the original, cut there at full resolution, resized into the budget and shown in a
new user message with the question repeated. A box that cannot be used returns the opening view with
a note saying why; the episode goes on.

Reward components (weights: ``outcome`` 1, every other 0 unless ``reward_weights`` sets it):

* ``outcome``: answer accuracy, 1.0 for the correct option, 0.0 for another (terminal turn), as MGPO;
* ``format``: -1.0 for a turn with neither an answer naming an option nor a readable box;
* ``invalid_box``: -1.0 for a box that was rejected;
* ``zoom_cost``: -1.0 for every region served (a per-call cost);
* ``zoom_bonus``: 1.0 on a correct answer after at least one zoom (DeepEyes' tool bonus);
* ``tool_validity``: declared by every family; always 0.0 here (boxes are not tool calls to validate).

``info["zoom"]`` describes each box (raw value, region, note, reason rejected); ``info["grounding_iou"]``
is the IoU of the requested box with the gold box where one is known (logged, not rewarded), and the
last step carries ``grounding_iou_max``, ``zooms`` and ``invalid_boxes``.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

from rlvr.caches import GROUNDING_IMAGES
from rlvr.envs.core import AgentEnv, Message, TurnOutcome
from rlvr.envs.grounding.boxes import COORD_MODES, box_iou, from_view, parse_action, resolve_box
from rlvr.envs.grounding.imaging import (FACTOR, MAX_ORIGINAL_PIXELS, MAX_PIXELS, MIN_PIXELS, View, crop_view,
                                         open_image)
from rlvr.envs.grounding.loaders import load_tasks
from rlvr.envs.grounding.synthetic import SyntheticConfig, bundled_textures, generate_tasks
from rlvr.envs.grounding.tasks import LETTERS, GroundingTask, match_option
from rlvr.envs.parsers import ParsedAction
from rlvr.errors import ConfigError, ErrorKind, StepError, did_you_mean
from rlvr.registry import env_info

__all__ = ["GroundingEnv", "GroundingParser"]

_WEIGHTS = {"format": 0.0, "tool_validity": 0.0, "invalid_box": 0.0, "zoom_cost": 0.0, "zoom_bonus": 0.0}
_MGPO_INVALID = "Not providing correct coordinates or invalid coordinate values, return the original image:"


class GroundingParser:
    """Reads a grounding turn: an answer goes to the base class (``_on_answer``); anything else (a box,
    or nothing readable) is left to the environment's ``_on_no_call``, which reads it again with
    :func:`~rlvr.envs.grounding.boxes.parse_action` (the last parse is kept, so it costs nothing)."""

    name = "grounding"

    def __init__(self) -> None:
        self._last: tuple[str, Any] | None = None

    def read(self, text: str) -> Any:
        if self._last is None or self._last[0] is not text:
            self._last = (text, parse_action(text))
        return self._last[1]

    def parse(self, text: str) -> ParsedAction:
        return ParsedAction(answer=self.read(text).answer)


class GroundingEnv(AgentEnv):
    """Multi-turn zoom-in visual grounding on high-resolution images.

    Args:
        tasks: ``"synthetic"`` (seeded V*-style canvases), a path (folder or file, see
            :func:`~rlvr.envs.grounding.loaders.load_tasks`) or a list of :class:`GroundingTask`.
        task_format: force a file format (``vstar``, ``hrbench``, ``mme_realworld``, ``jsonl``).
        image_root: folder that relative image paths of a task file are resolved against.
        data_seed: seed of the synthetic tasks and of V*'s option shuffle.
        n_tasks: synthetic tasks in the pool.
        target_frac: synthetic target size range, as a fraction of the canvas's long side.
        coord_mode: ``abs_resized`` (pixels of the view shown; default), ``rel1000`` or ``rel1``.
        max_pixels: pixel budget of every image shown (default 1280x28x28); ``min_pixels`` the area small
            crops are upscaled towards, at most 4x (default 256x28x28, or ``max_pixels`` if smaller).
        max_turns: turn budget (default 4; 2 with ``mgpo``).
        mgpo: MGPO's fixed two-turn template: turn 1 must give a box (an answer there counts as no box),
            turn 2 answers; the options are shown with the crop.
        max_images: images shown per episode, the opening view included; a request beyond is refused.
        max_total_pixels: pixels shown per episode (default ``max_images * max_pixels``).
        max_original_pixels: originals larger than this are refused when their task is reset.
        min_box_side: boxes are enlarged around their centre to at least this many view pixels a side.
        max_box_aspect: boxes more elongated than this (after clamping) are rejected.
        **kwargs: budgets of :class:`~rlvr.envs.core.AgentEnv` (``reward_weights`` among them; ``parser``
            is fixed).

    ``reset(options=...)`` accepts ``task_id`` or ``index`` (position in the task list).
    """

    env_id = "rlvr/Grounding-v0"
    family = env_info(env_id).family
    description = env_info(env_id).description
    reward_components = ("format", "tool_validity", "outcome", "invalid_box", "zoom_cost", "zoom_bonus")
    reset_options = ("task_id", "index")

    def __init__(
        self,
        tasks: str | os.PathLike[str] | Sequence[GroundingTask] = "synthetic",
        *,
        task_format: str | None = None,
        image_root: str | os.PathLike[str] | None = None,
        data_seed: int = 0,
        n_tasks: int = 64,
        target_frac: tuple[float, float] = (0.01, 0.03),
        coord_mode: Literal["abs_resized", "rel1000", "rel1"] = "abs_resized",
        max_pixels: int = MAX_PIXELS,
        min_pixels: int | None = None,
        max_turns: int | None = None,
        mgpo: bool = False,
        max_images: int = 6,
        max_total_pixels: int | None = None,
        max_original_pixels: int = MAX_ORIGINAL_PIXELS,
        min_box_side: float = float(FACTOR),
        max_box_aspect: float = 100.0,
        **kwargs: Any,
    ) -> None:
        if "parser" in kwargs:
            raise ConfigError("rlvr/Grounding-v0 reads answers and boxes with its own parser; drop parser=")
        if coord_mode not in COORD_MODES:
            raise ConfigError(f"coord_mode must be one of {', '.join(COORD_MODES)}, got {coord_mode!r}"
                              f"{did_you_mean(str(coord_mode), COORD_MODES)}")
        min_pixels = min(MIN_PIXELS, max_pixels) if min_pixels is None else min_pixels
        if not FACTOR * FACTOR <= min_pixels <= max_pixels:
            raise ConfigError(f"need {FACTOR * FACTOR} <= min_pixels <= max_pixels, got {min_pixels}, {max_pixels}")
        if max_images < 2:
            raise ConfigError(f"max_images must be >= 2 (the opening view and one crop), got {max_images}")
        given = kwargs.pop("reward_weights", None)  # anything but a mapping: the base class says what is wrong
        weights = {**_WEIGHTS, **given} if isinstance(given, Mapping) else (dict(_WEIGHTS) if given is None else given)
        self._parser = GroundingParser()
        super().__init__(max_turns=(2 if mgpo else 4) if max_turns is None else max_turns, parser=self._parser,
                         reward_weights=weights, **kwargs)
        self.coord_mode, self.mgpo = coord_mode, bool(mgpo)
        self.max_pixels, self.min_pixels = int(max_pixels), int(min_pixels)
        self.max_images = int(max_images)
        self.max_total_pixels = int(max_total_pixels or max_images * max_pixels)
        self.max_original_pixels = int(max_original_pixels)
        self.min_box_side, self.max_box_aspect = float(min_box_side), float(max_box_aspect)
        if isinstance(tasks, str) and tasks == "synthetic":
            self.tasks = generate_tasks(SyntheticConfig(seed=data_seed, n_tasks=n_tasks, target_frac=tuple(target_frac)))
            self._source = f"synthetic:{data_seed}:{tuple(target_frac)}:textures={len(bundled_textures())}"
        elif isinstance(tasks, (str, os.PathLike)):
            self.tasks = load_tasks(tasks, task_format=task_format, image_root=image_root, seed=data_seed)
            path = Path(tasks).resolve()
            self._source = f"file:{path}:{path.stat().st_mtime_ns}:{task_format}:{image_root}"
        else:
            self.tasks = list(tasks)
            if not self.tasks or not all(isinstance(t, GroundingTask) for t in self.tasks):
                raise ConfigError("tasks must be 'synthetic', a path, or a non-empty list of GroundingTask")
            self._source = f"objects:{uuid.uuid4().hex}"  # task objects are never shared between environments
        self._by_id = {t.task_id: i for i, t in enumerate(self.tasks)}
        if len(self._by_id) != len(self.tasks):
            raise ConfigError("task ids must be unique")
        self.task: GroundingTask = self.tasks[0]
        self.original: Any = None
        self.view: View | None = None
        self.zooms: list[tuple[int, int, int, int]] = []
        self.ious: list[float] = []
        self.invalid_boxes = 0
        self.images_shown = 0
        self.pixels_shown = 0

    @property
    def dataset_hash(self) -> str:
        ids = "\n".join(t.task_id for t in self.tasks)
        source = "objects" if self._source.startswith("objects:") else self._source
        return hashlib.sha256(f"{source}\n{ids}".encode("utf-8")).hexdigest()[:16]

    # ----------------------------------------------------------------- reset
    def _load(self, task: GroundingTask) -> tuple[Any, View]:
        def build() -> tuple[Any, View]:
            src = task.image() if callable(task.image) else task.image
            img = open_image(src, where=f"task {task.task_id!r}", max_pixels=self.max_original_pixels)
            return img, crop_view(img, (0, 0, img.width, img.height), max_pixels=self.max_pixels,
                                  min_pixels=FACTOR * FACTOR)
        key = (self._source, task.task_id, self.max_pixels, self.max_original_pixels)
        return GROUNDING_IMAGES.get_or_build(key, build)

    def _system_prompt(self) -> str:
        w_h = {"abs_resized": "pixel coordinates of the image you were first shown",
               "rel1000": "coordinates from 0 to 1000 relative to the image's width and height",
               "rel1": "coordinates from 0 to 1 relative to the image's width and height"}[self.coord_mode]
        schema = {"type": "function", "function": {"name": "zoom_in", "description": "Show a region of the image "
                  "at full resolution.", "parameters": {"type": "object", "properties": {"bbox_2d": {
                      "type": "array", "items": {"type": "number"}, "minItems": 4, "maxItems": 4,
                      "description": f"[x1, y1, x2, y2] in {w_h}"}}, "required": ["bbox_2d"]}}}
        if self.mgpo:
            return ("You are a helpful assistant. First, identify the coordinates of the key image area relevant to "
                    f"solving the problem ({w_h}). Append the coordinates in JSON format at the end of your response "
                    'and stop, for example ```json\n[{"bbox_2d": [x1, y1, x2, y2], "label": "..."}]\n```. This will '
                    "trigger cropping of that area. Once the enlarged image is available, provide the final answer "
                    "(the option's letter) enclosed within \\boxed{}.")
        return ("You answer questions about a high-resolution image. Small details may be unreadable at the size "
                "you see it, so you may zoom in first: reply with a region as "
                '{"bbox_2d": [x1, y1, x2, y2]} in ' + w_h + ", or call the tool\n<tools>\n"
                + json.dumps(schema) + "\n</tools>\nas <tool_call>{\"name\": \"zoom_in\", \"arguments\": "
                "{\"bbox_2d\": [x1, y1, x2, y2]}}</tool_call>. You will get that region enlarged. "
                f"You have {self.max_turns} turns. When you know the answer, reply with the option's letter as "
                "\\boxed{B} (or <answer>B</answer>).")

    def _question(self, with_options: bool = True) -> str:
        t = self.task
        if not with_options:
            return f"{t.question} Out the coordinates of the key image area relevant to the problem in JSON format."
        return f"Question: {t.question}\nOptions:\n{t.options_text()}"

    def _show(self, view: View) -> dict[str, Any]:
        self.images_shown += 1
        self.pixels_shown += view.image.width * view.image.height
        return {"type": "image", "image": view.image}

    def _reset_task(self, options: dict[str, Any]) -> tuple[list[Message], dict[str, Any]]:
        if "task_id" in options:
            tid = options["task_id"]
            if not isinstance(tid, str) or tid not in self._by_id:
                some = ", ".join(t.task_id for t in self.tasks[:3])
                raise ConfigError(f"no task with id {tid!r}{did_you_mean(str(tid), self._by_id)}; "
                                  f"this env's task ids look like: {some}")
            index = self._by_id[tid]
        elif "index" in options:
            index = options["index"]
            if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(self.tasks):
                raise ConfigError(f"options['index'] must be an integer in [0, {len(self.tasks) - 1}], got {index!r}")
        else:
            index = int(self.np_random.integers(len(self.tasks)))
        self.task = self.tasks[index]
        self.original, self.view = self._load(self.task)
        self.zooms, self.ious, self.invalid_boxes = [], [], 0
        self.images_shown = self.pixels_shown = 0
        user = {"role": "user", "content": [self._show(self.view), {"type": "text",
                                                                      "text": self._question(not self.mgpo)}]}
        w, h = self.view.size
        info = {"task_id": self.task.task_id, "answer": self.task.letter, "view_size": [w, h],
                "original_size": [self.original.width, self.original.height], "coord_mode": self.coord_mode,
                **{k: v for k, v in self.task.meta.items() if isinstance(v, (str, int, float))}}
        return [{"role": "system", "content": self._system_prompt()}, user], info

    # ----------------------------------------------------------------- turns
    def _with_view(self, note: str) -> list[Message]:
        """``note`` plus the opening view again (while the image budget lasts) and the question."""
        assert self.view is not None
        parts: list[dict[str, Any]] = [{"type": "text", "text": note}]
        if self._fits(self.view.image.width * self.view.image.height):
            parts.append(self._show(self.view))
        parts.append({"type": "text", "text": self._question()})
        return [{"role": "user", "content": parts}]

    def _fits(self, pixels: int) -> bool:
        return self.images_shown < self.max_images and self.pixels_shown + pixels <= self.max_total_pixels

    def _on_answer(self, answer: str) -> TurnOutcome:
        if self.mgpo and self.turn == 1:
            err = StepError(ErrorKind.NO_ACTION, "The first turn must give the coordinates of the key area.")
            return TurnOutcome(self._with_view(_MGPO_INVALID), {"format": -1.0}, error=err,
                               info={"zoom": {"valid": False, "reason": "an answer instead of a box on turn 1"}})
        choice = match_option(answer, self.task.options)
        if choice is None:
            letters = ", ".join(LETTERS[: len(self.task.options)])
            err = StepError(ErrorKind.PARSE, f"Your answer {answer[:80]!r} names none of the options; answer with one "
                                             f"letter of {letters}, as \\boxed{{{LETTERS[0]}}}.")
            return TurnOutcome([{"role": "user", "content": err.message}], {"format": -1.0}, error=err)
        correct = choice == self.task.answer
        comps = {"outcome": float(correct), "zoom_bonus": float(correct and bool(self.zooms))}
        text = "Correct." if correct else f"Wrong: the answer was ({self.task.letter})."
        return TurnOutcome([{"role": "user", "content": text}], comps, terminated=True,
                           info={"success": correct, "choice": LETTERS[choice]})

    def _on_no_call(self, text: str) -> TurnOutcome:
        assert self.view is not None
        act = self._parser.read(text)
        if not act.boxes:
            why = " ".join(act.problems) or ("No answer or box found. Zoom in with {\"bbox_2d\": [x1, y1, x2, y2]} or "
                                             "answer with the option's letter as \\boxed{B}.")
            err = StepError(ErrorKind.PARSE if act.problems else ErrorKind.NO_ACTION, why)
            msgs = self._with_view(_MGPO_INVALID) if self.mgpo and self.turn == 1 else [{"role": "user", "content": why}]
            return TurnOutcome(msgs, {"format": -1.0}, error=err)
        raw = act.boxes[-1]
        res = resolve_box(raw, self.coord_mode, self.view.size, self.original.size, min_side=self.min_box_side,
                          max_aspect=self.max_box_aspect)
        if isinstance(res, str):
            self.invalid_boxes += 1
            note = _MGPO_INVALID if self.mgpo else f"Invalid box: {res} Here is the original image again."
            err = StepError(ErrorKind.INVALID_ARGUMENTS, f"Invalid box: {res}")
            return TurnOutcome(self._with_view(note), {"invalid_box": -1.0}, error=err,
                               info={"zoom": {"box": _plain(raw), "valid": False, "reason": res}})
        x1, y1, x2, y2 = res.region
        zoom: dict[str, Any] = {"box": _plain(raw), "valid": True, "region": list(res.region), "note": res.note,
                                "repeated": res.region in self.zooms}
        info: dict[str, Any] = {"zoom": zoom}
        if self.task.bbox is not None:
            info["grounding_iou"] = box_iou(res.requested, self.task.bbox)
            self.ious.append(info["grounding_iou"])
        crop = crop_view(self.original, res.region, max_pixels=self.max_pixels, min_pixels=self.min_pixels)
        if not self._fits(crop.image.width * crop.image.height):
            zoom.update(valid=False, reason="image budget spent")
            msg = (f"No more images can be shown in this episode (at most {self.max_images} images and "
                   f"{self.max_total_pixels:,} pixels); answer with the option's letter as \\boxed{{B}}.")
            return TurnOutcome([{"role": "user", "content": msg}], {}, error=StepError(ErrorKind.TOOL_EXCEPTION, msg),
                               info=info)
        self.zooms.append(res.region)
        vb = ", ".join(f"{v:.0f}" for v in res.view_box)
        head = "Based on the provided coordinates, return the sub-image:" if self.mgpo else (
            f"Region [{vb}] of the image (original pixels {x1}-{x2} x {y1}-{y2}), enlarged"
            + (f" ({res.note})" if res.note else "") + (" (you already looked at this region)" if zoom["repeated"]
                                                        else "") + ":")
        tail = self._question() + ("\nCarefully analyze both the original image and the enlarged sub-image, then "
                                   "give the final answer (the option's letter) within \\boxed{}." if self.mgpo else "")
        msg = {"role": "user", "content": [{"type": "text", "text": head}, self._show(crop),
                                           {"type": "text", "text": tail}]}
        return TurnOutcome([msg], {"zoom_cost": -1.0}, info=info)

    def _on_episode_end(self, truncated: bool, budget: str | None) -> tuple[dict[str, float], dict[str, Any]]:
        info: dict[str, Any] = {"zooms": len(self.zooms), "invalid_boxes": self.invalid_boxes}
        if self.ious:
            info["grounding_iou_max"] = max(self.ious)
        return {}, info

    def _step_info(self) -> dict[str, Any]:
        return {"images_shown": self.images_shown, "pixels_shown": self.pixels_shown}

    # ----------------------------------------------------------------- oracle
    def oracle_action(self) -> str:
        """Zoom to the gold box (enlarged 1.5x, in the view's convention), then answer; with no gold box,
        answer at once (under ``mgpo``, zoom to the whole image first)."""
        assert self.view is not None and self.original is not None
        t = self.task
        if not self.zooms and (t.bbox is not None or self.mgpo) and self.turn < self.max_turns - 1:
            w, h = self.view.size
            ow, oh = self.original.size
            if t.bbox is None:
                box = (0.0, 0.0, float(w), float(h))
            else:
                x1, y1, x2, y2 = t.bbox
                cx, cy, hw, hh = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) * 0.75, (y2 - y1) * 0.75
                box = (max(0.0, (cx - hw) * w / ow), max(0.0, (cy - hh) * h / oh),
                       min(float(w), (cx + hw) * w / ow), min(float(h), (cy + hh) * h / oh))
            vals = from_view(box, self.coord_mode, (w, h))
            digits = 4 if self.coord_mode == "rel1" else 1
            return json.dumps({"bbox_2d": [round(v, digits) for v in vals]})
        return f"\\boxed{{{t.letter}}}"


def _plain(raw: Any) -> Any:
    """A JSON-safe copy of a raw box value for info (non-finite floats as strings)."""
    try:
        json.dumps(raw, allow_nan=False)
        return raw
    except (TypeError, ValueError):
        return repr(raw)[:200]
