"""Exceptions and typed error causes.

Exception tree: every exception class rlvr defines derives from :class:`RLVRError` and is named here
(``tests/test_errors.py`` checks both)::

    RLVRError
    ├── ConfigError (also ValueError)   bad configuration, keyword arguments or input files; raised before work starts
    │   ├── rlvr.envs.swe.errors.TaskError        a SWE task record is malformed or its repository / image is missing
    │   └── rlvr._tar.UnsafeArchiveMember (also tarfile.TarError)  a tar member that would leave its destination
    ├── ModelLoadError                  a model or tokenizer could not be located, verified or loaded
    ├── AgentError                      an agent backend failed (server down, bad response, timeouts exhausted)
    ├── NoOracleError                   an environment has no gold action for its current state
    ├── EpisodeStateError (also RuntimeError)  step() after the episode ended, or before reset()
    ├── rlvr.envs.deepsearch.ToolInputError (also ValueError)  a DeepSearch tool call it cannot serve
    │                                   (unknown doc id, empty query): raised inside a tool, shown to the model
    ├── rlvr.envs.swe.errors.SandboxError         a sandbox failure that is not the agent's doing (also the
    │   │                                         parent of the four SWE infrastructure errors below)
    │   ├── EngineUnavailable           no container engine answers          (also InfrastructureError)
    │   ├── SandboxLost                 a sandbox died or vanished mid-use  (also InfrastructureError)
    │   ├── ImageError                  an image is missing or its build failed (also InfrastructureError)
    │   └── PoolExhausted               no sandbox became free in time      (also InfrastructureError)
    ├── rlvr.envs.swe.attach.ChannelClosed        the engine ended a sandbox's attach stream (internal: the
    │                                   Docker sandbox turns it into SandboxLost)
    ├── rlvr.rewards.carr.JudgeReplyError (also ValueError)  a rubric judge's replies stayed unparsable
    │                                   (internal: the rubric is then marked not applicable)
    ├── rlvr.integrations.trl.ToolCallFailed       a tool call through TRL's environment_factory failed (TRL shows
    │                                   its message to the model as the tool's error)
    ├── rlvr.integrations.openenv.RemoteEnvError   an environment server refused a call (its message says why)
    ├── rlvr.bench.schemes.NotApplicable           a reward scheme needs a signal this group does not carry
    │                                   (internal: the benchmark reports the scheme as not applicable)
    └── InfrastructureError             a service an environment depends on failed (retrieval server,
        │                               container engine, sandbox): not the model's fault
        ├── rlvr.envs.deepsearch.RetrievalError   the retrieval backend could not answer properly
        ├── rlvr.integrations.openenv.RemoteEnvUnavailable  an environment server is unreachable or closed the
        │                               connection mid-episode
        └── EngineUnavailable, SandboxLost, ImageError, PoolExhausted (rlvr.envs.swe.errors; also SandboxError)

Every input file rlvr reads line by line (corpora, task files, BFCL data, trajectories) goes through one
JSON Lines reader, ``rlvr._jsonl``: a bad line is a :class:`ConfigError` naming ``path:line``, what was expected and
how to fix it.

Problems caused by *model output* are never raised: they become error observations inside the
episode and an :class:`ErrorKind` recorded in ``info["error"]``.

An :class:`InfrastructureError` raised by a tool (or a task hook) during ``step`` is not the model's
fault either: :class:`~rlvr.envs.core.AgentEnv` turns it into an unpenalised turn with
``info["error"]["kind"] == "infrastructure"`` that ends the episode (truncated) with
``info["infra_failure"]`` holding the cause and ``info["success"]`` False; rollout summaries count
such episodes apart (``infra_failures``) and the trainer keeps them out of its batches.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from enum import StrEnum
from typing import Iterable


class RLVRError(Exception):
    """Base class of every exception rlvr raises on purpose."""


class ConfigError(RLVRError, ValueError):
    """Invalid configuration or keyword argument."""


class ModelLoadError(RLVRError):
    """A model or tokenizer could not be located, verified or loaded."""


class AgentError(RLVRError):
    """An agent backend failed to produce an action."""


class NoOracleError(RLVRError):
    """The environment cannot provide a gold action for its current state."""


class EpisodeStateError(RLVRError, RuntimeError):
    """The episode is not in a state that allows this call."""


class InfrastructureError(RLVRError):
    """A service an environment depends on failed (retrieval server down or answering the wrong shape,
    container engine gone, sandbox lost). Raise it from tools, retrievers and sandboxes: the
    environment then ends the episode as failed by infrastructure instead of penalising the model."""


class ErrorKind(StrEnum):
    """Typed cause of a malformed or failed action, recorded in ``info["error"]["kind"]``."""

    PARSE = "parse_error"  # a tool call that is not valid JSON or has the wrong shape
    UNKNOWN_TOOL = "unknown_tool"
    INVALID_ARGUMENTS = "invalid_arguments"
    TOOL_EXCEPTION = "tool_exception"
    TOOL_TIMEOUT = "tool_timeout"
    NO_ACTION = "no_action"  # neither a tool call nor an answer
    ACTION_TOO_LONG = "action_too_long"
    INFRASTRUCTURE = "infrastructure"  # a service the env depends on failed: not the model's fault


@dataclass(frozen=True, slots=True)
class StepError:
    """One typed failure inside a turn: the cause and a message meant for the model."""

    kind: ErrorKind
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"kind": str(self.kind), "message": self.message}


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return ``" (did you mean 'x'?)"`` for the closest choice, or ``""``."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
