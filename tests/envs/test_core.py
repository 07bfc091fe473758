"""The agent-env contract: spaces, budgets, error observations, registry and determinism."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env

import rlvr
from rlvr.envs import AgentEnv, ChatMessages, TextAction, Tool, TurnOutcome, render_tool_prompt, tool
from rlvr.envs.guess_number import GuessNumberEnv
from rlvr.envs.tools import truncate_text
from rlvr.errors import ConfigError, EpisodeStateError, ErrorKind

CALL = '<tool_call>{{"name": "{name}", "arguments": {args}}}</tool_call>'


def call(name: str, **args: object) -> str:
    return CALL.format(name=name, args=json.dumps(args))


class EchoEnv(AgentEnv):
    """A tiny env with echo, a looping tool, a failing tool and a big-output tool."""

    env_id = "test/Echo-v0"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)

        @tool
        def echo(text: str, times: int = 1) -> str:
            """Repeat text.

            Args:
                text: what to repeat
                times: how often
            """
            return text * times

        def spin() -> str:
            while True:
                time.sleep(0.01)

        def boom() -> str:
            raise ValueError("kaboom")

        self.tools.add(echo)
        self.tools.add(Tool("spin", "never returns", {"type": "object", "properties": {}}, spin, timeout_s=0.2))
        self.tools.add(Tool("boom", "raises", {"type": "object", "properties": {}}, boom))
        self.tools.add(Tool("stop", "ends the episode", {"type": "object", "properties": {}}, self._stop))

    def _stop(self) -> str:
        self.end_episode()
        return "stopped"

    def _reset_task(self, options):
        return [{"role": "system", "content": render_tool_prompt("Echo things.", self.tools)},
                {"role": "user", "content": "go"}], {"task_id": "echo"}

    def _on_answer(self, answer):
        return TurnOutcome([{"role": "user", "content": "bye"}], {"outcome": float(answer == "ok")}, terminated=True)


ENV_PARAMS = [pytest.param(i, id=i.id, marks=[getattr(pytest.mark, r) for r in i.requires]) for i in rlvr.list_envs()]


@pytest.mark.parametrize("info", ENV_PARAMS)
def test_check_env_every_registered_env(info):
    env = gym.make(info.id)
    try:
        check_env(env.unwrapped, skip_render_check=True)
    finally:
        env.close()
        if "docker" in info.requires:  # warm sandboxes are kept per process; give them back now
            from rlvr.envs.swe.pool import close_shared_pools

            close_shared_pools()


def test_check_env_on_custom_env():
    check_env(EchoEnv(), skip_render_check=True)


def test_reset_returns_opening_messages_and_task_id():
    env = gym.make("rlvr/GuessNumber-v0")
    obs, info = env.reset(seed=1)
    assert [m["role"] for m in obs] == ["system", "user"]
    assert '"name": "guess"' in obs[0]["content"]
    assert info["task_id"].startswith("guess-1-100-")
    assert env.unwrapped.messages == obs


def test_step_info_contract_and_conversation():
    env = EchoEnv()
    env.reset(seed=0)
    obs, reward, term, trunc, info = env.step(call("echo", text="ab", times=2))
    assert obs == [{"role": "tool", "name": "echo", "content": "abab"}]
    assert info["tool_calls"] == [{"name": "echo", "arguments": {"text": "ab", "times": 2}}]
    assert info["error"] is None and info["turn"] == 1
    assert info["reward_components"] == {"format": 0.0, "tool_validity": 0.0}
    assert (term, trunc) == (False, False)
    obs, reward, term, trunc, info = env.step("<answer>ok</answer>")
    assert term and not trunc and reward == 1.0
    assert [m["role"] for m in env.messages] == ["system", "user", "assistant", "tool", "assistant", "user"]


def test_several_calls_per_turn_run_in_order():
    env = EchoEnv()
    env.reset()
    obs, *_ = env.step(call("echo", text="a") + " and " + call("echo", text="b"))
    assert [m["content"] for m in obs] == ["a", "b"]


@pytest.mark.parametrize(
    "action,kind,needle",
    [
        ("<tool_call>{not json}</tool_call>", ErrorKind.PARSE, "invalid JSON"),
        (call("ecoh", text="x"), ErrorKind.UNKNOWN_TOOL, "did you mean 'echo'"),
        (call("echo", text=3), ErrorKind.INVALID_ARGUMENTS, "argument 'text'"),
        (call("echo"), ErrorKind.INVALID_ARGUMENTS, "'text' is a required property"),
        (call("echo", text="x", extra=1), ErrorKind.INVALID_ARGUMENTS, "Additional properties"),
        (call("boom"), ErrorKind.TOOL_EXCEPTION, "ValueError: kaboom"),
        ("just chatting", ErrorKind.NO_ACTION, "No tool call or answer"),
    ],
)
def test_bad_actions_become_error_observations(action, kind, needle):
    env = EchoEnv()
    env.reset()
    obs, reward, term, trunc, info = env.step(action)
    assert info["error"]["kind"] == kind
    assert needle in obs[-1]["content"]
    assert not term and not trunc
    assert reward < 0 or kind == ErrorKind.TOOL_EXCEPTION
    # the episode continues normally afterwards
    obs, *_ = env.step(call("echo", text="fine"))
    assert obs[0]["content"] == "fine"


def test_looping_tool_times_out_and_episode_continues():
    env = EchoEnv()
    env.reset()
    t0 = time.monotonic()
    obs, _, term, trunc, info = env.step(call("spin"))
    assert time.monotonic() - t0 < 5
    assert info["error"]["kind"] == ErrorKind.TOOL_TIMEOUT
    assert "did not finish within 0.2 s" in obs[0]["content"]
    obs, *_ = env.step(call("echo", text="after"))
    assert obs[0]["content"] == "after"


def test_long_observation_is_truncated_with_marker():
    env = EchoEnv(max_obs_chars=100)
    env.reset()
    obs, *_ = env.step(call("echo", text="x" * 50, times=10))
    assert len(obs[0]["content"]) == 100
    assert "[truncated 400 of 500 characters]" in obs[0]["content"]


def test_observation_token_budget():
    env = EchoEnv(max_obs_chars=None, max_obs_tokens=20, token_counter=lambda s: len(s.split()))
    env.reset()
    obs, *_ = env.step(call("echo", text="word ", times=200))
    assert len(obs[0]["content"].split()) <= 20
    assert "truncated" in obs[0]["content"]
    with pytest.raises(ConfigError, match="needs token_counter"):
        EchoEnv(max_obs_tokens=5)


def test_max_turns_truncates_honestly():
    env = EchoEnv(max_turns=2)
    env.reset()
    assert env.step(call("echo", text="a"))[2:4] == (False, False)
    _, _, term, trunc, _ = env.step(call("echo", text="a"))
    assert (term, trunc) == (False, True)
    with pytest.raises(EpisodeStateError, match="call reset"):
        env.step("x")


def test_a_tool_can_end_the_episode():
    env = EchoEnv(max_turns=1)
    env.reset()
    obs, _, term, trunc, _ = env.step(call("stop"))
    assert obs[0]["content"] == "stopped" and (term, trunc) == (True, False)
    with pytest.raises(EpisodeStateError):
        env.step("x")
    env.reset()  # a new episode starts open
    assert env.step(call("echo", text="a"))[2] is False


def test_wall_clock_budget_truncates():
    env = EchoEnv(max_episode_seconds=0.0)
    env.reset()
    _, _, term, trunc, _ = env.step(call("echo", text="a"))
    assert (term, trunc) == (False, True)


def test_action_too_long_and_wrong_type():
    env = EchoEnv(max_action_chars=10)
    env.reset()
    obs, _, _, _, info = env.step("y" * 11)
    assert info["error"]["kind"] == ErrorKind.ACTION_TOO_LONG
    with pytest.raises(TypeError, match="assistant's text"):
        env.step(42)  # type: ignore[arg-type]


def test_reward_weights_recombine_components():
    env = gym.make("rlvr/GuessNumber-v0", reward_weights={"progress": 0.0})
    env.reset(seed=0)
    u = env.unwrapped
    _, reward, _, _, info = env.step(u.oracle_action())
    assert info["reward_components"]["progress"] > 0 and reward == 0.0


def test_reward_weights_are_checked_against_the_declared_components():
    """The base declares its own two; a subclass's weights name only what the subclass declares."""
    assert AgentEnv.reward_components == ("format", "tool_validity")
    with pytest.raises(ConfigError, match=r"^reward_weights: unknown reward component 'outcome'; "
                                          r"test/Echo-v0 declares: format, tool_validity$"):
        EchoEnv(reward_weights={"outcome": 2.0})

    class Declared(EchoEnv):
        reward_components = ("format", "tool_validity", "outcome")

    env = Declared(reward_weights={"outcome": 2.0, "format": 0.5})
    env.reset(seed=0)
    _, reward, *_ = env.step("<answer>ok</answer>")
    assert reward == 2.0
    with pytest.raises(ConfigError, match=r"'outcom' \(did you mean 'outcome'\?\); test/Echo-v0 declares"):
        Declared(reward_weights={"outcom": 2.0})


def test_check_env_args_validates_without_building():
    from rlvr.registry import check_env_args

    assert check_env_args("rlvr/GuessNumber-v0", {"high": 5}).__name__ == "GuessNumberEnv"
    with pytest.raises(ConfigError, match=r"unknown environment id 'rlvr/GuesNumber-v0' "
                                          r"\(did you mean 'rlvr/GuessNumber-v0'\?\); rlvr registers: "):
        check_env_args("rlvr/GuesNumber-v0")
    with pytest.raises(ConfigError, match=r"unknown keyword argument 'max_turn' \(did you mean 'max_turns'\?\)"):
        check_env_args("rlvr/SWE-v0", {"max_turn": 3})  # no sandbox is touched
    # the values are not checked here (low >= high): that needs the constructor
    assert check_env_args("rlvr/GuessNumber-v0", {"low": 5, "high": 2}) is not None


def test_unknown_kwarg_is_rejected_with_suggestion():
    with pytest.raises(ConfigError, match=r"unknown keyword argument 'max_turn' \(did you mean 'max_turns'\?\)"):
        gym.make("rlvr/GuessNumber-v0", max_turn=3)


def test_unknown_env_id_suggests():
    with pytest.raises(gym.error.Error, match="GuessNumber"):
        gym.make("rlvr/GuesNumber-v0")


def test_spaces():
    a = TextAction(5, seed=0)
    assert a.contains("héllo") and not a.contains("toolong") and not a.contains(3)
    assert all(a.contains(a.sample()) for _ in range(50))
    s = ChatMessages(seed=0)
    assert all(s.contains(s.sample()) for _ in range(50))
    assert s.contains([{"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "image", "url": "x.png"}]}])
    assert not s.contains([{"role": "robot", "content": "x"}])
    assert not s.contains([{"role": "user", "content": [{"type": "video"}]}])


def test_truncate_text_marker():
    assert truncate_text("abc", 10) == "abc"
    out = truncate_text("a" * 1000, 200)
    assert len(out) == 200 and out.endswith("[truncated 800 of 1000 characters]")


def test_tool_decorator_builds_schema():
    @tool
    def f(a: int, b: str | None = None, c: list[int] | None = None) -> str:
        """Do f.

        Args:
            a: the a
        """
        return "x"

    p = f.parameters
    assert p["required"] == ["a"]
    assert p["properties"]["a"] == {"type": "integer", "description": "the a"}
    assert p["properties"]["c"] == {"type": "array", "items": {"type": "integer"}}
    assert f.description == "Do f."
    with pytest.raises(ConfigError, match="type 'object'"):
        Tool("t", "d", {"type": "string"}, lambda: 1)


def test_import_has_no_heavy_side_effects():
    code = "import sys, rlvr; print(any(m in sys.modules for m in ('torch', 'transformers', 'bm25s', 'docker')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def _episode_in_subprocess(env_id: str, seed: int) -> str:
    code = f"""
import hashlib, json, gymnasium as gym, rlvr
from rlvr.agents import RandomAgent
def pixels(o):  # image content parts compare by their pixels
    return hashlib.sha256(o.tobytes()).hexdigest() + repr(o.size)
env = gym.make({env_id!r}); obs, info = env.reset(seed={seed}); agent = RandomAgent(seed={seed})
for _ in range(env.unwrapped.max_turns):
    obs, r, term, trunc, info = env.step(agent.act(env.unwrapped.messages))
    if term or trunc: break
print(json.dumps(env.unwrapped.messages, default=pixels))
"""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout


@pytest.mark.parametrize("info", ENV_PARAMS)
def test_same_seed_same_episode_across_processes(info):
    a, b = _episode_in_subprocess(info.id, 7), _episode_in_subprocess(info.id, 7)
    assert a == b and len(json.loads(a)) > 2
    assert _episode_in_subprocess(info.id, 8) != a


def test_tool_calls_from_threads_are_isolated():
    envs = [EchoEnv() for _ in range(4)]
    for e in envs:
        e.reset()
    outs = [None] * 4

    def run(i):
        outs[i] = envs[i].step(call("echo", text=str(i)))[0][0]["content"]

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outs == ["0", "1", "2", "3"]


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from jsonschema import Draft202012Validator  # noqa: E402

_values = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5) | st.lists(st.integers(), max_size=2) | st.dictionaries(st.text(max_size=2), st.integers(), max_size=2)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(st.sampled_from(["a", "b", "c"]), st.sampled_from(["string", "integer", "number", "boolean", "null", "array", "object", ["integer", "null"]]), max_size=3),
    st.lists(st.sampled_from(["a", "b", "c"]), unique=True, max_size=3),
    st.booleans(),
    st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), _values, max_size=4),
)
def test_fast_argument_check_agrees_with_jsonschema(types, required, closed, args):
    schema = {"type": "object", "properties": {k: {"type": t} for k, t in types.items()}, "required": required,
              "additionalProperties": not closed}
    t = Tool("t", "d", schema, lambda **kw: None)
    full_ok = Draft202012Validator(schema).is_valid(args)
    assert (t.validate(args) is None) == full_ok
    if t._fast_check is not None and t._fast_check(args):
        assert full_ok


# ----------------------------------------------------------------------------- infrastructure failures, late calls
from rlvr.envs.tools import ToolOutput, ToolSet  # noqa: E402
from rlvr.errors import InfrastructureError  # noqa: E402


class InfraEnv(AgentEnv):
    """Tools that hit a failing service, and an answer hook that does."""

    env_id = "test/Infra-v0"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.tools.add(Tool("lookup", "needs a server", {"type": "object", "properties": {}}, self._down))
        self.tools.add(Tool("echo", "echo", {"type": "object", "properties": {"t": {"type": "string"}}}, lambda t="": t))

    def _down(self):
        raise InfrastructureError("index server 127.0.0.1:9 refused the connection")

    def _reset_task(self, options):
        return [{"role": "user", "content": "go"}], {"task_id": "infra"}

    def _on_answer(self, answer):
        if answer == "grade":
            raise InfrastructureError("grader unavailable")
        return TurnOutcome([], {"outcome": 1.0}, terminated=True)


def test_infrastructure_error_in_a_tool_ends_the_episode_unpenalised():
    env = InfraEnv(invalid_penalty=0.5)
    env.reset(seed=0)
    obs, reward, term, trunc, info = env.step(call("echo", t="a") + call("lookup") + call("nope") + call("echo", t="b"))
    assert [m["content"][:6] for m in obs] == ["a", "Error:", "Error:", "Error:"]
    assert "not your fault" in obs[1]["content"] and "refused the connection" in obs[1]["content"]
    assert "not run" in obs[2]["content"] and "not run" in obs[3]["content"]  # the rest of the turn is not sent
    assert not term and trunc and info["success"] is False and info["error"]["kind"] == "infrastructure"
    assert info["infra_failure"] == {"where": "tool 'lookup'", "message": obs[1]["content"][len("Error: "):]}
    assert reward == 0.0 and info["reward_components"] == {"format": 0.0, "tool_validity": 0.0}
    with pytest.raises(Exception, match="episode has ended"):
        env.step("x")


def test_infrastructure_error_in_a_hook_ends_the_episode_unpenalised():
    env = InfraEnv()
    env.reset(seed=0)
    obs, reward, term, trunc, info = env.step("<answer>grade</answer>")
    assert trunc and not term and reward == 0.0 and info["success"] is False
    assert info["infra_failure"] == {"where": "InfraEnv._on_answer", "message": "InfrastructureError: grader unavailable"}
    assert info["error"]["kind"] == "infrastructure" and "grader unavailable" in obs[0]["content"]
    env.reset(seed=0)
    assert env.step("<answer>ok</answer>")[2] is True  # other answers are unaffected


def test_tool_output_is_applied_only_when_the_call_finished_in_time():
    applied = []
    release = threading.Event()

    def slow(tag: str = "") -> ToolOutput:
        release.wait(5)
        return ToolOutput(f"slow {tag}", lambda: applied.append(tag))

    def fast(tag: str = "") -> ToolOutput:
        return ToolOutput(f"fast {tag}", lambda: applied.append(tag), value={"tag": tag})

    props = {"type": "object", "properties": {"tag": {"type": "string"}}}
    ts = ToolSet([Tool("slow", "d", props, slow, timeout_s=0.1), Tool("fast", "d", props, fast)], timeout_s=1.0)
    res = ts.execute(make_call("fast", {"tag": "a"}))
    assert res.content == "fast a" and res.value == {"tag": "a"} and applied == ["a"]
    res = ts.execute(make_call("slow", {"tag": "late"}))
    assert res.error.kind is ErrorKind.TOOL_TIMEOUT
    before = {t for t in threading.enumerate() if t.name == "rlvr-tool-worker"}
    release.set()  # the abandoned call now returns its ToolOutput...
    time.sleep(0.2)
    assert applied == ["a"]  # ...whose apply never runs
    assert ts.execute(make_call("fast", {"tag": "b"})).content == "fast b" and applied == ["a", "b"]
    after = {t for t in threading.enumerate() if t.name == "rlvr-tool-worker"}
    assert len(before - after) >= 1  # the abandoned worker thread exited once its call returned


def make_call(name, arguments):
    from rlvr.envs.parsers import ToolCall

    return ToolCall(name, arguments)


def test_make_returns_the_env_itself_and_it_enforces_reset_before_step():
    env = gym.make("rlvr/GuessNumber-v0")
    assert type(env) is GuessNumberEnv and env.unwrapped is env
    with pytest.raises(EpisodeStateError, match="call reset"):
        env.step("<answer>1</answer>")
    env.reset(seed=0)
    assert env.step("<answer>1</answer>")[2] is True
    with pytest.raises(EpisodeStateError, match="call reset"):
        env.step("<answer>1</answer>")
    checked = gym.make("rlvr/GuessNumber-v0", disable_env_checker=False)
    assert type(checked).__name__ == "PassiveEnvChecker" and type(checked.unwrapped) is GuessNumberEnv
