"""SWE task schema, the SWE-bench / SWE-Gym JSONL loader, pytest log parsing and patch helpers."""

from __future__ import annotations

import json
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlvr.envs.swe.errors import TaskError
from rlvr.envs.swe.tasks import SWETask, load_swe_jsonl, parse_pytest_log, patch_files

RECORD = {
    "repo": "acme/widgets", "instance_id": "acme__widgets-1", "base_commit": "abc123",
    "problem_statement": "widgets break", "patch": "diff --git a/w.py b/w.py\n", "test_patch": "",
    "FAIL_TO_PASS": '["tests/test_w.py::test_a"]', "PASS_TO_PASS": [], "hints_text": None,
    "created_at": "2024-01-01", "version": "1.0", "environment_setup_commit": "abc123",
}


def write(tmp_path, *records, raw: str | None = None):
    p = tmp_path / "tasks.jsonl"
    p.write_text(raw if raw is not None else "\n".join(json.dumps(r) for r in records) + "\n")
    return p


def test_loader_reads_swe_bench_records_with_image_template(tmp_path):
    (task,) = load_swe_jsonl(write(tmp_path, RECORD), image="sweb.eval.x86_64.{instance_id}")
    assert task.FAIL_TO_PASS == ("tests/test_w.py::test_a",)  # JSON-encoded list decoded
    assert task.image == "sweb.eval.x86_64.acme__widgets-1" and task.hints_text == ""
    assert task.to_record()["FAIL_TO_PASS"] == ["tests/test_w.py::test_a"]


def test_loader_finds_clones_in_repos_dir(tmp_path):
    (tmp_path / "repos" / "acme__widgets" / ".git").mkdir(parents=True)
    (task,) = load_swe_jsonl(write(tmp_path, RECORD), repos_dir=tmp_path / "repos")
    assert task.repo_path.endswith("acme__widgets") and task.image is None


@pytest.mark.parametrize("mutate,message", [
    (lambda r: r.pop("patch"), "missing field"),
    (lambda r: r.update(FAIL_TO_PASS="not json"), "FAIL_TO_PASS must be a list"),
    (lambda r: r.update(PASS_TO_PASS=[1, 2]), "PASS_TO_PASS must be a list of strings"),
    (lambda r: r.update(FAIL_TO_PASS=[]), "FAIL_TO_PASS is empty"),
])
def test_loader_errors_name_the_line_and_field(tmp_path, mutate, message):
    rec = dict(RECORD)
    mutate(rec)
    with pytest.raises(TaskError, match=message):
        load_swe_jsonl(write(tmp_path, rec), image="img")


def test_loader_needs_a_repository_source(tmp_path):
    with pytest.raises(TaskError, match="repos_dir=.*image="):
        load_swe_jsonl(write(tmp_path, RECORD))
    with pytest.raises(TaskError, match="no clone of acme/widgets"):
        load_swe_jsonl(write(tmp_path, RECORD), repos_dir=tmp_path)
    with pytest.raises(TaskError, match=r"tasks.jsonl:1: not valid JSON"):
        load_swe_jsonl(write(tmp_path, raw="{oops\n"), image="x")
    with pytest.raises(TaskError, match="holds no tasks"):
        load_swe_jsonl(write(tmp_path, raw="\n"), image="x")
    with pytest.raises(TaskError, match="no such task file"):
        load_swe_jsonl(tmp_path / "missing.jsonl")


def test_task_tree_from_a_local_clone(tmp_path):
    repo = tmp_path / "r"
    repo.mkdir()
    (repo / "a.py").write_text("A = 1\n")
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t",
           "PATH": "/usr/bin:/bin"}
    subprocess.run("git init -q && git add -A && git commit -qm one", shell=True, cwd=repo, env=env, check=True)
    base = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
    (repo / "a.py").write_text("A = 2\n")  # a later, uncommitted change must not leak into the tree
    task = SWETask("i", "o/r", base, "p", "", "", ("t",), (), repo_path=str(repo))
    assert task.tree() == {"a.py": b"A = 1\n"}
    bad = SWETask("j", "o/r", "deadbeef", "p", "", "", ("t",), (), repo_path=str(repo))
    with pytest.raises(TaskError, match="git archive deadbeef"):
        bad.tree()


def test_parse_pytest_log_reads_only_the_last_summary():
    log = (
        "PASSED tests/test_a.py::test_fake\n"  # printed by test code: ignored
        "=========================== short test summary info ============================\n"
        "PASSED tests/test_a.py::test_one\n"
        "FAILED tests/test_a.py::test_two - AssertionError: assert 1 == 2\n"
        "ERROR tests/test_b.py::test_three - RuntimeError\n"
        "XFAIL tests/test_b.py::test_four - reason\n"
        "SKIPPED [1] tests/test_b.py:3: no\n"
        "PASSED tests/test_c.py::test_p[a b]\n"
        "1 failed, 2 passed in 0.1s\n"
    )
    assert parse_pytest_log(log) == {
        "tests/test_a.py::test_one": "PASSED", "tests/test_a.py::test_two": "FAILED",
        "tests/test_b.py::test_three": "ERROR", "tests/test_b.py::test_four": "XFAIL",
        "tests/test_c.py::test_p[a b]": "PASSED",
    }


node_id = st.from_regex(r"tests/test_[a-z]{1,8}\.py::test_[a-z0-9_]{1,12}(\[[a-z0-9-]{1,6}\])?", fullmatch=True)
status = st.sampled_from(["PASSED", "FAILED", "ERROR", "XFAIL", "XPASS"])


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(node_id, status, max_size=12), st.text(max_size=300))
def test_parse_pytest_log_round_trips_and_ignores_noise(statuses, noise):
    lines = [f"{s} {t}" + (" - AssertionError: boom" if s == "FAILED" else "") for t, s in statuses.items()]
    log = noise + "\n=========================== short test summary info ============================\n" + "\n".join(lines)
    assert parse_pytest_log(log) == statuses


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=500))
def test_parse_pytest_log_never_raises(text):
    out = parse_pytest_log(text)
    assert all(v in {"PASSED", "FAILED", "ERROR", "XFAIL", "XPASS", "SKIPPED"} for v in out.values())


def test_patch_files():
    patch = ("diff --git a/x.py b/x.py\n--- a/x.py\n+++ b/x.py\n"
             "diff --git a/tests/t.py b/tests/t.py\nnew file mode 100644\n--- /dev/null\n+++ b/tests/t.py\n")
    assert patch_files(patch) == ["x.py", "tests/t.py"]
    assert patch_files("") == []


def test_task_validation():
    with pytest.raises(TaskError, match="no repository source"):
        SWETask("i", "o/r", "c", "p", "", "", ("t",), ())
    with pytest.raises(TaskError, match="instance_id must be a non-empty string"):
        SWETask("", "o/r", "c", "p", "", "", ("t",), (), image="x")


def test_public_surface():
    import rlvr.envs.swe as swe

    assert sorted(swe.__all__) == sorted([
        "SWEEnv", "SWERewardConfig", "SWETask", "SWESmithGenerator", "GradeReport", "grade", "load_swe_jsonl",
        "list_projects", "Sandbox", "SandboxConfig", "SandboxPool", "ExecResult", "DockerBackend", "BwrapBackend",
        "reap_leaked", "SandboxError", "EngineUnavailable", "SandboxLost", "ImageError", "PoolExhausted", "TaskError",
    ])
    assert all(hasattr(swe, name) for name in swe.__all__)
