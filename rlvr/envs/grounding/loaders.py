"""Grounding benchmarks from disk: V* Bench, HR-Bench, MME-RealWorld and a generic JSON Lines format.

:func:`load_tasks` takes a folder or a file and detects its format (``task_format=`` forces one):

* ``vstar``: a V* Bench folder (``X.jpg`` + ``X.json`` with ``bbox`` as ``[x, y, w, h]`` boxes, the
  question and the options, the **first option correct**; in subfolders such as ``direct_attributes``
  and ``relative_position`` too), or its ``test_questions.jsonl`` (``image``, ``text`` holding the
  question and ``(A) ...`` option lines, ``label``, ``category``; gold boxes from the paired ``X.json``
  when present). Options of the folder format are shuffled per ``seed`` and task before lettering, so
  the correct answer is not always A;
* ``hrbench``: HR-Bench ``hr_bench_4k``/``8k`` ``.tsv`` or ``.parquet`` (``index, question, answer,
  category, A, B, C, D, cycle_category, image`` as base64); each question appears four times with its
  options rotated, and :func:`cycle_averaged_accuracy` averages a run's results per category;
* ``mme_realworld``: an MME-RealWorld JSON list (``Question_id``, ``Image`` relative to ``image_root``,
  ``Text``, ``Answer choices`` as ``"(A) ..."``, ``Ground truth``, ``Category``);
* ``jsonl``: one ``{"image", "question", "options", "answer", "bbox"?}`` per line; ``answer`` is a letter,
  an index or the option's text, ``bbox`` ``[x1, y1, x2, y2]`` in original pixels; image paths are
  relative to the file's folder or ``image_root``.

Images are not read here: each task holds its path (or its base64 text) and the environment opens
and checks it when the task is reset.
"""

from __future__ import annotations

import base64
import binascii
import csv
import json
import os
import re
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable, Sequence

from rlvr._jsonl import read_json_records, read_jsonl_located
from rlvr.envs.grounding.tasks import LETTERS, GroundingTask, match_option, shuffled
from rlvr.errors import ConfigError, did_you_mean

__all__ = ["TASK_FORMATS", "cycle_averaged_accuracy", "detect_format", "load_tasks"]

TASK_FORMATS = ("vstar", "hrbench", "mme_realworld", "jsonl")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
_OPTION_LINE = re.compile(r"^\s*\(([A-J])\)\s*(.+?)\s*$")


def detect_format(path: Path) -> str:
    """The format of a task folder or file (see the module docstring); a :class:`ConfigError` when unknown."""
    if path.is_dir():
        if (path / "test_questions.jsonl").is_file() or any(path.rglob("*.json")):
            return "vstar"
        if any(path.glob("*.tsv")) or any(path.glob("*.parquet")):
            return "hrbench"
        raise ConfigError(f"{path}: no V* question files (X.json beside X.jpg, or test_questions.jsonl) and no "
                          "HR-Bench .tsv/.parquet in this folder; pass a task file or task_format=")
    suffix = path.suffix.lower()
    if suffix in (".tsv", ".parquet"):
        return "hrbench"
    if suffix == ".json":
        return "mme_realworld"
    if suffix == ".jsonl":
        return "vstar" if path.name == "test_questions.jsonl" else "jsonl"
    raise ConfigError(f"{path}: cannot tell the task format from the suffix {suffix!r}; expected a folder, .jsonl, "
                      f".json, .tsv or .parquet, or pass task_format= (one of {', '.join(TASK_FORMATS)})")


def load_tasks(path: str | os.PathLike[str], *, task_format: str | None = None,
               image_root: str | os.PathLike[str] | None = None, seed: int = 0) -> list[GroundingTask]:
    """Read grounding tasks from a folder or a file (format detected, or ``task_format``)."""
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"no such task file or folder: {str(p)!r}; pass tasks='synthetic' or the path of a "
                          "V* folder, an HR-Bench .tsv/.parquet, an MME-RealWorld .json or a .jsonl task file")
    fmt = task_format or detect_format(p)
    if fmt not in TASK_FORMATS:
        raise ConfigError(f"unknown task_format {fmt!r}{did_you_mean(str(fmt), TASK_FORMATS)}; "
                          f"expected one of {', '.join(TASK_FORMATS)}")
    root = Path(image_root) if image_root is not None else None
    if fmt == "vstar":
        tasks = _vstar(p, root, seed)
    elif fmt == "hrbench":
        tasks = [t for f in (sorted(p.glob("*.tsv")) + sorted(p.glob("*.parquet")) if p.is_dir() else [p])
                 for t in _hrbench(f)]
    elif fmt == "mme_realworld":
        tasks = _mme(p, root)
    else:
        tasks = _jsonl(p, root)
    if not tasks:
        raise ConfigError(f"{p}: no tasks found (format {fmt})")
    ids = [t.task_id for t in tasks]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise ConfigError(f"{p}: task id {dup!r} appears more than once; task ids must be unique")
    return tasks


def _image_path(where: str, value: Any, bases: Sequence[Path | None]) -> Path:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}: 'image' must be a path string, got {value!r}")
    cand = Path(value)
    if cand.is_absolute():
        return cand
    for base in bases:
        if base is not None and (base / cand).is_file():
            return base / cand
    first = next(b for b in bases if b is not None)
    return first / cand  # opened (and reported missing) at reset


def _xywh(where: str, box: Any) -> tuple[float, float, float, float]:
    if not (isinstance(box, (list, tuple)) and len(box) == 4 and all(isinstance(v, (int, float)) for v in box)):
        raise ConfigError(f"{where}: a bbox must be 4 numbers [x, y, w, h], got {box!r}")
    x, y, w, h = (float(v) for v in box)
    if w <= 0 or h <= 0:
        raise ConfigError(f"{where}: bbox {box!r} has no area (w and h must be positive)")
    return x, y, x + w, y + h


def _union(boxes: Iterable[tuple[float, float, float, float]]) -> tuple[float, float, float, float] | None:
    boxes = list(boxes)
    if not boxes:
        return None
    return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))


def _vstar_boxes(where: str, record: dict[str, Any]) -> tuple[float, float, float, float] | None:
    boxes = record.get("bbox")
    if boxes is None:
        return None
    if boxes and isinstance(boxes[0], (int, float)):
        boxes = [boxes]
    return _union(_xywh(f"{where} bbox[{i}]", b) for i, b in enumerate(boxes))


def _vstar(p: Path, root: Path | None, seed: int) -> list[GroundingTask]:
    if p.is_file() or (p / "test_questions.jsonl").is_file():
        return _vstar_jsonl(p if p.is_file() else p / "test_questions.jsonl", root)
    tasks = []
    for js in sorted(p.rglob("*.json")):
        where = str(js)
        try:
            rec = json.loads(js.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ConfigError(f"{where}: not valid JSON ({e}); a V* question file holds "
                              "{target_object, bbox, question, options}") from e
        if not isinstance(rec, dict) or not {"question", "options"} <= set(rec):
            raise ConfigError(f"{where}: expected a V* question object with 'question' and 'options' (the first "
                              f"option correct), got keys {sorted(rec) if isinstance(rec, dict) else type(rec).__name__}")
        image = next((js.with_suffix(s) for s in IMAGE_SUFFIXES if js.with_suffix(s).is_file()), None)
        if image is None:
            raise ConfigError(f"{where}: no image beside it (looked for {js.stem} with {', '.join(IMAGE_SUFFIXES)})")
        opts = [str(o) for o in rec["options"]]
        if len(opts) < 2:
            raise ConfigError(f"{where}: needs at least 2 options, got {opts!r}")
        tid = f"vstar/{js.relative_to(p).with_suffix('').as_posix()}"
        options, answer = shuffled(opts, 0, f"{seed}:{tid}")
        tasks.append(GroundingTask(tid, image, str(rec["question"]).strip(), options, answer, _vstar_boxes(where, rec),
                                   {"source": "vstar", "category": js.parent.name if js.parent != p else "",
                                    "target_object": rec.get("target_object")}))
    return tasks


def _split_options(where: str, text: str) -> tuple[str, list[str]]:
    """Question text and the ``(A) ...`` option lines of a V*-style prompt."""
    question, options = [], []
    for line in text.splitlines():
        m = _OPTION_LINE.match(line)
        if m:
            if LETTERS.index(m.group(1)) != len(options):
                raise ConfigError(f"{where}: options must be lettered A, B, C... in order; got ({m.group(1)})")
            options.append(m.group(2))
        elif not options and line.strip() and not line.lower().startswith("answer with"):
            question.append(line.strip())
    if len(options) < 2:
        raise ConfigError(f"{where}: found {len(options)} '(A) ...' option lines in 'text'; expected at least 2")
    return " ".join(question), options


def _vstar_jsonl(f: Path, root: Path | None) -> list[GroundingTask]:
    tasks = []
    for where, rec in read_jsonl_located(f, what="V* question"):
        for key in ("image", "text", "label"):
            if key not in rec:
                raise ConfigError(f"{where}: missing {key!r}; a V* test_questions.jsonl record holds image, text, "
                                  "label, category, question_id")
        question, options = _split_options(where, str(rec["text"]))
        answer = match_option(str(rec["label"]), options)
        if answer is None:
            raise ConfigError(f"{where}: label {rec['label']!r} names none of the {len(options)} options")
        image = _image_path(where, rec["image"], [root, f.parent])
        side = image.with_suffix(".json")
        bbox = None
        if side.is_file():
            try:
                bbox = _vstar_boxes(str(side), json.loads(side.read_text(encoding="utf-8")))
            except json.JSONDecodeError as e:
                raise ConfigError(f"{side}: not valid JSON ({e})") from e
        qid = rec.get("question_id", len(tasks))
        tasks.append(GroundingTask(f"vstar/{qid}", image, question, tuple(options), answer, bbox,
                                   {"source": "vstar", "category": rec.get("category", "")}))
    return tasks


def _hrbench_rows(f: Path) -> list[dict[str, Any]]:
    if f.suffix.lower() == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError as e:
            raise ConfigError(f"{f}: reading parquet needs pyarrow (pip install 'rlvr-gym[search]')") from e
        return pq.read_table(f).to_pylist()
    csv.field_size_limit(sys.maxsize)
    with open(f, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


class _Base64Image:
    """A base64-encoded image, decoded when the task is shown (HR-Bench keeps 800 of them per file)."""

    def __init__(self, where: str, text: str) -> None:
        self.where, self.text = where, text

    def __call__(self) -> bytes:
        try:
            return base64.b64decode(self.text, validate=False)
        except (binascii.Error, ValueError) as e:
            raise ConfigError(f"{self.where}: 'image' is not valid base64 ({e})") from e

    def __repr__(self) -> str:
        return f"<base64 image {self.where}>"


def _hrbench(f: Path) -> list[GroundingTask]:
    tasks = []
    for i, row in enumerate(_hrbench_rows(f)):
        where = f"{f}:row {i + 1}"
        missing = [k for k in ("index", "question", "answer", "A", "B", "image") if row.get(k) in (None, "")]
        if missing:
            raise ConfigError(f"{where}: missing {missing}; HR-Bench rows hold index, question, answer, category, "
                              "A, B, C, D, cycle_category, image (base64)")
        options = [str(row[k]) for k in LETTERS[:4] if row.get(k) not in (None, "")]
        answer = match_option(str(row["answer"]), options)
        if answer is None:
            raise ConfigError(f"{where}: answer {row['answer']!r} names none of the options {options}")
        tasks.append(GroundingTask(f"hrbench/{f.stem}/{row['index']}", _Base64Image(where, str(row["image"])),
                                   str(row["question"]).strip(), tuple(options), answer, None,
                                   {"source": "hrbench", "category": str(row.get("category") or ""),
                                    "cycle_category": str(row.get("cycle_category") or "")}))
    return tasks


def _mme(f: Path, root: Path | None) -> list[GroundingTask]:
    tasks = []
    for where, rec in read_json_records(f, what="MME-RealWorld question"):
        missing = [k for k in ("Question_id", "Image", "Text", "Answer choices", "Ground truth") if k not in rec]
        if missing:
            raise ConfigError(f"{where}: missing {missing}; an MME-RealWorld record holds Question_id, Image, Text, "
                              "'Answer choices', 'Ground truth', Category")
        choices = rec["Answer choices"]
        if not isinstance(choices, list) or len(choices) < 2:
            raise ConfigError(f"{where}: 'Answer choices' must be a list of '(A) ...' strings, got {choices!r}")
        options = []
        for c in choices:
            m = _OPTION_LINE.match(str(c))
            options.append(m.group(2) if m else str(c).strip())
        answer = match_option(str(rec["Ground truth"]), options)
        if answer is None:
            raise ConfigError(f"{where}: 'Ground truth' {rec['Ground truth']!r} names none of the options")
        image = _image_path(where, rec["Image"], [root, f.parent])
        tasks.append(GroundingTask(f"mme/{rec['Question_id']}", image, str(rec["Text"]).strip(), tuple(options), answer,
                                   None, {"source": "mme_realworld", "category": rec.get("Category", ""),
                                          "subtask": rec.get("Subtask", "")}))
    return tasks


def _jsonl(f: Path, root: Path | None) -> list[GroundingTask]:
    tasks = []
    for where, rec in read_jsonl_located(f, what="grounding task"):
        missing = [k for k in ("image", "question", "options", "answer") if k not in rec]
        if missing:
            raise ConfigError(f"{where}: missing {missing}; a task line is "
                              '{"image": PATH, "question": ..., "options": [...], "answer": "B", "bbox": [x1, y1, x2, y2]}')
        options = rec["options"]
        if not isinstance(options, list) or not all(isinstance(o, str) for o in options):
            raise ConfigError(f"{where}: 'options' must be a list of strings, got {options!r}")
        ans = rec["answer"]
        answer = ans if isinstance(ans, int) and not isinstance(ans, bool) and 0 <= ans < len(options) else (
            match_option(ans, options) if isinstance(ans, str) else None)
        if answer is None:
            raise ConfigError(f"{where}: 'answer' {ans!r} is neither a letter, an index nor the text of one of "
                              f"the {len(options)} options")
        bbox = rec.get("bbox")
        if bbox is not None:
            if not (isinstance(bbox, list) and len(bbox) == 4 and all(isinstance(v, (int, float)) for v in bbox)):
                raise ConfigError(f"{where}: 'bbox' must be [x1, y1, x2, y2] in original pixels, got {bbox!r}")
            if not (bbox[2] > bbox[0] and bbox[3] > bbox[1]):
                raise ConfigError(f"{where}: 'bbox' {bbox} needs x1 < x2 and y1 < y2 (it is x1, y1, x2, y2, "
                                  "not x, y, w, h)")
            bbox = tuple(float(v) for v in bbox)
        image = _image_path(where, rec["image"], [root, f.parent])
        tid = str(rec.get("id", rec.get("task_id", f"{f.stem}/{len(tasks)}")))
        tasks.append(GroundingTask(tid, image, str(rec["question"]).strip(), tuple(options), answer, bbox,
                                   {"source": "jsonl", "category": rec.get("category", "")}))
    return tasks


def cycle_averaged_accuracy(results: Iterable[tuple[GroundingTask, bool]]) -> dict[str, float]:
    """HR-Bench scoring: accuracy per ``cycle_category`` (each question's rotated copies averaged in), and
    ``overall`` their mean. ``results`` pairs each task with whether it was answered correctly."""
    per: dict[str, list[bool]] = defaultdict(list)
    for task, ok in results:
        per[task.meta.get("cycle_category") or task.meta.get("category") or "all"].append(bool(ok))
    out = {k: sum(v) / len(v) for k, v in sorted(per.items())}
    if out:
        out["overall"] = sum(out.values()) / len(out)
    return out
