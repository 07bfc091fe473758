"""Software-engineering tasks in sandboxes: ``rlvr/SWE-v0``.

Layers, bottom up:

* :mod:`~rlvr.envs.swe.sandbox`: the sandbox interface shared by the backends (config, results, tar
  file transfer, owner labels, maintenance scripts); :mod:`~rlvr.envs.swe.docker_backend`: Docker
  sandboxes (no network, cgroup limits, non-root, read-only root, labels and a reaper), driven over
  the attach transport of :mod:`~rlvr.envs.swe.attach`; :mod:`~rlvr.envs.swe.bwrap_backend`: a
  bubblewrap fallback with the same interface;
* :mod:`~rlvr.envs.swe.pool`: a thread-safe warm pool that restores sandboxes with ``git reset``;
* :mod:`~rlvr.envs.swe.images`: offline image layering (debootstrap base, environment, instance);
* :mod:`~rlvr.envs.swe.tasks`: the SWE-bench instance schema, a SWE-bench / SWE-Gym JSONL loader, grading;
* :mod:`~rlvr.envs.swe.generator`: SWE-smith-style bugs injected into small shipped projects;
* :mod:`~rlvr.envs.swe.agent_tools` and :mod:`~rlvr.envs.swe.env`: the agent's tools and :class:`SWEEnv`.

Importing this package starts nothing; engines are contacted when an environment resets.
"""

from rlvr.envs.swe.bwrap_backend import BwrapBackend
from rlvr.envs.swe.docker_backend import DockerBackend, reap_leaked
from rlvr.envs.swe.env import SWEEnv, SWERewardConfig
from rlvr.envs.swe.errors import EngineUnavailable, ImageError, PoolExhausted, SandboxError, SandboxLost, TaskError
from rlvr.envs.swe.generator import SWESmithGenerator, list_projects
from rlvr.envs.swe.pool import SandboxPool
from rlvr.envs.swe.sandbox import ExecResult, Sandbox, SandboxConfig
from rlvr.envs.swe.tasks import GradeReport, SWETask, grade, load_swe_jsonl

__all__ = [
    "SWEEnv", "SWERewardConfig", "SWETask", "SWESmithGenerator", "GradeReport", "grade", "load_swe_jsonl",
    "list_projects", "Sandbox", "SandboxConfig", "SandboxPool", "ExecResult", "DockerBackend", "BwrapBackend",
    "reap_leaked", "SandboxError", "EngineUnavailable", "SandboxLost", "ImageError", "PoolExhausted", "TaskError",
]
