"""Running a project's test suite for the SWE task generator: on this machine or inside sandboxes.

Split from :mod:`rlvr.envs.swe.generator` (which re-exports every name here): :class:`TestRun`
holds one run's statuses and output, a :data:`TestRunner` produces one, and :func:`failure_excerpts`
cuts pytest's failure sections into the excerpts a problem statement quotes.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlvr.envs.swe.tasks import DEFAULT_TEST_CMD, parse_pytest_log

__all__ = ["TestRun", "TestRunner", "failure_excerpts", "run_tests_locally", "sandbox_test_runner"]

@dataclass(frozen=True)
class TestRun:
    """Statuses and output of one test-suite run."""

    __test__ = False  # not a pytest test class

    statuses: dict[str, str]
    output: str
    timed_out: bool = False

    @property
    def collection_error(self) -> bool:
        return any(s == "ERROR" and "::" not in t for t, s in self.statuses.items()) or (
            "error" in self.output.lower() and not self.statuses)


TestRunner = Callable[[Mapping[str, bytes], float], TestRun]


def run_tests_locally(files: Mapping[str, bytes], timeout_s: float = 30.0) -> TestRun:
    """Run a project's test suite on this machine (``python -m pytest`` in a temporary directory)."""
    with tempfile.TemporaryDirectory(prefix="rlvr-gen-") as tmp:
        for rel, data in files.items():
            p = Path(tmp, rel)
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
        cmd = [sys.executable, "-m", *DEFAULT_TEST_CMD.split()[2:]]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "PYTHON"))}
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"  # the host's pytest plugins only slow start-up down
        try:
            proc = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, timeout=timeout_s, env=env,
                                  check=False)
        except subprocess.TimeoutExpired as e:
            out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
            return TestRun({}, out, timed_out=True)
        return TestRun(parse_pytest_log(proc.stdout), proc.stdout + proc.stderr)


def sandbox_test_runner(pool: Any) -> TestRunner:
    """A :data:`TestRunner` that runs the suite inside sandboxes of ``pool`` (no host pytest needed)."""

    def run(files: Mapping[str, bytes], timeout_s: float = 30.0) -> TestRun:
        with pool.acquire(lambda sb: sb.load_tree(files, message="validate")) as sb:
            res = sb.exec(DEFAULT_TEST_CMD, timeout_s=timeout_s, max_output_bytes=1 << 20)
        return TestRun(parse_pytest_log(res.output), res.output, timed_out=res.timed_out)

    return run


_SECTION = re.compile(r"^_{3,} (.+?) _{3,}$", re.M)


def failure_excerpts(output: str, max_lines: int = 12) -> dict[str, str]:
    """``{test name: excerpt}`` from pytest ``--tb=short`` failure sections."""
    out: dict[str, str] = {}
    heads = list(_SECTION.finditer(output))
    for i, h in enumerate(heads):
        end = heads[i + 1].start() if i + 1 < len(heads) else len(output)
        body = output[h.end():end]
        body = re.split(r"^(?:=+ |-+ Captured )", body, maxsplit=1, flags=re.M)[0]
        lines = [ln for ln in body.strip("\n").splitlines() if ln.strip()]
        out[h.group(1).strip()] = "\n".join(lines[-max_lines:])
    return out
