"""The attach transport: commands to a Docker sandbox's runner over the container's attached stdin.

The container's PID 1 is the runner in ``--serve`` mode (:func:`rlvr.envs.swe.runner.serve`). It reads one
JSON request per line (:func:`encode_request`) and answers each with :data:`~rlvr.envs.swe.runner.MAGIC`,
a JSON header line (result info, ``len``, ``nonce``) and ``len`` bytes of output. The engine multiplexes
the container's stdout and stderr into frames of an 8-byte header (stream, size) and the data;
:func:`exchange` sends one request and reads frames until the answer that carries the request's nonce.
:class:`AnswerReader` splits the runner's stdout into answers and is pure. The Docker calls that open
and close the socket, and the mapping of failures to the sandbox errors, stay in
:class:`~rlvr.envs.swe.docker_backend.DockerSandbox`.
"""

from __future__ import annotations

import json
import struct
import time
from typing import Any, Mapping, Sequence

from rlvr.envs.swe.runner import MAGIC
from rlvr.errors import RLVRError

__all__ = ["encode_request", "AnswerReader", "ChannelClosed", "exchange"]

STDOUT = 1
"""Stream number of the container's stdout in the engine's frames (2 is stderr)."""


class ChannelClosed(RLVRError):
    """The engine ended the attach stream: the container died or the engine restarted."""


def encode_request(argv: Sequence[str], opts: Mapping[str, float], cwd: str, env: Mapping[str, str] | None,
                   nonce: str) -> bytes:
    """One request line for the serving runner: ``argv``, runner ``opts``, ``cwd``, ``env`` and ``nonce``."""
    return json.dumps({"argv": list(argv), "opts": dict(opts), "cwd": cwd, "env": dict(env or {}),
                       "nonce": nonce}).encode() + b"\n"


class AnswerReader:
    """Splits the runner's stdout into answers: ``MAGIC`` + a JSON header line + ``header["len"]`` bytes.

    Bytes before a ``MAGIC`` marker are skipped. :meth:`feed` returns the answers completed so far; an
    incomplete one waits for more data. A header that is not JSON raises ``ValueError``.
    """

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[tuple[dict[str, Any], bytes]]:
        """Add ``data``; return every answer it completed, in order, as ``(header, payload)``."""
        buf = self._buf
        buf += data
        answers = []
        while True:
            at = buf.find(MAGIC)
            if at < 0:
                break
            end = buf.find(b"\n", at)
            if end < 0:
                break
            header = json.loads(bytes(buf[at + len(MAGIC):end]))
            need = end + 1 + int(header.get("len", 0))
            if len(buf) < need:
                break
            answers.append((header, bytes(buf[end + 1:need])))
            del buf[:need]
        return answers


def _recv_exactly(raw: Any, n: int, deadline: float) -> bytes:
    """``n`` bytes from the socket ``raw``, or :class:`ChannelClosed` at end of stream, or ``TimeoutError``
    once ``deadline`` (a ``time.monotonic`` instant) has passed."""
    out = bytearray()
    while len(out) < n:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no answer from the sandbox in time")
        raw.settimeout(left)
        chunk = raw.recv(min(n - len(out), 1 << 16))
        if not chunk:
            raise ChannelClosed("the attach stream ended")
        out += chunk
    return bytes(out)


def exchange(sock: Any, request: bytes, nonce: str, timeout_s: float) -> tuple[dict[str, Any], bytes]:
    """Send ``request`` over the attach socket ``sock`` and return the answer carrying ``nonce``.

    Frames of stderr and answers to other nonces are skipped. Raises :class:`ChannelClosed` when the
    stream ends, ``TimeoutError`` when the whole answer has not arrived within ``timeout_s`` (a wedged
    runner or engine: the deadline holds for the exchange, not per read), ``OSError`` when the socket
    fails, and ``ValueError`` for a malformed header. An answer whose header holds ``"error"`` is
    returned like any other.
    """
    raw = sock._sock  # the socket under docker's SocketIO: recv honours the deadline (the SDK's reads poll forever)
    deadline = time.monotonic() + timeout_s
    reader = AnswerReader()
    raw.settimeout(timeout_s)
    raw.sendall(request)
    while True:
        stream, _, _, _, size = struct.unpack(">BBBBI", _recv_exactly(raw, 8, deadline))
        data = _recv_exactly(raw, size, deadline) if size else b""
        if stream != STDOUT:
            continue  # stderr of PID 1: not part of any answer
        for header, payload in reader.feed(data):
            if header.get("nonce") == nonce:
                return header, payload
