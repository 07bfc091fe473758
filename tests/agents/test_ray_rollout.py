"""Rollouts on Ray: the same trajectories as the local executor, and no episode lost to a fault.

One local Ray session (2 CPUs, workers with ``num_cpus=0``, at most 8) serves the whole module.
Faults are injected by a wrapper around GuessNumber on one episode seed and turn: the worker exits
(``os._exit``), hangs past the step timeout, or the environment raises. A marker file makes a fault
happen once, so the re-run can succeed and be compared with the local executor's episode.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import time
from pathlib import Path

import gymnasium as gym
import pytest

ray = pytest.importorskip("ray")

from rlvr.agents.base import OracleAgent, RandomAgent  # noqa: E402
from rlvr.agents.ray_rollout import RayExecutor  # noqa: E402
from rlvr.agents.ray_worker import check_placement, env_resources  # noqa: E402
from rlvr.agents.rollout import infra_failure, rollout, summarize  # noqa: E402
from rlvr.agents.trajectory import read_trajectories  # noqa: E402
from rlvr.envs.guess_number import GuessNumberEnv  # noqa: E402
from rlvr.errors import ConfigError  # noqa: E402


@pytest.fixture(scope="module")
def ray_session():
    import psutil

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the test envs travel to the workers
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    children = [p for p in psutil.Process().children(recursive=True) if "raylet" in " ".join(p.cmdline())]
    assert children, "ray.init started no raylet under this process"
    yield ray
    alive = _alive_workers()
    ray.shutdown()
    assert alive == [], f"EnvWorker actors left alive: {alive}"
    gone, left = psutil.wait_procs(children, timeout=15)
    assert not left, f"raylet processes left after ray.shutdown(): {[p.pid for p in left]}"


def _alive_workers() -> list[str]:
    """Ids of EnvWorker actors not dead (from the GCS actor table: the state API needs the dashboard)."""
    from ray._private import state

    return [k for k, a in state.actors().items() if a["ActorClassName"] == "EnvWorker" and a["State"] != "DEAD"]


class Faulty(gym.Wrapper):
    """GuessNumber that misbehaves at ``turn`` of the episode reset with ``seed``.

    ``mode``: ``exit`` (the worker process dies), ``hang`` (the step sleeps 60 s), ``raise`` (the step
    raises), ``poison`` (the step marks the instance, then raises). With ``once`` a marker file in
    ``marker_dir`` limits the fault to the first attempt. ``info["resets"]`` counts the resets of this
    instance and ``info["poisoned"]`` says whether an earlier attempt marked it.
    """

    def __init__(self, mode: str, seed: int, turn: int, marker_dir: str, once: bool = True) -> None:
        super().__init__(GuessNumberEnv(max_turns=8))
        self.mode, self.fault_seed, self.fault_turn, self.once = mode, seed, turn, once
        self.marker = Path(marker_dir) / f"{mode}-{seed}"
        self.resets, self.poisoned = 0, False

    def reset(self, *, seed=None, options=None):
        obs, info = self.env.reset(seed=seed, options=options)
        self.resets += 1
        self.episode_seed, self.turn = seed, 0
        return obs, {**info, "resets": self.resets, "poisoned": self.poisoned}

    def step(self, action):
        self.turn += 1
        if self.episode_seed == self.fault_seed and self.turn == self.fault_turn and not (
                self.once and self.marker.exists()):
            self.marker.touch()
            if self.mode == "exit":
                os._exit(1)
            if self.mode == "hang":
                time.sleep(60)
            self.poisoned = self.mode == "poison"
            raise RuntimeError(f"injected fault at turn {self.turn}")
        return self.env.step(action)


def faulty(mode: str, seed: int, turn: int, marker_dir: Path, once: bool = True):
    return functools.partial(Faulty, mode, seed, turn, str(marker_dir), once)


def healed(mode: str, seed: int, turn: int, marker_dir: Path):
    """The same environment with its one-time fault already spent (the local reference run)."""
    marker_dir.mkdir(parents=True, exist_ok=True)
    (marker_dir / f"{mode}-{seed}").touch()
    return faulty(mode, seed, turn, marker_dir)


def _plain(t, drop_info=()) -> dict:
    """A trajectory as a dict without timings (and without the given reset_info keys)."""
    d = t.to_dict()
    for turn in d["turns"]:
        turn.pop("timings")
    for key in ("attempt", "failed_attempts", *drop_info):
        d["reset_info"].pop(key, None)
    return d


def _failures(path: Path) -> list[dict]:
    return [t.reset_info["ray_failure"] for t in read_trajectories(path) if "ray_failure" in t.reset_info]


# --------------------------------------------------------------------------- configuration (no Ray session)
def test_executor_arguments_are_checked():
    with pytest.raises(ConfigError, match="did you mean 'ray'"):
        rollout("rlvr/GuessNumber-v0", OracleAgent(), episodes=1, executor="rya")
    with pytest.raises(ConfigError, match="apply to executor='ray'"):
        rollout("rlvr/GuessNumber-v0", OracleAgent(), episodes=1, workers=2)
    with pytest.raises(ConfigError, match="set on the RayExecutor itself"):
        rollout("rlvr/GuessNumber-v0", OracleAgent(), episodes=1, executor=RayExecutor(), envs_per_worker=2)
    with pytest.raises(ConfigError, match="must stay 0"):
        RayExecutor(actor_options={"max_task_retries": -1})
    with pytest.raises(ConfigError, match="envs_per_worker must be an integer >= 1"):
        RayExecutor(envs_per_worker=0)
    with pytest.raises(ConfigError, match="step_timeout_s must be > 0"):
        RayExecutor(step_timeout_s=0)


def test_sandboxed_envs_ask_for_docker_slots():
    assert env_resources("rlvr/SWE-v0", {}, "docker_slots") == {"docker_slots": 1.0}
    assert env_resources("rlvr/SWE-v0", {"backend": "bwrap"}, "docker_slots") == {}
    assert env_resources("rlvr/GuessNumber-v0", {}, "docker_slots") == {}
    nodes = [{"Alive": True, "Resources": {"CPU": 2.0, "docker_slots": 2.0}}, {"Alive": False, "Resources": {"docker_slots": 8.0}}]
    check_placement({"docker_slots": 2.0}, nodes, envs_per_worker=2, sandbox_resource="docker_slots")
    with pytest.raises(ConfigError, match=r"docker_slots.*of its 1 alive node\(s\) offers is \{'docker_slots': 2.0\}"
                                          r".*ray start --resources='\{\"docker_slots\": 16\}'.*lower envs_per_worker"):
        check_placement({"docker_slots": 4.0}, nodes, envs_per_worker=4, sandbox_resource="docker_slots")


# --------------------------------------------------------------------------- on a local Ray session
@pytest.mark.parametrize("agent", [OracleAgent(), RandomAgent(seed=7)], ids=["oracle", "random"])
def test_same_trajectories_as_local(ray_session, tmp_path, agent):
    seeds = [11, 11, 12, 12, 13, 13]
    local = rollout("rlvr/GuessNumber-v0", agent, episodes=6, seeds=seeds, seed=5, concurrency=3,
                    out=tmp_path / "local")
    remote = rollout("rlvr/GuessNumber-v0", agent, episodes=6, seeds=seeds, seed=5, executor="ray", workers=2,
                     envs_per_worker=2, out=tmp_path / "ray")
    assert [_plain(t) for t in remote] == [_plain(t) for t in local]
    assert all(set(t.timings) == {"generate_s", "step_s", "call_s"} for tr in remote for t in tr.turns)
    on_file = sorted(read_trajectories(tmp_path / "ray" / "trajectories.jsonl"), key=lambda t: t.reset_info["episode"])
    assert [_plain(t) for t in on_file] == [_plain(t) for t in local]


def test_worker_killed_mid_episode_reruns_the_episode(ray_session, tmp_path):
    env = faulty("exit", seed=2, turn=2, marker_dir=tmp_path)
    local = rollout(healed("exit", 2, 2, tmp_path / "local"), RandomAgent(seed=1), episodes=4, seed=0, concurrency=2)
    remote = rollout(env, RandomAgent(seed=1), episodes=4, seed=0, executor="ray", workers=1, envs_per_worker=2,
                     out=tmp_path)
    drop = ("resets",)  # the local executor reuses its instances; a re-run starts on a fresh one
    assert [_plain(t, drop) for t in remote] == [_plain(t, drop) for t in local]
    assert remote[2].reset_info["attempt"] == 2 and infra_failure(remote[2]) is None
    assert remote[2].reset_info["failed_attempts"][0]["kind"] == "worker_died"
    fails = _failures(tmp_path / "trajectories.jsonl")
    assert {"kind": "worker_died", "attempt": 1} == {k: fails[0][k] for k in ("kind", "attempt")}
    failed = [t for t in read_trajectories(tmp_path / "trajectories.jsonl") if "ray_failure" in t.reset_info]
    assert 2 in [t.reset_info["episode"] for t in failed]
    ep2 = next(t for t in failed if t.reset_info["episode"] == 2)
    assert ep2.turns[-1].truncated and ep2.turns[-1].info["infra_failure"]["where"] == "ray:worker_died"
    assert ep2.turns[-1].info["action_sent"] is True and len(ep2.turns) == 2


def test_step_timeout_restarts_the_worker_and_reruns(ray_session, tmp_path):
    env = faulty("hang", seed=1, turn=1, marker_dir=tmp_path)
    ex = RayExecutor(workers=1, envs_per_worker=1, step_timeout_s=1.5)
    t0 = time.monotonic()
    with ex:
        remote = ex.rollout(env, OracleAgent(), episodes=2, seed=0, out=tmp_path)
    assert time.monotonic() - t0 < 40
    local = rollout(healed("hang", 1, 1, tmp_path / "local"), OracleAgent(), episodes=2, seed=0, concurrency=1)
    assert [_plain(t, ("resets",)) for t in remote] == [_plain(t, ("resets",)) for t in local]
    (fail,) = _failures(tmp_path / "trajectories.jsonl")
    assert fail["kind"] == "step_timeout" and "1.5 s" in fail["message"]
    bad = next(t for t in read_trajectories(tmp_path / "trajectories.jsonl") if "ray_failure" in t.reset_info)
    assert bad.truncated and bad.turns[-1].info["truncated_by"] == "step_timeout"


class Slow(gym.Wrapper):
    """GuessNumber whose steps take ``delay_s`` each."""

    def __init__(self, delay_s: float) -> None:
        super().__init__(GuessNumberEnv(max_turns=8))
        self.delay_s = delay_s

    def step(self, action):
        time.sleep(self.delay_s)
        return self.env.step(action)


@pytest.mark.slow
def test_episode_timeout_counts_the_environments_time(ray_session, tmp_path):
    with RayExecutor(workers=1, envs_per_worker=1, episode_timeout_s=1.2, max_episode_retries=0) as ex:
        (t,) = ex.rollout(functools.partial(Slow, 0.5), OracleAgent(), episodes=1, out=tmp_path)
    assert t.reset_info["ray_failure"]["kind"] == "episode_timeout" and t.truncated
    assert t.turns[-1].info["truncated_by"] == "episode_timeout" and t.num_turns == 3  # two steps, then the cut


def test_env_that_raises_is_retried_then_its_group_dropped(ray_session, tmp_path):
    env = faulty("raise", seed=5, turn=1, marker_dir=tmp_path, once=False)
    seeds = [5, 5, 5, 7, 7]
    with RayExecutor(workers=1, envs_per_worker=1, max_episode_retries=1) as ex:
        trajs = ex.rollout(env, OracleAgent(), episodes=5, seeds=seeds, out=tmp_path)
    assert len(trajs) == 5 and [t.reset_info["episode"] for t in trajs] == [0, 1, 2, 3, 4]
    assert all(infra_failure(t) is not None for t in trajs[:3])
    assert all(infra_failure(t) is None and t.terminated for t in trajs[3:])
    assert trajs[0].reset_info["ray_failure"]["message"] == "RuntimeError: injected fault at turn 1"
    assert [t.reset_info.get("group_dropped") for t in trajs[1:3]] == [True, True]
    fails = _failures(tmp_path / "trajectories.jsonl")
    assert [(f["kind"], f["attempt"]) for f in fails] == [("env_exception", 1), ("env_exception", 2)]
    summary = summarize(trajs)
    assert summary["infra_failures"] == 3 and summary["scored_episodes"] == 2
    lines = [json.loads(x) for x in (tmp_path / "trajectories.jsonl").read_text().splitlines()]
    assert len(lines) == 2 + 2 + 2  # two failed attempts, two dropped members, two finished episodes


def test_retried_episode_never_sees_the_failed_attempts_state(ray_session, tmp_path):
    env = faulty("poison", seed=3, turn=2, marker_dir=tmp_path)
    with RayExecutor(workers=1, envs_per_worker=1) as ex:
        trajs = ex.rollout(env, OracleAgent(), episodes=3, seed=2, out=tmp_path)
    retried = trajs[1]
    assert retried.seed == 3 and retried.reset_info["attempt"] == 2
    assert retried.reset_info["poisoned"] is False and retried.reset_info["resets"] == 1  # a new instance
    assert trajs[2].reset_info["resets"] == 2  # later episodes reuse the re-run's instance, as locally
    (bad,) = [t for t in read_trajectories(tmp_path / "trajectories.jsonl") if "ray_failure" in t.reset_info]
    assert bad.num_turns == 2 and bad.reset_info["ray_failure"]["kind"] == "env_exception"


def test_missing_resource_fails_at_once(ray_session):
    t0 = time.monotonic()
    with pytest.raises(ConfigError, match=r"docker_slots.*ray start --resources"):
        rollout("rlvr/GuessNumber-v0", OracleAgent(), episodes=1,
                executor=RayExecutor(resources_per_env={"docker_slots": 1}))
    assert time.monotonic() - t0 < 5


def test_executor_reuses_its_workers_and_close_ends_them(ray_session):
    ex = RayExecutor(workers=2, envs_per_worker=2)
    first = ex.rollout("rlvr/GuessNumber-v0", OracleAgent(), episodes=3, seed=0)
    placed = ex.placed_workers(wait_s=20)
    second = ex.rollout("rlvr/GuessNumber-v0", OracleAgent(), episodes=3, seed=0)
    assert ex.placed_workers(wait_s=20) == placed and len(placed) == 2
    assert [_plain(t) for t in first] == [_plain(t) for t in second]
    ex.close()
    deadline = time.monotonic() + 10
    while _alive_workers() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _alive_workers() == []


class ReadsEnv:
    """Not an OracleAgent: reads ``lo`` / ``hi`` from its environment, then asks it for the oracle's action."""

    model_id = "reads-env"

    def bind(self, env):
        u = env.unwrapped

        class Bound:
            def act(self, messages):
                assert u.lo <= u.hi  # an attribute fetched from the worker
                return u.oracle_action()  # fetched once, then prefetched with every reply

        return Bound()


def test_agents_that_read_their_environment(ray_session):
    local = rollout("rlvr/GuessNumber-v0", ReadsEnv(), episodes=3, seed=4)
    remote = rollout("rlvr/GuessNumber-v0", ReadsEnv(), episodes=3, seed=4, executor="ray", workers=1)
    assert [_plain(t) for t in remote] == [_plain(t) for t in local] and all(t.terminated for t in remote)


def test_cli_run_on_ray(ray_session, tmp_path, capsys):
    from rlvr.cli import main

    assert main(["run", "rlvr/GuessNumber-v0", "--executor", "ray", "--workers", "1", "--envs-per-worker", "2",
                 "--episodes", "3", "--out", str(tmp_path), "--quiet"]) == 0
    assert len(list(read_trajectories(tmp_path / "trajectories.jsonl"))) == 3
    assert main(["run", "rlvr/GuessNumber-v0", "--workers", "2", "--out", str(tmp_path / "x"), "--quiet"]) == 2
    assert "apply to executor='ray'" in capsys.readouterr().err


@pytest.mark.slow  # loads a tokenizer and a policy: about 30 s on a loaded 2-core machine
def test_trainer_rollouts_on_ray_are_token_exact(ray_session, tmp_path):
    from _trainer_helpers import answer_policy, smollm2_tokenizer

    from rlvr.agents.trainer.backends import HFBackend
    from rlvr.agents.trainer.config import TrainConfig
    from rlvr.agents.trainer.trainer import _executor, collect_groups, task_seeds

    config = TrainConfig(env="rlvr/GuessNumber-v0", env_kwargs={"low": 1, "high": 2, "max_turns": 2},
                         tasks_per_step=2, group_size=3, max_new_tokens=7, output_dir=str(tmp_path),
                         executor="ray", ray_workers=2, envs_per_worker=3)
    tok = smollm2_tokenizer()
    backend = HFBackend(answer_policy(tok), tok, max_new_tokens=7, temperature=1.0, top_p=1.0, batch_size=16,
                        max_context=2048, seed=5)
    seeds = task_seeds(config, 0)
    local = collect_groups(config, backend.agent, seeds, config.env_kwargs)
    ex = _executor(config)
    assert isinstance(ex, RayExecutor) and (ex.workers, ex.envs_per_worker) == (2, 3)
    with ex:
        remote = collect_groups(config, backend.agent, seeds, config.env_kwargs, ex)
    for a, b in zip(local, remote):
        da, db = _plain(a), _plain(b)
        for ta, tb in zip(da["turns"], db["turns"]):
            assert tb.pop("logprobs") == pytest.approx(ta.pop("logprobs"), abs=1e-4)
        assert da == db


class Broken:
    def act(self, messages):
        raise RuntimeError("model server down")


def test_agent_failure_stops_the_rollout_and_ends_the_workers(ray_session, tmp_path):
    from rlvr.errors import AgentError

    ex = RayExecutor(workers=1, envs_per_worker=2)
    with pytest.raises(AgentError, match=r"Broken raised RuntimeError: model server down while generating "
                                         r"episode [01] \(seed [01]\) turn 1"):
        ex.rollout("rlvr/GuessNumber-v0", Broken(), episodes=2, out=tmp_path)
    assert ex.placed_workers() == []  # closed: calls may have been running on them
    assert (tmp_path / "trajectories.jsonl").read_text() == ""
