"""``await arollout(...)``: the asyncio interface gives rollout()'s trajectories, with async agents in flight at once."""

from __future__ import annotations

import asyncio
import time

import pytest

from rlvr.agents import OracleAgent, RandomAgent
from rlvr.agents.arollout import arollout
from rlvr.agents.rollout import rollout
from rlvr.agents.trajectory import read_trajectories
from rlvr.errors import AgentError, ConfigError


def _comparable(trajs):
    out = []
    for t in trajs:
        d = t.to_dict()
        for turn in d["turns"]:
            turn.pop("timings")
        out.append(d)
    return out


@pytest.mark.parametrize("make_agent", [OracleAgent, lambda: RandomAgent(seed=3)], ids=["oracle", "random"])
def test_same_trajectories_as_the_threaded_rollout(make_agent, tmp_path):
    a = asyncio.run(arollout("rlvr/GuessNumber-v0", make_agent(), episodes=5, seed=2, concurrency=3, out=tmp_path))
    b = rollout("rlvr/GuessNumber-v0", make_agent(), episodes=5, seed=2, concurrency=2)
    assert _comparable(a) == _comparable(b)
    assert _comparable(sorted(read_trajectories(tmp_path / "trajectories.jsonl"), key=lambda t: t.seed)) == \
        _comparable(a)


def test_async_agents_are_awaited_concurrently():
    class SlowClient:
        """An async HTTP client stand-in: each reply takes 0.3 s of waiting, no CPU."""

        def __init__(self):
            self.in_flight = self.most = 0

        async def act(self, messages):
            self.in_flight += 1
            self.most = max(self.most, self.in_flight)
            await asyncio.sleep(0.3)
            self.in_flight -= 1
            return "<answer>1</answer>"

    agent = SlowClient()
    t0 = time.perf_counter()
    trajs = asyncio.run(arollout("rlvr/GuessNumber-v0", agent, episodes=12, concurrency=12))
    assert len(trajs) == 12 and agent.most == 12
    assert time.perf_counter() - t0 < 0.3 * 12 / 2  # far less than one request after another
    assert [t.seed for t in trajs] == list(range(12))


def test_task_seeds_options_and_on_episode():
    seen = []

    class Answer:
        async def act(self, messages):
            return "<answer>7</answer>"

    trajs = asyncio.run(arollout("rlvr/GuessNumber-v0", Answer(), episodes=4, seeds=[9, 9, 9, 9], concurrency=2,
                                 reset_options=lambda k: {"secret": 7} if k % 2 else None, on_episode=seen.append))
    assert [t.seed for t in trajs] == [9] * 4 and len(seen) == 4
    assert [t.turns[-1].info["success"] for t in trajs] == [False, True, False, True]
    assert trajs[1].repro.reset_options == {"secret": 7}


def test_agent_failures_and_bad_arguments_are_clear():
    class Down:
        async def act(self, messages):
            raise ConnectionError("server went away")

    with pytest.raises(AgentError, match=r"agent Down raised ConnectionError: server went away while generating "
                                         r"episode \d \(seed \d\) turn 1"):
        asyncio.run(arollout("rlvr/GuessNumber-v0", Down(), episodes=3))

    class Wrong:
        async def act(self, messages):
            return 42

    with pytest.raises(AgentError, match="Wrong.act must return str or Generation, got int"):
        asyncio.run(arollout("rlvr/GuessNumber-v0", Wrong(), episodes=1))
    with pytest.raises(ConfigError, match="need episodes >= 0 and concurrency >= 1"):
        asyncio.run(arollout("rlvr/GuessNumber-v0", OracleAgent(), episodes=1, concurrency=0))
    with pytest.raises(ConfigError, match="is not an agent"):
        asyncio.run(arollout("rlvr/GuessNumber-v0", object(), episodes=1))
    assert asyncio.run(arollout("rlvr/GuessNumber-v0", OracleAgent(), episodes=0)) == []
