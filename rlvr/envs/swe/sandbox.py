"""Sandboxes: isolated places to run an agent's commands against a repository work tree.

Two backends share one interface, :class:`Sandbox`:

* :class:`DockerBackend` (default): one container per sandbox through the ``docker`` SDK. No network
  (``network_mode="none"``), memory / pids / CPU limits, every capability dropped,
  ``no-new-privileges``, a read-only root filesystem, the unprivileged user ``agent`` (uid 1000), a
  writable work tree on a volume at ``/testbed`` and small ``tmpfs`` mounts for ``/tmp`` and the home
  directory. Files move in and out as tar archives. Every container carries the labels
  ``rlvr.managed`` and ``rlvr.owner`` (host, pid and start time of the owning process) so that
  :func:`reap_leaked` can remove containers left behind by a process that died.
* :class:`BwrapBackend` (fallback without Docker): ``bubblewrap`` namespaces with a read-only root,
  a writable work tree bound at ``/testbed``, no network, rlimits instead of cgroups. The root is the
  sandbox runtime: the base image's own file system (Debian's python3, pytest and git), unpacked by
  ``containers/provision.sh`` into :func:`default_bwrap_rootfs`, never the host's interpreter.
  Weaker isolation: no memory or pids cgroup (RLIMIT_NPROC is ignored for root), the host kernel is
  shared, and processes never outlive one command or their driver (``--die-with-parent``).

Sandboxes die with their driver: a Docker sandbox's PID 1 exits when the attached stdin its driver
holds reaches end of file (the engine closes it when the driver exits or is killed, even by SIGKILL)
and the container removes itself (``auto_remove``); a new backend or pool also reaps what dead
owners left (:func:`reap_leaked`, :meth:`BwrapBackend.reap_leaked`).

Commands run through the runner (:mod:`rlvr.envs.swe.runner`) inside the sandbox, which enforces the
per-command timeout and truncates output. In a Docker sandbox the runner is the container's PID 1 and
takes commands over the container's attached stdin (``transport="attach"``: about a millisecond per
round trip, no process per command on the host side); ``transport="exec"`` uses one ``docker exec``
per command instead. Either way, a command that loops, floods output or forks without end
comes back as an :class:`ExecResult` with ``timed_out`` / ``truncated`` set, not as an exception.
Engine and container failures raise :class:`~rlvr.envs.swe.errors.SandboxLost` or
:class:`~rlvr.envs.swe.errors.EngineUnavailable`.
"""

from __future__ import annotations

import io
import json
import os
import posixpath
import shutil
import socket
import subprocess
import tarfile
import tempfile
import threading
import time
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

from rlvr.envs.swe.errors import EngineUnavailable, ImageError, SandboxError, SandboxLost
from rlvr.envs.swe.runner import MAGIC as _MAGIC
from rlvr.envs.swe.runner import SENTINEL
from rlvr.errors import ConfigError

__all__ = [
    "SandboxConfig", "ExecResult", "Sandbox", "Backend", "DockerBackend", "DockerSandbox", "BwrapBackend",
    "BwrapSandbox", "make_backend", "make_tar", "read_tar", "reap_leaked", "owner_label", "WORKDIR",
    "RUNNER_PATH", "AGENT_UID", "default_bwrap_rootfs",
]

WORKDIR = "/testbed"
RUNNER_PATH = "/opt/rlvr/bin/rlvr-exec"
AGENT_UID = 1000
HOME = "/home/agent"
LABEL_MANAGED = "rlvr.managed"
LABEL_OWNER = "rlvr.owner"
GIT_DATE = "2000-01-01T00:00:00+0000"
# Every git command the sandbox layer runs itself ignores repository hooks and fsmonitor settings.
GIT = "git -c core.hooksPath=/dev/null -c core.fsmonitor=false -c gc.auto=0"
GIT_ENV = {
    "GIT_AUTHOR_NAME": "rlvr", "GIT_AUTHOR_EMAIL": "rlvr@localhost", "GIT_AUTHOR_DATE": GIT_DATE,
    "GIT_COMMITTER_NAME": "rlvr", "GIT_COMMITTER_EMAIL": "rlvr@localhost", "GIT_COMMITTER_DATE": GIT_DATE,
}
_SIZE_UNITS = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def _parse_size(text: str) -> int:
    t = text.strip().lower().rstrip("b")
    if t and t[-1] in _SIZE_UNITS:
        return int(float(t[:-1]) * _SIZE_UNITS[t[-1]])
    return int(t)


@dataclass(frozen=True)
class SandboxConfig:
    """Resource limits and budgets of one sandbox."""

    memory: str = "1g"
    """Memory limit (docker syntax: ``"512m"``, ``"1g"``), tmpfs contents included; no swap."""
    pids: int = 256
    """Maximum number of processes and threads (a fork bomb stops here)."""
    cpus: float = 1.0
    """CPU quota in cores."""
    command_timeout_s: float = 30.0
    """Default wall-clock limit of one command; the runner kills the command's process group after it."""
    max_output_bytes: int = 32_000
    """Output kept per command (head and tail); the middle is replaced by a visible marker."""
    tmp_size: str = "128m"
    """Size of the ``/tmp`` tmpfs (and of the home directory tmpfs)."""
    client_timeout_s: float = 900.0
    """HTTP timeout towards the engine: the backstop when the engine itself hangs."""
    network: Literal["none"] = "none"
    """Sandboxes never get a network; the only accepted value is ``"none"``."""
    transport: Literal["attach", "exec"] = "attach"
    """Docker only. ``"attach"``: commands go to the container's PID 1 over its attached stdin (about a
    millisecond per round trip); ``"exec"``: one ``docker exec`` per command (tens of milliseconds)."""

    def __post_init__(self) -> None:
        try:
            mem = _parse_size(self.memory)
            _parse_size(self.tmp_size)
        except ValueError as e:
            raise ConfigError(f"SandboxConfig sizes must look like '512m' or '1g'; got memory={self.memory!r}, "
                              f"tmp_size={self.tmp_size!r}") from e
        if mem < 64 << 20:
            raise ConfigError(f"SandboxConfig.memory must be at least 64m, got {self.memory!r}")
        if self.pids < 16:
            raise ConfigError(f"SandboxConfig.pids must be >= 16 (git and pytest need a few), got {self.pids}")
        if not 0 < self.cpus <= 64:
            raise ConfigError(f"SandboxConfig.cpus must be in (0, 64], got {self.cpus}")
        if self.command_timeout_s <= 0 or self.max_output_bytes < 1024:
            raise ConfigError("SandboxConfig needs command_timeout_s > 0 and max_output_bytes >= 1024; got "
                              f"{self.command_timeout_s} and {self.max_output_bytes}")
        if self.transport not in ("attach", "exec"):
            raise ConfigError(f"SandboxConfig.transport must be 'attach' or 'exec', got {self.transport!r}")
        if self.network != "none":
            raise ConfigError(f"SandboxConfig.network must be 'none' (sandboxes get no network), got {self.network!r}")

    @property
    def memory_bytes(self) -> int:
        return _parse_size(self.memory)


@dataclass(frozen=True, slots=True)
class ExecResult:
    """The outcome of one command in a sandbox."""

    exit_code: int
    output: str
    timed_out: bool = False
    truncated: bool = False
    output_bytes: int = 0
    killed_for_output: bool = False
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out

    def render(self, timeout_s: float | None = None) -> str:
        """Text for the model: the output plus a footer on non-zero exit, timeout or truncation."""
        text = self.output
        notes = []
        if self.timed_out:
            limit = f" after {timeout_s:g} s" if timeout_s else ""
            notes.append(f"command timed out{limit} and was killed; run long jobs with a smaller scope")
        elif self.killed_for_output:
            notes.append(f"command killed after {self.output_bytes} bytes of output; filter it (e.g. | head)")
        if self.truncated and not self.killed_for_output:
            notes.append(f"output truncated: {self.output_bytes} bytes in total")
        if self.exit_code != 0 and not self.timed_out:
            notes.append(f"exit code {self.exit_code}")
        if notes:
            text = (text.rstrip("\n") + "\n" if text else "") + "[" + "; ".join(notes) + "]"
        return text or "(no output)"


def _parse_runner_output(raw: bytes, duration: float) -> ExecResult:
    text = raw.decode("utf-8", errors="replace")
    body, sep, trailer = text.rpartition("\n" + SENTINEL)
    if not sep:
        raise SandboxLost("the sandbox runner ended without reporting a result (it was probably killed); "
                          f"last output: {text[-300:]!r}")
    info = json.loads(trailer.strip())
    return ExecResult(int(info["exit_code"]), body, bool(info["timed_out"]), bool(info["truncated"]),
                      int(info["output_bytes"]), bool(info["killed_for_output"]), duration)


# --------------------------------------------------------------------------- tar helpers
def make_tar(files: Mapping[str, bytes | str], *, uid: int = AGENT_UID, gid: int = AGENT_UID, mode: int = 0o644,
             mtime: int | None = None) -> bytes:
    """A tar archive of ``{relative path: content}`` with explicit parent directories, owned by ``uid``.

    ``mtime`` defaults to now: git's change detection trusts timestamps, so rewritten files must look new.
    """
    mtime = int(time.time()) if mtime is None else mtime
    buf = io.BytesIO()
    dirs: set[str] = set()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tf:
        for path in sorted(files):
            rel = posixpath.normpath(path).lstrip("/")
            if rel in ("", ".") or rel.startswith("../") or rel == "..":
                raise ConfigError(f"archive path must stay inside its destination, got {path!r}")
            parts = rel.split("/")
            for i in range(1, len(parts)):
                d = "/".join(parts[:i])
                if d not in dirs:
                    dirs.add(d)
                    ti = tarfile.TarInfo(d)
                    ti.type, ti.mode, ti.uid, ti.gid, ti.mtime = tarfile.DIRTYPE, 0o755, uid, gid, mtime
                    tf.addfile(ti)
            data = files[path].encode() if isinstance(files[path], str) else bytes(files[path])
            ti = tarfile.TarInfo(rel)
            ti.size, ti.mode, ti.uid, ti.gid, ti.mtime = len(data), mode, uid, gid, mtime
            tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def read_tar(data: bytes) -> dict[str, bytes | None]:
    """``{member name: content}`` of a tar archive (``None`` for directories, links and other non-files)."""
    out: dict[str, bytes | None] = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tf:
        for m in tf.getmembers():
            f = tf.extractfile(m) if m.isfile() else None
            out[m.name] = f.read() if f is not None else None
    return out


# --------------------------------------------------------------------------- ownership labels
def _proc_start_ticks(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return "0"


def owner_label(pid: int | None = None) -> str:
    """``host/pid/start-ticks`` of a process: identifies the owner of a sandbox across pid reuse."""
    pid = os.getpid() if pid is None else pid
    return f"{socket.gethostname()}/{pid}/{_proc_start_ticks(pid)}"


def _owner_alive(label: str) -> bool:
    try:
        host, pid_s, ticks = label.rsplit("/", 2)
        pid = int(pid_s)
    except ValueError:
        return False
    if host != socket.gethostname():
        return True  # not ours to judge
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return _proc_start_ticks(pid) == ticks


# --------------------------------------------------------------------------- scripts run inside sandboxes
# ``kill -9 -1`` signals every process of the agent user except this shell and PID 1; it keeps
# succeeding while killed processes linger as zombies, so looping on it (builtins only: no fork
# while a fork bomb may still hold the pids limit) waits until PID 1 has reaped them all.
_KILL_ALL = "for ((i = 0; i < 200000; i++)); do kill -9 -1 2>/dev/null || break; done"

_CLEAN_DIRS = f"/tmp {HOME} /dev/shm"
# Empty the scratch directories; only when that fails (the agent removed permissions) fix modes first.
_WIPE_SCRATCH = (f"find {_CLEAN_DIRS} -mindepth 1 -delete 2>/dev/null || "
                 f"{{ chmod -R u+rwX {_CLEAN_DIRS} 2>/dev/null; find {_CLEAN_DIRS} -mindepth 1 -delete 2>/dev/null; }}")

_RESET_SCRIPT = f"""
{_KILL_ALL}
{_WIPE_SCRATCH}
cd {WORKDIR} || exit 3
reset() {{ {GIT} reset -q --hard "$1" && {GIT} clean -qfdx; }}
reset "$1" 2>/dev/null || {{ chmod -R u+rwX . 2>/dev/null; reset "$1"; }} || exit 4
case "$1" in
  [0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]*) [ ${{#1}} = 40 ] && echo "$1" && exit 0 ;;
esac
{GIT} rev-parse HEAD
"""

_WIPE_SCRIPT = f"""
{_KILL_ALL}
{_WIPE_SCRATCH}
find {WORKDIR} -mindepth 1 -delete 2>/dev/null || {{ chmod -R u+rwX {WORKDIR} 2>/dev/null; find {WORKDIR} -mindepth 1 -delete 2>/dev/null; }}
[ -z "$(ls -A {WORKDIR})" ] || {{ echo "work tree could not be emptied" >&2; exit 3; }}
"""

_COMMIT_SCRIPT = f"""
cd {WORKDIR} && {GIT} init -q && {GIT} add -A && {GIT} commit -q --allow-empty -m "$1" && {GIT} rev-parse HEAD
"""

# Snapshot the whole work tree (untracked files included, ignored ones not) without touching the index.
# The copied index is dated 1970-01-01 00:00:01 (0 would mean "no date"), so git treats every entry as
# racily clean and re-reads the file: a same-size rewrite within the second of the last reset has the
# same stat data as the original. Like the reset, it gives the owner back the permissions the agent
# removed (chmod 000) when it cannot read the tree: else the agent's chmod reads as a lost sandbox.
_SNAPSHOT = f"""
cd {WORKDIR} 2>/dev/null || {{ chmod u+rwx {WORKDIR} 2>/dev/null; cd {WORKDIR}; }} || exit 3
export GIT_INDEX_FILE=.git/rlvr-index
snapshot() {{ rm -f "$GIT_INDEX_FILE"; cp .git/index "$GIT_INDEX_FILE" 2>/dev/null && touch -d @1 "$GIT_INDEX_FILE"
  {GIT} add -A . >/dev/null 2>&1; }}
snapshot || {{ chmod -R u+rwX . 2>/dev/null; snapshot; }} || exit 4
"""

_FINGERPRINT_SCRIPT = _SNAPSHOT + f"{GIT} write-tree\n"
_DIFF_SCRIPT = _SNAPSHOT + f'{GIT} diff --cached --binary --no-color --no-ext-diff "$1" > .git/rlvr-model.patch || exit 5\n'


MAX_ARG_BYTES = 100_000
"""Longest single command-line argument :meth:`Sandbox.exec` sends (Linux refuses over 128 KiB)."""


def _check_argv(argv: Sequence[str]) -> None:
    """Raise ``ValueError`` for a command no process can be started with: a NUL byte, text that is not
    encodable (a lone surrogate) or an argument over :data:`MAX_ARG_BYTES`.

    Such a command is the caller's mistake: caught here, it never reaches the sandbox's runner, whose
    refusal would read as a lost sandbox (an infrastructure failure, not the model's fault).
    """
    for i, arg in enumerate(argv):
        if not isinstance(arg, str):
            raise ValueError(f"command argument {i} must be a string, got {type(arg).__name__}")
        if "\x00" in arg:
            raise ValueError(f"the command holds a NUL byte (argument {i}, at character {arg.index(chr(0))}); "
                             "no command line can contain one: remove it, or write the data to a file first")
        try:
            size = len(arg.encode("utf-8", "surrogateescape"))
        except UnicodeEncodeError as e:
            raise ValueError(f"the command holds {arg[e.start:e.end]!r}, which is not a character (argument {i}); "
                             "write valid text") from None
        if size > MAX_ARG_BYTES:
            raise ValueError(f"the command is {size} bytes long (argument {i}); at most {MAX_ARG_BYTES} can be run: "
                             "write a long script to a file with create_file, then run the file")


class Sandbox(ABC):
    """An isolated work tree at :data:`WORKDIR` plus a place to run commands as the ``agent`` user.

    Use as a context manager (``with backend.create(image) as sb:``) or call :meth:`close`.
    """

    backend_name: str = ""

    def __init__(self, image: str, config: SandboxConfig) -> None:
        self.image = image
        self.config = config
        self.id = ""
        self.closed = False
        self.broken = False
        self.prepared_commit: str | None = None
        self.loaded_tree: str | None = None  # digest of the tree loaded by load_tree, for the pool
        self.created_at = time.monotonic()

    # ---------------------------------------------------------------- backend hooks
    @abstractmethod
    def _exec_raw(self, argv: Sequence[str], *, workdir: str, env: Mapping[str, str] | None,
                  timeout_s: float) -> tuple[int, bytes]:
        """Run ``argv`` as the agent user; return (exit code, combined output bytes)."""

    @abstractmethod
    def put_archive(self, dest: str, data: bytes) -> None:
        """Extract tar ``data`` into the directory ``dest`` (inside the work tree)."""

    @abstractmethod
    def get_archive(self, path: str) -> bytes:
        """A tar archive of ``path`` (file or directory inside the work tree)."""

    @abstractmethod
    def alive(self) -> bool:
        """Whether the sandbox can still run commands."""

    @abstractmethod
    def _destroy(self) -> None:
        """Release every resource of the sandbox."""

    # ---------------------------------------------------------------- public API
    def exec(self, command: str | Sequence[str], *, timeout_s: float | None = None, max_output_bytes: int | None = None,
             tail_bytes: int | None = None, workdir: str = WORKDIR, env: Mapping[str, str] | None = None) -> ExecResult:
        """Run ``command`` (a shell string for ``bash -c``, or an argv list) as the agent user.

        The timeout and output budget default to the sandbox config; a command that exceeds them is
        killed (with its process group) and reported through the result's flags.
        """
        self._check_open()
        timeout = float(timeout_s if timeout_s is not None else self.config.command_timeout_s)
        max_bytes = int(max_output_bytes if max_output_bytes is not None else self.config.max_output_bytes)
        argv = ["bash", "-c", command] if isinstance(command, str) else list(command)
        _check_argv(argv)
        return self._run(argv, timeout, max_bytes, tail_bytes, workdir, env)

    def _run(self, argv: list[str], timeout: float, max_bytes: int, tail_bytes: int | None, workdir: str,
             env: Mapping[str, str] | None) -> ExecResult:
        """Run ``argv`` through the runner (a new process per command); backends may do better."""
        runner = ["python3", RUNNER_PATH, "--timeout", f"{timeout:g}", "--max-bytes", str(max_bytes)]
        if tail_bytes is not None:
            runner += ["--tail-bytes", str(int(tail_bytes))]
        runner += self._runner_limits()
        start = time.monotonic()
        _, raw = self._exec_raw(runner + ["--"] + argv, workdir=workdir, env=env, timeout_s=timeout + 30)
        return _parse_runner_output(raw, time.monotonic() - start)

    def _runner_limits(self) -> list[str]:
        return []

    def admin(self, script: str, *args: str, timeout_s: float = 120.0, env: Mapping[str, str] | None = None) -> str:
        """Run a trusted maintenance ``bash`` script (no runner); raise :class:`SandboxLost` when it fails."""
        self._check_open()
        rc, out = self._exec_raw(["bash", "-c", script, "rlvr-admin", *args], workdir="/",
                                 env={**GIT_ENV, **(env or {})}, timeout_s=timeout_s)
        text = out.decode("utf-8", errors="replace")
        if rc != 0:
            self.broken = True
            raise SandboxLost(f"maintenance command failed in sandbox {self.id[:12]} (exit {rc}): {text[-500:].strip()}")
        return text

    def reset(self, commit: str | None = None) -> str:
        """Kill the agent's processes, empty ``/tmp`` and home, and restore the work tree to ``commit``
        (default: the prepared commit) with ``git reset --hard`` and ``git clean -fdx``. Returns HEAD."""
        target = commit or self.prepared_commit
        if not target:
            raise SandboxError("reset() needs a commit: load a tree first or pass commit=")
        head = self.admin(_RESET_SCRIPT, target).strip().splitlines()[-1]
        self.prepared_commit = head
        return head

    def load_tree(self, files: Mapping[str, bytes | str], *, message: str = "task", digest: str | None = None) -> str:
        """Replace the work tree with ``files`` as a fresh single-commit git repository (deterministic
        commit id: fixed author, committer and dates). Returns the commit id, also kept as
        :attr:`prepared_commit`."""
        self.admin(_WIPE_SCRIPT)
        self.put_archive(WORKDIR, make_tar(files))
        head = self.admin(_COMMIT_SCRIPT, message).strip().splitlines()[-1]
        self.prepared_commit = head
        self.loaded_tree = digest
        return head

    def head(self) -> str:
        return self.admin(f"cd {WORKDIR} && {GIT} rev-parse HEAD").strip()

    def fingerprint(self) -> str:
        """A hash of the whole work tree (untracked files included, ignored files not)."""
        try:
            return self.admin(_FINGERPRINT_SCRIPT).strip().splitlines()[-1]
        except SandboxLost as e:
            if self.alive():  # a broken repository (e.g. .git removed) is the agent's doing
                self.broken = False
                return f"unreadable:{e}"
            raise

    def diff(self, base: str | None = None, *, max_bytes: int = 4 << 20) -> str:
        """The work tree's changes against ``base`` (default: the prepared commit) as a binary git patch,
        new files included. Raises :class:`SandboxError` when the patch exceeds ``max_bytes``."""
        self.admin(_DIFF_SCRIPT, base or self.prepared_commit or "HEAD")
        files = read_tar(self.get_archive(f"{WORKDIR}/.git/rlvr-model.patch"))
        data = next((v for v in files.values() if v is not None), b"")
        if len(data) > max_bytes:
            raise SandboxError(f"the patch has {len(data)} bytes; at most {max_bytes} are accepted")
        return data.decode("utf-8", errors="surrogateescape")

    def write_files(self, files: Mapping[str, bytes | str], *, base: str = WORKDIR) -> None:
        """Write ``{path relative to base: content}`` into the work tree as agent-owned files."""
        self.put_archive(base, make_tar(files))

    def read_file(self, path: str) -> bytes:
        """Content of one regular file inside the work tree (via a tar archive)."""
        members = read_tar(self.get_archive(path))
        name = posixpath.basename(path.rstrip("/"))
        if name not in members:
            raise FileNotFoundError(path)
        data = members[name]
        if data is None:
            raise IsADirectoryError(f"{path} is not a regular file")
        return data

    def close(self) -> None:
        """Remove the sandbox (idempotent)."""
        if not self.closed:
            self.closed = True
            self._destroy()

    def _check_open(self) -> None:
        if self.closed:
            raise SandboxLost(f"sandbox {self.id[:12]} was closed")

    def __enter__(self) -> "Sandbox":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(id={self.id[:12]!r}, image={self.image!r})"


class Backend(ABC):
    """Creates sandboxes from images."""

    name: str = ""

    def reap_leaked(self) -> list[str]:
        """Remove sandboxes left behind by owners that died; returns their ids (default: none)."""
        return []

    @abstractmethod
    def create(self, image: str, config: SandboxConfig | None = None) -> Sandbox:
        """Start a new sandbox from ``image``."""

    def image_id(self, image: str) -> str | None:
        """The content id of ``image`` (``None`` when the backend has no images)."""
        return None


# =========================================================================== docker
def _docker_errors():
    import docker.errors
    import requests.exceptions

    return docker.errors, requests.exceptions


class DockerSandbox(Sandbox):
    """A sandbox backed by one container (see the module docstring for its isolation)."""

    backend_name = "docker"

    def __init__(self, backend: "DockerBackend", image: str, config: SandboxConfig) -> None:
        super().__init__(image, config)
        self.backend = backend
        self.api = backend.client.api
        derr, _ = _docker_errors()
        tmp = f"size={config.tmp_size}"
        try:
            backend.client.api.inspect_image(image)  # never pull: there is no registry
            container = backend.client.containers.create(
                image,
                ["python3", RUNNER_PATH, *(["--serve"] if config.transport == "attach" else ["--init", "--lifeline"])],
                # The attached stdin is the container's lifeline: with detach=False the SDK sets StdinOnce,
                # so the engine closes it when this process closes the sandbox, exits or is killed, and
                # PID 1 then exits (see runner.py); auto_remove then deletes the container and its volume.
                stdin_open=True,
                detach=False,
                auto_remove=True,
                log_config={"type": "none"},
                user=f"{AGENT_UID}:{AGENT_UID}",
                network_mode="none",
                read_only=True,
                tmpfs={"/tmp": f"{tmp},mode=1777", HOME: f"{tmp},uid={AGENT_UID},gid={AGENT_UID},mode=0755"},
                mounts=[_volume_mount()],
                mem_limit=config.memory,
                memswap_limit=config.memory,
                pids_limit=config.pids,
                nano_cpus=int(config.cpus * 1e9),
                cap_drop=["ALL"],
                security_opt=["no-new-privileges"],
                labels={LABEL_MANAGED: "1", LABEL_OWNER: owner_label()},
                working_dir=WORKDIR,
                environment={"HOME": HOME, "USER": "agent", "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1",
                             "PIP_NO_INDEX": "1", "TERM": "dumb"},
                hostname="sandbox",
                stop_signal="SIGKILL",
            )
        except derr.ImageNotFound as e:
            raise ImageError(f"image {image!r} does not exist; build it with rlvr.envs.swe.images "
                             "(ensure_env_image) or containers/build_base.sh") from e
        except derr.APIError as e:
            raise SandboxError(f"could not start a container from {image!r}: {e.explanation or e}") from e
        except _docker_errors()[1].ConnectionError as e:
            raise EngineUnavailable(_ENGINE_HINT) from e
        self.container = container
        self.id = container.id
        self._sock: Any = None
        self._lifeline: Any = None
        self._lock = threading.Lock()
        try:
            container.start()
        except derr.APIError as e:
            self._destroy()
            raise SandboxError(f"could not start a container from {image!r}: {e.explanation or e}") from e
        try:
            # hold the lifeline from the start: a driver killed before its first command leaks nothing
            if config.transport == "attach":
                self._channel()
            else:
                self._lifeline = self._call(self.api.attach_socket, self.id, params={"stdin": 1, "stream": 1})
            time.sleep(0.02)
            container.reload()
            status, logs = container.status, ""
        except (SandboxError, derr.NotFound):
            status, logs = "exited", ""
        if status == "running":
            return
        try:
            logs = container.logs(tail=20).decode(errors="replace")
        except derr.DockerException:
            pass  # already removed (auto_remove)
        self._destroy()
        raise ImageError(f"a container from {image!r} exited at once ({status}); the image needs "
                         f"python3 and the runner at {RUNNER_PATH} (build it with rlvr.envs.swe.images). "
                         f"Logs: {logs.strip()[-400:]}")

    # ---------------------------------------------------------------- attach transport
    def _channel(self) -> Any:
        if self._sock is None:
            # attaching to a stopped container would wait for it to start again: check first
            state = self._call(self.api.inspect_container, self.id)["State"]
            if not state.get("Running"):
                self.broken = True
                raise SandboxLost(f"container {self.id[:12]} is not running ({state.get('Status')})")
            self._sock = self._call(self.api.attach_socket, self.id,
                                    params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1})
        return self._sock

    def _lost(self, why: str, cause: BaseException | None = None) -> SandboxError:
        self.broken = True
        self._close_channel()
        try:
            self.backend.client.ping()
        except Exception:  # noqa: BLE001 - any failure here means the engine itself is gone
            return EngineUnavailable(_ENGINE_HINT)
        return SandboxLost(f"container {self.id[:12]} {why}")

    def _close_channel(self) -> None:
        """Close the command channel (and the exec transport's lifeline): PID 1 then exits."""
        for name in ("_sock", "_lifeline"):
            sock = getattr(self, name, None)
            setattr(self, name, None)
            if sock is not None:
                try:
                    sock.close()
                except OSError:
                    pass

    def _request(self, argv: Sequence[str], opts: Mapping[str, float], workdir: str,
                 env: Mapping[str, str] | None, timeout_s: float) -> tuple[dict[str, Any], bytes]:
        from docker.utils.socket import next_frame_header, read_exactly, SocketError

        self._check_open()
        nonce = uuid.uuid4().hex
        line = json.dumps({"argv": list(argv), "opts": dict(opts), "cwd": workdir, "env": dict(env or {}),
                           "nonce": nonce}).encode() + b"\n"
        with self._lock:
            sock = self._channel()
            buf = bytearray()
            try:
                sock._sock.settimeout(timeout_s)
                sock._sock.sendall(line)
                while True:
                    stream, size = next_frame_header(sock)
                    if size < 0:
                        raise self._lost("closed its command channel (it died or the engine restarted)")
                    data = read_exactly(sock, size) if size else b""
                    if stream != 1:
                        continue  # stderr of PID 1: not part of any answer
                    buf += data
                    while True:
                        at = buf.find(_MAGIC)
                        if at < 0:
                            break
                        end = buf.find(b"\n", at)
                        if end < 0:
                            break
                        header = json.loads(bytes(buf[at + len(_MAGIC):end]))
                        need = end + 1 + int(header.get("len", 0))
                        if len(buf) < need:
                            break
                        payload = bytes(buf[end + 1:need])
                        del buf[:need]
                        if header.get("nonce") == nonce:
                            if "error" in header:
                                raise SandboxLost(f"container {self.id[:12]} refused a command: {header['error']}")
                            return header, payload
            except (socket.timeout, TimeoutError) as e:
                raise self._lost(f"did not answer within {timeout_s:g} s (wedged)", e) from e
            except (OSError, SocketError, ValueError) as e:
                raise self._lost(f"lost its command channel ({type(e).__name__}: {e})", e) from e

    def _run(self, argv, timeout, max_bytes, tail_bytes, workdir, env):
        if self.config.transport != "attach":
            return super()._run(argv, timeout, max_bytes, tail_bytes, workdir, env)
        opts = {"timeout": timeout, "max-bytes": max_bytes, "tail-bytes": -1 if tail_bytes is None else tail_bytes}
        start = time.monotonic()
        info, out = self._request(argv, opts, workdir, env, timeout + 30)
        return ExecResult(int(info["exit_code"]), out.decode("utf-8", errors="replace"), bool(info["timed_out"]),
                          bool(info["truncated"]), int(info["output_bytes"]), bool(info["killed_for_output"]),
                          time.monotonic() - start)

    def _call(self, fn, *args, **kwargs):
        derr, rexc = _docker_errors()
        try:
            return fn(*args, **kwargs)
        except derr.NotFound as e:
            self.broken = True
            raise SandboxLost(f"container {self.id[:12]} is gone (killed, removed or the engine restarted)") from e
        except derr.APIError as e:
            self.broken = True
            raise SandboxLost(f"container {self.id[:12]} cannot run commands: {e.explanation or e}") from e
        except rexc.ConnectionError as e:
            self.broken = True
            raise EngineUnavailable(_ENGINE_HINT) from e
        except (rexc.ReadTimeout, socket.timeout) as e:
            self.broken = True
            raise SandboxLost(f"container {self.id[:12]} did not answer in time (wedged engine or container)") from e

    def _exec_raw(self, argv, *, workdir, env, timeout_s):
        if self.config.transport == "attach":
            opts = {"timeout": timeout_s, "max-bytes": 64 << 20, "tail-bytes": 0}
            info, out = self._request(argv, opts, workdir, env, timeout_s + 30)
            if info["timed_out"]:
                self.broken = True
                raise SandboxLost(f"maintenance command timed out after {timeout_s:g} s in {self.id[:12]}")
            return int(info["exit_code"]), out
        exec_id = self._call(self.api.exec_create, self.id, list(argv), user=f"{AGENT_UID}:{AGENT_UID}",
                             workdir=workdir, environment=dict(env or {}))["Id"]
        out = self._call(self.api.exec_start, exec_id)
        rc = self._call(self.api.exec_inspect, exec_id).get("ExitCode")
        if rc is None:
            self.broken = True
            raise SandboxLost(f"command in container {self.id[:12]} did not finish (engine lost it)")
        return int(rc), out or b""

    def put_archive(self, dest, data):
        self._check_open()
        if not self._call(self.api.put_archive, self.id, dest, data):
            raise SandboxLost(f"could not write files into {dest} of container {self.id[:12]}")

    def get_archive(self, path):
        self._check_open()
        derr, _ = _docker_errors()
        try:
            stream, _stat = self.api.get_archive(self.id, path)
        except derr.NotFound as e:
            if self.alive():
                raise FileNotFoundError(path) from e
            self.broken = True
            raise SandboxLost(f"container {self.id[:12]} is gone") from e
        except Exception as e:  # noqa: BLE001 - mapped to the sandbox error tree
            return self._call(_raise, e)
        return b"".join(stream)

    def alive(self) -> bool:
        if self.closed:
            return False
        derr, rexc = _docker_errors()
        try:
            return self.api.inspect_container(self.id)["State"]["Running"]
        except (derr.DockerException, rexc.RequestException):
            return False

    def _destroy(self) -> None:
        self._close_channel()
        derr, rexc = _docker_errors()
        try:
            self.api.remove_container(self.id, force=True, v=True)
        except derr.NotFound:
            pass
        except derr.APIError as e:
            if "in progress" not in str(e):
                return  # the reaper removes it later
            # the container exited (its lifeline closed) and the engine is removing it: wait for that
            deadline = time.monotonic() + 10.0
            while time.monotonic() < deadline:
                try:
                    self.api.inspect_container(self.id)
                except (derr.DockerException, rexc.RequestException):
                    return
                time.sleep(0.02)
        except (derr.DockerException, rexc.RequestException):
            pass  # engine down: the reaper removes it once the engine is back


def _raise(e: BaseException):
    raise e


def _volume_mount():
    from docker.types import Mount

    return Mount(target=WORKDIR, source=None, type="volume")


_ENGINE_HINT = ("no Docker engine answers. Start one (as root: containers/provision.sh, which installs docker.io "
                "and runs 'dockerd --bridge=none --iptables=false'), or use backend='bwrap'")


class DockerBackend(Backend):
    """Sandboxes as Docker containers.

    Args:
        client: a ``docker.DockerClient`` (default: ``docker.from_env``).
        config: default :class:`SandboxConfig` of the sandboxes it creates.
        reap: remove leaked rlvr containers of dead processes when the backend starts.
    """

    name = "docker"

    def __init__(self, client: Any = None, config: SandboxConfig | None = None, *, reap: bool = True) -> None:
        self.config = config or SandboxConfig()
        try:
            import docker
        except ImportError as e:
            raise EngineUnavailable("the docker SDK is missing: pip install 'rlvr-gym[swe]' (or docker>=7)") from e
        _, rexc = _docker_errors()
        try:
            self.client = client or docker.from_env(timeout=int(self.config.client_timeout_s))
            self.client.ping()
        except (docker.errors.DockerException, rexc.RequestException) as e:
            raise EngineUnavailable(f"{_ENGINE_HINT} ({type(e).__name__}: {e})") from e
        self._lock = threading.Lock()
        if reap:
            reap_leaked(self.client)

    def create(self, image: str, config: SandboxConfig | None = None) -> DockerSandbox:
        return DockerSandbox(self, image, config or self.config)

    def image_id(self, image: str) -> str | None:
        derr, _ = _docker_errors()
        try:
            return self.client.api.inspect_image(image)["Id"]
        except derr.ImageNotFound:
            return None

    def reap_leaked(self) -> list[str]:
        """Remove containers of dead owners on this host (see :func:`reap_leaked`)."""
        return reap_leaked(self.client)

    def containers(self, *, all_owners: bool = False) -> list[dict[str, Any]]:
        """The rlvr-managed containers (those of this process unless ``all_owners``) as the engine lists
        them (``Id``, ``Labels``, ``State``, ...)."""
        return _managed(self.client, None if all_owners else owner_label())


def _managed(client: Any, owner: str | None = None) -> list[dict[str, Any]]:
    """rlvr containers (of ``owner`` when given), listed in one engine call: containers that remove
    themselves meanwhile cannot break the listing, as the SDK's per-container look-ups would."""
    labels = [f"{LABEL_MANAGED}=1"] + ([f"{LABEL_OWNER}={owner}"] if owner else [])
    return client.api.containers(all=True, filters={"label": labels})


def reap_leaked(client: Any = None) -> list[str]:
    """Remove rlvr containers (and their volumes) whose owning process on this host is dead.

    Returns the ids removed. Safe to call at any time: containers of live processes, and of other
    hosts sharing the engine, are left alone.
    """
    import docker

    client = client or docker.from_env()
    removed = []
    for c in _managed(client):
        owner = (c.get("Labels") or {}).get(LABEL_OWNER, "")
        if _owner_alive(owner):
            continue
        try:
            client.api.remove_container(c["Id"], force=True, v=True)
            removed.append(c["Id"])
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as e:
            if "already in progress" not in str(e):
                raise
    return removed


# =========================================================================== bubblewrap
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
            tf.extractall(target, filter="data")

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


RUNNER_PATH_BWRAP = "/run/rlvr-exec"
_BWRAP_PREFIX = "rlvr-bwrap-"
ROOTFS_STAMP = ".rlvr-image-id"


def default_bwrap_rootfs() -> Path:
    """Where ``containers/provision.sh`` unpacks the sandbox runtime for the bubblewrap backend:
    ``$RLVR_BWRAP_ROOTFS``, else ``sandbox-rootfs`` in the rlvr cache (``$RLVR_CACHE``, default
    ``$XDG_CACHE_HOME/rlvr`` or ``~/.cache/rlvr``)."""
    explicit = os.environ.get("RLVR_BWRAP_ROOTFS")
    if explicit:
        return Path(explicit)
    cache = os.environ.get("RLVR_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "rlvr")
    return Path(cache) / "sandbox-rootfs"


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
            if not Path(rootfs, "usr", "bin", "python3").exists():
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


def make_backend(kind: Literal["docker", "bwrap", "auto"] = "docker", **kwargs: Any) -> Backend:
    """A backend by name; ``"auto"`` tries Docker first, then bubblewrap."""
    if kind == "docker":
        return DockerBackend(**kwargs)
    if kind == "bwrap":
        return BwrapBackend(**kwargs)
    if kind == "auto":
        try:
            return DockerBackend(**{k: v for k, v in kwargs.items() if k in ("client", "config", "reap")})
        except EngineUnavailable:
            return BwrapBackend(**{k: v for k, v in kwargs.items() if k in ("rootfs", "extra_path", "config", "reap")})
    raise ConfigError(f"backend must be 'docker', 'bwrap' or 'auto', got {kind!r}")

