"""Test seams for the SWE sandbox layer: engine checks that honour CI, and leak accounting.

``require_docker()`` returns a :class:`~rlvr.envs.swe.docker_backend.DockerBackend`, or skips the calling
test when no engine answers; when the ``CI`` environment variable is set, a missing engine fails the
test instead (CI starts a real engine, so its absence is a bug).
"""

from __future__ import annotations

import os

from rlvr.envs.swe.bwrap_backend import BwrapBackend, bwrap_runtime_ready
from rlvr.envs.swe.docker_backend import DockerBackend
from rlvr.envs.swe.errors import EngineUnavailable

__all__ = ["require_docker", "require_bwrap", "in_ci", "leaked_containers"]


def in_ci() -> bool:
    """Whether the ``CI`` environment variable is set to a true value."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def require_docker(**kwargs) -> DockerBackend:
    """A Docker backend, or ``pytest.skip`` (``pytest.fail`` under CI) when no engine answers."""
    import pytest

    try:
        return DockerBackend(**kwargs)
    except EngineUnavailable as e:
        if in_ci():
            pytest.fail(f"CI is set but no Docker engine answers: {e}", pytrace=False)
        pytest.skip(f"no Docker engine: {e}")


def require_bwrap(**kwargs) -> BwrapBackend:
    """A bubblewrap backend, or ``pytest.skip`` when bubblewrap cannot create namespaces here.

    A missing sandbox runtime (``containers/provision.sh`` not run) fails the test under CI, which
    provisions it, and skips it elsewhere."""
    import pytest

    try:
        return BwrapBackend(**kwargs)
    except EngineUnavailable as e:
        if in_ci() and kwargs.get("rootfs") is None and not bwrap_runtime_ready():
            pytest.fail(f"CI is set but the bubblewrap sandbox runtime is missing: {e}", pytrace=False)
        pytest.skip(f"bubblewrap unusable: {e}")


def leaked_containers(backend: DockerBackend, owner: str | None = None) -> list[str]:
    """Ids of rlvr containers owned by ``owner`` (default: this process) that still exist."""
    from rlvr.envs.swe.docker_backend import _managed
    from rlvr.envs.swe.sandbox import owner_label

    return [c["Id"] for c in _managed(backend.client, owner or owner_label())]
