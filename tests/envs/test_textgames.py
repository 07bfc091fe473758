"""rlvr/TextWorld-v0 and rlvr/ALFWorld-v0: oracles, turn rewards, budgets, bad input and bad game files.

Games come from the user's game cache (``make install`` prepares the default pools); a missing one is
generated on first use. The sweep over all six ALFWorld task types is slow-marked; the default run
plays two types.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import gymnasium as gym
import pytest

import rlvr  # noqa: F401
from rlvr.agents import OracleAgent
from rlvr.agents.rollout import rollout
from rlvr.envs.textgames import alfgen
from rlvr.envs.textgames.alfworld_env import ALFWorldEnv
from rlvr.envs.textgames.cache import build_once
from rlvr.envs.textgames.textworld_env import TextWorldEnv
from rlvr.errors import ConfigError

pytest.importorskip("textworld")
pytest.importorskip("alfworld")


@pytest.fixture(scope="module")
def tw():
    env = TextWorldEnv(pool_size=2)
    yield env
    env.close()


@pytest.fixture(scope="module")
def alf():
    env = ALFWorldEnv(task_types=("pick_and_place_simple", "look_at_obj_in_light"), pool_size=2)
    yield env
    env.close()


def _play(env, game):
    env.reset(options={"game": game})
    total, steps = {}, 0
    while True:
        _, _, terminated, truncated, info = env.step(env.oracle_action())
        steps += 1
        for k, v in info["reward_components"].items():
            total[k] = total.get(k, 0.0) + v
        if terminated or truncated:
            return terminated, info, total, steps


def test_textworld_oracle_wins_the_pool_and_progress_sums_to_one(tw):
    for game in range(2):
        terminated, info, total, _ = _play(tw, game)
        assert terminated and info["success"] is True
        assert total["progress"] == pytest.approx(1.0) and total["win"] == 1.0
        assert total["format"] == 0.0 and total["invalid"] == 0.0


def test_textworld_oracle_replans_after_straying():
    env = TextWorldEnv(settings={"level": 3}, pool_size=1)
    try:
        obs, _ = env.reset(options={"game": 0})
        walkthrough = list(env._walkthrough)
        assert len(walkthrough) >= 2
        env.step("<action>inventory</action>")  # off the walkthrough: the oracle must replan
        assert env.history != walkthrough[:1]
        assert env.oracle_action() == f"<action>{walkthrough[0]}</action>" and env._plan is not None
        for _ in range(20):
            _, _, terminated, truncated, info = env.step(env.oracle_action())
            if terminated or truncated:
                break
        assert terminated and info["success"] is True
    finally:
        env.close()


def test_alfworld_oracle_wins_two_types(alf):
    for game in range(2):
        terminated, info, total, steps = _play(alf, game)
        assert terminated and info["success"] is True and total["win"] == 1.0 and total["invalid"] == 0.0
        assert alf.task_type(game) in ("pick_and_place_simple", "look_at_obj_in_light") and steps <= 15


@pytest.mark.slow
def test_alfworld_oracle_wins_every_game_of_all_six_types():
    trajs = rollout("rlvr/ALFWorld-v0", OracleAgent(), episodes=12, seed=0,
                    env_kwargs={"pool_size": 12}, reset_options=lambda i: {"game": i})
    assert {t.task_id.rsplit("-seed", 1)[0] for t in trajs} == set(alfgen.TASK_TYPES)
    assert all(t.turns[-1].info["success"] for t in trajs)


def test_truncation_at_max_turns_is_ours_and_not_a_termination():
    env = gym.make("rlvr/TextWorld-v0", pool_size=1, max_turns=2)
    env.reset(seed=0)
    _, _, terminated, truncated, _ = env.step("<action>look</action>")
    assert not terminated and not truncated
    _, _, terminated, truncated, info = env.step("<action>inventory</action>")
    assert truncated and not terminated and info["truncated_by"] == "max_turns" and info["success"] is False
    env.close()


@pytest.mark.parametrize("action,component", [
    ("", "format"), ("   \n\t", "format"), ("xyzzy plugh", "invalid"), ("a" * 5000, "format"),
    ("look\ngo west\ntake coin", "format"), ("日本語のコマンド 🚀", "invalid"), ("<action>", "format"),
    ("<action>look</action><action>take coin</action>", "format"), ("xyz\x00 \ud800zy", "format"),
])
def test_bad_actions_get_the_games_own_feedback_and_a_penalty(tw, alf, action, component):
    for env in (tw, alf):
        env.reset(options={"game": 0})
        obs, reward, terminated, truncated, info = env.step(action)
        assert obs[0]["role"] == "user" and obs[0]["content"].strip()
        assert info["reward_components"][component] < 0 and reward < 0
        assert len(info["command"].encode()) <= env.max_command_chars and "\n" not in info["command"]
        assert not truncated
        obs[0]["content"].encode("utf-8")


def test_interpreter_meta_commands_are_not_sent(tw):
    tw.reset(options={"game": 0})
    for command in ("restart", "quit", "save", "restore game", "undo"):
        obs, _, terminated, _, info = tw.step(command)
        assert obs[0]["content"].startswith("That command is not available") and not terminated
        assert info["reward_components"]["invalid"] < 0
    assert tw.step("<action>take coin</action>")[4]["success"] is True


def test_plain_text_command_is_accepted_without_penalty(tw):
    tw.reset(options={"game": 0})
    _, _, _, _, info = tw.step("look")
    assert info["command"] == "look" and info["reward_components"]["format"] == 0.0
    assert info["reward_components"]["invalid"] == 0.0


def test_observation_lists_admissible_commands_only_when_asked():
    env = TextWorldEnv(pool_size=1, list_admissible=False)
    try:
        obs, _ = env.reset(options={"game": 0})
        assert "Admissible commands" not in obs[1]["content"] and env.game_state.admissible is None
    finally:
        env.close()


def test_task_id_replays_the_game(tw):
    _, info = tw.reset(seed=5)
    _, again = tw.reset(options={"task_id": info["task_id"]})
    assert again["game"] == info["game"]
    with pytest.raises(ConfigError, match="no task with id 'nope'"):
        tw.reset(options={"task_id": "nope"})
    with pytest.raises(ConfigError, match=r"options\['game'\] must be an integer in \[0, 1\]"):
        tw.reset(options={"game": 2})


def test_bad_textworld_settings_are_config_errors():
    with pytest.raises(ConfigError, match="unknown TextWorld challenge 'coin_colector' .*did you mean 'coin_collector'"):
        TextWorldEnv(challenge="coin_colector")
    with pytest.raises(ConfigError, match=r"unknown simple setting 'reward' \(did you mean 'rewards'\?\)"):
        TextWorldEnv(challenge="simple", settings={"reward": "dense"})
    with pytest.raises(ConfigError, match=r"treasure_hunter setting 'level' must be an integer in \[1, 30\]"):
        TextWorldEnv(challenge="treasure_hunter", settings={"level": 31})
    with pytest.raises(ConfigError, match="needs 300 rooms"):
        TextWorldEnv(settings={"level": 300})
    with pytest.raises(ConfigError, match="parser= does not apply"):
        TextWorldEnv(parser="json")


def test_corrupt_or_missing_textworld_games_fail_at_construction(tw, tmp_path):
    good = tw.game_path(0)
    (tmp_path / "junk.z8").write_bytes(b"hello")
    data = good.read_bytes()
    (tmp_path / "half.z8").write_bytes(data[: len(data) // 2])
    (tmp_path / "flipped.z8").write_bytes(data[:5000] + bytes([data[5000] ^ 0xFF]) + data[5001:])
    (tmp_path / "old.ulx").write_bytes(b"Glul")
    for name, message in [("missing.z8", "cannot read game file"), ("junk.z8", "not a Z-machine story file"),
                          ("half.z8", "is truncated"), ("flipped.z8", "is corrupt"), ("old.ulx", "Glulx")]:
        with pytest.raises(ConfigError, match=message):
            TextWorldEnv(games=[tmp_path / name])
    with pytest.raises(ConfigError, match="non-empty list"):
        TextWorldEnv(games=str(good))
    shutil.copy(good, tmp_path / "sidecar.z8")
    (tmp_path / "sidecar.json").write_text("{broken")
    with pytest.raises(ConfigError, match="textworld cannot load .*sidecar.z8"):
        TextWorldEnv(games=[tmp_path / "sidecar.z8"])


def test_own_textworld_games_are_played(tw, tmp_path):
    for ext in (".z8", ".json"):
        shutil.copy(tw.game_path(1).with_suffix(ext), tmp_path / f"mine{ext}")
    env = TextWorldEnv(games=[tmp_path / "mine.z8"])
    try:
        _, info = env.reset()
        assert info["task_id"] == "game0-mine"
        terminated, info, total, _ = _play(env, 0)
        assert terminated and info["success"] is True and total["progress"] == pytest.approx(1.0)
    finally:
        env.close()


def test_alfworld_data_dir_reads_the_official_layout(alf, tmp_path):
    src = alf.game_path(0)
    trial = tmp_path / "json_2.1.1" / "train" / "pick_and_place_simple-Cloth-None-GarbageCan-1" / "trial_T1"
    trial.mkdir(parents=True)
    game = json.loads(src.read_text())
    game["grammar"] = game["grammar"].replace(game["grammar"].split("Your task is to: ")[1].split(".")[0], "UNKNOWN GOAL")
    (trial / "game.tw-pddl").write_text(json.dumps(game))
    shutil.copy(src.parent / "traj_data.json", trial / "traj_data.json")
    unsolvable = trial.parent.parent / "pick_and_place_simple-X-None-Y-2" / "trial_T2"
    unsolvable.mkdir(parents=True)
    (unsolvable / "game.tw-pddl").write_text(json.dumps({**game, "solvable": False}))
    env = ALFWorldEnv(data_dir=tmp_path)
    try:
        assert env._task_ids() == ["pick_and_place_simple/trial_T1"]
        obs, _ = env.reset()
        assert "UNKNOWN GOAL" not in obs[1]["content"] and "Your task is to: put" in obs[1]["content"]
        terminated, info, _, _ = _play(env, 0)
        assert terminated and info["success"] is True
    finally:
        env.close()
    with pytest.raises(ConfigError, match=r"0 ALFWorld games under .* \(2 of another task type\)"):
        ALFWorldEnv(data_dir=tmp_path, task_types=("pick_heat_then_place_in_recep",))


def test_corrupt_or_missing_alfworld_games_fail_at_construction(tmp_path):
    (tmp_path / "bad.tw-pddl").write_text("{not json")
    (tmp_path / "empty.tw-pddl").write_text("{}")
    for name, message in [("missing.tw-pddl", "cannot read ALFWorld game file"), ("bad.tw-pddl", "is not valid JSON"),
                          ("empty.tw-pddl", "lacks pddl_domain, grammar, pddl_problem")]:
        with pytest.raises(ConfigError, match=message):
            ALFWorldEnv(games=[tmp_path / name])
    with pytest.raises(ConfigError, match="is not a folder"):
        ALFWorldEnv(data_dir=tmp_path / "nowhere")
    with pytest.raises(ConfigError, match="task_types must be a non-empty list"):
        ALFWorldEnv(task_types=("pick_and_place",))
    with pytest.raises(ConfigError, match="no separate inventory"):
        ALFWorldEnv(show_inventory=True)


def test_damaged_cache_entry_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("RLVR_CACHE", str(tmp_path))
    calls = []

    def build(out):
        calls.append(out)
        (out / "game.txt").write_text("content")

    first = build_once("test", {"x": 1}, build)
    assert build_once("test", {"x": 1}, build) == first and len(calls) == 1
    (first / "game.txt").write_text("truncat")
    assert build_once("test", {"x": 1}, build) == first and len(calls) == 2
    assert (first / "game.txt").read_text() == "content"
    assert build_once("test", {"x": 2}, build) != first


_SAME_SEED = """
import hashlib, json, sys
from rlvr.envs.textgames import alfgen, twgen
tw = twgen.generate("coin_collector", twgen.check_settings("coin_collector", None), 97)
alf = json.loads(alfgen.generate("pick_heat_then_place_in_recep", 97).read_text())
print(hashlib.sha256(tw.read_bytes()).hexdigest(), hashlib.sha256(alf["pddl_problem"].encode()).hexdigest())
"""


@pytest.mark.slow
def test_same_seed_gives_the_same_game_across_processes(tmp_path):
    digests = []
    for k in range(2):
        out = subprocess.run([sys.executable, "-c", _SAME_SEED], capture_output=True, text=True, timeout=300,
                             env={**__import__("os").environ, "RLVR_CACHE": str(tmp_path / f"cache{k}")})
        assert out.returncode == 0, out.stderr[-2000:]
        digests.append(out.stdout.split())
    assert digests[0] == digests[1] and len(digests[0]) == 2


def test_alfworld_draws_are_a_function_of_the_seed():
    import numpy as np

    scenes = alfgen.scene_types()
    draw = [alfgen._draw("pick_cool_then_place_in_recep", np.random.default_rng([s, 4]), scenes).problem for s in (3, 3, 4)]
    assert draw[0] == draw[1] != draw[2]


def test_alfworld_oracle_falls_back_to_the_handcoded_expert(alf, monkeypatch):
    alf.reset(options={"game": 0})
    monkeypatch.setattr(type(alf._engine._pddl_state), "replan", lambda self, infos: [])
    for _ in range(3):
        action = alf.oracle_action()
        assert action[len("<action>"):-len("</action>")] in alf.game_state.extra["admissible"]
        alf.step(action)


def test_a_draw_the_planner_cannot_solve_in_time_is_dropped(monkeypatch):
    import time

    monkeypatch.setattr(alfgen, "_verify", lambda game: time.sleep(30) or ["never"])
    start = time.monotonic()
    assert alfgen._verify_bounded({}, 0.5) == [] and time.monotonic() - start < 10
    monkeypatch.setattr(alfgen, "_verify", lambda game: ["go to desk 1"])
    assert alfgen._verify_bounded({}, 30) == ["go to desk 1"]
