"""Exceptions of the SWE sandbox layer.

These classes sit in rlvr's one exception tree, documented in :mod:`rlvr.errors`: ``SandboxError``
derives from :class:`~rlvr.errors.RLVRError` and ``TaskError`` from :class:`~rlvr.errors.ConfigError`::

    SandboxError
    ├── EngineUnavailable   no container engine answers (start one: containers/provision.sh)
    ├── SandboxLost         a sandbox died or vanished mid-use (killed, engine restarted, wedged)
    ├── ImageError          an image is missing and cannot be built, or a build failed
    └── PoolExhausted       no sandbox became free within the acquire timeout
    TaskError (a ConfigError, so also ValueError)  a task record is malformed or cannot be materialised

``EngineUnavailable``, ``SandboxLost``, ``ImageError`` and ``PoolExhausted`` are also
:class:`rlvr.errors.InfrastructureError`: raised during ``step`` they end the episode as failed by
infrastructure (no penalty, kept out of training). A plain ``SandboxError`` (for example a patch
that is too large) is not: it may come from what the agent did.

Problems caused by the *agent* (a command that loops, floods output, writes outside the work tree)
are never raised: they come back as :class:`~rlvr.envs.swe.sandbox.ExecResult` flags and error
observations.
"""

from __future__ import annotations

from rlvr.errors import ConfigError, InfrastructureError, RLVRError

__all__ = ["SandboxError", "EngineUnavailable", "SandboxLost", "ImageError", "PoolExhausted", "TaskError"]


class SandboxError(RLVRError):
    """Base class of sandbox failures that are not the agent's doing."""


class EngineUnavailable(SandboxError, InfrastructureError):
    """No container engine answers."""


class SandboxLost(SandboxError, InfrastructureError):
    """The sandbox is gone or unusable (container killed or removed, engine restarted, exec failed)."""


class ImageError(SandboxError, InfrastructureError):
    """An image is missing and cannot be built, or its build failed."""


class PoolExhausted(SandboxError, InfrastructureError):
    """Every sandbox of a pool stayed busy for the whole acquire timeout."""


class TaskError(ConfigError):
    """A task record is malformed, or its repository / image cannot be found."""
