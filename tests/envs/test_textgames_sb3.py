"""The Stable-Baselines3 wrapper of the text games: check_env, masks, and a short MaskablePPO run."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("textworld")
pytest.importorskip("sb3_contrib")

from stable_baselines3.common.env_checker import check_env  # noqa: E402

from rlvr.envs.textgames.sb3 import SB3TextGameEnv, bag_of_words  # noqa: E402
from rlvr.errors import ConfigError  # noqa: E402


def test_textworld_wrapper_passes_check_env_and_masks_the_admissible_commands():
    env = SB3TextGameEnv("rlvr/TextWorld-v0", pool_size=2, max_actions=8, n_features=32)
    check_env(env)
    obs, _ = env.reset(seed=0)
    mask = env.action_masks()
    assert obs.shape == env.observation_space.shape and mask.sum() == len(env.candidates) > 0
    assert env.candidates == sorted(env.candidates) and "take coin" in env.candidates
    _, reward, terminated, _, info = env.step(env.candidates.index("take coin"))
    assert terminated and info["success"] is True and reward > 1 and info["masked_out"] is False
    env.reset(seed=0)
    assert env.step(7)[4]["masked_out"] is (len(env.candidates) <= 7)
    env.close()


def test_alfworld_wrapper_passes_check_env():
    env = SB3TextGameEnv("rlvr/ALFWorld-v0", pool_size=1)
    check_env(env)
    env.close()


def test_bag_of_words_is_stable_and_bounded():
    a = bag_of_words("Take the coin, take it!", 16)
    assert a.dtype == np.float32 and set(np.unique(a)) <= {0.0, 1.0} and a.sum() <= 4
    assert np.array_equal(a, bag_of_words("take THE coin it", 16))
    with pytest.raises(ConfigError, match="max_actions must be a positive integer"):
        SB3TextGameEnv(max_actions=0)
    with pytest.raises(ConfigError, match="wraps rlvr/TextWorld-v0 or rlvr/ALFWorld-v0"):
        SB3TextGameEnv("rlvr/GuessNumber-v0")


@pytest.mark.slow
def test_short_maskable_ppo_run_beats_random_on_held_out_games():
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("sb3_textworld", Path(__file__).parents[2] / "examples" / "sb3_textworld.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    result = example.run(steps=1024, train_games=4, eval_games=4, episodes=20, plot=None)
    assert result["ppo_success"] > result["random_success"]
