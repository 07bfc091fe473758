"""Grounding-v0 task files: V* folders and jsonl, HR-Bench tsv/parquet, MME-RealWorld JSON, generic JSONL."""

from __future__ import annotations

import base64
import csv
import io
import json

import pytest
from PIL import Image

from rlvr.agents import OracleAgent
from rlvr.agents.rollout import rollout
from rlvr.envs.grounding import GroundingEnv, cycle_averaged_accuracy, load_tasks
from rlvr.envs.grounding.synthetic import SyntheticConfig, generate_tasks
from rlvr.errors import ConfigError

COLOURS = {"red": (255, 0, 0), "green": (0, 200, 0), "blue": (0, 0, 255), "yellow": (255, 255, 0)}


def _image(colour, xywh, size=(1600, 1200)):
    img = Image.new("RGB", size, (120, 120, 120))
    x, y, w, h = xywh
    img.paste(COLOURS[colour], (x, y, x + w, y + h))
    return img


@pytest.fixture
def vstar(tmp_path):
    """A V*-format folder: X.jpg + X.json, bbox as [x, y, w, h], the first option correct."""
    for sub, items in {"direct_attributes": [("a1", "red"), ("a2", "blue")], "relative_position": [("r1", "green")]}.items():
        (tmp_path / sub).mkdir()
        for i, (stem, colour) in enumerate(items):
            box = [300 + 200 * i, 400, 30, 24]
            _image(colour, box).save(tmp_path / sub / f"{stem}.jpg")
            others = [c for c in COLOURS if c != colour]
            (tmp_path / sub / f"{stem}.json").write_text(json.dumps({
                "target_object": ["square"], "bbox": [box], "question": "What is the colour of the square?",
                "options": [colour, *others]}))
    return tmp_path


def test_vstar_folder_oracle_scores_one_and_options_are_shuffled(vstar):
    tasks = load_tasks(vstar)
    assert [t.task_id for t in tasks] == ["vstar/direct_attributes/a1", "vstar/direct_attributes/a2",
                                          "vstar/relative_position/r1"]
    assert tasks[0].bbox == (300.0, 400.0, 330.0, 424.0) and tasks[0].options[tasks[0].answer] == "red"
    letters = {t.letter for s in range(6) for t in load_tasks(vstar, seed=s)}
    assert len(letters) > 1  # the correct option is not always (A)
    assert [t.options for t in load_tasks(vstar, seed=3)] == [t.options for t in load_tasks(vstar, seed=3)]
    trajs = rollout("rlvr/Grounding-v0", OracleAgent(), episodes=3, seed=0, env_kwargs={"tasks": str(vstar)})
    assert all(t.turns[-1].info["success"] and t.turns[0].info["grounding_iou"] > 0.3 for t in trajs)


def test_vstar_test_questions_jsonl(vstar):
    lines = [{"image": "direct_attributes/a1.jpg", "question_id": 0, "category": "direct_attributes", "label": "B",
              "text": "What is the colour of the square?\n(A) blue\n(B) red\n(C) green\n(D) yellow\n"
                      "Answer with the option's letter from the given choices directly."}]
    (vstar / "test_questions.jsonl").write_text("\n".join(json.dumps(x) for x in lines))
    (task,) = load_tasks(vstar)
    assert task.question == "What is the colour of the square?" and task.letter == "B"
    assert task.bbox == (300.0, 400.0, 330.0, 424.0)  # from the paired X.json


def _hr_rows():
    rows = []
    for i, colour in enumerate(["red", "blue"]):
        buf = io.BytesIO()
        _image(colour, (700, 500, 20, 20)).save(buf, format="PNG")
        opts = [colour] + [c for c in COLOURS if c != colour][:3]
        rows.append({"index": i, "question": "What colour is the dot?", "answer": "A", "category": "single",
                     "A": opts[0], "B": opts[1], "C": opts[2], "D": opts[3], "cycle_category": f"c{i}",
                     "image": base64.b64encode(buf.getvalue()).decode()})
    return rows


def test_hrbench_tsv_and_parquet(tmp_path):
    rows = _hr_rows()
    tsv = tmp_path / "hr_bench_4k.tsv"
    with open(tsv, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]), delimiter="\t")
        w.writeheader()
        w.writerows(rows)
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "hr_bench_8k.parquet")
    for path in (tsv, tmp_path / "hr_bench_8k.parquet"):
        tasks = load_tasks(path)
        assert [t.letter for t in tasks] == ["A", "A"] and tasks[0].bbox is None
        env = GroundingEnv(str(path))
        obs, info = env.reset(options={"index": 1})
        assert info["original_size"] == [1600, 1200] and info["cycle_category"] == "c1"
        assert env.step(env.oracle_action())[4]["success"]
    assert len(load_tasks(tmp_path)) == 4
    score = cycle_averaged_accuracy([(t, i == 0) for i, t in enumerate(load_tasks(tsv))])
    assert score == {"c0": 1.0, "c1": 0.0, "overall": 0.5}


def test_mme_realworld_json_with_image_root(tmp_path):
    (tmp_path / "imgs").mkdir()
    _image("green", (100, 100, 20, 20)).save(tmp_path / "imgs" / "x.jpg")
    recs = [{"Question_id": "q1", "Image": "x.jpg", "Text": "Which colour?", "Answer choices": [
        "(A) red", "(B) green", "(C) blue", "(D) yellow", "(E) grey"], "Ground truth": "B", "Task": "t",
        "Subtask": "s", "Category": "color"}]
    (tmp_path / "mme.json").write_text(json.dumps(recs))
    (task,) = load_tasks(tmp_path / "mme.json", image_root=tmp_path / "imgs")
    assert task.options == ("red", "green", "blue", "yellow", "grey") and task.letter == "B"
    env = GroundingEnv(str(tmp_path / "mme.json"), image_root=str(tmp_path / "imgs"))
    env.reset(seed=0)
    assert env.step("\\boxed{B}")[4]["success"]


def test_generic_jsonl_and_its_errors(tmp_path):
    _image("yellow", (800, 800, 30, 30)).save(tmp_path / "y.png")
    good = {"image": "y.png", "question": "Which colour?", "options": ["red", "yellow"], "answer": "yellow",
            "bbox": [800, 800, 830, 830]}
    (tmp_path / "t.jsonl").write_text(json.dumps(good) + "\n" + json.dumps({**good, "answer": 0, "id": "z"}))
    tasks = load_tasks(tmp_path / "t.jsonl")
    assert [t.letter for t in tasks] == ["B", "A"] and tasks[1].task_id == "z"
    trajs = rollout("rlvr/Grounding-v0", OracleAgent(), episodes=2, seed=0,
                    env_kwargs={"tasks": str(tmp_path / "t.jsonl"), "coord_mode": "rel1000"})
    assert all(t.turns[-1].info["success"] for t in trajs)
    for bad, needle in [({**good, "answer": "purple"}, "neither a letter"), ({**good, "bbox": [800, 800, 30, 30]}, "not x, y, w, h"),
                        ({k: v for k, v in good.items() if k != "options"}, r"missing \['options'\]")]:
        (tmp_path / "bad.jsonl").write_text(json.dumps(bad))
        with pytest.raises(ConfigError, match=needle):
            load_tasks(tmp_path / "bad.jsonl")
    with pytest.raises(ConfigError, match="no such task file or folder"):
        load_tasks(tmp_path / "nope.jsonl")
    with pytest.raises(ConfigError, match="unknown task_format 'vstr'"):
        load_tasks(tmp_path / "t.jsonl", task_format="vstr")
    with pytest.raises(ConfigError, match="cannot tell the task format"):
        load_tasks(tmp_path / "y.png")


def test_synthetic_tasks_are_seeded_and_targets_are_small():
    a = generate_tasks(SyntheticConfig(seed=4, n_tasks=10))
    b = generate_tasks(SyntheticConfig(seed=4, n_tasks=10))
    assert [(t.question, t.options, t.answer, t.bbox) for t in a] == [(t.question, t.options, t.answer, t.bbox) for t in b]
    assert {t.meta["category"] for t in a} == {"colour", "text", "digits", "count", "position"}
    assert all(0.01 <= t.meta["difficulty"] <= 0.031 for t in a)
    img = a[1].image()
    assert 2048 <= img.width <= 4096 and a[1].image().tobytes() == img.tobytes()
    with pytest.raises(ConfigError, match="target_frac"):
        SyntheticConfig(target_frac=(0.5, 0.6))
    for frac, sides in [((0.002, 0.004), (256, 512)), ((0.04, 0.06), (256, 512)), ((0.04, 0.06), (8192, 8192))]:
        layouts = generate_tasks(SyntheticConfig(seed=1, n_tasks=100, target_frac=frac, min_side=sides[0],
                                                 max_side=sides[1]))  # every layout fits (rendering not needed)
        assert all(t.bbox[2] <= sides[1] for t in layouts)
