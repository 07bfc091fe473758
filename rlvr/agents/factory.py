"""Build an agent from a command-line spec: ``oracle``, ``random``, ``smollm2``, ``hf:MODEL``,
``openai:URL`` (optionally ``openai:URL#model``), ``vllm:MODEL`` or ``module:Class``."""

from __future__ import annotations

import importlib
from typing import Any

from rlvr.errors import ConfigError

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
        return cls()
    raise ConfigError(f"unknown agent {spec!r}; expected one of: {AGENT_SPECS}")
