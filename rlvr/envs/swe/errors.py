"""Exceptions of the SWE sandbox layer.

Exception tree (all derive from :class:`rlvr.errors.RLVRError`)::

    SandboxError
    ├── EngineUnavailable   no container engine answers (start one: containers/provision.sh)
    ├── SandboxLost         a sandbox died or vanished mid-use (killed, engine restarted, wedged)
    ├── ImageError          an image is missing and cannot be built, or a build failed
    └── PoolExhausted       no sandbox became free within the acquire timeout
    TaskError (also ValueError)  a task record is malformed or cannot be materialised

Problems caused by the *agent* (a command that loops, floods output, writes outside the work tree)
are never raised: they come back as :class:`~rlvr.envs.swe.sandbox.ExecResult` flags and error
observations.
"""

from __future__ import annotations

from rlvr.errors import RLVRError

__all__ = ["SandboxError", "EngineUnavailable", "SandboxLost", "ImageError", "PoolExhausted", "TaskError"]


class SandboxError(RLVRError):
    """Base class of sandbox failures that are not the agent's doing."""


class EngineUnavailable(SandboxError):
    """No container engine answers."""


class SandboxLost(SandboxError):
    """The sandbox is gone or unusable (container killed or removed, engine restarted, exec failed)."""


class ImageError(SandboxError):
    """An image is missing and cannot be built, or its build failed."""


class PoolExhausted(SandboxError):
    """Every sandbox of a pool stayed busy for the whole acquire timeout."""


class TaskError(RLVRError, ValueError):
    """A task record is malformed, or its repository / image cannot be found."""
