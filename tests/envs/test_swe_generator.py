"""The SWE-smith-style generator: mutations, validation, tasks, determinism, the shipped catalog."""

from __future__ import annotations

import ast
import json
import subprocess
from collections import Counter

import pytest

from rlvr.envs.swe import images
from rlvr.envs.swe.generator import (
    CATALOG_PATH,
    MUTATION_KINDS,
    SWESmithGenerator,
    enumerate_mutations,
    list_projects,
    load_project,
    run_tests_locally,
    sandbox_test_runner,
    validate_mutation,
)
from rlvr.envs.swe.pool import SandboxPool
from rlvr.envs.swe.tasks import patch_files
from rlvr.envs.swe.testing import require_docker
from rlvr.errors import ConfigError


@pytest.fixture(scope="module")
def gen():
    return SWESmithGenerator()


def test_projects_ship_with_tests():
    names = list_projects()
    assert len(names) >= 5
    for name in names:
        p = load_project(name)
        assert p.source_files and p.test_files, name
        assert not any("__pycache__" in f for f in p.files)


def test_every_kind_occurs_and_every_mutation_is_valid_python():
    kinds: Counter[str] = Counter()
    for name in list_projects():
        p = load_project(name)
        ms = enumerate_mutations(p)
        assert [m.id for m in ms] == [m.id for m in enumerate_mutations(p)]  # deterministic
        assert len({m.id for m in ms}) == len(ms)
        for m in ms:
            kinds[m.kind] += 1
            before = p.files[m.path]
            after = m.apply(before)
            assert ast.dump(ast.parse(after)) != ast.dump(ast.parse(before))
    assert set(kinds) == set(MUTATION_KINDS)


def test_kind_filter_and_errors():
    p = load_project("ledger")
    assert {m.kind for m in enumerate_mutations(p, ["comparison"])} == {"comparison"}
    with pytest.raises(ConfigError, match="unknown mutation kind"):
        enumerate_mutations(p, ["teleport"])
    with pytest.raises(ConfigError, match="unknown project"):
        SWESmithGenerator(["nope"])
    with pytest.raises(ConfigError, match="unknown project"):
        load_project("nope")


def test_catalog_is_up_to_date_with_the_projects():
    catalog = json.loads(CATALOG_PATH.read_text())
    for name in list_projects():
        entry = catalog["projects"][name]
        p = load_project(name)
        assert entry["digest"] == p.digest, f"catalog stale for {name}: rebuild it"
        ids = {m.id for m in enumerate_mutations(p)}
        assert set(entry["mutations"]) == ids  # every candidate was validated
        assert sum(isinstance(v, dict) for v in entry["mutations"].values()) >= 10


def test_same_seed_same_task_and_seeds_vary(gen):
    a, b = gen.task(7), SWESmithGenerator().task(7)
    assert a.instance_id == b.instance_id and a.problem_statement == b.problem_statement and a.patch == b.patch
    ids = {gen.task(s).instance_id for s in range(25)}
    assert len(ids) >= 15
    assert len({gen.task(s).metadata["project"] for s in range(25)}) >= 4


def test_task_shape_hides_failing_tests(gen):
    for seed in range(10):
        t = gen.task(seed)
        hidden = set(patch_files(t.test_patch))
        assert hidden == set(t.metadata["hidden_tests"])
        assert not hidden & set(t.files)  # hidden tests are not in the tree the agent gets
        assert all(f.split("::")[0] in hidden for f in t.FAIL_TO_PASS)
        assert not set(t.FAIL_TO_PASS) & set(t.PASS_TO_PASS)
        assert patch_files(t.patch) == [t.metadata["path"]]
        # the statement describes behaviour; it never points at the hidden tests (issue 9)
        assert not any(test_id in t.problem_statement for test_id in t.FAIL_TO_PASS)
        assert " at 0x" not in t.problem_statement
        assert gen.task_by_id(t.instance_id).patch == t.patch


def test_gold_patch_is_the_reverse_of_the_bug(tmp_path, gen):
    t = gen.task(3)
    for rel, data in t.files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(data)
    (tmp_path / "gold.patch").write_text(t.patch)
    (tmp_path / "tests.patch").write_text(t.test_patch)
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    for patch in ("gold.patch", "tests.patch"):
        proc = subprocess.run(["git", "apply", patch], cwd=tmp_path, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
    original = load_project(t.metadata["project"])
    for rel, data in original.files.items():
        assert (tmp_path / rel).read_bytes() == data, rel


def test_local_validation_reproduces_the_catalog(gen):
    p = load_project("scheduler")
    t = gen.task_by_id(gen.valid_task_ids("scheduler")[0])
    m = next(m for m in enumerate_mutations(p) if m.id == t.metadata["mutation"])
    baseline = run_tests_locally(p.files)
    assert baseline.statuses and all(s == "PASSED" for s in baseline.statuses.values())
    fresh = validate_mutation(p, m, baseline.statuses)
    assert not isinstance(fresh, str) and fresh.fail_to_pass == t.FAIL_TO_PASS


def test_unknown_task_ids(gen):
    from rlvr.envs.swe.errors import TaskError

    with pytest.raises(TaskError, match="project 'zzz'"):
        gen.task_by_id("zzz__x")
    with pytest.raises(TaskError, match="no mutation"):
        gen.task_by_id("ledger__money-operator-L1-000000")


@pytest.mark.docker
def test_validation_inside_sandboxes_matches_local(gen):
    backend = require_docker()
    p = load_project("routes")
    t = gen.task_by_id(gen.valid_task_ids("routes")[0])
    m = next(m for m in enumerate_mutations(p) if m.id == t.metadata["mutation"])
    with SandboxPool(backend, images.ensure_env_image(backend.client), size=1) as pool:
        runner = sandbox_test_runner(pool)
        baseline = runner(p.files, 60)
        assert baseline.statuses == run_tests_locally(p.files).statuses
        res = validate_mutation(p, m, baseline.statuses, runner)
    assert not isinstance(res, str) and res.fail_to_pass == t.FAIL_TO_PASS


# ----------------------------------------------------------------------------- problem statements (issue 9)
def _all_tasks(gen):
    return [gen.task_by_id(tid) for name in list_projects() for tid in gen.valid_task_ids(name)]


def test_no_problem_statement_names_a_hidden_test(gen):
    import re

    catalog = json.loads(CATALOG_PATH.read_text())
    n_valid = sum(isinstance(v, dict) for e in catalog["projects"].values() for v in e["mutations"].values())
    tasks = _all_tasks(gen)
    assert len(tasks) == n_valid and n_valid >= 600  # every catalogued bug
    for t in tasks:
        st = t.problem_statement
        hidden = t.metadata["hidden_tests"]
        names = {i.split("::")[-1].split("[")[0] for i in t.FAIL_TO_PASS + t.PASS_TO_PASS}
        assert not any(h in st for h in hidden), t.instance_id
        assert not any(i in st for i in t.FAIL_TO_PASS), t.instance_id
        assert not any(re.search(rf"\b{re.escape(n)}\b", st) for n in names), t.instance_id
        assert "::" not in st and "tests/" not in st and not re.search(r"\btest_\w+", st), t.instance_id
        # a behavioural description: a reproduction, what should happen and what happens
        assert st.startswith(f"{t.metadata['project']}: ") and "```python\n" in st, t.instance_id
        assert "\nExpected: " in st and "\nWhat happens: " in st, t.instance_id


def _run_snippet(code, tree, tmp):
    import os
    import sys

    for rel, data in tree.items():
        (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp / rel).write_bytes(data)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    return subprocess.run([sys.executable, "-c", code], cwd=tmp, capture_output=True, text=True, timeout=60, env=env)


def _check_reproductions(tasks, tmp_path):
    import re

    snippet = re.compile(r"```python\n(.*?)\n```", re.S)
    checked = 0
    for k, t in enumerate(tasks):
        fixed = {p: d for p, d in load_project(t.metadata["project"]).files.items() if not p.startswith("tests/")}
        for j, code in enumerate(snippet.findall(t.problem_statement)):
            buggy = _run_snippet(code, t.files, tmp_path / f"b{k}-{j}")
            assert buggy.returncode != 0, (t.instance_id, code)  # reproduces the bug
            ok = _run_snippet(code, fixed, tmp_path / f"f{k}-{j}")
            assert ok.returncode == 0, (t.instance_id, code, ok.stderr[-500:])  # and passes once it is fixed
            checked += 1
    return checked


def test_reproduction_snippets_fail_on_the_bug_and_pass_on_the_fix(gen, tmp_path):
    tasks = [gen.task_by_id(tid) for name in list_projects() for tid in gen.valid_task_ids(name)[::40]]
    assert _check_reproductions(tasks, tmp_path) >= len(tasks) >= 12


@pytest.mark.slow
def test_every_reproduction_snippet_fails_on_the_bug_and_passes_on_the_fix(gen, tmp_path):
    tasks = _all_tasks(gen)
    assert _check_reproductions(tasks, tmp_path) >= len(tasks)


def test_statements_change_the_dataset_hash(gen, monkeypatch):
    from rlvr.envs.swe import generator

    before = gen.dataset_hash
    monkeypatch.setattr(generator, "STATEMENT_VERSION", generator.STATEMENT_VERSION + 1)
    assert gen.dataset_hash != before  # a record made with other statements does not claim the same data
