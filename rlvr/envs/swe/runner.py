"""In-sandbox command runner (standard library only; copied into every task image).

Runs one command with a wall-clock limit, stdout and stderr merged, keeping the head and tail of the
output up to a byte budget; the command runs in its own session so that a timeout, an output flood or
the command's exit stops its whole process group. It prints the captured output, then one trailer line
``\\n<SENTINEL>{json}\\n`` with ``exit_code``, ``timed_out``, ``truncated``, ``output_bytes`` and
``killed_for_output``. Also used as PID 1 of a container: ``--serve`` answers requests sent on its
attached stdin (one process start per command instead of one ``docker exec``), ``--init`` only reaps
zombies.

The attached stdin is also the sandbox's lifeline: its driver holds the other end, so when the driver
exits or is killed (even with SIGKILL) the engine closes the stream, PID 1 sees end of file and exits,
and the kernel ends every process of the container with it. ``--serve`` always watches it;
``--init --lifeline`` does the same for containers driven by ``docker exec``.

Usage::

    python3 rlvr-exec --timeout 30 --max-bytes 32000 [--tail-bytes 8000] [--rlimit-as B]
                      [--rlimit-nproc N] [--rlimit-fsize B] -- CMD [ARG...]
    python3 rlvr-exec --serve | --init [--lifeline]
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import threading
import time

SENTINEL = "\x00RLVR-EXEC-RESULT\x00"
MAGIC = b"\x00RLVR-RESPONSE\x00"
HARD_CAP_FACTOR = 256  # stop reading (and kill) after this many times the byte budget
DRAIN_AFTER_EXIT_S = 0.3  # background children may hold the pipe open; read this long after exit


def _exit_at_eof(stream, on_line=None) -> None:
    """Read ``stream`` until end of file (passing each line to ``on_line``), then end this process.

    As PID 1 of a container, exiting ends every process in it: the driver that held the other end of
    the stream is gone, so nobody can use or remove the sandbox any more.
    """
    try:
        for line in iter(stream.readline, b""):
            if on_line is not None:
                on_line(line)
    except (OSError, ValueError):
        pass
    os._exit(0)


def _init(lifeline: bool = False) -> None:
    """Reap zombies forever (PID 1 of a sandbox container driven by ``docker exec``); with ``lifeline``,
    exit as soon as stdin reaches end of file."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # as PID 1 of a namespace, unhandled signals are ignored
    if lifeline:
        threading.Thread(target=_exit_at_eof, args=(sys.stdin.buffer,), daemon=True).start()
    while True:
        try:
            os.wait()
        except ChildProcessError:
            time.sleep(1.0)
        except InterruptedError:
            continue


def _parse(argv: list[str]) -> tuple[dict[str, float], list[str]]:
    opts = {"timeout": 30.0, "max-bytes": 32000.0, "tail-bytes": -1.0, "rlimit-as": 0.0, "rlimit-nproc": 0.0,
            "rlimit-fsize": 0.0}
    i = 0
    while i < len(argv) and argv[i] != "--":
        key = argv[i].lstrip("-")
        if key not in opts or i + 1 >= len(argv):
            raise SystemExit(f"rlvr-exec: unknown or incomplete option {argv[i]!r}; expected one of "
                             + ", ".join("--" + k for k in opts))
        opts[key] = float(argv[i + 1])
        i += 2
    cmd = argv[i + 1:]
    if not cmd:
        raise SystemExit("rlvr-exec: no command given after '--'")
    return opts, cmd


def _limits(opts: dict[str, float]):
    import resource

    def apply() -> None:
        for key, res in (("rlimit-as", resource.RLIMIT_AS), ("rlimit-nproc", resource.RLIMIT_NPROC),
                         ("rlimit-fsize", resource.RLIMIT_FSIZE)):
            if opts.get(key, 0) > 0:
                try:
                    resource.setrlimit(res, (int(opts[key]), int(opts[key])))
                except (ValueError, OSError):
                    pass

    return apply


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _reap_others(own: int) -> None:
    """Reap exited children other than ``own`` (orphans re-parented to PID 1), leaving ``own`` alone."""
    while True:
        try:
            info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return
        if info is None or info.si_pid == own:
            return
        try:
            os.waitpid(info.si_pid, 0)
        except ChildProcessError:
            return


def _reap_all() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def execute(cmd: list[str], opts: dict[str, float], *, cwd: str | None = None, env: dict | None = None,
            reap: bool = False) -> tuple[dict, bytes]:
    """Run ``cmd`` under the limits in ``opts``; return (result info, captured output)."""
    max_bytes = max(256, int(opts.get("max-bytes", 32000)))
    tail_opt = opts.get("tail-bytes", -1)
    tail_bytes = int(tail_opt) if tail_opt >= 0 else max_bytes // 4
    tail_bytes = min(tail_bytes, max_bytes - 128)
    head_bytes = max_bytes - tail_bytes
    hard_cap = max_bytes * HARD_CAP_FACTOR
    start = time.monotonic()
    deadline = start + max(0.0, opts.get("timeout", 30.0))
    full_env = None if env is None else {**os.environ, **env}
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                start_new_session=True, preexec_fn=_limits(opts), cwd=cwd, env=full_env)
    except OSError as e:
        msg = f"rlvr-exec: cannot start {cmd[0]!r}: {e.strerror or e}\n".encode()
        return {"exit_code": 127, "timed_out": False, "truncated": False, "output_bytes": len(msg),
                "killed_for_output": False}, msg
    fd = proc.stdout.fileno()
    head = bytearray()
    tail = bytearray()
    total = 0
    timed_out = killed_for_output = False
    exited_at: float | None = None
    wait_step = 0.01 if reap else 0.1
    while True:
        if reap:
            _reap_others(proc.pid)
        now = time.monotonic()
        if now >= deadline:
            timed_out = True
            break
        if exited_at is None and proc.poll() is not None:
            exited_at = now
        if exited_at is not None and now - exited_at > DRAIN_AFTER_EXIT_S:
            break
        ready, _, _ = select.select([fd], [], [], min(wait_step, deadline - now))
        if not ready:
            continue
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            break
        total += len(chunk)
        room = head_bytes - len(head)
        if room > 0:
            head += chunk[:room]
            chunk = chunk[room:]
        if chunk and tail_bytes > 0:
            tail += chunk
            if len(tail) > tail_bytes:
                del tail[: len(tail) - tail_bytes]
        if total > hard_cap:
            killed_for_output = True
            break
    # End of output is not the end of the command (tools close stdout in atexit handlers, or a command
    # may close it and go on): wait for the exit within the deadline before stopping its group.
    while not (timed_out or killed_for_output) and proc.poll() is None:
        if time.monotonic() >= deadline:
            timed_out = True
            break
        if reap:
            _reap_others(proc.pid)
        time.sleep(0.001)
    _kill_group(proc.pid)
    try:
        rc = proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        rc = -9
    proc.stdout.close()
    if reap:
        _reap_all()
    if rc < 0:
        rc = 128 - rc
    if timed_out or killed_for_output:
        rc = 124 if timed_out else 137
    truncated = total > len(head) + len(tail)
    out = bytes(head)
    if truncated:
        out += f"\n[... {total - len(head) - len(tail)} bytes of output omitted ...]\n".encode()
    out += bytes(tail)
    info = {"exit_code": rc, "timed_out": timed_out, "truncated": truncated, "output_bytes": total,
            "killed_for_output": killed_for_output}
    return info, out


def run(argv: list[str]) -> int:
    """Run the command described by ``argv`` (see module docstring); returns the runner's exit status."""
    opts, cmd = _parse(argv)
    info, out = execute(cmd, opts)
    sys.stdout.buffer.write(out)
    sys.stdout.buffer.write(("\n" + SENTINEL + json.dumps(info) + "\n").encode())
    sys.stdout.flush()
    return 0


def serve() -> None:
    """PID 1 of a sandbox container driven through its attached stdin / stdout.

    Reads one JSON request per line (``argv``, ``cwd``, ``env``, ``opts``, ``nonce``) and answers each
    with ``MAGIC`` + a JSON header line (result info, ``len``, ``nonce``) + ``len`` bytes of output.
    Between and during requests it reaps orphaned processes. When stdin closes (the driver closed the
    sandbox, exited or was killed) it exits at once, even in the middle of a command, which ends the
    container.
    """
    import queue

    signal.signal(signal.SIGINT, signal.SIG_DFL)  # as PID 1 of a namespace, unhandled signals are ignored
    stdout = sys.stdout.buffer
    requests: queue.SimpleQueue = queue.SimpleQueue()
    threading.Thread(target=_exit_at_eof, args=(sys.stdin.buffer, requests.put), daemon=True).start()
    while True:
        _reap_all()
        try:
            line = requests.get(timeout=1.0)
        except queue.Empty:
            continue
        req: dict = {}
        try:
            req = json.loads(line)
            info, out = execute(list(req["argv"]), dict(req.get("opts") or {}), cwd=req.get("cwd"),
                                env=req.get("env"), reap=True)
        except Exception as e:  # noqa: BLE001 - reported to the host, never fatal for PID 1
            req = req if isinstance(req, dict) else {}
            info, out = {"error": f"{type(e).__name__}: {e}"}, b""
        header = json.dumps({**info, "len": len(out), "nonce": req.get("nonce")}).encode()
        stdout.write(MAGIC + header + b"\n" + out)
        stdout.flush()


def main() -> None:
    """Command-line entry point."""
    argv = sys.argv[1:]
    if argv[:1] == ["--init"]:
        _init(lifeline="--lifeline" in argv[1:])
    if argv[:1] == ["--serve"]:
        serve()
    sys.exit(run(argv))


if __name__ == "__main__":
    main()
