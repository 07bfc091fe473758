"""Fuzz every registered environment with hostile actions (issue 9, section 5).

A seeded driver (numpy generator, :data:`SEED`) plays :data:`STEPS` turns against each id of
:func:`rlvr.list_envs` (SWE under the ``docker`` marker) with actions mixed from hostile fragments:
malformed, nested and unclosed tags, invalid JSON, wrong argument types, valid tool names with hostile
arguments (path traversal, absolute paths and NUL in ids and paths, catastrophic regex patterns for
``find``, unicode direction marks, lone surrogates, huge integers, JSON nested 10^4 deep, slow or
destructive shell commands), and 2 MB actions. Each environment runs with its default
``max_action_chars`` (long actions are refused) and with a 4 MB limit (2 MB actions reach the parser
and the tools); ToolCall also on synthetic tasks, DeepSearch also over a corpus of hostile documents.
A derandomized hypothesis test drives the default-suite environments with drawn fragment sequences.

Every step must: raise nothing (the driver resets when an episode ends, so EpisodeStateError never
applies), return within :data:`STEP_BOUND_S` (:data:`SWE_STEP_BOUND_S` for SWE), never set
``terminated`` and ``truncated`` together, count turns one by one (``info["turn"] ==
env.unwrapped.turn``, one more than before), return observations inside ``env.observation_space``, a
finite reward and finite components, text that encodes as UTF-8 whenever the action does, and never
an ``infrastructure`` error (the services are up: the model's text must not pass for one).

Steps, episodes and the slowest step per configuration are printed when the module finishes (run
with ``-s``) and written to ``fuzz_summary.json`` under pytest's temporary directory. The bugs the
fuzzer found have focused regression tests at the end of the module.
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rlvr
from rlvr.envs.parsers import HermesParser, JSONParser, extract_answer

# ----------------------------------------------------------------------------- budgets
STEP_BOUND_S = 2.0
"""Wall-clock bound of one step of GuessNumber, DeepSearch and ToolCall. Measured slowest: 0.1-0.3 s
(parsing a 2 MB action, the first call into a BFCL backend); 2 s leaves room for a loaded machine."""
FUZZ_SWE_COMMAND_S = 1.0
"""command_timeout_s of the fuzzed SWE env, so that hostile commands (sleep, yes, fork bombs) end quickly."""
FUZZ_SWE_CALLS_PER_TURN = 8
"""max_calls_per_turn of the fuzzed SWE env: with FUZZ_SWE_COMMAND_S, a turn of slow commands stays under 10 s."""
SWE_STEP_BOUND_S = 20.0
"""Bound of one SWE step: FUZZ_SWE_CALLS_PER_TURN commands killed after FUZZ_SWE_COMMAND_S each, or one
grading run. Measured slowest: 0.4-1.1 s (a turn that submits and grades)."""
STEPS = {"rlvr/GuessNumber-v0": 3000, "rlvr/DeepSearch-v0": 3000, "rlvr/ToolCall-v0": 3000, "rlvr/SWE-v0": 400,
         "rlvr/Grounding-v0": 1000, "rlvr/TextWorld-v0": 200, "rlvr/ALFWorld-v0": 100}
"""Steps per environment, split evenly between its configurations (see :func:`configs`)."""
WIDE_ACTION_CHARS = 4_000_000
SEED = 20240609

# ----------------------------------------------------------------------------- hostile fragments
TAGS = (
    "<tool_call>", "</tool_call>", "<answer>", "</answer>", "<think>", "</think>", "<tool_response>",
    "</tool_response>", "<tools>", "</tools>", "<|im_start|>assistant\n", "<|im_end|>", "```json\n", "```",
    "<tool_call >", "<TOOL_CALL>", "< /tool_call>", "<answer/>", "<tool_call/>", "<<tool_call>>", "<tool_call",
    "tool_call>", "</answer", "<answer", "<function=search>", "</function>", "<|tool_call|>",
)
NASTY_STRINGS = (
    "", " ", "\x00", "a\x00b", "\x00" * 64, "\u202e", "\u202egnp.exe", "\u200f\u200e\u2066\u2067\u2068\u2069",
    "\u202a\u202b\u202c\u202d", "\ufeff", "\ufffe\uffff", "\ud800", "\udfff", "a\ud83dz", "\U0001f600" * 50,
    "\u0301" * 200, "../../etc/passwd", "/etc/passwd", "/", "..", ".", "~/.ssh/id_rsa", "C:\\Windows\\system32",
    "..\\..\\boot.ini", "doc1\x00../../etc/passwd", "%2e%2e%2f%2e%2e%2fetc%2fpasswd", "file:///etc/passwd",
    "/testbed/../etc/shadow", "/testbed/.git/config", ".git/HEAD", "/proc/self/environ", "/dev/zero",
    "/dev/urandom", "README.md\x00.py", "doc0", "[doc1]", "doc-1", "doc99999999999999999999", "(a+)+$",
    "(a|aa)+$", "^(a+)+b", "(.*a){25}", "(x+x+)+y", "([a-zA-Z]+)*$", "a" * 5000 + "!", "\\", '"', "'", "\\u0000",
    "<tool_call>", "</tool_call>", "<answer>x</answer>", "${HOME}", "$(id)", "`id`", "; rm -rf / #",
    "\n" * 200, "\r\n\t\v\f", "%s%s%n", "{{7*7}}", "NaN", "null", "-1", "1e309", " " * 3000, "é" * 500,
    "\u0000\u202e\ud800</tool_call><answer>", "x" * 20_000,
)
NASTY_COMMANDS = (  # for arguments named "command" (SWE's bash): slow, flooding, destructive or odd commands
    "sleep 30", "yes", "cat /dev/urandom", "head -c 100000000 /dev/zero", ":(){ :|:& };:", "kill -9 -1",
    "rm -rf /testbed/.git", "rm -rf /testbed/* /testbed/.[!.]*", "chmod -R 000 /testbed", "exec 1>&- 2>&-",
    "cd / && rm -rf ~ /tmp/*", "dd if=/dev/zero of=/tmp/fill bs=1M count=512", "cat /etc/shadow",
    "curl -s http://example.com", "python3 -c 'import os; os.setsid(); os.fork() or __import__(\"time\").sleep(99)'",
    "ln -sf /etc/passwd /testbed/README.md", "mkfifo /testbed/f && cat /testbed/f", "printf '\\x00\\xff\\xfe'",
    "nohup sleep 99 &", "ulimit -a; id; env", "python3 -c 'print(\"\\ud800\")'", "git -C /testbed reset --hard HEAD~5",
)
NASTY_NUMBERS = (0, 1, -1, 2, 7, 2**31, -(2**31) - 1, 2**63, -(2**63), 2**64 + 1, 10**100, -(10**300), int("9" * 4000),
                 True, False, 0.5, -0.0, 1e308, -1e308, 5e-324, float("nan"), float("inf"), float("-inf"))
RAW_JSON = (  # not producible by json.dumps: broken, too deep, too big
    "{", "}", "[", "]", '{"name": ', '{"name": "', '{"name": "search", "arguments": ', '{"name": null}',
    '{"name": 5, "arguments": {}}', '{"name": "", "arguments": {}}', '{"name": " ", "arguments": {}}',
    '{"arguments": {"x": 1}}', '{"name": "search", "arguments": "not json"}', '{"name": "search", "arguments": "[1, 2]"}',
    '{"name": "search", "arguments": [1, 2]}', '{"name": "search", "arguments": 3}', "{'name': 'search'}",
    '{"name": "search", "arguments": {"query": NaN}}', '{"name": "guess", "arguments": {"number": Infinity}}',
    '{"name": "guess", "arguments": {"number": ' + "1" * 5000 + "}}", '{"name": "guess", "arguments": {"number": 1e999}}',
    '{"name": "open", "arguments": {"doc_id": "\\ud800"}}', '{"name": "x", "arguments": {"a": "\\u0000"}}',
    '{"name": "a", "name": "b", "arguments": {}}', '{"tool_calls": "nope"}', '{"tool_calls": [1, 2, 3]}',
    '{"type": "function", "function": "search"}', '{"function_call": {"name": "search", "arguments": "{}"}}',
    "[" * 10_000 + "]" * 10_000, '{"a":' * 10_000 + "1" + "}" * 10_000, "[" * 990 + "]" * 990,
    '{"tool_calls": ' * 400 + "[]" + "}" * 400, "[" * 200_000, '{"x": "' + "a" * 250_000 + '"}', "\ufeff{}",
    "[]", "{}", "true", "1", '"str"', "nul", '{"name": "search", "arguments": {}} trailing',
)


def _deep(depth: int, leaf: Any = 1, kind: str = "list") -> Any:
    v = leaf
    for _ in range(depth):
        v = [v] if kind == "list" else {"k": v}
    return v


class Hostile:
    """Mixes hostile actions for one environment from a seeded numpy generator."""

    def __init__(self, rng: np.random.Generator, env: gym.Env) -> None:
        self.rng = rng
        self.env = env
        self.seen_ids: list[str] = []

    # -------------------------------------------------------------- pieces
    def pick(self, seq):
        return seq[int(self.rng.integers(len(seq)))]

    def learn(self, obs: list[dict[str, Any]]) -> None:
        """Harvest ids and paths from observations (``[doc12]``, file names) to make plausible arguments."""
        for m in obs:
            c = m.get("content")
            if isinstance(c, str):
                self.seen_ids.extend(re.findall(r"\[([A-Za-z0-9_.:/-]{1,40})\]", c[:4000])[:5])
                self.seen_ids.extend(re.findall(r"[\w./-]{1,40}\.(?:py|md|toml|txt)", c[:4000])[:5])
        del self.seen_ids[:-50]

    def string(self) -> str:
        r = self.rng.random()
        if r < 0.45:
            return self.pick(NASTY_STRINGS)
        if r < 0.6 and self.seen_ids:
            base = self.pick(self.seen_ids)
            return self.pick((base, base + "\x00", "../" + base, "/" + base, base + "/../../etc/passwd", f" [{base}] ",
                              base.upper(), "\u202e" + base, base + "\ud800"))
        if r < 0.8:
            n = int(self.rng.integers(1, 40))
            return "".join(chr(int(c)) for c in self.rng.integers(0, 0x3000, size=n))
        return "".join(self.pick(NASTY_STRINGS) for _ in range(int(self.rng.integers(2, 5))))

    def value(self, depth: int = 0) -> Any:
        r = self.rng.random()
        if r < 0.4:
            return self.string()
        if r < 0.65:
            return self.pick(NASTY_NUMBERS)
        if r < 0.7:
            return None
        if r < 0.8 and depth < 2:
            return [self.value(depth + 1) for _ in range(int(self.rng.integers(0, 4)))]
        if r < 0.9 and depth < 2:
            return {self.string()[:20]: self.value(depth + 1) for _ in range(int(self.rng.integers(0, 4)))}
        return _deep(int(self.pick((5, 50, 300))), self.string(), self.pick(("list", "dict")))

    def arguments(self, tool_name: str) -> dict[str, Any]:
        tools = self.env.unwrapped.tools
        props = tools[tool_name].parameters.get("properties", {}) if tool_name in tools else {}
        args: dict[str, Any] = {}
        for name, spec in props.items():
            if self.rng.random() < 0.15:
                continue  # drop it (even when required)
            t = spec.get("type") if isinstance(spec, dict) else None
            if self.rng.random() < 0.5 and t in ("string", "integer", "number", "boolean"):  # right type, hostile value
                if t == "string":
                    args[name] = self.pick(NASTY_COMMANDS) if name == "command" and self.rng.random() < 0.5 else self.string()
                elif t == "boolean":
                    args[name] = bool(self.rng.random() < 0.5)
                else:
                    args[name] = self.pick([v for v in NASTY_NUMBERS if isinstance(v, int) and not isinstance(v, bool)]
                                           + ([1.5, 1e308, float("nan")] if t == "number" else []))
            elif self.rng.random() < 0.3 and isinstance(spec, dict) and spec.get("enum"):
                args[name] = self.pick(spec["enum"])
            else:
                args[name] = self.value()
        if self.rng.random() < 0.1:
            args[self.string()[:30]] = self.value()
        return args

    def call_json(self) -> str:
        names = self.env.unwrapped.tools.names
        r = self.rng.random()
        name = self.pick(names) if names and r < 0.85 else self.pick(("", "nope", "search ", "SEARCH", "guess\x00",
                                                                         "\u202esearch", "../bash", "__import__"))
        args = self.arguments(name)
        shape = self.rng.random()
        if shape < 0.05:  # nesting near the interpreter's recursion limit, written out (json.dumps cannot)
            props = list(self.env.unwrapped.tools[name].parameters.get("properties", {})) if name in names else []
            d = int(self.pick((300, 900, 980, 995, 10_000)))
            return json.dumps({"name": name, "arguments": {}})[:-3] + f'{{{json.dumps(self.pick(props or ["x"]))}: ' \
                + "[" * d + "1" + "]" * d + "}}"
        if shape < 0.7:
            obj: Any = {"name": name, "arguments": args}
        elif shape < 0.8:
            obj = {"type": "function", "function": {"name": name, "arguments": _dumps(args)}}
        elif shape < 0.9:
            obj = {"tool_calls": [{"name": name, "arguments": args}, {"name": name, "parameters": args}]}
        else:
            obj = [{"name": name, "arguments": args}] * int(self.rng.integers(1, 4))
        return _dumps(obj, ascii_only=self.rng.random() < 0.5)

    # -------------------------------------------------------------- actions
    def action(self) -> str:
        r = self.rng.random()
        if r < 0.35:  # well-formed calls with hostile arguments
            n = int(self.rng.integers(1, 4))
            return "".join(f"<tool_call>{self.call_json()}</tool_call>" for _ in range(n))
        if r < 0.47:  # a call with its JSON broken
            text = f"<tool_call>{self.call_json()}</tool_call>"
            cut = int(self.rng.integers(1, len(text)))
            mode = self.rng.random()
            if mode < 0.4:
                return text[:cut]
            if mode < 0.7:
                return text[:cut] + self.pick(TAGS + RAW_JSON[:20]) + text[cut:]
            return text[:cut] + text[cut + 1:]
        if r < 0.62:  # tag soup
            parts = [self.pick(self.pick((TAGS, NASTY_STRINGS, RAW_JSON[:30]))) for _ in range(int(self.rng.integers(1, 12)))]
            if self.rng.random() < 0.3:
                parts.append(self.call_json())
            return "".join(parts)
        if r < 0.7:  # raw / broken / deep JSON, bare or in a call
            raw = self.pick(RAW_JSON)
            return self.pick((raw, f"<tool_call>{raw}</tool_call>", f"<tool_call>```json\n{raw}\n```</tool_call>",
                              f"text {raw} more", f"<tool_call>{raw}"))
        if r < 0.77:  # bare JSON / fenced calls (json fallback)
            return self.pick(("", "Let me call ", "```json\n")) + self.call_json() + self.pick(("", "```", " ok"))
        if r < 0.85:  # answers: closed, unclosed, nested, inside a call
            body = self.string()
            return self.pick((f"<answer>{body}</answer>", f"<answer>{body}", f"<answer><answer>{body}</answer></answer>",
                              f"{body}</answer>", f"<tool_call>{self.call_json()}</tool_call><answer>{body}</answer>",
                              f"<answer>{body}</answer><tool_call>{self.call_json()}</tool_call>",
                              f"<answer>Exact answer: {body}\n[doc0] [{body}]</answer>",
                              f'<tool_call>{{"name": "x", "arguments": {{"a": "<answer>{body[:50]}</answer>"}}}}</tool_call>'))
        if r < 0.93:  # random unicode, control characters, surrogates
            n = int(self.rng.integers(0, 300))
            return "".join(chr(int(c)) for c in self.rng.integers(0, 0x110000, size=n))
        # huge actions: refused under the default limit, parsed under the wide one
        size = int(self.pick((40_000, 250_000, 2_000_000)))
        unit = self.pick(("<tool_call>", "<answer>", "</tool_call>", "{", "[", '{"a":', "a", "\x00", "\u202e", "\ud800",
                          "<tool_call>{", "```", "<answer><tool_call>", f"<tool_call>{self.call_json()[:200]}</tool_call>"))
        return (unit * (size // len(unit) + 1))[:size]


def _dumps(obj: Any, ascii_only: bool = True) -> str:
    """JSON text for a hostile value: NaN/Infinity allowed, lone surrogates kept (escaped or raw)."""
    try:
        return json.dumps(obj, ensure_ascii=ascii_only)
    except (RecursionError, ValueError):
        return '{"name": "deep"}'


# ----------------------------------------------------------------------------- the driver
@dataclass
class Stats:
    steps: int = 0
    episodes: int = 0
    slowest_s: float = 0.0
    slowest_action: str = ""
    total_s: float = 0.0
    errors: dict[str, int] = field(default_factory=dict)
    terminated: int = 0
    truncated: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"steps": self.steps, "episodes": self.episodes, "slowest_step_s": round(self.slowest_s, 4),
                "slowest_action": self.slowest_action, "mean_step_ms": round(1000 * self.total_s / max(1, self.steps), 3),
                "terminated": self.terminated, "truncated": self.truncated, "error_kinds": dict(sorted(self.errors.items()))}


def _describe(action: str) -> str:
    return f"{len(action)} chars: {action[:120]!r}"


def _utf8(value: Any) -> bool:
    """Whether ``value`` serialises to JSON that encodes as UTF-8 (as the trajectory writer needs)."""
    try:
        json.dumps(value, ensure_ascii=False, default=repr).encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def check_reset(env: gym.Env, seed: int) -> list[dict[str, Any]]:
    obs, info = env.reset(seed=seed)
    assert env.observation_space.contains(obs), obs
    assert env.unwrapped.turn == 0 and "task_id" in info
    return obs


def check_step(env: gym.Env, action: str, stats: Stats, bound_s: float) -> tuple[list[dict[str, Any]], bool]:
    """One checked step; returns the observation and whether the episode ended."""
    before = env.unwrapped.turn
    t0 = time.perf_counter()
    obs, reward, terminated, truncated, info = env.step(action)
    dt = time.perf_counter() - t0
    where = f"step {stats.steps} of {env.unwrapped.env_id}, action {_describe(action)}"
    assert dt < bound_s, f"{where} took {dt:.2f} s (bound {bound_s} s)"
    assert isinstance(terminated, bool) and isinstance(truncated, bool), where
    assert not (terminated and truncated), f"{where}: terminated and truncated both set"
    assert info["turn"] == env.unwrapped.turn == before + 1, (where, info["turn"], env.unwrapped.turn, before)
    assert env.observation_space.contains(obs), (where, obs)
    assert isinstance(reward, float) and math.isfinite(reward), (where, reward)
    for k, v in info["reward_components"].items():
        assert isinstance(v, (int, float)) and math.isfinite(v), (where, k, v)
    if _utf8(action):  # what the env adds is writable text whenever the model's text is
        assert _utf8(obs) and _utf8(info), (where, "observation or info holds a lone surrogate")
    stats.steps += 1
    stats.total_s += dt
    if dt > stats.slowest_s:
        stats.slowest_s, stats.slowest_action = dt, _describe(action)
    if info.get("error"):
        kind = info["error"]["kind"]
        stats.errors[kind] = stats.errors.get(kind, 0) + 1
        # the services are up: a model's text must never pass for an infrastructure failure (unpenalised, untrained)
        assert kind != "infrastructure", (where, info["error"]["message"][:2000])
    stats.terminated += terminated
    stats.truncated += truncated
    return obs, terminated or truncated


def drive(env: gym.Env, rng: np.random.Generator, n_steps: int, stats: Stats, bound_s: float) -> None:
    """``n_steps`` checked hostile steps, resetting (with a drawn seed) whenever an episode ends."""
    gen = Hostile(rng, env)
    obs = check_reset(env, int(rng.integers(2**31)))
    stats.episodes += 1
    for _ in range(n_steps):
        gen.learn(obs)
        obs, done = check_step(env, gen.action(), stats, bound_s)
        if done:
            obs = check_reset(env, int(rng.integers(2**31)))
            stats.episodes += 1


FUZZ_SUMMARY: dict[str, dict[str, Any]] = {}


@pytest.fixture(scope="module", autouse=True)
def _report(tmp_path_factory):
    yield
    if FUZZ_SUMMARY:
        total = sum(s["steps"] for s in FUZZ_SUMMARY.values())
        slowest = max(FUZZ_SUMMARY.items(), key=lambda kv: kv[1]["slowest_step_s"])
        out = tmp_path_factory.mktemp("fuzz") / "fuzz_summary.json"
        out.write_text(json.dumps({"total_steps": total, "envs": FUZZ_SUMMARY}, indent=2, ensure_ascii=True))
        print(f"\nFUZZ SUMMARY: {total} steps in total; slowest step {slowest[1]['slowest_step_s']} s ({slowest[0]}); "
              f"written to {out}")
        for name, s in FUZZ_SUMMARY.items():
            print(f"  {name}: {json.dumps(s, ensure_ascii=True)}")


ENV_PARAMS = [pytest.param(i, id=i.id, marks=[getattr(pytest.mark, r) for r in i.requires]) for i in rlvr.list_envs()]
WIDE = {"max_action_chars": WIDE_ACTION_CHARS}


def _hostile_corpus_kwargs() -> dict[str, Any]:
    """DeepSearch over documents made to hurt: a long ``aaaa…b`` run (for regex-like ``find`` patterns),
    NUL, direction marks and traversal-looking ids."""
    from rlvr.envs.deepsearch.corpus import Corpus, Document
    from rlvr.envs.deepsearch.tasks import Hop, Task

    docs = [Document("d0", "Aaaa", "a" * 200_000 + "b"), Document("d1", "Nul\x00", "x\x00y \u202e reversed (a+)+$ " * 500),
            Document("../../etc/passwd", "Traversal", "root:x:0:0:root:/root:/bin/bash"),
            Document("doc 3", "Spaces \u200f", "Many  sentences. " * 2000)]
    tasks = [Task("t0", "Which letter ends d0?", ("b",), hops=(Hop("aaaa", "d0"),)),
             Task("t1", "What is reversed?", ("reversed",), hops=(Hop("reversed", "d1"),))]
    return {"tasks": tasks, "corpus": Corpus(docs, name="hostile")}


def configs(info: rlvr.EnvInfo) -> list[tuple[str, dict[str, Any]]]:
    """The configurations each env is fuzzed under: defaults, 4 MB actions, and env-specific data."""
    out = [("default", {}), ("4 MB actions", dict(WIDE))]
    if info.id == "rlvr/ToolCall-v0":
        out += [("synthetic", {"source": "synthetic"}), ("synthetic, 4 MB actions", {"source": "synthetic", **WIDE})]
    if info.id == "rlvr/DeepSearch-v0":
        out += [("hostile corpus", _hostile_corpus_kwargs())]
    if info.id in ("rlvr/TextWorld-v0", "rlvr/ALFWorld-v0"):  # one game: this module's cache starts empty
        out = [(name, {**kw, "pool_size": 1}) for name, kw in out]
    if info.id == "rlvr/Grounding-v0":  # 3 canvases (0.1-0.3 s each to render), shared by both configurations
        out = [(name, {**kw, "n_tasks": 3}) for name, kw in out]
    if "docker" in info.requires:
        out = [(name, {**kw, "command_timeout_s": FUZZ_SWE_COMMAND_S, "test_timeout_s": 30.0, "max_turns": 12,
                       "max_calls_per_turn": FUZZ_SWE_CALLS_PER_TURN}) for name, kw in out]
    return out


def test_every_env_is_fuzzed():
    """Guard: a newly registered env gets a step budget here."""
    assert {i.id for i in rlvr.list_envs()} == set(STEPS)


@pytest.mark.parametrize("info", ENV_PARAMS)
def test_fuzz_env(info):
    """STEPS[id] checked hostile steps per env, across its configurations (module docstring: the checks)."""
    bound = SWE_STEP_BOUND_S if "docker" in info.requires else STEP_BOUND_S
    rng = np.random.default_rng([SEED, *info.id.encode()])
    todo = configs(info)
    for name, kwargs in todo:
        stats = Stats()
        n = STEPS[info.id] // len(todo)
        env = gym.make(info.id, **kwargs)
        try:
            drive(env, rng, n, stats, bound)
        finally:
            env.close()
            if "docker" in info.requires:
                from rlvr.envs.swe.pool import close_shared_pools

                close_shared_pools()
            FUZZ_SUMMARY[f"{info.id} [{name}]"] = stats.to_dict()
        assert stats.episodes > 1 and stats.steps == n


@pytest.fixture(autouse=True, scope="module")
def _cache(tmp_path_factory):
    """DeepSearch caches its index: keep this module's indexes out of the user's cache."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RLVR_CACHE", str(tmp_path_factory.mktemp("rlvr-cache")))
        yield


# ----------------------------------------------------------------------------- hypothesis
_CHARS = st.characters(blacklist_categories=())  # surrogates and control characters included
_hostile_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(_CHARS, max_size=20) | st.sampled_from(NASTY_STRINGS[:60]),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(_CHARS, max_size=6), c, max_size=3),
    max_leaves=8,
)


@st.composite
def hostile_actions(draw, tool_names: tuple[str, ...]):
    """One action: a call (valid name, hostile arguments), fragments, or both, possibly cut short."""
    kind = draw(st.sampled_from(["call", "soup", "mixed", "text"]))
    parts: list[str] = []
    if kind in ("call", "mixed"):
        name = draw(st.sampled_from(tool_names) | st.text(_CHARS, max_size=10))
        args = draw(st.dictionaries(st.text(_CHARS, max_size=10), _hostile_values, max_size=4))
        body = json.dumps({"name": name, "arguments": args}, ensure_ascii=draw(st.booleans()))
        parts.append(draw(st.sampled_from(["<tool_call>{}</tool_call>", "<tool_call>{}", "{}", "```json\n{}\n```",
                                           "<answer>{}</answer>"])).format(body))
    if kind in ("soup", "mixed"):
        parts += draw(st.lists(st.sampled_from(TAGS + NASTY_STRINGS[:60] + RAW_JSON[:30]), max_size=12))
    if kind == "text":
        parts.append(draw(st.text(_CHARS, max_size=200)))
    text = "".join(parts)
    if text and draw(st.booleans()):
        text = text[: draw(st.integers(0, len(text)))]
    return text


HYPO_CONFIGS = {"rlvr/GuessNumber-v0": {}, "rlvr/DeepSearch-v0": {}, "rlvr/ToolCall-v0": {"source": "synthetic"}}


@pytest.mark.parametrize("env_id", sorted(HYPO_CONFIGS))
def test_hypothesis_hostile_episodes(env_id):
    """Derandomized hypothesis episodes of up to 6 drawn hostile actions, with the same per-step checks."""
    env = gym.make(env_id, **HYPO_CONFIGS[env_id])
    env.reset(seed=0)  # ToolCall builds its tools at reset
    names = tuple(env.unwrapped.tools.names)
    stats = Stats()

    @settings(derandomize=True, max_examples=60, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(st.integers(0, 2**31 - 1), st.lists(hostile_actions(names), min_size=1, max_size=6))
    def episode(seed, actions):
        check_reset(env, seed)
        stats.episodes += 1
        for a in actions:
            _, done = check_step(env, a, stats, STEP_BOUND_S)
            if done:
                break

    try:
        episode()
    finally:
        env.close()
        FUZZ_SUMMARY[f"{env_id} [hypothesis]"] = stats.to_dict()
    assert stats.steps >= 60


# ----------------------------------------------------------------------------- regressions found by the fuzzer
def _call(name: str, **arguments: Any) -> str:
    return f"<tool_call>{json.dumps({'name': name, 'arguments': arguments})}</tool_call>"


@pytest.mark.parametrize("unit", ["<tool_call>", "<answer>", "<tool_call><answer>", "<tool_call>```", "```json\n" + " " * 50])
def test_parsing_unclosed_tags_takes_linear_time(unit):
    """Regression: the lazy ``<tool_call>(.*?)</tool_call>`` regex rescanned the rest of the message for
    every unclosed opening: 32 KB (the default action limit) of ``<tool_call>`` took 1.5 s, 200 KB about a
    minute, 2 MB hours."""
    text = (unit * (200_000 // len(unit) + 1))[:200_000]
    for parser in (HermesParser(), JSONParser()):
        t0 = time.perf_counter()
        parser.parse(text)
        assert time.perf_counter() - t0 < 0.5, (parser.name, unit)


_OLD_CALL = re.compile(r"<tool_call>(.*?)</tool_call>", re.DOTALL)
_OLD_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_OLD_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)
_SOUP = st.lists(st.sampled_from(["<tool_call>", "</tool_call>", "<answer>", "</answer>", "<tool_call", "answer>", "```",
                                  "```json", "json", " ", "\n", "x", "{}", "<", "/", ">"]), max_size=30).map("".join)


@settings(max_examples=400, deadline=None, derandomize=True)
@given(_SOUP)
def test_linear_tag_scan_reads_what_the_regexes_read(text):
    """The linear scanner finds exactly the blocks, answer and fence content the old regexes found."""
    from rlvr.envs.parsers import _blocks, _strip_fence

    assert list(_blocks(text, "<tool_call>", "</tool_call>")) == [m.span() for m in _OLD_CALL.finditer(text)]
    m = _OLD_ANSWER.search(text)
    answer, err = extract_answer(text)
    assert answer == (m.group(1).strip() if m else None)
    assert (err is not None) == ("<answer>" in text and m is None)
    s = text.strip()
    fm = _OLD_FENCE.match(s)
    assert _strip_fence(text) == (fm.group(1) if fm else s)


def test_a_turn_runs_at_most_max_calls_per_turn_calls():
    """Regression: a message with hundreds of calls ran every one and returned one message per call,
    more than the 64 ``ChatMessages`` holds (observation outside ``observation_space``)."""
    env = gym.make("rlvr/GuessNumber-v0")
    env.reset(seed=0)
    call = '<tool_call>{"name": "guess", "arguments": {"number": 50}}</tool_call>'
    obs, reward, _, _, info = env.step(call * 100)
    assert env.observation_space.contains(obs) and len(obs) == 49
    assert [m["name"] for m in obs].count("guess") == 48 and len(info["tool_calls"]) == 48
    assert "100 tool calls; only the first 48 were run" in obs[0]["content"]
    assert info["error"]["kind"] == "parse_error" and info["reward_components"]["format"] < 0
    obs, *_ = env.step("<tool_call>{bad}</tool_call>" * 200)
    assert env.observation_space.contains(obs) and len(obs) == 9
    assert "200 malformed calls; only the first 8 are reported" in obs[-1]["content"]
    obs, _, terminated, _, _ = env.step(call * 60 + "<answer>1</answer>")  # an answer still ends the episode
    assert terminated
    env.close()
    env = gym.make("rlvr/GuessNumber-v0", max_calls_per_turn=2)
    env.reset(seed=0)
    obs, *_ = env.step(call * 3)
    assert len(obs) == 3 and "3 tool calls; only the first 2 were run" in obs[0]["content"]
    with pytest.raises(rlvr.errors.ConfigError, match=r"max_calls_per_turn must be an integer in \[1, 55\]"):
        gym.make("rlvr/GuessNumber-v0", max_calls_per_turn=56)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.dictionaries(st.text(_CHARS, max_size=8), _hostile_values, max_size=4), st.booleans())
def test_parsed_calls_are_always_valid_unicode(args, ascii_only):
    """Property: whatever the JSON holds (escaped or raw lone surrogates), a parsed call encodes as UTF-8;
    a call that would not is a parse error."""
    text = "<tool_call>" + json.dumps({"name": "f", "arguments": args}, ensure_ascii=ascii_only) + "</tool_call>"
    for parser in (HermesParser(), JSONParser()):
        p = parser.parse(text if parser.name == "hermes" else text[len("<tool_call>"):-len("</tool_call>")])
        assert _utf8([c.to_dict() for c in p.calls])
        if not _utf8(args) and "<tool_call>" not in text[11:-12] and "</tool_call>" not in text[11:-12]:
            assert p.calls == [] and any("surrogate" in e.message for e in p.errors)


def test_lone_surrogate_escape_does_not_crash_the_rollout(tmp_path):
    """Regression: ``"\\ud800"`` in a call's JSON reached the tool and the observation, and writing the
    trajectory raised UnicodeEncodeError, which stopped ``rlvr run``."""
    from rlvr.agents.base import ScriptedAgent
    from rlvr.agents.rollout import rollout
    from rlvr.agents.trajectory import read_trajectories

    act = '<tool_call>{"name": "search", "arguments": {"query": "caf\\ud800e"}}</tool_call>'
    trajs = rollout("rlvr/DeepSearch-v0", ScriptedAgent([act, "<answer>x</answer>"]), episodes=1, out=tmp_path)
    (back,) = read_trajectories(tmp_path / "trajectories.jsonl")
    assert back.turns[0].error["kind"] == "parse_error" and back.turns[0].tool_calls == []
    assert "lone UTF-16 surrogate" in back.turns[0].observation[0]["content"]
    assert back.to_dict() == json.loads(json.dumps(trajs[0].to_dict()))  # the file round-trips the episode


def test_find_reads_patterns_as_text_not_regex():
    """Guard: ``find`` matches phrases literally, so a catastrophic regex costs nothing and means itself."""
    env = gym.make("rlvr/DeepSearch-v0", **_hostile_corpus_kwargs())
    env.reset(seed=0)
    for pattern in ("(a+)+$", "^(a+)+b", "(a|aa)+$", "(.*a){25}"):
        t0 = time.perf_counter()
        obs, *_ = env.step(_call("find", doc_id="d0", pattern=pattern))
        assert time.perf_counter() - t0 < 0.5 and obs[0]["content"].startswith("No match for")
    obs, *_ = env.step('<tool_call>{"name": "find", "arguments": {"doc_id": "d1", "pattern": "(a+)+$"}}</tool_call>')
    assert "500 match(es)" in obs[0]["content"]
    env.close()


@pytest.fixture(scope="module")
def swe_env():
    env = gym.make("rlvr/SWE-v0", max_action_chars=WIDE_ACTION_CHARS, command_timeout_s=5.0, test_timeout_s=60.0,
                   max_turns=12)
    yield env
    env.close()
    from rlvr.envs.swe.pool import close_shared_pools

    close_shared_pools()


@pytest.mark.docker
@pytest.mark.parametrize("action,needle", [
    (_call("bash", command="echo a\x00b"), "NUL byte"),
    (_call("view_file", path="README.md\x00.py"), "NUL byte"),
    (_call("create_file", path="x\x00y.py", content="1"), "NUL byte"),
    (_call("run_tests", target="-k \x00x"), "NUL byte"),
    (_call("bash", command="echo " + "a" * 150_000), "at most 100000"),
])
def test_swe_unrunnable_command_is_the_models_error(swe_env, action, needle):
    """Regression: a command no process can take (NUL byte, a 150 KB argument) reached the sandbox's
    runner, whose refusal read as a lost sandbox: an infrastructure failure (unpenalised, untrained)."""
    swe_env.reset(seed=0)
    obs, reward, terminated, truncated, info = swe_env.step(action)
    assert info["error"]["kind"] == "tool_exception" and needle in info["error"]["message"]
    assert not terminated and not truncated and "infra_failure" not in info
    obs, *_, info = swe_env.step(_call("bash", command="echo still-here"))
    assert info["error"] is None and "still-here" in obs[0]["content"]


@pytest.mark.docker
@pytest.mark.parametrize("sabotage", ["chmod -R 000 /testbed", "chmod 000 /testbed /testbed/.git", "rm -rf /testbed/.git"])
def test_swe_repo_sabotage_then_submit_is_graded(swe_env, sabotage):
    """Regression: removing the work tree's permissions or its .git before submitting made grading's
    maintenance scripts fail, reported as a lost sandbox (infrastructure), so the episode escaped its grade."""
    swe_env.reset(seed=0)
    _, _, terminated, _, info = swe_env.step(_call("bash", command=sabotage))
    assert info["error"] is None and not terminated
    _, _, terminated, truncated, info = swe_env.step(_call("submit"))
    assert "infra_failure" not in info and (info["error"] or {}).get("kind") != "infrastructure", info["error"]
    assert terminated and not truncated and info["outcome"] in ("tests_fail", "regression", "empty_patch")
