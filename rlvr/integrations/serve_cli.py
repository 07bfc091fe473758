"""``rlvr serve ENV``: the command-line side of :mod:`rlvr.integrations.openenv` (imported without OpenEnv)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["add_serve_parser", "cmd_serve"]


def add_serve_parser(sub: Any) -> None:
    """Add the ``serve`` subcommand to the ``rlvr`` parser's subparsers."""
    fmt = argparse.ArgumentDefaultsHelpFormatter
    s = sub.add_parser("serve", formatter_class=fmt,
                       help="serve an environment over OpenEnv's protocol (reset / step / state over WebSocket)")
    s.add_argument("env", help="environment id, e.g. rlvr/GuessNumber-v0")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (loopback by default)")
    s.add_argument("--port", type=int, default=8000, help="port to listen on (0 picks a free one)")
    s.add_argument("--env-arg", "-e", action="append", default=[], metavar="KEY=VALUE",
                   help="keyword argument for every session's environment (JSON values), repeatable")
    s.add_argument("--max-sessions", type=int, default=64, help="concurrent sessions (one per client connection)")
    s.add_argument("--idle-timeout", type=float, default=600.0,
                   help="close a session idle this many seconds (its environment and sandboxes are released)")


def cmd_serve(args: argparse.Namespace) -> int:
    """Run ``rlvr serve`` until interrupted."""
    from rlvr.cli import _parse_kv  # the same key=value parsing as `rlvr run -e`
    from rlvr.registry import check_env_args

    kwargs = _parse_kv(args.env_arg)
    check_env_args(args.env, kwargs)  # a wrong id or keyword fails before OpenEnv and the server load
    from rlvr.integrations.openenv import serve

    try:
        serve(args.env, kwargs, host=args.host, port=args.port, max_sessions=args.max_sessions,
              session_timeout=args.idle_timeout, announce=lambda line: print(line, flush=True))
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
    return 0
