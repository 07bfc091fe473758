"""Build an agent from a command-line spec: ``oracle``, ``random``, ``smollm2``, ``hf:MODEL``,
``openai:URL`` (optionally ``openai:URL#model``), ``vllm:MODEL`` or ``module:Class``."""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from rlvr.errors import ConfigError, RLVRError

__all__ = ["make_agent", "AGENT_SPECS"]

AGENT_SPECS = "oracle, random, smollm2, hf:MODEL, openai:URL[#model], vllm:MODEL, module:Class"


def make_agent(
    spec: str, *, seed: int | None = None, max_new_tokens: int = 256, temperature: float = 0.7, batch_size: int = 16
) -> Any:
    """Return an agent for ``spec`` (see :data:`AGENT_SPECS`)."""
    if spec == "oracle":
        from rlvr.agents.base import OracleAgent

        return OracleAgent()
    if spec == "random":
        from rlvr.agents.base import RandomAgent

        return RandomAgent(seed=seed)
    if spec == "smollm2" or spec.startswith("hf:"):
        from rlvr.agents.hf import HFAgent

        model = "smollm2" if spec == "smollm2" else spec[3:]
        return HFAgent(model, max_new_tokens=max_new_tokens, temperature=temperature, seed=seed, batch_size=batch_size)
    if spec.startswith("openai:"):
        from rlvr.agents.openai import OpenAIAgent

        url, _, model = spec[len("openai:"):].partition("#")
        return OpenAIAgent(url, model or None, max_tokens=max_new_tokens, temperature=temperature)
    if spec.startswith("vllm:"):
        from rlvr.agents.vllm import VLLMAgent

        return VLLMAgent(spec[5:], max_new_tokens=max_new_tokens, temperature=temperature, seed=seed)
    if ":" in spec:
        module, _, name = spec.partition(":")
        try:
            cls = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError) as e:
            raise ConfigError(f"could not import agent {spec!r}: {e}") from e
        return _instantiate(spec, cls)
    raise ConfigError(f"unknown agent {spec!r}; expected one of: {AGENT_SPECS}")


_AGENT_HINT = "an agent is any object with act(messages) -> str (or act_batch(batch) -> list)"


def _instantiate(spec: str, cls: Any) -> Any:
    """Build a ``module:Class`` agent with no arguments, checking it can be built and can act."""
    if not callable(cls):
        raise ConfigError(f"agent {spec!r} is a {type(cls).__name__}, not a class or factory; {_AGENT_HINT}")
    try:
        sig = inspect.signature(cls)
    except (TypeError, ValueError):
        sig = None
    if sig is not None:
        needed = [p.name for p in sig.parameters.values()
                  if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        if needed:
            raise ConfigError(
                f"agent {spec!r} needs the argument(s) {', '.join(needed)}, but --agent module:Class builds it with none; "
                "give them defaults, or point --agent at a zero-argument factory function that builds the agent"
            )
    try:
        agent = cls()
    except RLVRError:
        raise
    except Exception as e:
        raise ConfigError(f"building agent {spec!r} failed: {type(e).__name__}: {e}") from e
    if not any(callable(getattr(agent, m, None)) for m in ("act", "act_batch")):
        raise ConfigError(
            f"agent {spec!r} built a {type(agent).__name__} with no act(messages) -> str method; {_AGENT_HINT}, e.g.\n"
            "    class MyAgent:\n        def act(self, messages):\n            return '<answer>42</answer>'"
        )
    return agent
