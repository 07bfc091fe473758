"""rlvr environments served with OpenEnv's server, driven by OpenEnv's own client on loopback: reset, full
oracle episodes, bad actions, many concurrent sessions without leaks, idle sessions closed, a killed server."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time

import gymnasium as gym
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("openenv")
from openenv.core.generic_client import GenericEnvClient  # noqa: E402

import rlvr  # noqa: E402,F401
from rlvr.agents.base import OracleAgent  # noqa: E402
from rlvr.agents.rollout import rollout, summarize  # noqa: E402
from rlvr.cli import main as cli_main  # noqa: E402
from rlvr.integrations.openenv import RemoteEnv, RemoteEnvError, RemoteEnvUnavailable, Server  # noqa: E402

GUESS = "rlvr/GuessNumber-v0"


@pytest.fixture(scope="module")
def server():
    srv = Server(GUESS, max_sessions=32).start()
    yield srv
    srv.stop()


def _client(srv) -> object:
    """OpenEnv's own client (the sync wrapper of its WebSocket client) for a server or a URL."""
    return GenericEnvClient(base_url=srv if isinstance(srv, str) else srv.url).sync()


def _direct(env_id: str, kwargs: dict, task_id: str) -> list[tuple]:
    """(messages, reward, done) of each oracle step, in process."""
    env = gym.make(env_id, **kwargs)
    env.reset(seed=0, options={"task_id": task_id})
    out, done = [], False
    while not done:
        obs, r, term, trunc, _ = env.step(env.unwrapped.oracle_action())
        done = term or trunc
        out.append((obs, r, done))
    env.close()
    return out


@pytest.mark.parametrize("env_id,kwargs", [(GUESS, {}), ("rlvr/DeepSearch-v0", {"n_tasks": 8})])
def test_full_oracle_episode_with_openenvs_client(server, env_id, kwargs):
    srv = server if env_id == GUESS else Server(env_id, kwargs).start()
    try:
        with _client(srv) as c:
            first = c.reset(seed=3)
            info = first.observation["info"]
            assert [m["role"] for m in first.observation["messages"]] == ["system", "user"] and not first.done
            state = c.state()
            assert state["env_id"] == env_id and state["task_id"] == info["task_id"] and state["turn"] == 0
            steps, result = [], first
            while not result.done:
                result = c.step({"text": c.state()["oracle_action"]})
                steps.append((result.observation["messages"], result.reward, result.done))
            assert steps == _direct(env_id, kwargs, info["task_id"])
            assert result.observation["info"]["success"] is True and result.observation["terminated"]
            assert c.state()["oracle_action"] is None and len(c.state()["messages"]) == 2 + 2 * len(steps)
    finally:
        if srv is not server:
            srv.stop()


def test_bad_actions_get_clear_answers_and_the_session_goes_on(server):
    with _client(server) as c:
        c.reset(options={"task_id": "guess-1-100-40"})
        with pytest.raises(RuntimeError, match="Invalid message.*VALIDATION_ERROR"):
            c.step({"txt": "hello"})  # not the action's shape
        r = c.step({"text": '<tool_call>{"name": "guess", "arguments": {"number": "ten"}}</tool_call>'})
        assert r.observation["info"]["error"]["kind"] == "invalid_arguments" and not r.done  # model error: data
        r = c.step({"text": "<tool_call>{not json</tool_call>"})
        assert r.observation["info"]["error"]["kind"] == "parse_error"
        assert c.step({"text": "<answer>40</answer>"}).done
        with pytest.raises(RuntimeError, match="episode has ended .*send reset before step.*EXECUTION_ERROR"):
            c.step({"text": "<answer>40</answer>"})
        with pytest.raises(RuntimeError, match="unknown reset argument.*'sed'.*accepted: seed"):
            c.reset(sed=1)
        with pytest.raises(RuntimeError, match="no task with id 'guess-1-100-400'"):
            c.reset(options={"task_id": "guess-1-100-400"})
        with pytest.raises(RuntimeError, match="unknown reset option 'secrt'.*did you mean 'secret'"):
            c.reset(options={"secrt": 4})
        assert not c.reset(options={"secret": 7}).done  # still usable after every refusal


def test_many_concurrent_sessions_never_share_state(server):
    n, errors, seen = 16, [], {}
    barrier = threading.Barrier(n)

    def play(k: int) -> None:
        try:
            with _client(server) as c:
                secret = 5 * k + 3
                c.reset(options={"task_id": f"guess-1-100-{secret}"})
                barrier.wait(timeout=60)  # every session is open and reset before anyone steps
                seen[k] = server.active_sessions
                results = []
                while True:
                    oracle = c.state()["oracle_action"]
                    r = c.step({"text": oracle})
                    results.append((r.observation["messages"], r.reward, r.done))
                    if r.done:
                        break
                assert results == _direct(GUESS, {}, f"guess-1-100-{secret}")
                assert c.state()["task_id"] == f"guess-1-100-{secret}"
        except Exception as e:  # noqa: BLE001 - reported below with its session
            errors.append((k, repr(e)))

    threads = [threading.Thread(target=play, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    assert max(seen.values()) == n
    deadline = time.monotonic() + 10
    while server.active_sessions and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.active_sessions == 0  # closing a client closes its session and environment


def test_capacity_and_idle_sessions_are_closed():
    with Server(GUESS, max_sessions=1, session_timeout=0.5) as srv:
        a = _client(srv).connect()
        try:
            a.reset(seed=0)
            from websockets.exceptions import ConnectionClosed

            with _client(srv) as b, pytest.raises((RuntimeError, ConnectionClosed)):  # OpenEnv's client
                b.reset()
            with pytest.raises(RemoteEnvError, match="refused the (call|session): .*Server at capacity: 1/1"):
                RemoteEnv(srv.url).reset()
            deadline = time.monotonic() + 15  # OpenEnv's reaper looks every max(timeout / 4, 5 s)
            while srv.active_sessions and time.monotonic() < deadline:
                time.sleep(0.1)
            assert srv.active_sessions == 0
            with pytest.raises(RuntimeError, match="session's environment was closed .*open a new connection"):
                a.step({"text": "<answer>1</answer>"})
        finally:
            a.close()


def test_remote_env_is_a_gym_env_for_rollouts(server):
    trajs = rollout(lambda: RemoteEnv(server.url), OracleAgent(), episodes=3, seed=0, concurrency=3, progress=False)
    local = rollout(GUESS, OracleAgent(), episodes=3, seed=0, concurrency=1, progress=False)
    assert summarize(trajs)["success_rate"] == 1.0
    assert [t.total_reward for t in trajs] == pytest.approx([t.total_reward for t in local])
    env = RemoteEnv(server.url)
    try:
        with pytest.raises(RemoteEnvError, match="refused the call.*episode has ended"):
            env.step("<answer>1</answer>")
        env.reset(options={"secret": 9})
        assert env.oracle_action().startswith("<tool_call>") and env.messages[1]["role"] == "user"
    finally:
        env.close()
    with pytest.raises(RemoteEnvUnavailable, match="unreachable or closed the connection"):
        RemoteEnv(f"http://127.0.0.1:{_free_port()}", connect_timeout_s=2)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_server_killed_mid_episode_gives_a_clear_client_error():
    proc = subprocess.Popen([sys.executable, "-m", "rlvr.cli", "serve", GUESS, "--port", "0", "-e", "high=1000"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        line = proc.stdout.readline()  # the announce line, printed once the port is bound
        url = re.search(r"at (http://127\.0\.0\.1:\d+)", line)
        assert url, f"unexpected server output: {line!r}"
        env = RemoteEnv(url.group(1), connect_timeout_s=60)
        raw = _client(url.group(1)).connect()
        try:
            messages, info = env.reset(seed=0)
            assert "between 1 and 1000" in messages[1]["content"]  # -e reached the server's environment
            env.step(env.oracle_action())
            raw.reset(seed=1)
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
            with pytest.raises(RemoteEnvUnavailable, match="closed the connection mid-episode.*restart the server"):
                env.step("<answer>1</answer>")
            with pytest.raises(Exception) as e:  # OpenEnv's own client: the websockets error
                raw.step({"text": "<answer>1</answer>"})
            assert "ConnectionClosed" in type(e.value).__name__ or isinstance(e.value, (ConnectionError, OSError))
        finally:
            env.close()
            raw.close()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        proc.stdout.close()


def test_serve_cli_checks_the_id_and_keywords_first(capsys):
    assert cli_main(["serve", "rlvr/GuessNumbr-v0"]) == 2
    assert "did you mean 'rlvr/GuessNumber-v0'" in capsys.readouterr().err
    assert cli_main(["serve", GUESS, "-e", "hihg=3"]) == 2
    assert "unknown keyword argument 'hihg'" in capsys.readouterr().err


def test_openenv_http_endpoints_describe_the_environment(server):
    import httpx

    assert httpx.get(f"{server.url}/health").json()["status"] == "healthy"
    schema = httpx.get(f"{server.url}/schema").json()
    assert schema["action"]["required"] == ["text"] and "messages" in schema["observation"]["properties"]
    assert "step_count" in schema["state"]["properties"]  # OpenEnv describes its base State here
    meta = httpx.get(f"{server.url}/metadata").json()
    assert meta["name"] == GUESS and meta["version"] == rlvr.__version__


_SNIPPETS = st.sampled_from(["<tool_call>", "</tool_call>", "<answer>", "</answer>", '{"name": "guess", ',
                             '"arguments": {"number": ', "}", "50", "\x00", "\ud7ff", "é🚀"])
_TEXT = st.lists(st.text(max_size=40) | _SNIPPETS, max_size=8).map("".join)


@settings(max_examples=25, deadline=None)
@given(actions=st.lists(_TEXT, min_size=1, max_size=4))
def test_any_text_is_an_observation_over_the_wire(server, actions):
    with _client(server) as c:
        c.reset(options={"task_id": "guess-1-100-50"})
        for text in actions:
            r = c.step({"text": text})
            assert isinstance(r.observation["messages"], list) and isinstance(r.reward, float)
            if r.done:
                break
