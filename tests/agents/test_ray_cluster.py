"""Rollouts on a two-node Ray cluster faked on one machine (``ray.cluster_utils.Cluster``).

The node that declares ``docker_slots`` gets every sandboxed worker and no more of them than its
quota; a quota no node can meet fails at once; removing a node mid-rollout loses no episode.
"""

from __future__ import annotations

import functools
import sys
import time

import gymnasium as gym
import pytest

ray = pytest.importorskip("ray")

from ray.cluster_utils import Cluster  # noqa: E402

from rlvr.agents.base import OracleAgent  # noqa: E402
from rlvr.agents.ray_rollout import RayExecutor  # noqa: E402
from rlvr.agents.rollout import infra_failure, rollout  # noqa: E402
from rlvr.agents.trajectory import read_trajectories  # noqa: E402
from rlvr.envs.guess_number import GuessNumberEnv  # noqa: E402
from rlvr.errors import ConfigError  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster():
    import psutil

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "resources": {"slot": 1},
                                                       "include_dashboard": False})
    nodes = {"head": c.head_node, "sandbox": c.add_node(num_cpus=1, resources={"docker_slots": 2})}
    ray.init(address=c.address, logging_level="ERROR")
    c.wait_for_nodes()
    raylets = [p for p in psutil.Process().children(recursive=True) if "raylet" in " ".join(p.cmdline())]
    assert len(raylets) >= 2
    yield c, nodes
    from ray._private import state

    alive = [k for k, a in state.actors().items() if a["ActorClassName"] == "EnvWorker" and a["State"] != "DEAD"]
    ray.shutdown()
    c.shutdown()
    assert alive == [], f"EnvWorker actors left alive: {alive}"
    _, left = psutil.wait_procs(raylets, timeout=20)
    assert not left, f"raylet processes left after the cluster shut down: {[p.pid for p in left]}"


class Placed(gym.Wrapper):
    """GuessNumber that records the node it runs on (``info["node"]``) and takes ``delay_s`` per step."""

    def __init__(self, delay_s: float = 0.0) -> None:
        super().__init__(GuessNumberEnv(max_turns=8))
        self.delay_s = delay_s

    def reset(self, *, seed=None, options=None):
        obs, info = self.env.reset(seed=seed, options=options)
        return obs, {**info, "node": ray.get_runtime_context().get_node_id()}

    def step(self, action):
        time.sleep(self.delay_s)
        return self.env.step(action)


def test_docker_slot_quota_places_sandboxes_on_the_node_that_offers_them(cluster):
    c, nodes = cluster
    with RayExecutor(workers=3, envs_per_worker=1, resources_per_env={"docker_slots": 1}) as ex:
        trajs = ex.rollout(Placed, OracleAgent(), episodes=6, seed=0)
        placed = ex.placed_workers(wait_s=2)
    sandbox = nodes["sandbox"].node_id
    assert len(placed) == 2 and {w["node"] for w in placed} == {sandbox}  # the quota admits two of the three
    assert {t.reset_info["node"] for t in trajs} == {sandbox}
    assert all(t.terminated and infra_failure(t) is None for t in trajs)


def test_quota_no_node_meets_fails_at_once(cluster):
    t0 = time.monotonic()
    with pytest.raises(ConfigError, match=r"\{'docker_slots': 3\}.*of its 2 alive node\(s\) offers is \{'docker_slots': 2.0\}"):
        rollout(Placed, OracleAgent(), episodes=1, executor=RayExecutor(envs_per_worker=3, resources_per_env={
            "docker_slots": 1}))
    assert time.monotonic() - t0 < 5


def test_node_removed_mid_rollout_loses_no_episode(cluster, tmp_path):
    c, nodes = cluster
    extra = c.add_node(num_cpus=1, resources={"slot": 1})
    c.wait_for_nodes()
    removed: list[float] = []

    def remove_after_first(traj) -> None:
        if not removed:
            c.remove_node(extra)
            removed.append(time.monotonic())

    with RayExecutor(workers=2, envs_per_worker=1, resources_per_env={"slot": 1}) as ex:
        trajs = ex.rollout(functools.partial(Placed, 0.15), OracleAgent(), episodes=6, seed=0, out=tmp_path,
                           on_episode=remove_after_first)
    assert len(trajs) == 6 and all(t.terminated and infra_failure(t) is None for t in trajs)
    failed = [t for t in read_trajectories(tmp_path / "trajectories.jsonl") if "ray_failure" in t.reset_info]
    assert failed, "the removed node's episode should have failed once"
    assert all(t.reset_info["ray_failure"]["kind"] in ("worker_died", "ray_error") for t in failed)
    rerun = [t for t in trajs if t.reset_info.get("attempt", 1) > 1]
    assert rerun and all(t.reset_info["node"] == nodes["head"].node_id for t in rerun)
