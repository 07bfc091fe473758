"""Sandboxes: isolated places to run an agent's commands against a repository work tree.

This module holds what every backend shares: :class:`SandboxConfig`, :class:`ExecResult`, the
:class:`Sandbox` and :class:`Backend` interfaces, :func:`make_backend`, tar helpers, owner labels and
the maintenance scripts run inside sandboxes. The backends live next to it, one concern each:

* :mod:`~rlvr.envs.swe.docker_backend`: :class:`DockerBackend` (default), one container per sandbox
  through the ``docker`` SDK. No network (``network_mode="none"``), memory / pids / CPU limits, every
  capability dropped, ``no-new-privileges``, a read-only root filesystem, the unprivileged user
  ``agent`` (uid 1000), a writable work tree on a volume at ``/testbed`` and small ``tmpfs`` mounts
  for ``/tmp`` and the home directory. Files move in and out as tar archives. Every container carries
  the labels ``rlvr.managed`` and ``rlvr.owner`` (host, pid and start time of the owning process) so
  that :func:`reap_leaked` can remove containers left behind by a process that died.
* :mod:`~rlvr.envs.swe.attach`: the framing of the attach transport the Docker sandboxes use.
* :mod:`~rlvr.envs.swe.bwrap_backend`: :class:`BwrapBackend` (fallback without Docker),
  ``bubblewrap`` namespaces with a read-only root, a writable work tree bound at ``/testbed``, no
  network, rlimits instead of cgroups. The root is the sandbox runtime: the base image's own file
  system (Debian's python3, pytest and git), unpacked by ``containers/provision.sh`` into
  :func:`default_bwrap_rootfs`, never the host's interpreter. Weaker isolation: no memory or pids
  cgroup (RLIMIT_NPROC is ignored for root), the host kernel is shared, and processes never outlive
  one command or their driver (``--die-with-parent``).

Every name in ``__all__`` can be imported from here; the backend classes load (with their modules)
on first use, so importing this module needs neither the docker SDK nor bubblewrap.

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

import importlib
import io
import json
import os
import posixpath
import socket
import tarfile
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Mapping, Sequence

from rlvr.envs.swe.errors import EngineUnavailable, SandboxError, SandboxLost
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


def make_backend(kind: Literal["docker", "bwrap", "auto"] = "docker", **kwargs: Any) -> Backend:
    """A backend by name; ``"auto"`` tries Docker first, then bubblewrap."""
    from rlvr.envs.swe.bwrap_backend import BwrapBackend
    from rlvr.envs.swe.docker_backend import DockerBackend

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


# --------------------------------------------------------------------------- names of the backend modules
if TYPE_CHECKING:
    from rlvr.envs.swe.bwrap_backend import BwrapBackend, BwrapSandbox, default_bwrap_rootfs
    from rlvr.envs.swe.docker_backend import DockerBackend, DockerSandbox, reap_leaked

# Names that live in the backend modules, importable from here; loaded on first access (PEP 562) so
# that this module imports neither backend (the backends import it).
_LAZY = {
    "DockerBackend": "docker_backend", "DockerSandbox": "docker_backend", "reap_leaked": "docker_backend",
    "BwrapBackend": "bwrap_backend", "BwrapSandbox": "bwrap_backend", "default_bwrap_rootfs": "bwrap_backend",
    "RUNNER_PATH_BWRAP": "bwrap_backend",
}


def __getattr__(name: str) -> Any:
    """A name of a backend module, imported on first access."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"rlvr.envs.swe.{module}"), name)


def __dir__() -> list[str]:
    """The module's names, the lazily imported ones included."""
    return sorted([*globals(), *_LAZY])
