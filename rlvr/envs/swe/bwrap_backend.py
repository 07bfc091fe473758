"""The bubblewrap backend: sandboxes without a container engine.

``bubblewrap`` namespaces with a read-only root, a writable work tree bound at ``/testbed``, no
network, rlimits instead of cgroups. The root is the sandbox runtime: the base image's own file
system (Debian's python3, pytest and git), unpacked by ``containers/provision.sh`` into
:func:`default_bwrap_rootfs`, never the host's interpreter. Weaker isolation than Docker: no memory
or pids cgroup (RLIMIT_NPROC is ignored for root), the host kernel is shared, and processes never
outlive one command or their driver (``--die-with-parent``).
"""

from __future__ import annotations

import io
import os
import posixpath
import shutil
import subprocess
import tarfile
import tempfile
import uuid
from pathlib import Path
from typing import Sequence

from rlvr._tar import extract_data
from rlvr.caches import cache_dir
from rlvr.envs.swe.errors import EngineUnavailable, SandboxError, SandboxLost
from rlvr.envs.swe.sandbox import (
    AGENT_UID,
    HOME,
    RUNNER_PATH,
    WORKDIR,
    Backend,
    Sandbox,
    SandboxConfig,
    _owner_alive,
    _parse_size,
    owner_label,
)
from rlvr.errors import ConfigError

__all__ = ["BwrapBackend", "BwrapSandbox", "default_bwrap_rootfs", "bwrap_runtime_ready", "RUNNER_PATH_BWRAP"]

RUNNER_PATH_BWRAP = "/run/rlvr-exec"
_BWRAP_PREFIX = "rlvr-bwrap-"


class BwrapSandbox(Sandbox):
    """A sandbox made of host directories mounted into ``bwrap`` namespaces for each command.

    Weaker than a container: no memory or pids cgroups (rlimits only), the host kernel and a shared
    read-only root filesystem; no network (own network namespace); processes end with their command.
    """

    backend_name = "bwrap"

    def __init__(self, backend: "BwrapBackend", image: str, config: SandboxConfig) -> None:
        super().__init__(image, config)
        self.backend = backend
        self.root = Path(tempfile.mkdtemp(prefix=_BWRAP_PREFIX))
        self.id = uuid.uuid4().hex
        self.dirs = {WORKDIR: self.root / "testbed", "/tmp": self.root / "tmp", HOME: self.root / "home"}
        for d in self.dirs.values():
            d.mkdir()
        (self.root / "owner").write_text(owner_label())

    def _host_path(self, path: str) -> Path:
        norm = posixpath.normpath(path)
        for prefix, host in self.dirs.items():
            if norm == prefix or norm.startswith(prefix + "/"):
                return host / norm[len(prefix):].lstrip("/")
        raise SandboxError(f"{path!r} is outside the sandbox's writable directories ({', '.join(self.dirs)})")

    def _exec_raw(self, argv, *, workdir, env, timeout_s):
        if self.closed or not self.root.exists():
            self.broken = True
            raise SandboxLost(f"bwrap sandbox {self.id[:12]} was removed")
        b = self.backend
        cmd = [b.bwrap, "--unshare-all", "--die-with-parent", "--new-session", *b.root_args,
               "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/run", "--ro-bind", b.runner, RUNNER_PATH_BWRAP,
               "--bind", str(self.dirs["/tmp"]), "/tmp", "--bind", str(self.dirs[HOME]), HOME,
               "--bind", str(self.dirs[WORKDIR]), WORKDIR, "--uid", str(AGENT_UID), "--gid", str(AGENT_UID),
               "--hostname", "sandbox", "--chdir", workdir, "--clearenv"]
        full_env = {"PATH": b.path, "HOME": HOME, "USER": "agent", "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1",
                    "PIP_NO_INDEX": "1", "TERM": "dumb", **(env or {})}
        for k, v in full_env.items():
            cmd += ["--setenv", k, v]
        argv = [RUNNER_PATH_BWRAP if a == RUNNER_PATH else a for a in argv]
        try:
            proc = subprocess.run(cmd + ["--"] + argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  timeout=timeout_s, check=False)
        except subprocess.TimeoutExpired as e:
            raise SandboxLost(f"bwrap sandbox {self.id[:12]} did not answer within {timeout_s:g} s") from e
        return proc.returncode, proc.stdout

    def _runner_limits(self) -> list[str]:
        return ["--rlimit-as", str(self.config.memory_bytes), "--rlimit-nproc", str(self.config.pids),
                "--rlimit-fsize", str(_parse_size(self.config.tmp_size) * 4)]

    def put_archive(self, dest, data):
        self._check_open()
        target = self._host_path(dest)
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tf:
            extract_data(tf, target)

    def get_archive(self, path):
        self._check_open()
        host = self._host_path(path)
        if not host.exists() and not host.is_symlink():
            raise FileNotFoundError(path)
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tf:
            tf.add(host, arcname=posixpath.basename(path.rstrip("/")) or ".", recursive=True)
        return buf.getvalue()

    def alive(self) -> bool:
        return not self.closed and self.root.exists()

    def _destroy(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def default_bwrap_rootfs() -> Path:
    """Where ``containers/provision.sh`` unpacks the sandbox runtime for the bubblewrap backend:
    ``$RLVR_BWRAP_ROOTFS``, else ``sandbox-rootfs`` in the rlvr cache (``$RLVR_CACHE``, default
    ``$XDG_CACHE_HOME/rlvr`` or ``~/.cache/rlvr``)."""
    explicit = os.environ.get("RLVR_BWRAP_ROOTFS")
    if explicit:
        return Path(explicit)
    return cache_dir() / "sandbox-rootfs"


def bwrap_runtime_ready() -> bool:
    """Whether the sandbox runtime is unpacked at :func:`default_bwrap_rootfs` (its python3 is there)."""
    return Path(default_bwrap_rootfs(), "usr", "bin", "python3").exists()


class BwrapBackend(Backend):
    """Sandboxes as ``bubblewrap`` namespaces (fallback when no Docker engine is available).

    Args:
        rootfs: the read-only root filesystem. Default: the sandbox runtime at
            :func:`default_bwrap_rootfs`, the base image's file system (python3, pytest, git) that
            ``containers/provision.sh`` (run by ``make test``) unpacks there, so commands never depend on
            what the host happens to have installed. ``"/"`` shares the host's root instead (its
            ``python3`` must then have pytest).
        extra_path: directories put first on ``PATH`` inside (default: none).
        config: default :class:`SandboxConfig`.
        reap: remove sandbox directories of dead owners when the backend starts.
    """

    name = "bwrap"

    def __init__(self, rootfs: str | os.PathLike[str] | None = None, *, extra_path: Sequence[str] | None = None,
                 config: SandboxConfig | None = None, reap: bool = True) -> None:
        self.bwrap = shutil.which("bwrap") or ""
        if not self.bwrap:
            raise EngineUnavailable("bubblewrap is missing: install it with 'apt-get install -y bubblewrap'")
        if rootfs is None:
            rootfs = default_bwrap_rootfs()
            if not bwrap_runtime_ready():
                raise EngineUnavailable(
                    f"the bubblewrap sandbox runtime is missing: expected a root file system with python3 and pytest "
                    f"at {str(rootfs)!r}. Create it with 'bash containers/provision.sh' (as root; 'make test' runs it), "
                    "point RLVR_BWRAP_ROOTFS at one, or pass rootfs='/' to use the host's own root")
        self.rootfs = str(rootfs)
        if not Path(self.rootfs, "bin").exists():
            raise ConfigError(f"rootfs {self.rootfs!r} does not look like a root filesystem (no bin/)")
        self.config = config or SandboxConfig()
        self.runner = str(Path(__file__).with_name("runner.py"))
        extra_path = list(extra_path or [])
        self.path = ":".join([*extra_path, "/usr/local/bin", "/usr/bin", "/bin"])
        # The new root is a tmpfs holding read-only binds of the rootfs's top-level entries, so that
        # mount points such as /testbed and /home/agent can be created in it.
        self.root_args: list[str] = []
        skip = {"proc", "dev", "sys", "tmp", "run", "home", "testbed", "mnt", "media", "lost+found"}
        for entry in sorted(os.scandir(self.rootfs), key=lambda e: e.name):
            if entry.name in skip:
                continue
            if entry.is_symlink():
                self.root_args += ["--symlink", os.readlink(entry.path), "/" + entry.name]
            elif entry.is_dir():
                self.root_args += ["--ro-bind", entry.path, "/" + entry.name]
        probe = subprocess.run([self.bwrap, "--unshare-all", *self.root_args, "--dev", "/dev",
                                "--proc", "/proc", "true"], capture_output=True, text=True, check=False)
        if probe.returncode != 0:
            raise EngineUnavailable(f"bubblewrap cannot create namespaces here: {probe.stderr.strip()} "
                                    "(unprivileged user namespaces may be disabled)")
        if reap:
            self.reap_leaked()

    def reap_leaked(self) -> list[str]:
        """Remove the directories of bubblewrap sandboxes whose owning process on this host is dead.

        Their processes are already gone (``--die-with-parent``); this frees the disk they used.
        Returns the removed directories."""
        removed = []
        for d in Path(tempfile.gettempdir()).glob(_BWRAP_PREFIX + "*"):
            try:
                owner = (d / "owner").read_text()
            except OSError:
                continue
            if not _owner_alive(owner):
                shutil.rmtree(d, ignore_errors=True)
                removed.append(str(d))
        return removed

    def create(self, image: str = "host", config: SandboxConfig | None = None) -> BwrapSandbox:
        return BwrapSandbox(self, image, config or self.config)
