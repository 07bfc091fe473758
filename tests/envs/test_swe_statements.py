"""Problem statements of generated SWE tasks: a user's bug report, never the hidden tests' paths or ids."""

from __future__ import annotations

import ast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlvr.envs.swe.statements import scenario, write_statement

TESTS = b'''import pytest

from shapes import area, parse, Box

UNIT = [(0, 0), (1, 0), (1, 1), (0, 1)]


def square(n):
    return [(0, 0), (n, 0), (n, n), (0, n)]


def test_area():
    """Docstrings are not part of the reproduction."""
    assert area(UNIT) == 1
    assert area(square(2)) == 4


@pytest.mark.parametrize("bad", ["", "x,y"])
def test_parse_rejects(bad):
    with pytest.raises(ValueError):
        parse(bad)


class TestBox:
    def test_grow(self):
        b = Box(1)
        b.grow(2)
        assert b.size == 3
'''
FILES = {"tests/test_shapes.py": TESTS, "shapes/__init__.py": b""}

AREA_FAIL = """tests/test_shapes.py:16: in test_area
    assert area(square(2)) == 4
E   assert 5 == 4
E    +  where 5 = area([(0, 0), (2, 0), (2, 2), (0, 2)])"""
NO_RAISE = """tests/test_shapes.py:21: in test_parse_rejects
    with pytest.raises(ValueError):
E   Failed: DID NOT RAISE <class 'ValueError'>"""
DEEP = """    b.grow(2)
shapes/box.py:9: in grow
    self.size = self._check(self.size - n)
shapes/box.py:14: in _check
    raise ValueError(f"negative size {v} in tests/test_shapes.py::TestBox::test_grow")
E   ValueError: negative size -1 in tests/test_shapes.py::TestBox::test_grow"""


def test_scenario_of_a_failing_assertion_keeps_the_steps_and_the_helpers_it_needs():
    s = scenario(FILES, "tests/test_shapes.py::test_area", AREA_FAIL)
    assert s is not None and s.outcome == "wrong_result" and s.call == "area(square(2))"
    assert s.snippet == (
        "from shapes import area\n\nUNIT = [(0, 0), (1, 0), (1, 1), (0, 1)]\n\n"
        "def square(n):\n    return [(0, 0), (n, 0), (n, n), (0, n)]\n\n"
        "assert area(UNIT) == 1\nassert area(square(2)) == 4"
    )
    assert s.expected == "`area(square(2))` should be `4`"
    assert s.error_lines == ("assert 5 == 4", " +  where 5 = area([(0, 0), (2, 0), (2, 2), (0, 2)])")
    ast.parse(s.snippet)


def test_scenario_of_a_parametrized_raises_binds_the_parameter():
    s = scenario(FILES, "tests/test_shapes.py::test_parse_rejects[x,y]", NO_RAISE)
    assert s is not None and s.outcome == "no_raise"
    assert s.snippet == "import pytest\nfrom shapes import parse\n\nbad = 'x,y'\nwith pytest.raises(ValueError):\n    parse(bad)"
    assert s.expected == "`parse(bad)` should raise `ValueError`" and s.happened == "nothing is raised."


def test_scenario_found_when_the_traceback_lost_the_test_frame():
    s = scenario(FILES, "tests/test_shapes.py::TestBox::test_grow", DEEP)
    assert s is not None and s.outcome == "raises"
    assert s.snippet == "from shapes import Box\n\nb = Box(1)\nb.grow(2)"  # stops at the failing step
    assert s.expected == "`b.grow(2)` should run without an error"


def test_statement_reads_as_a_bug_report_and_redacts_hidden_ids():
    failing = ["tests/test_shapes.py::test_area", "tests/test_shapes.py::TestBox::test_grow",
               "tests/test_shapes.py::test_parse_rejects[]"]
    text = write_statement("shapes", "1.0", FILES, failing,
                           {failing[0]: AREA_FAIL, failing[1]: DEEP})
    assert text.startswith("shapes: `area(square(2))` gives a wrong result\n")
    assert text.count("```python\n") == 2 and "Expected: `b.grow(2)` should run without an error." in text
    assert "Other behaviour that looks broken too: parse rejects." in text
    assert "tests/" not in text and "::" not in text and "test_" not in text
    assert "negative size -1 in <snippet>" in text


def test_unknown_tests_give_no_scenario_and_a_plain_statement():
    assert scenario(FILES, "tests/missing.py::test_x", AREA_FAIL) is None
    assert scenario(FILES, "tests/test_shapes.py::test_nope", AREA_FAIL) is None
    assert scenario({"tests/t.py": b"def test_x(:\n"}, "tests/t.py::test_x", "") is None
    text = write_statement("shapes", "1.0", FILES, ["tests/test_shapes.py::test_nope"], {})
    assert text.startswith("shapes: nope is broken") and "tests/" not in text


_FRAGMENTS = st.one_of(st.text(max_size=30), st.sampled_from(
    ["E   ", "E    +  where ", "\n", "PATH", "ID", "PATH:16: in test_area\n", "PATH:21: in test_parse_rejects\n",
     "    assert area(square(2)) == 4\n", "    b.grow(2)\n", "Failed: DID NOT RAISE ", "AssertionError: assert ",
     "ValueError: ", " at 0x7f00ab\n"]))


@settings(max_examples=200, deadline=None)
@given(st.lists(_FRAGMENTS, max_size=30).map("".join), st.sampled_from(["tests/test_shapes.py::test_area", "tests/test_shapes.py::test_parse_rejects[]",
                                               "tests/test_shapes.py::TestBox::test_grow", "tests/test_shapes.py::test_area[",
                                               "tests/test_shapes.py::"]))
def test_any_excerpt_gives_a_statement_without_hidden_paths(excerpt, test_id):
    excerpt = excerpt.replace("PATH", "tests/test_shapes.py").replace("ID", test_id)
    s = scenario(FILES, test_id, excerpt)
    assert s is None or ast.parse(s.snippet)
    text = write_statement("shapes", "1.0", FILES, [test_id], {test_id: excerpt})
    assert "tests/test_shapes.py" not in text and test_id not in text


@pytest.mark.docker
def test_the_reproduction_runs_in_the_sandbox_where_the_hidden_tests_are_absent():
    import json
    import re

    from rlvr.envs.swe import images
    from rlvr.envs.swe.env import SWEEnv
    from rlvr.envs.swe.generator import SWESmithGenerator, load_project
    from rlvr.envs.swe.pool import SandboxPool
    from rlvr.envs.swe.testing import leaked_containers, require_docker

    def call(name, **arguments):
        return f"<tool_call>{json.dumps({'name': name, 'arguments': arguments})}</tool_call>"

    backend = require_docker()
    task = SWESmithGenerator().task(5)
    with SandboxPool(backend, images.ensure_env_image(backend.client), size=1) as pool:
        env = SWEEnv(pool=pool, command_timeout_s=30, test_timeout_s=60, max_turns=8)
        obs, _ = env.reset(options={"task_id": task.instance_id})
        issue = obs[-1]["content"]
        (code,) = re.findall(r"```python\n(.*?)\n```", issue, re.S)[:1]
        hidden = task.metadata["hidden_tests"][0]
        env.step(call("create_file", path="repro.py", content=code))
        obs, *_ = env.step(call("bash", command=f"python3 repro.py; echo EXIT=$?; test -e {hidden}; echo HIDDEN=$?"))
        out = obs[-1]["content"]
        assert "EXIT=1" in out and "HIDDEN=1" in out, out  # the snippet shows the bug; the test file is not there
        fixed = load_project(task.metadata["project"]).files[task.metadata["path"]].decode()
        env.step(call("create_file", path=task.metadata["path"], content=fixed))
        obs, *_ = env.step(call("bash", command="python3 repro.py; echo EXIT=$?"))
        assert "EXIT=0" in obs[-1]["content"], obs[-1]["content"]
        env.close()
    assert leaked_containers(backend) == []
