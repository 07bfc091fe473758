"""The attach transport's framing (rlvr.envs.swe.attach), without a Docker engine."""

from __future__ import annotations

import json
import socket
import struct
import threading
import time

import pytest

from rlvr.envs.swe.attach import AnswerReader, ChannelClosed, encode_request, exchange
from rlvr.envs.swe.runner import MAGIC


def _answer(nonce: str | None, payload: bytes = b"", **info) -> bytes:
    """Bytes the serving runner writes for one answer (see runner.serve)."""
    header = json.dumps({**info, "len": len(payload), "nonce": nonce}).encode()
    return MAGIC + header + b"\n" + payload


def _frame(stream: int, data: bytes) -> bytes:
    """One frame of the engine's multiplexed attach stream."""
    return struct.pack(">BxxxL", stream, len(data)) + data


def test_encode_request_is_one_json_line():
    line = encode_request(["bash", "-c", "echo a\necho b"], {"timeout": 2.0}, "/testbed", None, "n1")
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert json.loads(line) == {"argv": ["bash", "-c", "echo a\necho b"], "opts": {"timeout": 2.0},
                                "cwd": "/testbed", "env": {}, "nonce": "n1"}
    assert json.loads(encode_request(("true",), {}, "/", {"A": "1"}, "n2"))["env"] == {"A": "1"}


def test_answer_reader_waits_for_a_whole_answer_fed_byte_by_byte():
    data = b"noise before the marker" + _answer("n1", b"out\nput", exit_code=0)
    reader = AnswerReader()
    got = [a for i in range(len(data)) for a in reader.feed(data[i:i + 1])]
    assert got == [({"exit_code": 0, "len": 7, "nonce": "n1"}, b"out\nput")]
    assert reader.feed(b"") == []


def test_answer_reader_splits_answers_and_keeps_payloads_that_look_like_markers():
    tricky = MAGIC + b'{"len": 99}\n'
    reader = AnswerReader()
    first = reader.feed(_answer("a", tricky, exit_code=1) + _answer("b", b"", exit_code=0) + _answer("c")[:5])
    assert [(h["nonce"], p) for h, p in first] == [("a", tricky), ("b", b"")]
    assert [h["nonce"] for h, _ in reader.feed(_answer("c")[5:])] == ["c"]


def test_answer_reader_rejects_a_header_that_is_not_json():
    with pytest.raises(ValueError):
        AnswerReader().feed(MAGIC + b"{not json\n")


@pytest.fixture
def channel():
    pytest.importorskip("docker")
    ours, theirs = socket.socketpair()
    sock = socket.SocketIO(ours, "rwb")  # what docker's attach_socket returns
    yield sock, theirs
    sock.close()
    ours.close()
    theirs.close()


def test_exchange_skips_stderr_and_other_nonces(channel):
    sock, engine = channel
    request = encode_request(["true"], {}, "/", None, "mine")

    def serve():
        assert engine.recv(len(request)) == request
        engine.sendall(_frame(2, _answer("mine", b"stderr is never an answer"))
                       + _frame(1, _answer("stale", b"old", exit_code=9))
                       + _frame(0, b"") + _frame(1, _answer("mine", b"ok", exit_code=0)[:10]))
        engine.sendall(_frame(1, _answer("mine", b"ok", exit_code=0)[10:]))

    t = threading.Thread(target=serve)
    t.start()
    header, payload = exchange(sock, request, "mine", timeout_s=5)
    t.join()
    assert (header["exit_code"], payload) == (0, b"ok")


def test_exchange_returns_an_error_answer_for_the_caller_to_raise(channel):
    sock, engine = channel
    engine.sendall(_frame(1, _answer("n", error="KeyError: 'argv'")))
    header, payload = exchange(sock, b"{}\n", "n", timeout_s=5)
    assert header["error"] == "KeyError: 'argv'" and payload == b""


def test_exchange_raises_when_the_stream_ends(channel):
    sock, engine = channel
    engine.sendall(_frame(1, b"partial output"))
    engine.shutdown(socket.SHUT_WR)
    with pytest.raises(ChannelClosed, match="attach stream ended"):
        exchange(sock, b"{}\n", "n", timeout_s=5)



def test_exchange_times_out_when_the_runner_never_answers(channel):
    """A wedged runner or engine: the SDK's own frame reads poll without a limit, ours honour the deadline."""
    sock, engine = channel
    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        exchange(sock, b"{}\n", "n", timeout_s=0.3)
    assert time.monotonic() - t0 < 2


def test_exchange_deadline_covers_the_whole_answer_not_each_read(channel):
    sock, engine = channel
    stop = threading.Event()

    def trickle():  # a byte of stderr every 50 ms: every read succeeds, the answer never completes
        while not stop.is_set():
            try:
                engine.sendall(_frame(2, b"."))
            except OSError:
                return
            time.sleep(0.05)

    t = threading.Thread(target=trickle, daemon=True)
    t.start()
    t0 = time.monotonic()
    try:
        with pytest.raises(TimeoutError):
            exchange(sock, b"{}\n", "n", timeout_s=0.5)
    finally:
        stop.set()
        t.join()
    assert time.monotonic() - t0 < 2
