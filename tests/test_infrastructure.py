"""Infrastructure failures are not the model's fault, and a late tool call changes nothing.

A retrieval server that is down, answers HTTP 500 or sends the wrong shape: a clear error when the env
is built, an unpenalised turn that ends the episode (``info["infra_failure"]``) when it fails later,
counted apart by the run summary and ``rlvr run``, and kept out of training batches. Sandboxes: SWE's
``SandboxLost`` / ``EngineUnavailable`` map to the same. ToolCall: a timed-out call has no late effect.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest

from _loopback import JSONHandler, serve
from rlvr.agents.rollout import infra_failure, is_success, summarize
from rlvr.agents.trainer.batch import drop_infra_groups
from rlvr.agents.trajectory import Trajectory, Turn
from rlvr.envs.deepsearch import DeepSearchEnv, Hop, RetrievalError, Task
from rlvr.envs.parsers import ToolCall
from rlvr.errors import ConfigError, ErrorKind, InfrastructureError

DOC = {"id": "b", "contents": '"Orin Labs"\nOrin Labs is a robotics company founded by Ada Vell in Tarrow.'}
TASK = Task("q1", "Who founded Orin Labs?", ("Ada Vell",), hops=(Hop("Orin Labs founder", "b"),))


class Retrieval:
    """A /retrieve server on 127.0.0.1 whose answers to real queries (not the health check) can break."""

    def __init__(self) -> None:
        self.mode = "ok"  # ok | 500 | shape
        self.health_mode = "ok"
        outer = self

        class Handler(JSONHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                mode = outer.health_mode if body["queries"] == ["test"] else outer.mode
                if mode == "500":
                    return self._send(500, {"detail": "index not loaded"})
                if mode == "shape":
                    return self._send(200, {"docs": ["not", "the", "search-r1", "shape"]})
                self._send(200, {"result": [[{"document": DOC, "score": 1.0}] for _ in body["queries"]]})

        self.httpd, self.url, _ = serve(Handler)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def server():
    s = Retrieval()
    yield s
    s.close()


def search(query: str) -> str:
    return f'<tool_call>{json.dumps({"name": "search", "arguments": {"query": query}})}</tool_call>'


# ----------------------------------------------------------------------------- health check at construction
def test_server_down_fails_at_construction(server):
    url = server.url
    server.close()
    with pytest.raises(RetrievalError, match=r"DeepSearch-v0 could not start: the retrieval server failed its health "
                                             r"check: retrieval server http://127\.0\.0\.1:\d+/retrieve is not answering"):
        DeepSearchEnv(tasks=[TASK], backend="http", retriever_url=url, http_retries=0)


@pytest.mark.parametrize("mode, match", [("shape", "unexpected response"), ("500", "HTTP 500")])
def test_bad_server_fails_at_construction(server, mode, match):
    server.health_mode = mode
    with pytest.raises(InfrastructureError, match=f"health check: .*{match}"):
        DeepSearchEnv(tasks=[TASK], backend="http", retriever_url=server.url, http_retries=0)


# ----------------------------------------------------------------------------- failures mid-episode
@pytest.mark.parametrize("mode, cause", [("500", "HTTP 500"), ("shape", "unexpected response")])
def test_server_failing_mid_episode_ends_it_unpenalised(server, mode, cause):
    env = DeepSearchEnv(tasks=[TASK], backend="http", retriever_url=server.url, http_retries=1)
    env.reset(seed=0)
    _, _, term, trunc, info = env.step(search("Orin Labs founder"))  # the server works
    assert info["error"] is None and info["reward_components"]["evidence"] == 1.0 and not (term or trunc)
    server.mode = mode
    obs, reward, term, trunc, info = env.step(search("Ada Vell") + search("Tarrow"))
    assert info["error"]["kind"] == ErrorKind.INFRASTRUCTURE == "infrastructure"
    assert not term and trunc and info["success"] is False
    assert info["infra_failure"]["where"] == "tool 'search'" and cause in info["infra_failure"]["message"]
    assert "not your fault" in obs[0]["content"] and cause in obs[0]["content"]
    assert "not run: an earlier call of this turn ('search') hit an infrastructure failure" in obs[1]["content"]
    # the model is not penalised: no tool_error, no tool_validity, reward 0
    assert reward == 0.0 and all(v == 0.0 for v in info["reward_components"].values())
    assert info["reward_components"]["tool_error"] == 0.0


# ----------------------------------------------------------------------------- summary, CLI, trainer
def traj(reward: float, success: bool | None = None, infra: bool = False, turns: int = 2) -> Trajectory:
    t = Trajectory("rlvr/DeepSearch-v0", "q", 0, [])
    for i in range(turns):
        last = i == turns - 1
        info: dict = {}
        if last and success is not None:
            info["success"] = success
        if last and infra:
            info = {"success": False, "infra_failure": {"where": "tool 'search'", "message": "RetrievalError: HTTP 500"}}
        t.turns.append(Turn(i, "a", [], reward if last else 0.0, {"outcome": reward if last else 0.0},
                            terminated=last and not infra, truncated=last and infra, info=info))
    return t


def test_summary_counts_infra_failures_apart():
    trajs = [traj(1.0, True), traj(1.0, True), traj(0.0, False), traj(0.0, infra=True, turns=1)]
    s = summarize(trajs)
    assert s["episodes"] == 4 and s["infra_failures"] == 1 and s["scored_episodes"] == 3
    assert s["success_rate"] == pytest.approx(2 / 3) and s["success_rate_all"] == pytest.approx(2 / 4)
    assert s["mean_reward"] == pytest.approx(2 / 3) and s["mean_reward_all"] == pytest.approx(2 / 4)
    assert s["mean_turns"] == 2.0 and s["truncated"] == 0.0 and s["components"]["outcome"] == pytest.approx(2 / 3)
    assert s["infra_causes"] == ["tool 'search': RetrievalError: HTTP 500"]
    assert infra_failure(trajs[3])["message"] == "RetrievalError: HTTP 500" and infra_failure(trajs[0]) is None
    assert not is_success(trajs[3])
    only_infra = summarize([traj(0.0, infra=True)])
    assert only_infra["scored_episodes"] == 0 and only_infra["success_rate"] != only_infra["success_rate"]  # NaN


def test_rlvr_run_warns_about_infra_failures(server, tmp_path, capsys):
    from rlvr.cli import main

    server.mode = "500"  # healthy at construction, failing for every real query
    rc = main(["run", "rlvr/DeepSearch-v0", "--agent", "oracle", "--episodes", "2", "--concurrency", "1", "--quiet",
               "--out", str(tmp_path), "-e", "backend=http", "-e", f"retriever_url={server.url}", "-e", "http_retries=0",
               "-e", "n_entities=30", "-e", "n_tasks=4"])
    assert rc == 0
    err = capsys.readouterr().err
    assert "WARNING: 2 of 2 episodes ended by an infrastructure failure (not the agent's fault)" in err
    assert "HTTP 500" in err
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["infra_failures"] == 2 and summary["scored_episodes"] == 0 and summary["success_rate_all"] == 0.0


def test_trainer_drops_groups_with_infra_failures():
    ok = [traj(1.0, True) for _ in range(4)]
    bad = traj(0.0, infra=True)
    batch = [ok[0], ok[1], ok[2], bad, ok[3], traj(0.0, False)]  # groups of 2: [ok ok] [ok bad] [ok fail]
    kept, stats = drop_infra_groups(batch, 2)
    assert kept == [ok[0], ok[1], ok[3], batch[5]]  # group 1 lost a member: the whole group is dropped
    assert stats == {"infra/episodes": 1.0, "infra/groups_dropped": 1.0, "infra/groups_kept": 2.0}
    assert drop_infra_groups(ok, 2) == (ok, {"infra/episodes": 0.0, "infra/groups_dropped": 0.0, "infra/groups_kept": 2.0})
    assert drop_infra_groups([bad, bad], 2)[0] == []
    with pytest.raises(ConfigError, match="do not make whole groups of 4"):
        drop_infra_groups(batch, 4)


# ----------------------------------------------------------------------------- SWE sandboxes
def test_swe_sandbox_errors_are_infrastructure_errors():
    from rlvr.envs.swe.errors import EngineUnavailable, ImageError, PoolExhausted, SandboxError, SandboxLost, TaskError

    for cls in (EngineUnavailable, SandboxLost, ImageError, PoolExhausted):
        assert issubclass(cls, InfrastructureError) and issubclass(cls, SandboxError)
    assert not issubclass(SandboxError, InfrastructureError)  # e.g. a patch too large: the agent's doing
    assert not issubclass(TaskError, InfrastructureError)


class _DeadSandbox:
    """Stands in for a sandbox whose container was killed: every command raises SandboxLost."""

    broken = closed = False
    backend_name = "fake"
    id = "dead0000"

    def exec(self, *args, **kwargs):
        from rlvr.envs.swe.errors import SandboxLost

        raise SandboxLost("container dead0000 is gone (killed, removed or the engine restarted)")

    def fingerprint(self):
        raise AssertionError("no task hook may touch the dead sandbox after the infrastructure failure")


class _Pool:
    def __init__(self):
        self.returned = []

    def checkin(self, sb, broken=False):
        self.returned.append((sb, broken or sb.broken))


def test_swe_lost_sandbox_ends_the_episode_as_infra_failure():
    from rlvr.envs.swe.env import SWEEnv

    env = SWEEnv(tasks="generated", projects=["inventory"])
    sb, pool = _DeadSandbox(), _Pool()  # the episode state below stands in for what reset() sets up
    env.task, env._sb, env._pool = SimpleNamespace(test_cmd="pytest"), sb, pool
    env._done, env.turn, env._started, env.messages = False, 0, time.monotonic(), []
    res = env.tools.execute(ToolCall("bash", {"command": "echo hi"}))
    assert res.error.kind is ErrorKind.INFRASTRUCTURE and "SandboxLost" in res.error.message and sb.broken
    sb.broken = False
    obs, reward, term, trunc, info = env.step(
        '<tool_call>{"name": "bash", "arguments": {"command": "echo hi"}}</tool_call>')
    assert info["error"]["kind"] == "infrastructure" and trunc and not term
    assert info["infra_failure"]["where"] == "tool 'bash'" and info["success"] is False and info["resolved"] is False
    # no "no submission" outcome level (-1.0) and no gate: the agent is not penalised for a dead sandbox
    assert reward == 0.0 and "outcome" not in info["reward_components"] and info["outcome"] == "infra_failure"
    assert pool.returned == [(sb, True)] and env._sb is None  # given back broken: destroyed, never reused


# ----------------------------------------------------------------------------- ToolCall: no late effect
_CALL = '<tool_call>{{"name": "{}", "arguments": {}}}</tool_call>'.format


def _bank_env(slow_withdraw):
    """A ToolCall env on one bank task (balance 100; tools ``deposit``, ``slow_withdraw``, ``balance``) with a
    0.2 s tool timeout, reset; ``slow_withdraw(state, amount)`` is the slow tool, given the runtime's state."""
    from rlvr.envs.toolcall import ToolCallEnv
    from rlvr.envs.toolcall.task import FunctionRuntime, Request, ToolTask
    from rlvr.rewards.matchtir import GoldCall

    def backend():
        state = {"balance": 100}

        def deposit(amount: int) -> int:
            state["balance"] += amount
            return state["balance"]

        def balance() -> int:
            return state["balance"]

        return FunctionRuntime({"deposit": deposit, "slow_withdraw": lambda amount: slow_withdraw(state, amount),
                                "balance": balance}, lambda: dict(state))

    def spec(name, params):
        return {"name": name, "description": name, "parameters": {
            "type": "object", "properties": {p: {"type": "integer"} for p in params}, "required": list(params)}}

    task = ToolTask("bank", "test", "test", (spec("deposit", ["amount"]), spec("slow_withdraw", ["amount"]),
                                             spec("balance", [])),
                    (Request(({"role": "user", "content": "Deposit 5."},), ((GoldCall("deposit", {"amount": 5}),),),
                             (), "105"),), backend, outcome="answer", answer="105")
    env = ToolCallEnv("tasks", tasks=[task], tool_timeout_s=0.2)
    env.reset(seed=0)
    return env


def test_toolcall_timed_out_call_has_no_late_effect():
    finished = threading.Event()

    def slow_withdraw(state, amount: int) -> int:
        time.sleep(0.6)  # outlasts the tool timeout, then changes the state
        state["balance"] -= amount
        finished.set()
        return state["balance"]

    env = _bank_env(slow_withdraw)
    call = _CALL
    obs, *_ = env.step(call("deposit", '{"amount": 5}') + call("slow_withdraw", '{"amount": 50}'))
    assert obs[0]["content"] == "105" and "did not finish within 0.2 s" in obs[1]["content"]
    assert finished.wait(5.0)
    time.sleep(0.05)
    obs, _, _, _, info = env.step(call("balance", "{}"))
    assert obs[0]["content"] == "105" and env.runtime.state() == {"balance": 105}  # not 55: no late withdrawal
    obs, _, _, _, info = env.step(call("deposit", '{"amount": 1}'))
    assert obs[0]["content"] == "106"


# ----------------------------------------------------------------------------- the training loop
def test_train_step_leaves_infra_failed_groups_out(tmp_path, monkeypatch):
    """GuessNumber(1..2) whose grader is down for secret 2: that task's group is dropped, the other trains."""
    import importlib.util
    from pathlib import Path

    import gymnasium as gym

    pytest.importorskip("torch")
    spec = importlib.util.spec_from_file_location("_trainer_helpers", Path(__file__).parent / "agents" / "_trainer_helpers.py")
    helpers = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(helpers)
    from rlvr.agents.trainer.config import TrainConfig
    from rlvr.agents.trainer.trainer import train
    from rlvr.envs.guess_number import GuessNumberEnv

    class FlakyGrader(GuessNumberEnv):
        env_id = "test/FlakyGuess-v0"

        def _on_answer(self, answer):
            if self.secret == 2:
                raise InfrastructureError("grading service unavailable")
            return super()._on_answer(answer)

    if "test/FlakyGuess-v0" not in gym.registry:
        gym.register("test/FlakyGuess-v0", entry_point=FlakyGrader)
    tok = helpers.smollm2_tokenizer()
    seeds_secret = {}
    for seed in range(64):  # two task seeds, one per secret (the group of a seed shares its task)
        seeds_secret.setdefault(GuessNumberEnv(low=1, high=2).reset(seed=seed)[1]["answer"], seed)
    config = TrainConfig(env="test/FlakyGuess-v0", env_kwargs={"low": 1, "high": 2, "max_turns": 2}, steps=1,
                         tasks_per_step=2, group_size=4, max_new_tokens=7, output_dir=str(tmp_path / "run"), lr=1e-2,
                         micro_batch_size=4, plot=False, eval_episodes=0)
    import rlvr.agents.trainer.trainer as trainer_mod

    monkeypatch.setattr(trainer_mod, "task_seeds", lambda cfg, step: [seeds_secret["1"]] * 4 + [seeds_secret["2"]] * 4)
    res = train(config, model=helpers.answer_policy(tok), tokenizer=tok)
    row = res.metrics[0]
    assert row["episodes"] == 8 and row["episodes/trained"] == 4
    assert row["infra/episodes"] == 4.0 and row["infra/groups_dropped"] == 1.0 and row["infra/groups_kept"] == 1.0
    assert "loss/policy" in row and np.isfinite(row["success_rate"])  # the kept group trained; its success counted
    # every group failed: no update, the step is still logged and the run finishes
    monkeypatch.setattr(trainer_mod, "task_seeds", lambda cfg, step: [seeds_secret["2"]] * 8)
    res = train(dataclasses.replace(config, output_dir=str(tmp_path / "run2")), model=helpers.answer_policy(tok),
                tokenizer=tok)
    (row,) = res.metrics
    assert row["infra/groups_kept"] == 0.0 and row["infra/groups_dropped"] == 2.0 and "loss/policy" not in row


def test_an_infrastructure_failure_at_reset_is_a_recorded_episode_not_a_crash(tmp_path):
    """A reset that cannot get its service (a sandbox, an engine) becomes a turnless infra-failed episode;
    the other episodes run, the file holds every episode, the summary counts it apart."""
    from rlvr.agents.base import OracleAgent
    from rlvr.agents.rollout import rollout
    from rlvr.agents.trajectory import read_trajectories
    from rlvr.envs.guess_number import GuessNumberEnv

    class FlakyReset(GuessNumberEnv):
        def _reset_task(self, options):
            if self.np_random.integers(0, 1000) % 3 == 0 and not getattr(self, "_failed", False):
                self._failed = True
                raise InfrastructureError("no sandbox could be had (pool exhausted)")
            return super()._reset_task(options)

    trajs = rollout(lambda: FlakyReset(low=1, high=8), OracleAgent(), episodes=6, seed=0, concurrency=2, out=tmp_path)
    failed = [t for t in trajs if infra_failure(t)]
    assert len(trajs) == 6 and 1 <= len(failed) <= 2
    for t in failed:
        assert t.turns == [] and infra_failure(t)["where"] == "reset"
        assert "pool exhausted" in infra_failure(t)["message"] and not is_success(t)
    assert all(is_success(t) for t in trajs if not infra_failure(t))
    summary = summarize(trajs)
    assert summary["infra_failures"] == len(failed) and summary["success_rate"] == 1.0
    assert len(list(read_trajectories(tmp_path / "trajectories.jsonl"))) == 6
    kept, stats = drop_infra_groups(trajs, 2)
    assert not any(infra_failure(t) for t in kept) and stats["infra/episodes"] == len(failed)


def test_toolcall_calls_after_a_timeout_in_the_same_turn_run_on_the_fresh_runtime():
    """The fence happens right after the timed-out call: the turn's later calls never see the abandoned one."""

    def slow_withdraw(state, amount: int) -> int:
        state["balance"] -= amount  # changes its runtime at once, then outlasts the tool timeout
        time.sleep(0.4)
        return state["balance"]

    env = _bank_env(slow_withdraw)
    call = _CALL
    obs, *_ = env.step(call("deposit", '{"amount": 5}') + call("slow_withdraw", '{"amount": 50}')
                       + call("balance", "{}"))
    assert obs[0]["content"] == "105" and "did not finish within 0.2 s" in obs[1]["content"]
    assert obs[2]["content"] == "105"  # the fresh runtime (55 on the one the abandoned withdrawal changed)
    assert env.runtime.state() == {"balance": 105}
