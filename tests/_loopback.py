"""Test seam: JSON-over-HTTP servers on 127.0.0.1 (a real socket, no traffic leaves the machine)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class JSONHandler(BaseHTTPRequestHandler):
    """A quiet request handler with ``_send(code, obj)`` for JSON answers; subclasses write ``do_POST``."""

    def log_message(self, *args):  # keep test output clean
        pass

    def _send(self, code: int, obj) -> None:
        data = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def serve(handler: type[JSONHandler], path: str = "/retrieve") -> tuple[ThreadingHTTPServer, str, threading.Thread]:
    """Start ``handler`` on a free loopback port in a daemon thread; returns the server, its URL and the thread."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}{path}", thread
