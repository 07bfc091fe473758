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

from rlvr._kwarg_types import check_kwarg_types
from rlvr.errors import ConfigError, did_you_mean

__all__ = ["EnvInfo", "ENVS", "check_env_args", "env_info", "list_envs", "register_all"]


@dataclass(frozen=True, slots=True)
class EnvInfo:
    """One registered environment.

    ``family`` and ``description`` are the only copies: each environment class takes its own
    ``family`` / ``description`` from here (:func:`env_info`), so ``rlvr list`` never drifts from the class.
    """

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
        "Multi-hop QA with search/open/find over a document index (local BM25 by default); outcome and "
        "citation-aware rubric (CaRR) rewards.",
    ),
    EnvInfo(
        "rlvr/ToolCall-v0", "rlvr.envs.toolcall.env:ToolCallEnv", "tools",
        "Function calling on BFCL v4 and synthetic multi-step tasks with executable tools; MatchTIR turn rewards.",
    ),
    EnvInfo(
        "rlvr/SWE-v0", "rlvr.envs.swe.env:SWEEnv", "swe",
        "Fix a bug in a repository (injected, or from SWE-bench) inside a Docker sandbox; hidden tests grade the "
        "patch; G-RA rewards.",
        requires=("docker",),
    ),
    EnvInfo(
        "rlvr/Grounding-v0", "rlvr.envs.grounding.env:GroundingEnv", "vision",
        "Answer questions about high-resolution images by zooming into regions (bbox_2d crops, MGPO); "
        "synthetic V*-style canvases or V* / HR-Bench / MME-RealWorld files; answer accuracy reward.",
    ),
    EnvInfo(
        "rlvr/TextWorld-v0", "rlvr.envs.textgames.textworld_env:TextWorldEnv", "game",
        "TextWorld text adventures (simple, coin collector, treasure hunter, cooking), generated offline or your "
        ".z8 files; one command per turn; score-progress and win rewards.",
    ),
    EnvInfo(
        "rlvr/ALFWorld-v0", "rlvr.envs.textgames.alfworld_env:ALFWorldEnv", "game",
        "ALFWorld household tasks (six types) in its TextWorld-PDDL engine: games authored offline from the "
        "shipped floor plans or official game files; one command per turn; win reward.",
    ),
)


def env_info(env_id: str) -> EnvInfo:
    """The :class:`EnvInfo` of a registered rlvr id; a :class:`ConfigError` with a did-you-mean otherwise."""
    for info in ENVS:
        if info.id == env_id:
            return info
    known = [i.id for i in ENVS]
    raise ConfigError(f"unknown rlvr environment id {env_id!r}{did_you_mean(env_id, known)}; "
                      f"registered: {', '.join(known)}")


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

    def check_keywords(self, kwargs: dict[str, Any]) -> type:
        """Import the class and reject unknown keyword names and mistyped values without building the
        environment; return the class."""
        cls = self.info.load()
        accepted, open_ended = _accepted(cls)
        if not open_ended:
            for key in kwargs:
                if key not in accepted:
                    raise ConfigError(
                        f"{self.info.id} got an unknown keyword argument {key!r}{did_you_mean(key, accepted)}; "
                        f"accepted: {', '.join(sorted(accepted))}"
                    )
        check_kwarg_types(self.info.id, cls, kwargs)  # values against the constructor's annotations, nothing coerced
        return cls

    def __call__(self, **kwargs: Any) -> gym.Env:
        cls = self.check_keywords(kwargs)
        return cls(**kwargs)


def check_env_args(env_id: str, kwargs: dict[str, Any] | None = None) -> type | None:
    """Check an environment id and its keyword names without building the environment.

    Raises :class:`ConfigError` for an id gymnasium does not know (with a did-you-mean over the
    registered ids) and, for rlvr ids, for keyword names the class does not accept or values of the
    wrong type (:meth:`_Factory.check_keywords`). Returns the
    environment class when it is known without calling the entry point (rlvr ids, ``"module:Class"``
    entry points), else ``None``.
    """
    register_all()
    if env_id not in gym.registry:
        known = sorted(gym.registry)
        ours = [i for i in known if i.startswith("rlvr/")]
        raise ConfigError(f"unknown environment id {env_id!r}{did_you_mean(env_id, known)}; "
                          f"rlvr registers: {', '.join(ours)} (`rlvr list` describes them)")
    entry = gym.registry[env_id].entry_point
    if isinstance(entry, _Factory):
        return entry.check_keywords(dict(kwargs or {}))
    if isinstance(entry, str) and ":" in entry:
        module, _, name = entry.partition(":")
        obj = getattr(importlib.import_module(module), name, None)
        return obj if isinstance(obj, type) else None
    return None


def register_all() -> None:
    """Register every id in :data:`ENVS` with gymnasium (idempotent).

    ``gym.make`` returns the environment itself, with none of gymnasium's default wrappers: every
    ``AgentEnv`` refuses a step before ``reset`` (or after the episode ended) with an
    :class:`~rlvr.errors.EpisodeStateError`, which ``OrderEnforcing`` would only duplicate, and every
    registered environment passes gymnasium's full ``check_env`` in the test suite, which the
    ``PassiveEnvChecker`` repeats on the first reset and step only. The two layers cost each step two
    Python calls (about 4% of a GuessNumber step); ``gym.make(id, disable_env_checker=False)`` still adds
    the checker.
    """
    for info in ENVS:
        if info.id not in gym.registry:
            gym.register(id=info.id, entry_point=_Factory(info), order_enforce=False, disable_env_checker=True)


def list_envs() -> list[EnvInfo]:
    """Every registered rlvr environment: id, family and a one-line description."""
    return list(ENVS)
