"""Agents: protocol helpers, scripted/random/oracle agents, the OpenAI-compatible client, vLLM import errors."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import gymnasium as gym
import httpx
import pytest

import rlvr  # noqa: F401
from rlvr.agents import Generation, OracleAgent, RandomAgent, ScriptedAgent, generate
from rlvr.agents.factory import make_agent
from rlvr.agents.openai import OpenAIAgent
from rlvr.errors import AgentError, ConfigError, ModelLoadError


def test_scripted_agent_replays_by_turn():
    a = ScriptedAgent(["x", "y"])
    assert a.act([{"role": "user", "content": "q"}]) == "x"
    assert a.act([{"role": "user", "content": "q"}, {"role": "assistant", "content": "x"}]) == "y"
    with pytest.raises(AgentError, match="2 actions but was asked for turn 3"):
        a.act([{"role": "assistant", "content": ""}] * 2)
    assert ScriptedAgent([], default="z").act([]) == "z"


def test_generate_normalises_and_checks():
    class Bad:
        def act_batch(self, batch):
            return ["only one"]

    assert generate(ScriptedAgent(["a"]), [[], []]) == [Generation("a"), Generation("a")]
    with pytest.raises(AgentError, match="returned 1 actions for 2"):
        generate(Bad(), [[], []])


def test_oracle_agent_must_be_bound():
    env = gym.make("rlvr/GuessNumber-v0")
    env.reset(seed=0)
    with pytest.raises(AgentError, match="bound"):
        OracleAgent().act([])
    assert OracleAgent().bind(env).act(env.unwrapped.messages).startswith("<tool_call>")


def test_random_agent_is_seeded():
    env = gym.make("rlvr/GuessNumber-v0")
    obs, _ = env.reset(seed=0)
    assert [RandomAgent(seed=3).act(obs) for _ in range(3)] == [RandomAgent(seed=3).act(obs) for _ in range(3)]


def test_make_agent_specs():
    assert isinstance(make_agent("oracle"), OracleAgent)
    assert isinstance(make_agent("rlvr.agents.base:RandomAgent"), RandomAgent)
    with pytest.raises(ConfigError, match="unknown agent 'gpt'"):
        make_agent("gpt")
    with pytest.raises(ConfigError, match="could not import"):
        make_agent("nope.module:Thing")


def test_vllm_agent_says_how_to_install():
    pytest.importorskip("torch")
    try:
        import vllm  # noqa: F401
        pytest.skip("vllm is installed")
    except ImportError:
        pass
    from rlvr.agents.vllm import VLLMAgent

    with pytest.raises(ModelLoadError, match=r"rlvr-gym\[vllm\]"):
        VLLMAgent("smollm2")


class _Handler(BaseHTTPRequestHandler):
    fail_first = 0
    seen: list = []

    def log_message(self, *a):
        pass

    def _send(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self._send(200, {"data": [{"id": "served-model"}]})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).seen.append(body)
        if type(self).fail_first > 0:
            type(self).fail_first -= 1
            return self._send(503, {"error": "warming up"})
        if body["model"] == "missing":
            return self._send(404, {"error": "model not found"})
        last = body["messages"][-1]["content"]
        self._send(200, {"choices": [{"message": {"content": f"echo: {last}"}, "finish_reason": "stop",
                                      "logprobs": {"content": [{"logprob": -0.5}, {"logprob": -0.25}]}}]})


@pytest.fixture()
def server():
    _Handler.fail_first = 0
    _Handler.seen = []
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/v1"
    srv.shutdown()
    srv.server_close()


def test_openai_agent_against_loopback_server(server):
    agent = OpenAIAgent(server, logprobs=True, backoff_s=0.01)
    assert agent.model_id == "served-model"
    msgs = [{"role": "system", "content": "s"}, {"role": "user", "content": "hi"}, {"role": "tool", "name": "t", "content": "r"}]
    gens = agent.act_batch([msgs, msgs[:2]])
    assert gens[1].text == "echo: hi" and gens[1].logprobs == [-0.5, -0.25]
    assert "tool_response" in gens[0].text  # tool results are sent as user text
    assert _Handler.seen[0]["logprobs"] is True


def test_openai_agent_retries_then_succeeds(server):
    _Handler.fail_first = 2
    assert OpenAIAgent(server, "m", backoff_s=0.01, max_retries=3).act([{"role": "user", "content": "x"}]) == "echo: x"


def test_openai_agent_clear_errors(server):
    with pytest.raises(AgentError, match="HTTP 404"):
        OpenAIAgent(server, "missing", backoff_s=0.01).act([{"role": "user", "content": "x"}])
    with pytest.raises(AgentError, match="after 2 attempts: could not connect.*Is the server running"):
        OpenAIAgent("http://127.0.0.1:9/v1", "m", backoff_s=0.01, max_retries=1, timeout_s=2).act([])
    with pytest.raises(ConfigError, match="http://"):
        OpenAIAgent("localhost:8000")


def test_openai_agent_timeout_via_mock_transport():
    def handler(request):
        raise httpx.ReadTimeout("slow", request=request)

    agent = OpenAIAgent("http://127.0.0.1/v1", "m", backoff_s=0.0, max_retries=1, transport=httpx.MockTransport(handler))
    with pytest.raises(AgentError, match="timed out"):
        agent.act([{"role": "user", "content": "x"}])


# ----------------------------------------------------------------- per-episode seeding; module:Class agents


def test_random_agent_episode_depends_on_its_seed_only():
    env = gym.make("rlvr/GuessNumber-v0")
    obs, _ = env.reset(seed=0)
    fresh = RandomAgent(seed=3).bind(env)
    fresh.start_episode(7)
    used = RandomAgent(seed=3).bind(env)
    for _ in range(5):  # an earlier episode consumed draws...
        used.act(obs)
    used.start_episode(7)  # ...which the reset to episode 7 forgets
    assert [fresh.act(obs) for _ in range(6)] == [used.act(obs) for _ in range(6)]
    other = RandomAgent(seed=3).bind(env)
    other.start_episode(8)
    assert [other.act(obs) for _ in range(6)] != [used.act(obs) for _ in range(6)]
    assert RandomAgent(seed=3).bind(env) is not RandomAgent(seed=3).bind(env)


def test_generate_passes_seeds_only_to_agents_that_take_them():
    got = []

    class Takes:
        def act_batch(self, batch, seeds=None):
            got.append(seeds)
            return ["a"] * len(batch)

    class Ignores:
        def act_batch(self, batch):
            return ["b"] * len(batch)

    assert generate(Takes(), [[], []], seeds=[1, 2]) == [Generation("a")] * 2 and got == [[1, 2]]
    assert generate(Ignores(), [[], []], seeds=[1, 2]) == [Generation("b")] * 2
    with pytest.raises(ConfigError, match="2 seeds for 1 conversations"):
        generate(Takes(), [[]], seeds=[1, 2])


def test_generate_passes_histories_only_to_agents_that_take_them():
    got = []

    class Takes:
        def act_batch(self, batch, seeds=None, histories=None):
            got.append((seeds, histories))
            return ["a"] * len(batch)

    class TakesSeeds:
        def act_batch(self, batch, seeds=None):
            got.append(seeds)
            return ["b"] * len(batch)

    assert generate(Takes(), [[], []], seeds=[1, 2], histories=[["t0"], []]) == [Generation("a")] * 2
    assert got == [([1, 2], [["t0"], []])]
    assert generate(TakesSeeds(), [[]], seeds=[3], histories=[["t0"]]) == [Generation("b")] and got[-1] == [3]
    assert generate(Takes(), [[]], histories=[[]]) == [Generation("a")] and got[-1] == (None, [[]])
    with pytest.raises(ConfigError, match="got 1 histories for 2 conversations; give one per conversation"):
        generate(Takes(), [[], []], histories=[[]])


def test_hf_agent_row_seed_fixes_the_sample_whatever_the_batch():
    pytest.importorskip("torch")
    from _trainer_helpers import smollm2_tokenizer, tiny_llama

    from rlvr.agents.hf import HFAgent

    tok = smollm2_tokenizer()
    agent = HFAgent(tiny_llama(tok), tok, temperature=1.0, max_new_tokens=5, seed=11)
    m1 = [{"role": "user", "content": "Tell me a word."}]
    m2 = [{"role": "user", "content": "A much longer prompt, so that the batch is left-padded for the first row."}]
    alone = agent.act_batch([m1], seeds=[42])[0]
    beside = agent.act_batch([m2, m1, m1], seeds=[1, 42, 43])
    assert beside[1].completion_ids == alone.completion_ids
    assert beside[2].completion_ids != alone.completion_ids  # same prompt, another row seed: another sample
    assert agent.act_batch([m1], seeds=[42])[0].completion_ids == alone.completion_ids  # call count does not matter
    again = HFAgent(agent.model, tok, temperature=1.0, max_new_tokens=5, seed=12)
    assert again.act_batch([m1], seeds=[42])[0].completion_ids != alone.completion_ids  # the agent seed matters


def test_hf_agent_act_ids_generates_from_given_ids_and_reseed_restarts_sampling():
    pytest.importorskip("torch")
    from _trainer_helpers import smollm2_tokenizer, tiny_llama

    from rlvr.agents.hf import HFAgent

    tok = smollm2_tokenizer()
    agent = HFAgent(tiny_llama(tok), tok, temperature=1.0, max_new_tokens=5, seed=11)
    m1 = [{"role": "user", "content": "Tell me a word."}]
    ids = agent.encode(m1)
    g = agent.act_ids([ids], seeds=[42])[0]
    assert g.prompt_ids == ids and g.completion_ids == agent.act_batch([m1], seeds=[42])[0].completion_ids
    with pytest.raises(ConfigError, match="act_ids got 1 seeds for 2 prompts"):
        agent.act_ids([ids, ids], seeds=[1])
    agent.reseed(5)
    first = [x.completion_ids for x in agent.act_ids([ids, ids])]  # no row seeds: seed and call count
    agent.act_ids([ids])
    agent.reseed(5)
    assert [x.completion_ids for x in agent.act_ids([ids, ids])] == first


def _agent_module(tmp_path, monkeypatch):
    (tmp_path / "my_agents.py").write_text(
        "class NoAct:\n    pass\n\n"
        "class NeedsModel:\n    def __init__(self, model, temperature=1.0):\n        self.model = model\n"
        "    def act(self, messages):\n        return 'x'\n\n"
        "class Broken:\n    def __init__(self):\n        raise RuntimeError('no GPU here')\n"
        "    def act(self, messages):\n        return 'x'\n\n"
        "def factory():\n    return NeedsModel('m')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))


def test_make_agent_module_class_errors(tmp_path, monkeypatch):
    _agent_module(tmp_path, monkeypatch)
    with pytest.raises(ConfigError, match=r"'my_agents:NoAct' built a NoAct with no act\(messages\) -> str method"):
        make_agent("my_agents:NoAct")
    with pytest.raises(ConfigError, match=r"'my_agents:NeedsModel' needs the argument\(s\) model, but --agent "
                                          r"module:Class builds it with none"):
        make_agent("my_agents:NeedsModel")
    with pytest.raises(ConfigError, match=r"building agent 'my_agents:Broken' failed: RuntimeError: no GPU here"):
        make_agent("my_agents:Broken")
    assert make_agent("my_agents:factory").model == "m"  # a zero-argument factory function works
