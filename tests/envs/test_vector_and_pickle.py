"""Every registered id in Gymnasium's vector envs (sync and async, default shared memory) and through pickle."""

from __future__ import annotations

import importlib.util
import pickle

import gymnasium as gym
import numpy as np
import pytest

import rlvr  # noqa: F401 - registers the ids
from rlvr.envs._shared_memory import SLOT_BYTES, SharedObservations
from rlvr.errors import NoOracleError, RLVRError
from rlvr.registry import ENVS


def _missing(requires: tuple[str, ...]) -> str | None:
    """Why an id cannot run here (a requirement that is neither Docker nor an importable module), else None."""
    for req in requires:
        if req != "docker" and importlib.util.find_spec(req) is None:
            return f"needs {req!r}, which is not installed"
    return None


def _params(needs_runtime: bool):
    out = []
    for info in ENVS:
        marks = []
        why = _missing(info.requires)
        if why:
            marks.append(pytest.mark.skip(reason=f"{info.id} {why}"))
        if needs_runtime and "docker" in info.requires:
            marks.append(pytest.mark.docker)
        out.append(pytest.param(info.id, id=info.id, marks=marks))
    return out


def _first_actions(vec) -> list[str]:
    try:
        return list(vec.call("oracle_action"))
    except NoOracleError:
        return ["<answer>1</answer>"] * vec.num_envs


@pytest.mark.parametrize("env_id", _params(needs_runtime=False))
def test_the_environment_and_its_constructor_pickle(env_id):
    env = gym.make(env_id)
    try:
        copy = pickle.loads(pickle.dumps(env.unwrapped))
        assert type(copy) is type(env.unwrapped) and copy.reward_weights == env.unwrapped.reward_weights
        wrapped = pickle.loads(pickle.dumps(env))  # gym.make's wrappers and spec too
        assert wrapped.spec.id == env_id
        copy.close()
        wrapped.close()
        factory = gym.spec(env_id).entry_point
        assert pickle.loads(pickle.dumps(factory)).info.id == env_id
    finally:
        env.close()


def test_a_pickled_episode_in_progress_goes_on_identically():
    env = gym.make("rlvr/DeepSearch-v0").unwrapped
    env.reset(seed=3)
    env.step(env.oracle_action())
    copy = pickle.loads(pickle.dumps(env))
    action = env.oracle_action()
    assert copy.oracle_action() == action
    a, b = env.step(action), copy.step(action)
    assert a[0] == b[0] and a[1:4] == b[1:4]


@pytest.mark.parametrize("env_id", _params(needs_runtime=True))
def test_sync_and_async_vector_envs_agree(env_id):
    results = {}
    for mode in ("sync", "async"):
        vec = gym.make_vec(env_id, num_envs=2, vectorization_mode=mode)  # gymnasium's defaults: shared memory on
        try:
            obs, info = vec.reset(seed=[5, 6])
            assert isinstance(obs, tuple) and len(obs) == 2 and all(isinstance(o, list) and o for o in obs)
            assert vec.single_observation_space.contains(obs[0])
            step = vec.step(_first_actions(vec))
            assert step[1].shape == (2,) and step[1].dtype == np.float64
            results[mode] = (obs, list(info["task_id"]), step[0], step[1].tolist(), step[2].tolist())
        finally:
            vec.close()
    assert results["sync"] == results["async"]


def test_shared_observations_view():
    import multiprocessing as mp

    from gymnasium.vector.utils import create_shared_memory, read_from_shared_memory, write_to_shared_memory

    from rlvr.envs import ChatMessages

    space = ChatMessages()
    buf = create_shared_memory(space, n=2, ctx=mp)
    view = read_from_shared_memory(space, buf, n=2)
    assert isinstance(view, SharedObservations) and view[0] == [] and len(view) == 2
    msgs = [{"role": "user", "content": "héllo 日本"}]
    write_to_shared_memory(space, 1, msgs, buf)
    assert view[1] == msgs and view[-1] == msgs and view[0:2] == ([], msgs)
    import copy

    assert copy.deepcopy(view) == ([], msgs)
    with pytest.raises(IndexError):
        view[2]
    with pytest.raises(RLVRError, match=r"does not fit .* pass vector_kwargs=\{'shared_memory': False\}"):
        write_to_shared_memory(space, 0, [{"role": "user", "content": "y" * SLOT_BYTES}], buf)
    assert view[0] == []  # a refused write leaves the slot as it was
