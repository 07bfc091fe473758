"""Run the command line as a user does: ``python -m rlvr ARGS`` in a fresh process."""

from __future__ import annotations

import os
import subprocess
import sys


def rlvr_cli(*args: str, cwd=None, env=None, timeout: float = 240) -> subprocess.CompletedProcess:
    """``python -m rlvr ARGS`` (the ``rlvr`` console script's ``main``) with its output captured as text."""
    return subprocess.run([sys.executable, "-m", "rlvr", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})
