"""rlvr/Grounding-v0: the episode, bad boxes and answers, coordinate conventions, the oracle, images."""

from __future__ import annotations

import json
import math

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

import rlvr  # noqa: F401  (registers the ids)
from rlvr.agents import OracleAgent
from rlvr.agents.rollout import rollout
from rlvr.envs.grounding import (GroundingEnv, GroundingTask, from_view, open_image, parse_action, resolve_box,
                                 smart_resize, to_view)
from rlvr.envs.grounding.imaging import crop_view
from rlvr.errors import ConfigError


def _marked(w=2000, h=1500, spot=(1500, 1100, 1540, 1140), colour=(255, 0, 0)):
    img = Image.new("RGB", (w, h), (128, 128, 128))
    img.paste(colour, spot)
    return img


def _task(tid="t0", **kw):
    args = dict(image=_marked(), question="What colour is the small square?", options=("red", "green", "blue", "grey"),
                answer=0, bbox=(1500, 1100, 1540, 1140))
    args.update(kw)
    return GroundingTask(tid, **args)


@pytest.fixture
def env():
    e = GroundingEnv([_task()])
    e.reset(seed=0)
    return e


def _texts(obs):
    return [p["text"] if p["type"] == "text" else "<image>" for m in obs for p in
            (m["content"] if isinstance(m["content"], list) else [{"type": "text", "text": m["content"]}])]


# ----------------------------------------------------------------------------- the episode
def test_check_env_and_opening_view():
    env = gym.make("rlvr/Grounding-v0", n_tasks=3)
    check_env(env.unwrapped, skip_render_check=True)
    obs, info = env.reset(seed=0)
    img = obs[1]["content"][0]["image"]
    assert obs[1]["content"][0]["type"] == "image" and img.width % 28 == 0 and img.height % 28 == 0
    assert img.width * img.height <= 1280 * 28 * 28 and info["view_size"] == list(img.size)
    assert "(A)" in obs[1]["content"][1]["text"] and env.observation_space.contains(obs)
    env.close()


def test_oracle_scores_one_on_a_generated_pool():
    trajs = rollout("rlvr/Grounding-v0", OracleAgent(), episodes=5, seed=0, env_kwargs={"n_tasks": 5})
    assert [t.turns[-1].reward_components["outcome"] for t in trajs] == [1.0] * 5
    assert all(len(t.turns) == 2 and t.turns[0].info["zoom"]["valid"] for t in trajs)
    assert all(t.turns[0].info["grounding_iou"] > 0.3 for t in trajs)


def test_zoom_maps_the_box_by_ratio_and_crops_the_original(env):
    w, h = env.view.size
    sx, sy = 2000 / w, 1500 / h
    box = [1500 / sx, 1100 / sy, 1540 / sx, 1140 / sy]  # the red square, in view pixels
    obs, reward, term, trunc, info = env.step(json.dumps({"bbox_2d": box}))
    region = info["zoom"]["region"]
    assert region[0] <= 1500 and region[2] >= 1540 and abs(region[0] - 1500) < 30  # original pixels, not view ones
    crop = obs[0]["content"][1]["image"]
    assert crop.width % 28 == 0 and crop.getpixel((crop.width // 2, crop.height // 2)) == (255, 0, 0)
    assert reward == 0.0 and info["reward_components"]["zoom_cost"] == -1.0 and not term and not trunc
    assert info["grounding_iou"] == pytest.approx(1.0, abs=0.05)
    assert "Question:" in _texts(obs)[-1]
    *_, info = env.step("\\boxed{A}")
    assert info["success"] and info["reward_components"]["outcome"] == 1.0 and info["zooms"] == 1


@pytest.mark.parametrize("action,needle", [
    ('{"bbox_2d": [10, 20, 30]}', "exactly 4 numbers"),
    ('{"bbox_2d": [10, 20, 30, 40, 50]}', "exactly 4 numbers"),
    ('{"bbox_2d": [NaN, 20, 300, 400]}', "non-finite"),
    ('{"bbox_2d": ["10", 20, 300, 400]}', "must hold numbers"),
    ('{"bbox_2d": "10,20,30,40"}', "must be a list"),
    ('{"bbox_2d": [-500, -500, -100, -100]}', "entirely outside"),
    ('{"bbox_2d": [300, 20, 100, 400]}', "x1 < x2"),
    ('{"bbox_2d": [100, 100, 100, 400]}', "x1 < x2"),
    ('{"bbox_2d": [5000, 5000, 6000, 6000]}', "entirely outside"),
    ('{"bbox_2d": [100, 10, 101, 510]}', "sliver"),
    ('{"bbox_2d": [0.1, 0.2, 0.5, 0.6]}', "looks like fractions"),
    ('{"bbox_2d": [true, 2, 300, 400]}', "must hold numbers"),
])
def test_bad_boxes_return_the_original_view_with_a_note(env, action, needle):
    obs, reward, term, trunc, info = env.step(action)
    assert needle in info["error"]["message"] and info["error"]["kind"] == "invalid_arguments"
    assert info["reward_components"]["invalid_box"] == -1.0 and reward == 0.0 and not term and not trunc
    assert obs[0]["content"][1]["image"] is env.view.image and info["zoom"]["valid"] is False
    json.dumps(info["zoom"])  # recordable


def test_partly_outside_boxes_are_clamped_and_thin_ones_enlarged(env):
    *_, info = env.step('{"bbox_2d": [-50, -50, 100, 100]}')
    assert info["zoom"]["note"] == "clamped to the image" and info["zoom"]["region"][:2] == [0, 0]
    *_, info = env.step('{"bbox_2d": [200, 200, 205, 210]}')
    assert "enlarged to at least 28" in info["zoom"]["note"]
    r = resolve_box([200, 200, 205, 210], "abs_resized", env.view.size, (2000, 1500))
    assert r.view_box[2] - r.view_box[0] == pytest.approx(28) and r.view_box[3] - r.view_box[1] == pytest.approx(28)


def test_answer_wins_over_a_box_and_bad_letters_are_errors(env):
    obs, _, term, _, info = env.step('{"bbox_2d": [10, 10, 300, 300]} so the answer is \\boxed{E}')
    assert not term and "names none of the options" in info["error"]["message"]
    obs, _, term, _, info = env.step('{"bbox_2d": [10, 10, 300, 300]} <answer>(B) green</answer>')
    assert term and info["choice"] == "B" and info["reward_components"]["outcome"] == 0.0 and not info["success"]


def test_repeated_boxes_are_served_and_flagged(env):
    env.step('{"bbox_2d": [100, 100, 300, 300]}')
    obs, *_, info = env.step('```json\n[{"bbox_2d": [100, 100, 300, 300], "label": "x"}]\n```')
    assert info["zoom"]["repeated"] is True and "already looked" in _texts(obs)[0]


def test_tool_call_format_and_other_tools(env):
    *_, info = env.step('<tool_call>{"name": "zoom_in", "arguments": {"bbox_2d": [10, 10, 300, 300]}}</tool_call>')
    assert info["zoom"]["valid"]
    *_, info = env.step('<tool_call>{"name": "search", "arguments": {"q": 1}}</tool_call>')
    assert "Unknown tool 'search'" in info["error"]["message"] and info["reward_components"]["format"] == -1.0


def test_turn_budget_and_image_caps():
    env = GroundingEnv([_task()], max_images=3)
    env.reset(seed=0)
    for k in range(2):
        env.step(f'{{"bbox_2d": [{10 + k}, 10, 300, 300]}}')
    _, _, term, trunc, info = env.step('{"bbox_2d": [20, 10, 300, 300]}')
    assert "No more images" in info["error"]["message"] and env.images_shown == 3
    _, _, term, trunc, info = env.step("still thinking")
    assert trunc and not term and info["truncated_by"] == "max_turns" and info["success"] is False


def test_reward_weights_turn_on_the_shaping_terms():
    env = GroundingEnv([_task()], reward_weights={"zoom_bonus": 0.5, "invalid_box": 0.05, "zoom_cost": 0.1})
    env.reset(seed=0)
    assert env.step('{"bbox_2d": [1, 2, 3]}')[1] == pytest.approx(-0.05)
    assert env.step('{"bbox_2d": [100, 100, 300, 300]}')[1] == pytest.approx(-0.1)
    assert env.step("\\boxed{A}")[1] == pytest.approx(1.5)
    with pytest.raises(ConfigError, match="unknown reward component 'zoom_bonu'"):
        GroundingEnv([_task()], reward_weights={"zoom_bonu": 1.0})


def test_mgpo_template_forces_a_box_first():
    env = GroundingEnv([_task()], mgpo=True)
    obs, _ = env.reset(seed=0)
    assert env.max_turns == 2 and "(A)" not in obs[1]["content"][1]["text"] and "JSON" in obs[0]["content"]
    obs, _, term, _, info = env.step("\\boxed{A}")
    assert not term and _texts(obs)[0].startswith("Not providing correct coordinates") and "<image>" in _texts(obs)
    _, _, term, _, info = env.step("\\boxed{A}")
    assert term and info["success"]
    trajs = rollout("rlvr/Grounding-v0", OracleAgent(), episodes=2, seed=1, env_kwargs={"mgpo": True, "n_tasks": 2})
    assert all(t.turns[-1].info["success"] and len(t.turns) == 2 for t in trajs)


@pytest.mark.parametrize("mode", ["abs_resized", "rel1000", "rel1"])
def test_oracle_in_every_coordinate_convention(mode):
    env = GroundingEnv([_task()], coord_mode=mode)
    env.reset(seed=0)
    action = env.oracle_action()
    *_, info = env.step(action)
    assert info["zoom"]["valid"] and info["grounding_iou"] > 0.4
    assert env.step(env.oracle_action())[4]["success"]
    if mode == "rel1":  # pixel values in the fractions convention are refused with a hint
        env.reset(seed=0)
        assert "values above 1" in env.step('{"bbox_2d": [100, 100, 300, 300]}')[4]["error"]["message"]


def test_task_id_and_index_replay():
    env = GroundingEnv(n_tasks=3)
    obs, info = env.reset(seed=5)
    again, info2 = env.reset(seed=1, options={"task_id": info["task_id"]})
    assert info2 == info and again[1]["content"][0]["image"] is obs[1]["content"][0]["image"]
    assert env.reset(options={"index": 2})[1]["task_id"] == "synthetic-0-2"
    with pytest.raises(ConfigError, match="no task with id 'nope'"):
        env.reset(options={"task_id": "nope"})
    with pytest.raises(ConfigError, match=r"options\['index'\] must be an integer in \[0, 2\]"):
        env.reset(options={"index": 3})


def test_construction_errors():
    with pytest.raises(ConfigError, match="coord_mode must be one of"):
        GroundingEnv([_task()], coord_mode="pixels")
    with pytest.raises(ConfigError, match="its own parser"):
        GroundingEnv([_task()], parser="json")
    with pytest.raises(ConfigError, match="answer index 4"):
        _task(answer=4)
    with pytest.raises(ConfigError, match="gold bbox"):
        _task(bbox=(10, 10, 5, 20))


# ----------------------------------------------------------------------------- properties
_num = st.floats(allow_nan=True, allow_infinity=True) | st.integers(-10**6, 10**6) | st.text(max_size=3) | st.none()


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.lists(_num, max_size=6), st.sampled_from(["abs_resized", "rel1000", "rel1"]),
       st.integers(28, 2000), st.integers(28, 2000))
def test_resolve_box_never_raises_and_regions_lie_inside(raw, mode, w, h):
    r = resolve_box(raw, mode, (w, h), (3 * w, 2 * h))
    if not isinstance(r, str):
        x1, y1, x2, y2 = r.region
        assert 0 <= x1 < x2 <= 3 * w and 0 <= y1 < y2 <= 2 * h
        assert max(x2 - x1, y2 - y1) / min(x2 - x1, y2 - y1) <= 100 * 3 + 1


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.sampled_from(["abs_resized", "rel1000", "rel1"]), st.integers(28, 3000), st.integers(28, 3000),
       st.lists(st.floats(0, 1), min_size=4, max_size=4))
def test_coordinate_conventions_round_trip(mode, w, h, fr):
    box = (fr[0] * w, fr[1] * h, fr[2] * w, fr[3] * h)
    back = to_view(from_view(box, mode, (w, h)), mode, (w, h))
    assert all(math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-6) for a, b in zip(box, back))


_box = st.lists(st.floats(-1e4, 1e4, allow_nan=False) | st.integers(-10**4, 10**4), min_size=4, max_size=4)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(_box, st.sampled_from(["bare", "fence", "tool", "list"]), st.text(max_size=30))
def test_parse_action_reads_every_box_format(box, fmt, noise):
    body = {"bbox_2d": box}
    text = {"bare": json.dumps(body), "fence": f"```json\n{json.dumps(body)}\n```",
            "tool": f'<tool_call>{json.dumps({"name": "zoom_in", "arguments": body})}</tool_call>',
            "list": json.dumps([{**body, "label": "x"}])}[fmt]
    noise = noise.replace("{", "").replace("[", "").replace("\\boxed", "").replace("<answer>", "")
    act = parse_action(noise + " " + text)
    assert act.answer is None and act.boxes[-1] == box


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.text(st.characters(blacklist_categories=()), max_size=200))
def test_parse_action_never_raises(text):
    act = parse_action(text)
    assert act.answer is None or isinstance(act.answer, str)


def test_smart_resize_matches_qwen_rules():
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize as qwen

    assert smart_resize(3000, 4000) == (840, 1148)
    for h, w in [(28, 28), (100, 5000), (1500, 2000), (7680, 4320), (333, 777), (4000, 21)]:
        assert smart_resize(h, w, min_pixels=200704) == tuple(qwen(h, w, 28, 200704, 1280 * 28 * 28))
    h, w = smart_resize(100, 100, min_pixels=200704)
    assert h * w >= 200704 and h % 28 == 0
    with pytest.raises(ConfigError, match="aspect ratio"):
        smart_resize(10, 3000)


# ----------------------------------------------------------------------------- images
@pytest.mark.parametrize("mode", ["RGBA", "LA", "CMYK", "L", "P", "I;16", "1"])
def test_every_mode_becomes_rgb(mode, tmp_path):
    img = Image.new(mode, (64, 48))
    path = tmp_path / ("x.tiff" if mode in ("CMYK", "I;16") else "x.png")
    img.save(path)
    assert open_image(path).mode == "RGB"
    env = GroundingEnv([_task(image=path, bbox=None)])
    assert env.reset(seed=0)[0][1]["content"][0]["image"].mode == "RGB"


def test_bad_originals_are_clear_errors(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="over the limit of"):
        open_image(Image.new("L", (9000, 8000)))
    with pytest.raises(ConfigError, match="aspect ratio 250"):
        open_image(Image.new("L", (5000, 20)))
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    with pytest.raises(ConfigError, match="not a readable image"):
        open_image(tmp_path / "bad.jpg")
    with pytest.raises(ConfigError, match="no such image file"):
        GroundingEnv([_task(image=tmp_path / "missing.jpg")]).reset(seed=0)
    Image.new("RGB", (400, 400)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)
    with pytest.raises(ConfigError, match="decompression bomb"):
        open_image(tmp_path / "big.png")


def test_crop_resize_is_bicubic_into_the_budget_and_upscales_at_most_4x():
    img = _marked(4000, 3000)
    v = crop_view(img, (0, 0, 4000, 3000))
    assert v.image.width * v.image.height <= 1280 * 28 * 28
    small = crop_view(img, (100, 100, 150, 140))
    assert small.image.width <= 200 and small.image.width % 28 == 0


def test_trajectories_record_images_by_shape(tmp_path):
    from rlvr.agents.trajectory import read_trajectories

    rollout("rlvr/Grounding-v0", OracleAgent(), episodes=1, seed=0, out=tmp_path, env_kwargs={"tasks": [_task()]})
    (traj,) = read_trajectories(tmp_path / "trajectories.jsonl")
    part = traj.initial_messages[1]["content"][0]
    assert part["type"] == "image" and part["image"] == "<image RGB 1148x840>"
    assert traj.turns[0].observation[0]["content"][1]["image"].startswith("<image RGB ")


_values = st.floats(allow_nan=True, allow_infinity=True) | st.integers(-5000, 5000) | st.text(max_size=4) | st.none()
_actions = st.one_of(
    st.lists(_values, max_size=6).map(lambda b: json.dumps({"bbox_2d": b})),
    st.lists(st.floats(-100, 1500, allow_nan=False), min_size=4, max_size=4).map(
        lambda b: f'<tool_call>{json.dumps({"name": "zoom_in", "arguments": {"bbox_2d": b}})}</tool_call>'),
    st.sampled_from(["\\boxed{A}", "\\boxed{Z}", "<answer>(B)</answer>", "\\boxed{", "<answer>", "bbox_2d", "", "{[}"]),
    st.text(max_size=40),
)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(st.lists(_actions, min_size=1, max_size=5), st.sampled_from(["abs_resized", "rel1000", "rel1"]), st.booleans())
def test_hostile_episodes_keep_the_contract(actions, mode, mgpo):
    """Drawn boxes, answers and junk: every step returns observations inside the space, finite rewards,
    and never both flags."""
    env = _HOSTILE.setdefault((mode, mgpo), GroundingEnv([_task()], coord_mode=mode, mgpo=mgpo, max_images=3))
    env.reset(seed=0)
    for a in actions:
        obs, reward, term, trunc, info = env.step(a)
        assert env.observation_space.contains(obs) and math.isfinite(reward) and not (term and trunc)
        assert env.images_shown <= 3
        json.dumps({k: v for k, v in info.items() if k != "reward_components"}, allow_nan=False)
        if term or trunc:
            break


_HOSTILE: dict = {}


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.text(max_size=30), st.lists(st.text(min_size=1, max_size=12), min_size=2, max_size=6), st.integers(0, 5))
def test_match_option_reads_letters_and_option_text(answer, options, k):
    from rlvr.envs.grounding.tasks import LETTERS, _norm, match_option

    got = match_option(answer, options)
    assert got is None or 0 <= got < len(options)
    k %= len(options)
    for form in (LETTERS[k], f"({LETTERS[k]})", f"{LETTERS[k].lower()}.", f"{LETTERS[k]}. whatever"):
        assert match_option(form, options) == k
    past = LETTERS[len(options)]  # a letter past the options names none (unless it is an option's text)
    assert match_option(past, options) == next((i for i, o in enumerate(options) if _norm(o) == past.lower()), None)
