"""Any rlvr environment over OpenEnv's protocol: ``rlvr serve ENV`` and a gym-style remote client.

The server is OpenEnv's own (:class:`openenv.core.env_server.HTTPEnvServer` on FastAPI/uvicorn):
each WebSocket connection to ``/ws`` is one session with its own rlvr environment, built and
stepped on that session's own thread, so sessions run concurrently and never share episode state;
a session idle for ``session_timeout`` seconds is closed (its environment, sandboxes included, is
released). ``/health``, ``/schema``, ``/metadata`` and OpenEnv's stateless HTTP ``/reset`` /
``/step`` are there too. Messages:

* ``reset``: ``{"seed": int, "options": {...}}`` (both optional; ``options`` as ``env.reset`` takes
  them) -> observation ``{"messages", "info", "terminated", "truncated"}`` (the opening messages and
  reset info);
* ``step``: the action ``{"text": "<the assistant's message>"}`` -> the turn's messages, its info
  (``reward_components``, ``error``, ...), ``reward`` and ``done`` (terminated or truncated);
* ``state``: :class:`RLVRState`: env id, task id, turn, the whole conversation and the oracle's next
  action (``None`` where the environment has none).

Every value crosses as JSON, so the environment, and whatever it runs (a SWE sandbox, a search
index), stays in the server process; the client only sends text. :class:`RemoteEnv` is a
``gymnasium.Env`` over OpenEnv's client, so ``rollout(lambda: RemoteEnv(url), agent)`` and any
``gym.make``-style loop work against a server; a server that stops mid-episode raises
:class:`RemoteEnvUnavailable` (an infrastructure failure), a call the server refused raises
:class:`RemoteEnvError` with the server's message.
"""

from __future__ import annotations

import functools
import json
import math
import socket
import threading
import time
from typing import Any

import gymnasium as gym

try:
    from openenv.core.client_types import StepResult
    from openenv.core.env_client import EnvClient
    from openenv.core.env_server import HTTPEnvServer
    from openenv.core.env_server.interfaces import Environment
    from openenv.core.env_server.types import Action, ConcurrencyConfig, EnvironmentMetadata, Observation, State
    from pydantic import Field
except ImportError as e:  # pragma: no cover - depends on the install
    raise ImportError("rlvr.integrations.openenv needs the 'openenv' extra: pip install 'rlvr-gym[openenv]'") from e

from rlvr.envs.core import ChatMessages, TextAction
from rlvr.errors import ConfigError, EpisodeStateError, InfrastructureError, NoOracleError, RLVRError

__all__ = ["RLVRAction", "RLVRObservation", "RLVRState", "RLVREnvironment", "RLVREnvClient", "RemoteEnv",
           "RemoteEnvError", "RemoteEnvUnavailable", "Server", "create_app", "serve"]

_RESET_KEYS = ("seed", "episode_id", "options")


class RemoteEnvError(RLVRError):
    """The environment server refused a call (bad action, step after the episode ended, bad reset
    options); the message is the server's."""


class RemoteEnvUnavailable(InfrastructureError):
    """The environment server cannot be reached, or closed the connection (stopped, killed) mid-episode."""


class RLVRAction(Action):
    """One turn: the assistant's message, as ``AgentEnv.step`` takes it."""

    text: str = Field(..., description="the assistant's message for this turn (tool calls, an answer, or text)")


class RLVRObservation(Observation):
    """What ``reset`` / ``step`` returned (``reward`` and ``done`` travel next to it, as OpenEnv sends them)."""

    messages: list[dict[str, Any]] = Field(default_factory=list, description="the messages the environment added")
    info: dict[str, Any] = Field(default_factory=dict, description="reset info, or the step's info")
    terminated: bool = Field(default=False, description="the task ended")
    truncated: bool = Field(default=False, description="a budget ran out, or a service the environment needs failed")


class RLVRState(State):
    """The session's episode: ids, turn, the whole conversation and the oracle's next action."""

    env_id: str = ""
    task_id: str | None = None
    turn: int = 0
    done: bool = True
    messages: list[dict[str, Any]] = Field(default_factory=list)
    oracle_action: str | None = None


def _jsonable(value: Any) -> Any:
    """``value`` as plain JSON types (numpy scalars as numbers, tuples and sets as lists, others as text)."""
    def default(o: Any) -> Any:
        if hasattr(o, "item") and callable(o.item):
            return o.item()
        if isinstance(o, (set, frozenset, tuple)):
            return list(o)
        if hasattr(o, "to_dict") and callable(o.to_dict):
            return o.to_dict()
        return str(o)

    return json.loads(json.dumps(value, default=default, allow_nan=True))


class RLVREnvironment(Environment):
    """OpenEnv's ``Environment`` around one rlvr environment (one per session).

    Built by the server as ``RLVREnvironment(env_id, env_kwargs)``; ``close`` releases the rlvr
    environment, after which the session's calls fail with a message saying so.
    """

    SUPPORTS_CONCURRENT_SESSIONS = True

    def __init__(self, env_id: str, env_kwargs: dict[str, Any] | None = None) -> None:
        super().__init__()
        import rlvr  # noqa: F401 - registers the ids

        self.env_id = env_id
        self._gym = gym.make(env_id, **dict(env_kwargs or {}))
        self._env = self._gym.unwrapped
        self._episode_id: str | None = None
        self._task_id: str | None = None
        self._steps = 0
        self._done = True
        self._closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise EpisodeStateError("this session's environment was closed (idle too long, or the server is stopping); "
                                    "open a new connection and reset")

    def reset(self, seed: int | None = None, episode_id: str | None = None, options: dict[str, Any] | None = None,
              **kwargs: Any) -> RLVRObservation:
        self._check_open()
        if kwargs:
            raise ConfigError(f"unknown reset argument(s) {sorted(kwargs)}; accepted: {', '.join(_RESET_KEYS)} "
                              "(task choices go in options, e.g. options={'task_id': ...})")
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
            raise ConfigError(f"seed must be an integer, got {seed!r}")
        messages, info = self._gym.reset(seed=seed, options=options)
        self._episode_id, self._task_id = episode_id, str(info.get("task_id"))
        self._steps, self._done = 0, False
        return RLVRObservation(messages=_jsonable(messages), info=_jsonable(info), reward=None, done=False)

    def step(self, action: RLVRAction, timeout_s: float | None = None, **kwargs: Any) -> RLVRObservation:
        self._check_open()
        if self._done:
            raise EpisodeStateError("the episode has ended (or never started); send reset before step")
        obs, reward, terminated, truncated, info = self._gym.step(action.text)
        self._steps += 1
        self._done = bool(terminated or truncated)
        return RLVRObservation(messages=_jsonable(obs), info=_jsonable(info), terminated=bool(terminated),
                               truncated=bool(truncated), reward=float(reward) if math.isfinite(reward) else None,
                               done=self._done)

    @property
    def state(self) -> RLVRState:
        oracle = None
        if not self._done and not self._closed:
            try:
                oracle = self._env.oracle_action()
            except NoOracleError:
                oracle = None
        return RLVRState(episode_id=self._episode_id, step_count=self._steps, env_id=self.env_id,
                         task_id=self._task_id, turn=int(getattr(self._env, "turn", self._steps)), done=self._done,
                         messages=_jsonable(getattr(self._env, "messages", [])), oracle_action=oracle)

    def get_metadata(self) -> EnvironmentMetadata:
        from rlvr import __version__

        return EnvironmentMetadata(name=self.env_id, description=getattr(self._env, "description", "") or self.env_id,
                                   version=__version__, author="rlvr")

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._gym.close()


def create_app(env_id: str, env_kwargs: dict[str, Any] | None = None, *, max_sessions: int = 64,
               session_timeout: float | None = 600.0) -> Any:
    """The FastAPI app serving ``env_id`` with OpenEnv's server; the id and keywords are checked first."""
    from fastapi import FastAPI

    import rlvr  # noqa: F401
    from rlvr.registry import check_env_args

    kwargs = dict(env_kwargs or {})
    check_env_args(env_id, kwargs)
    if max_sessions < 1:
        raise ConfigError(f"max_sessions must be >= 1, got {max_sessions}")
    if session_timeout is not None and session_timeout <= 0:
        raise ConfigError(f"session_timeout must be > 0 seconds (or None for no limit), got {session_timeout}")
    app = FastAPI(title=f"rlvr {env_id} (OpenEnv protocol)")
    server = HTTPEnvServer(functools.partial(RLVREnvironment, env_id, kwargs), RLVRAction, RLVRObservation,
                           concurrency_config=ConcurrencyConfig(max_concurrent_envs=max_sessions,
                                                                session_timeout=session_timeout))
    server.register_routes(app)
    app.state.openenv_server = server
    return app


class _QuietDisconnect:
    """ASGI wrapper: a client that closes its WebSocket right after OpenEnv's ``close`` message makes the
    server's own closing handshake raise ``WebSocketDisconnect`` after the session ended; that is no error."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        from starlette.websockets import WebSocketDisconnect

        try:
            await self.app(scope, receive, send)
        except WebSocketDisconnect:
            if scope.get("type") != "websocket":
                raise


class Server:
    """``env_id`` served on ``host:port`` in a background thread (``port=0``: a free port); a context manager.

    ``url`` is the ``http://`` base URL OpenEnv clients take; ``stop()`` shuts the server down and closes
    every session.
    """

    def __init__(self, env_id: str, env_kwargs: dict[str, Any] | None = None, *, host: str = "127.0.0.1",
                 port: int = 0, max_sessions: int = 64, session_timeout: float | None = 600.0) -> None:
        import uvicorn

        self.app = create_app(env_id, env_kwargs, max_sessions=max_sessions, session_timeout=session_timeout)
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._sock.bind((host, port))
            self._sock.listen(2048)  # connections made before uvicorn's loop runs wait in the backlog
        except OSError as e:
            self._sock.close()
            raise ConfigError(f"cannot listen on {host}:{port}: {e}; pick another --port (0 picks a free one)") from e
        self.host, self.port = host, self._sock.getsockname()[1]
        self.url = f"http://{host}:{self.port}"
        config = uvicorn.Config(_QuietDisconnect(self.app), log_level="warning", ws_max_size=64 * 2**20,
                                ws_ping_interval=None, timeout_graceful_shutdown=10)
        self._uvicorn = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    def start(self, timeout_s: float = 30.0) -> Server:
        """Start serving; returns once the server accepts connections."""
        self._thread = threading.Thread(target=self._uvicorn.run, kwargs={"sockets": [self._sock]},
                                        name=f"rlvr-serve-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._uvicorn.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RemoteEnvUnavailable(f"the server for {self.url} did not start within {timeout_s:g} s")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Stop accepting, close the sessions (their environments) and join the server thread."""
        self._uvicorn.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=30)
        self._sock.close()

    @property
    def active_sessions(self) -> int:
        """Sessions open now."""
        return self.app.state.openenv_server.active_sessions

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def serve(env_id: str, env_kwargs: dict[str, Any] | None = None, *, host: str = "127.0.0.1", port: int = 8000,
          max_sessions: int = 64, session_timeout: float | None = 600.0, announce: Any = print) -> None:
    """Serve ``env_id`` until interrupted (``rlvr serve``); ``announce`` gets the line with the address."""
    server = Server(env_id, env_kwargs, host=host, port=port, max_sessions=max_sessions,
                    session_timeout=session_timeout)
    announce(f"serving {env_id} at {server.url} (OpenEnv protocol: WebSocket {server.url.replace('http', 'ws', 1)}/ws; "
             f"up to {max_sessions} sessions, idle ones closed after {session_timeout} s); Ctrl-C stops")
    try:
        server._uvicorn.run(sockets=[server._sock])
    finally:
        server._sock.close()


# ---------------------------------------------------------------------- client
class RLVREnvClient(EnvClient):
    """OpenEnv's async WebSocket client, typed for an rlvr server (``.sync()`` for blocking calls)."""

    def _step_payload(self, action: Any) -> dict[str, Any]:
        if isinstance(action, str):
            return {"text": action}
        if isinstance(action, RLVRAction):
            return {"text": action.text}
        raise TypeError(f"an rlvr action is the assistant's text (str) or an RLVRAction, got {type(action).__name__}")

    def _parse_result(self, payload: dict[str, Any]) -> StepResult:
        obs = RLVRObservation(**payload.get("observation", {}), reward=payload.get("reward"),
                              done=payload.get("done", False))
        return StepResult(observation=obs, reward=payload.get("reward"), done=payload.get("done", False))

    def _parse_state(self, payload: dict[str, Any]) -> RLVRState:
        return RLVRState(**payload)


class RemoteEnv(gym.Env):
    """A ``gymnasium.Env`` whose episodes run on an rlvr server (``rlvr serve``), over OpenEnv's client.

    Args:
        url: the server's base URL (``http://127.0.0.1:8000`` or ``ws://...``).
        connect_timeout_s: limit for opening the connection.
        message_timeout_s: limit for one reply (a step that runs long tools needs more).
    """

    metadata = {"render_modes": []}

    def __init__(self, url: str, *, connect_timeout_s: float = 10.0, message_timeout_s: float = 300.0) -> None:
        self.url = url
        self.action_space = TextAction()
        self.observation_space = ChatMessages()
        self._client = RLVREnvClient(url, connect_timeout_s=connect_timeout_s,
                                     message_timeout_s=message_timeout_s).sync()
        self._call(self._client.connect)

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except RuntimeError as e:
            if str(e).startswith("Server error:"):
                raise RemoteEnvError(f"the server at {self.url} refused the call: {e}") from e
            raise
        except (ConnectionError, OSError, TimeoutError) as e:
            raise RemoteEnvUnavailable(f"the environment server at {self.url} is unreachable or closed the connection "
                                       f"({type(e).__name__}: {e}); the episode is lost: restart the server (rlvr "
                                       "serve) and reset") from e
        except Exception as e:
            from websockets.exceptions import ConnectionClosed

            if isinstance(e, ConnectionClosed):
                refusal = self._pending_error()
                if refusal is not None:  # the server refused the session (at capacity) and hung up
                    raise RemoteEnvError(f"the server at {self.url} refused the session: {refusal}") from e
                raise RemoteEnvUnavailable(f"the environment server at {self.url} closed the connection mid-episode "
                                           f"({e}); the episode is lost: restart the server (rlvr serve) and "
                                           "reset") from e
            raise

    def _pending_error(self) -> str | None:
        """An error message the server sent before closing (OpenEnv's client reads none once the socket is
        closed); ``None`` when there is none."""
        import asyncio

        ws = getattr(self._client.async_client, "_ws", None)
        if ws is None:
            return None
        try:
            raw = self._client._run(asyncio.wait_for(ws.recv(), 0.5))
            message = json.loads(raw)
        except Exception:  # noqa: BLE001 - nothing readable was left: the plain connection error stands
            return None
        if isinstance(message, dict) and message.get("type") == "error":
            return str(message.get("data", {}).get("message", message))
        return None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[list, dict]:
        super().reset(seed=seed)
        data: dict[str, Any] = {}
        if seed is not None:
            data["seed"] = int(seed)
        if options is not None:
            data["options"] = dict(options)
        obs = self._call(self._client.reset, **data).observation
        return obs.messages, obs.info

    def step(self, action: str) -> tuple[list, float, bool, bool, dict]:
        if not isinstance(action, str):
            raise TypeError(f"action must be the assistant's text (str), got {type(action).__name__}")
        result = self._call(self._client.step, action)
        obs = result.observation
        return obs.messages, float(result.reward or 0.0), obs.terminated, obs.truncated, obs.info

    def state(self) -> RLVRState:
        """The server's view of the episode (:class:`RLVRState`)."""
        return self._call(self._client.state)

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The whole conversation, as ``env.unwrapped.messages`` gives it locally."""
        return self.state().messages

    def oracle_action(self) -> str:
        """The environment's gold next action, computed on the server."""
        action = self.state().oracle_action
        if action is None:
            raise NoOracleError(f"the environment served at {self.url} has no oracle action now")
        return action

    def close(self) -> None:
        try:
            self._client.close()
        except Exception:  # noqa: BLE001 - the server may be gone already; closing is best effort
            pass
