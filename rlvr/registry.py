"""Environment registry: ``import rlvr`` registers every id below with gymnasium (and does nothing else).

Ids follow ``rlvr/Name-vN``. Entry points are imported lazily, at ``gym.make`` time, so heavy
dependencies of one environment never load for another. Unknown keyword arguments fail with a
message naming the accepted ones.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from typing import Any

import gymnasium as gym

from rlvr.errors import ConfigError, did_you_mean

__all__ = ["EnvInfo", "ENVS", "list_envs", "register_all"]


@dataclass(frozen=True, slots=True)
class EnvInfo:
    """One registered environment."""

    id: str
    entry_point: str  # "module:Class"
    family: str
    description: str
    requires: tuple[str, ...] = ()  # services the env needs at run time, e.g. ("docker",)

    def load(self) -> type:
        module, _, name = self.entry_point.partition(":")
        return getattr(importlib.import_module(module), name)


ENVS: tuple[EnvInfo, ...] = (
    EnvInfo(
        "rlvr/GuessNumber-v0", "rlvr.envs.guess_number:GuessNumberEnv", "game",
        "Find a secret integer with a higher/lower guess tool; progress rewards per guess.",
    ),
    EnvInfo(
        "rlvr/DeepSearch-v0", "rlvr.envs.deepsearch.env:DeepSearchEnv", "search",
        "Multi-hop QA with search/open/find over a local BM25 index; outcome and citation-aware rubric (CaRR) rewards.",
    ),
    EnvInfo(
        "rlvr/ToolCall-v0", "rlvr.envs.toolcall.env:ToolCallEnv", "tools",
        "Function calling on BFCL v4 and synthetic multi-step tasks with executable tools; MatchTIR turn rewards.",
    ),
    EnvInfo(
        "rlvr/SWE-v0", "rlvr.envs.swe.env:SWEEnv", "swe",
        "Fix an injected bug in a Python project inside a Docker sandbox; hidden tests grade it; G-RA rewards.",
        requires=("docker",),
    ),
)


def _accepted(cls: type) -> tuple[set[str], bool]:
    """Keyword names accepted by ``cls(...)``, following ``**kwargs`` up the MRO."""
    names: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        params = inspect.signature(init).parameters.values()
        names |= {p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name != "self"}
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            return names, False
    return names, True


class _Factory:
    """A gymnasium entry point that imports the class on first use and rejects unknown kwargs clearly."""

    def __init__(self, info: EnvInfo) -> None:
        self.info = info

    def __call__(self, **kwargs: Any) -> gym.Env:
        cls = self.info.load()
        accepted, open_ended = _accepted(cls)
        if not open_ended:
            for key in kwargs:
                if key not in accepted:
                    raise ConfigError(
                        f"{self.info.id} got an unknown keyword argument {key!r}{did_you_mean(key, accepted)}; "
                        f"accepted: {', '.join(sorted(accepted))}"
                    )
        return cls(**kwargs)


def register_all() -> None:
    """Register every id in :data:`ENVS` with gymnasium (idempotent)."""
    for info in ENVS:
        if info.id not in gym.registry:
            gym.register(id=info.id, entry_point=_Factory(info), disable_env_checker=False)


def list_envs() -> list[EnvInfo]:
    """Every registered rlvr environment: id, family and a one-line description."""
    return list(ENVS)
