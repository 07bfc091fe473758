"""Trajectory records: what the policy saw and generated, token for token, and what the env returned.

Trajectories serialise to JSON Lines, one episode per line, appended (and flushed to disk) as each
episode finishes, so a crash loses at most the episodes in flight.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import inspect
import json
import os
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

from rlvr._jsonl import read_jsonl_located
from rlvr.errors import ConfigError

__all__ = ["FORMAT_VERSION", "Turn", "Trajectory", "ReproRecord", "TrajectoryWriter", "read_trajectories", "text_hash",
           "plain", "common_prefix"]


def text_hash(text: str | None) -> str | None:
    """Short sha256 of a text (chat templates, corpora) for reproducibility records."""
    if text is None:
        return None
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


@dataclass(slots=True)
class ReproRecord:
    """Everything needed to reproduce an episode.

    Fields added after the first release default to ``None`` ("not recorded"), so older files still load.
    """

    env_id: str
    env_version: int | None
    seed: int | None
    package_version: str
    dataset_hash: str | None = None
    image_digest: str | None = None
    model_id: str | None = None
    chat_template_hash: str | None = None
    env_kwargs: dict[str, Any] | None = None
    """The environment's constructor keywords as given (``gym.make`` kwargs), made plain by :func:`plain`."""
    reset_options: dict[str, Any] | None = None
    """The ``options`` of this episode's ``reset`` (plain)."""
    reward_weights: dict[str, float] | None = None
    """Weights in force: the env's ``reward_weights`` merged with the default 1.0 of every component it
    declares or this episode logged."""


_PLAIN_MAX_ITEMS = 64


def plain(value: Any, _depth: int = 0) -> Any:
    """A JSON-ready description of a configuration value, for :class:`ReproRecord`.

    Scalars and small containers are kept as they are (tuples become lists, paths strings, enums
    their values); dataclasses become ``{"__type__": name, **fields}``; long sequences and other
    objects (judges, corpora, callables) a short ``"<...>"`` description, never their whole ``repr``.
    """
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, enum.Enum):
        return plain(value.value, _depth)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if _depth >= 6:
        return f"<{type(value).__name__}>"
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {"__type__": type(value).__name__,
                **{f.name: plain(getattr(value, f.name), _depth + 1) for f in dataclasses.fields(value)}}
    if isinstance(value, dict):
        if len(value) > _PLAIN_MAX_ITEMS:
            return f"<dict of {len(value)} items>"
        return {str(k): plain(v, _depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else list(value)
        if len(items) > _PLAIN_MAX_ITEMS:
            kinds = sorted({type(x).__name__ for x in items})
            return f"<{type(value).__name__} of {len(items)} {'/'.join(kinds)}>"
        return [plain(x, _depth + 1) for x in items]
    if isinstance(value, type) or inspect.isfunction(value) or inspect.ismethod(value) or inspect.isbuiltin(value):
        return f"<{getattr(value, '__module__', '?')}.{getattr(value, '__qualname__', type(value).__name__)}>"
    return f"<{type(value).__module__}.{type(value).__qualname__} object>"


@dataclass(slots=True)
class Turn:
    """One assistant action and the environment's answer.

    ``prompt_ids`` are the tokens the policy was given for this turn, ``completion_ids`` exactly the
    tokens it generated (end-of-turn token included when generated) and ``logprobs`` their log-probs
    under the rollout policy. Token fields are ``None`` for agents that do not expose tokens.
    """

    index: int
    action: str
    observation: list[dict[str, Any]]
    reward: float
    reward_components: dict[str, float]
    terminated: bool = False
    truncated: bool = False
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    error: dict[str, str] | None = None
    prompt_ids: list[int] | None = None
    completion_ids: list[int] | None = None
    logprobs: list[float] | None = None
    info: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


@dataclass(slots=True)
class Trajectory:
    """A whole episode: opening messages, turns, the reset info and a reproducibility record."""

    env_id: str
    task_id: str
    seed: int | None
    initial_messages: list[dict[str, Any]]
    turns: list[Turn] = field(default_factory=list)
    reset_info: dict[str, Any] = field(default_factory=dict)
    repro: ReproRecord | None = None

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The whole conversation, opening messages first."""
        out = list(self.initial_messages)
        for t in self.turns:
            out.append({"role": "assistant", "content": t.action})
            out.extend(t.observation)
        return out

    @property
    def total_reward(self) -> float:
        return float(sum(t.reward for t in self.turns))

    @property
    def terminated(self) -> bool:
        return bool(self.turns) and self.turns[-1].terminated

    @property
    def truncated(self) -> bool:
        return bool(self.turns) and self.turns[-1].truncated

    @property
    def num_turns(self) -> int:
        return len(self.turns)

    def component_totals(self) -> dict[str, float]:
        """Sum of each named reward component over the episode."""
        out: dict[str, float] = {}
        for t in self.turns:
            for k, v in t.reward_components.items():
                out[k] = out.get(k, 0.0) + float(v)
        return out

    def to_dict(self) -> dict[str, Any]:
        """Every field, in full (each turn's ``prompt_ids`` whole); :meth:`to_record` is the compact file form."""
        return asdict(self)

    def to_record(self) -> dict[str, Any]:
        """The JSONL form (``FORMAT_VERSION``): :meth:`to_dict` plus ``format_version``, with each turn's
        ``prompt_ids`` stored as ``prompt_prefix`` (how many leading tokens equal the previous turn's
        ``prompt_ids + completion_ids``) and only the tokens after them, so a long reply or tool output is
        stored once, not again in every later turn's prompt. :meth:`from_dict` reads it back exactly."""
        d = self.to_dict()
        previous: list[int] | None = None
        for raw, turn in zip(self.turns, d["turns"]):
            prompt = raw.prompt_ids
            if prompt is not None:
                shared = common_prefix(previous, prompt) if previous is not None else 0
                turn["prompt_prefix"] = shared
                turn["prompt_ids"] = list(prompt[shared:])
            previous = None if prompt is None or raw.completion_ids is None else [*prompt, *raw.completion_ids]
        return {"format_version": FORMAT_VERSION, **d}

    def to_json(self) -> str:
        """One JSONL line: :meth:`to_record` as JSON."""
        return json.dumps(self.to_record(), ensure_ascii=False, default=_json_default)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Trajectory":
        """A trajectory from :meth:`to_dict` or :meth:`to_record` output, any format up to ``FORMAT_VERSION``
        (lines without ``format_version`` are the first format, with whole prompts)."""
        d = dict(d)
        version = d.pop("format_version", 1)
        if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= FORMAT_VERSION:
            raise ConfigError(f"trajectory format_version {version!r} is not one this rlvr reads (1 to "
                              f"{FORMAT_VERSION}); it was written by a newer rlvr: upgrade rlvr-gym to read it")
        turns: list[Turn] = []
        previous: list[int] | None = None
        for t in d.get("turns", []):
            t = dict(t)
            shared = t.pop("prompt_prefix", None)
            if shared is not None and t.get("prompt_ids") is not None:
                if shared and (previous is None or shared > len(previous)):
                    raise ConfigError(f"turn {t.get('index')} reuses {shared} tokens of the previous turn, which has "
                                      f"{0 if previous is None else len(previous)}: the line is damaged")
                t["prompt_ids"] = [*(previous or [])[:shared], *t["prompt_ids"]]
            turns.append(Turn(**t))
            prompt, completion = t.get("prompt_ids"), t.get("completion_ids")
            previous = None if prompt is None or completion is None else [*prompt, *completion]
        d["turns"] = turns
        d["repro"] = ReproRecord(**d["repro"]) if d.get("repro") else None
        return cls(**d)


FORMAT_VERSION = 2
"""The trajectory JSONL format written now (``format_version`` in every line). 1: no version field, whole
prompts in every turn; 2: ``format_version``, and prompts as ``prompt_prefix`` plus the new tokens."""


def common_prefix(a: Sequence[int], b: Sequence[int], limit: int | None = None) -> int:
    """The length of the longest common prefix of token lists ``a`` and ``b`` (at most ``limit``), compared
    64 tokens at a time."""
    limit = min(len(a), len(b)) if limit is None else min(limit, len(a), len(b))
    n, chunk = 0, 64
    while n + chunk <= limit and a[n : n + chunk] == b[n : n + chunk]:
        n += chunk
    while n < limit and a[n] == b[n]:
        n += 1
    return n


def _json_default(o: Any) -> Any:
    if hasattr(o, "getbands") and hasattr(o, "size"):  # a PIL image (an image content part): its shape, not its pixels
        return f"<image {o.mode} {o.size[0]}x{o.size[1]}>"
    if hasattr(o, "tolist"):
        return o.tolist()
    if hasattr(o, "item"):
        return o.item()
    return repr(o)


class TrajectoryWriter:
    """Append trajectories to a JSONL file, one line per finished episode, flushed and fsynced.

    Thread-safe. Use as a context manager or call :meth:`close`.
    """

    def __init__(self, path: str | os.PathLike[str], *, fsync: bool = True) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(self.path, "a", encoding="utf-8")
        self._lock = threading.Lock()
        self._fsync = fsync
        self.count = 0

    def write(self, traj: Trajectory) -> None:
        line = traj.to_json() + "\n"
        with self._lock:
            self._f.write(line)
            self._f.flush()
            if self._fsync:
                os.fsync(self._f.fileno())
            self.count += 1

    def close(self) -> None:
        with self._lock:
            if not self._f.closed:
                self._f.close()

    def __enter__(self) -> "TrajectoryWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_trajectories(path: str | os.PathLike[str]) -> Iterator[Trajectory]:
    """Read a JSONL file written by :class:`TrajectoryWriter`; a torn last line (crash mid-write) is skipped.

    Any other bad line is a :class:`~rlvr.errors.ConfigError` naming ``path:line`` (the one JSONL reader,
    ``rlvr._jsonl``)."""
    for where, obj in read_jsonl_located(path, what="trajectory", plural="trajectories", allow_empty=True,
                                         skip_torn_tail=True):
        try:
            yield Trajectory.from_dict(obj)
        except ConfigError as e:
            raise ConfigError(f"{where}: {e}") from e
        except TypeError as e:  # a field this version does not know, or one missing
            raise ConfigError(f"{where}: not a trajectory record ({e}); expected the fields of "
                              f"rlvr.agents.trajectory.Trajectory (format_version 1 to {FORMAT_VERSION})") from e
