"""The README's Python snippets run as written (each in a fresh namespace, in a scratch directory)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)

# Snippets that cannot run as they stand, found by a phrase they contain: ("slow", prelude) runs them in the
# slow suite after the prelude (they load a model or start a cluster); ("serve", prelude) runs them after the prelude
# against a GuessNumber server that `rlvr serve` starts on a free loopback port (put in place of the snippet's URL).
SPECIAL = {
    'executor="ray"': ("slow", "from rlvr.agents.rollout import rollout\nfrom rlvr.agents import OracleAgent\n"
                               "agent = OracleAgent()\n"),
    "GRPOTrainer(": ("slow", ""),
    'RemoteEnv("http://127.0.0.1:8000")': ("serve", "from rlvr.agents.rollout import rollout\nfrom rlvr.agents import RandomAgent\n"
                                                  "agent = RandomAgent(seed=0)\n"),
}


def _special(block: str) -> tuple[str, str] | None:
    hits = [v for k, v in SPECIAL.items() if k in block]
    return hits[0] if hits else None


def _params():
    out = []
    for i, block in enumerate(BLOCKS):
        first = block.strip().splitlines()[0][:50]
        special = _special(block)
        marks = []
        if special and special[0] == "slow":
            marks.append(pytest.mark.slow)
        out.append(pytest.param(i, id=f"{i}:{first}", marks=marks))
    return out


def test_the_readme_has_snippets_and_every_special_case_still_matches_one():
    assert len(BLOCKS) >= 5
    for phrase in SPECIAL:
        assert sum(phrase in b for b in BLOCKS) == 1, f"{phrase!r} should match one README snippet; update SPECIAL"


@pytest.mark.parametrize("index", _params())
def test_snippet_runs(index, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # snippets write runs/... and files next to them
    block = BLOCKS[index]
    special = _special(block)
    code = (special[1] if special else "") + block
    namespace: dict = {"__name__": "__readme__"}
    if special and special[0] == "serve":
        pytest.importorskip("openenv")
        with _server("rlvr/GuessNumber-v0") as url:
            code = code.replace("http://127.0.0.1:8000", url)
            exec(compile(code, f"README.md snippet {index}", "exec"), namespace)  # noqa: S102
        assert len(namespace["messages"]) >= 1 and "error" in namespace["info"]
        return
    exec(compile(code, f"README.md snippet {index}", "exec"), namespace)  # noqa: S102 - the project's own docs
    if 'gym.make("rlvr/DeepSearch-v0")' in block and "env.step(" in block:  # the opening example finds its entity
        assert "The Quiet Bridge" in namespace["obs"][0]["content"]
        assert namespace["info"]["reward_components"]["evidence"] > 0  # a gold document surfaced


class _server:
    """``rlvr serve ENV`` on a free loopback port, killed on exit; the value is its URL."""

    def __init__(self, env_id: str) -> None:
        self.env_id = env_id

    def __enter__(self) -> str:
        self.proc = subprocess.Popen([sys.executable, "-m", "rlvr.cli", "serve", self.env_id, "--port", "0"],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     start_new_session=True)
        line = self.proc.stdout.readline()
        url = re.search(r"at (http://127\.0\.0\.1:\d+)", line)
        if not url:
            self.__exit__()
            pytest.fail(f"rlvr serve printed {line!r}, expected its URL")
        return url.group(1)

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        self.proc.stdout.close()
