"""The Docker backend: one container per sandbox through the ``docker`` SDK.

No network (``network_mode="none"``), memory / pids / CPU limits, every capability dropped,
``no-new-privileges``, a read-only root filesystem, the unprivileged user ``agent`` (uid 1000), a
writable work tree on a volume at ``/testbed`` and small ``tmpfs`` mounts for ``/tmp`` and the home
directory. Files move in and out as tar archives. Every container carries the labels
``rlvr.managed`` and ``rlvr.owner`` (host, pid and start time of the owning process) so that
:func:`reap_leaked` can remove containers left behind by a process that died.

A container's PID 1 is the runner (:mod:`rlvr.envs.swe.runner`). With ``transport="attach"`` it takes
commands over the container's attached stdin (framing in :mod:`rlvr.envs.swe.attach`); with
``transport="exec"`` each command is one ``docker exec``. Either way the attached stdin is the
container's lifeline: when the driver closes it, exits or is killed, PID 1 exits and the container
removes itself (``auto_remove``).
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from typing import Any, Mapping, Sequence

from rlvr.envs.swe.attach import ChannelClosed, encode_request, exchange
from rlvr.envs.swe.errors import EngineUnavailable, ImageError, SandboxError, SandboxLost
from rlvr.envs.swe.sandbox import (
    AGENT_UID,
    HOME,
    LABEL_MANAGED,
    LABEL_OWNER,
    RUNNER_PATH,
    WORKDIR,
    Backend,
    ExecResult,
    Sandbox,
    SandboxConfig,
    _owner_alive,
    owner_label,
)

__all__ = ["DockerBackend", "DockerSandbox", "reap_leaked"]


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
            raise SandboxLost(f"could not start a container from {image!r}: {e.explanation or e}") from e
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
            raise SandboxLost(f"could not start a container from {image!r}: {e.explanation or e}") from e
        try:
            # hold the lifeline from the start: a driver killed before its first command leaks nothing
            if config.transport == "attach":
                self._channel()
            else:
                self._lifeline = self._call(self.api.attach_socket, self.id, params={"stdin": 1, "stream": 1})
            time.sleep(0.02)
            container.reload()
            status, logs = container.status, ""
        except EngineUnavailable:
            self._destroy()
            raise
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

    # ---------------------------------------------------------------- attach transport (framing: rlvr.envs.swe.attach)
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
        """Send one command to the serving runner and return its answer (header, output bytes)."""
        from docker.utils.socket import SocketError

        self._check_open()
        nonce = uuid.uuid4().hex
        line = encode_request(argv, opts, workdir, env, nonce)
        with self._lock:
            sock = self._channel()
            try:
                header, payload = exchange(sock, line, nonce, timeout_s)
            except ChannelClosed:
                raise self._lost("closed its command channel (it died or the engine restarted)") from None
            except (socket.timeout, TimeoutError) as e:
                raise self._lost(f"did not answer within {timeout_s:g} s (wedged)", e) from e
            except (OSError, SocketError, ValueError) as e:
                raise self._lost(f"lost its command channel ({type(e).__name__}: {e})", e) from e
        if "error" in header:
            raise SandboxLost(f"container {self.id[:12]} refused a command: {header['error']}")
        return header, payload

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
