"""A SWE-smith-style task generator over small Python projects shipped with rlvr.

Bugs are injected by AST-located source edits (only the mutated token or statement changes, so the
rest of the file keeps its formatting):

* ``operator``: ``+`` <-> ``-``, ``*`` <-> ``/``, ``//`` -> ``/``, ``%`` -> ``//``, augmented forms too;
* ``comparison``: ``<`` <-> ``<=``, ``>`` <-> ``>=``, ``==`` <-> ``!=``, ``in`` <-> ``not in``;
* ``boolean``: ``and`` <-> ``or``, ``not x`` -> ``x``;
* ``off_by_one``: an integer constant plus or minus one;
* ``constant``: a wrong constant (floats doubled or halved, booleans flipped, short strings cut);
* ``swap_args``: the first two positional arguments of a call swapped;
* ``remove_branch``: an ``if`` statement without ``else`` deleted.

A mutation is kept only when it makes at least one passing test fail (without breaking test
collection or timing out). The failing tests become ``FAIL_TO_PASS`` and are hidden from the agent
(their files are removed from the task tree and come back as the test patch); the tests that still
pass are ``PASS_TO_PASS``. The problem statement is a user's bug report written from the failing
tests' code and output (:mod:`rlvr.envs.swe.statements`): a reproducing snippet, what was expected
and what happened, never the hidden test files or ids. The gold patch is the reverse diff of the mutation.

Generation is deterministic from the seed: the seed picks a project and an order over its candidate
mutations; the first valid one is the task. Validation results are cached in a catalog shipped with
the package (``data/catalog.json``, rebuilt by ``python -m rlvr.envs.swe build-catalog``),
so generation needs no test run unless a project changed. Test runs themselves (:func:`run_tests_locally`,
:func:`sandbox_test_runner`) live in :mod:`rlvr.envs.swe.testruns` and are re-exported here.
"""

from __future__ import annotations

import ast
import difflib
import hashlib
import json
import os
import random
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Literal, Mapping, Sequence

from rlvr.caches import SWE_CATALOGS, SWE_MUTATIONS, SWE_PROJECTS, LRUCache, MiB, tree_bytes
from rlvr.envs.swe.errors import TaskError
from rlvr.envs.swe.images import content_digest
from rlvr.envs.swe.statements import STATEMENT_VERSION, write_statement
from rlvr.envs.swe.tasks import PASSING, SWETask
from rlvr.envs.swe.testruns import (  # noqa: F401 - sandbox_test_runner is re-exported
    TestRun, TestRunner, failure_excerpts, run_tests_locally, sandbox_test_runner)
from rlvr.errors import ConfigError

__all__ = [
    "Project", "Mutation", "ValidatedBug", "TestRun", "SWESmithGenerator", "list_projects", "load_project",
    "enumerate_mutations", "validate_mutation", "build_task", "run_tests_locally", "MUTATION_KINDS",
]

DATA_DIR = Path(__file__).with_name("data")
PROJECTS_DIR = DATA_DIR / "projects"
CATALOG_PATH = DATA_DIR / "catalog.json"
CATALOG_VERSION = 1
MUTATION_KINDS = ("operator", "comparison", "boolean", "off_by_one", "constant", "swap_args", "remove_branch")
MutationKind = Literal["operator", "comparison", "boolean", "off_by_one", "constant", "swap_args", "remove_branch"]
_SKIP_PARTS = {"__pycache__", ".pytest_cache", ".benchmarks"}


# --------------------------------------------------------------------------- projects
@dataclass(frozen=True, eq=False)
class Project:
    """A small Python project: its files (relative path -> bytes) and identity."""

    name: str
    files: Mapping[str, bytes]
    version: str = ""

    @property
    def source_files(self) -> list[str]:
        """Modules where bugs may be injected (the package, ``__init__.py`` excluded)."""
        return sorted(p for p in self.files if p.startswith(f"{self.name}/") and p.endswith(".py")
                      and not p.endswith("__init__.py"))

    @property
    def test_files(self) -> list[str]:
        return sorted(p for p in self.files if p.startswith("tests/") and p.endswith(".py"))

    @property
    def digest(self) -> str:
        return content_digest([p for k in sorted(self.files) for p in (k, self.files[k])])


def list_projects() -> tuple[str, ...]:
    """Names of the projects shipped with rlvr."""
    return tuple(sorted(p.name for p in PROJECTS_DIR.iterdir() if (p / "pyproject.toml").is_file()))


def load_project(name: str) -> Project:
    """Load a shipped project by name (memoised in the ``swe.projects`` cache of :mod:`rlvr.caches`)."""
    return SWE_PROJECTS.get_or_build(name, lambda: _read_project(name))


def _read_project(name: str) -> Project:
    root = PROJECTS_DIR / name
    if not (root / "pyproject.toml").is_file():
        raise ConfigError(f"unknown project {name!r}; available: {', '.join(list_projects())}")
    files: dict[str, bytes] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if path.is_file() and not _SKIP_PARTS.intersection(rel.parts) and path.suffix != ".pyc":
            files[rel.as_posix()] = path.read_bytes()
    m = re.search(rb'^version\s*=\s*"([^"]+)"', files.get("pyproject.toml", b""), flags=re.M)
    return Project(name, files, m.group(1).decode() if m else "")


# --------------------------------------------------------------------------- mutations
@dataclass(frozen=True)
class Mutation:
    """One source edit: replace bytes ``[start, end)`` of ``path`` with ``replacement``."""

    path: str
    kind: str
    line: int
    start: int
    end: int
    original: str
    replacement: str

    @property
    def id(self) -> str:
        h = hashlib.sha256(f"{self.path}:{self.start}:{self.end}:{self.replacement}".encode()).hexdigest()[:6]
        module = self.path.rsplit("/", 1)[-1].removesuffix(".py")
        return f"{module}-{self.kind}-L{self.line}-{h}"

    def apply(self, source: bytes) -> bytes:
        if source[self.start:self.end].decode() != self.original:
            raise TaskError(f"mutation {self.id} does not match {self.path} (the project changed)")
        return source[:self.start] + self.replacement.encode() + source[self.end:]


_BINOPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//", ast.Mod: "%"}
_BINOP_SWAP = {"+": "-", "-": "+", "*": "/", "/": "*", "//": "/", "%": "//"}
_CMPOPS = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!=",
           ast.In: "in", ast.NotIn: "not in"}
_CMP_SWAP = {"<": "<=", "<=": "<", ">": ">=", ">=": ">", "==": "!=", "!=": "==", "in": "not in", "not in": "in"}
_GAP_OK = re.compile(r"^[\s()\\]*$")


class _Sites:
    """Collects mutation sites of one module."""

    def __init__(self, path: str, source: bytes) -> None:
        self.path = path
        self.src = source
        starts = [0]
        for i, b in enumerate(source):
            if b == 0x0A:
                starts.append(i + 1)
        self.line_starts = starts
        self.out: list[Mutation] = []
        self.tree = ast.parse(source)
        self.skip: set[int] = set()
        self._mark_skipped(self.tree)

    def off(self, line: int, col: int) -> int:
        return self.line_starts[line - 1] + col

    def seg(self, node: ast.AST) -> tuple[int, int]:
        return self.off(node.lineno, node.col_offset), self.off(node.end_lineno, node.end_col_offset)  # type: ignore[attr-defined]

    def add(self, kind: str, line: int, start: int, end: int, replacement: str) -> None:
        original = self.src[start:end].decode()
        if original != replacement:
            self.out.append(Mutation(self.path, kind, line, start, end, original, replacement))

    def _mark_skipped(self, tree: ast.AST) -> None:
        """Docstrings, ``__all__``, f-string parts and exception messages are never mutated."""
        for node in ast.walk(tree):
            body = getattr(node, "body", None)
            if isinstance(body, list) and body and isinstance(body[0], ast.Expr) and isinstance(
                    getattr(body[0], "value", None), ast.Constant) and isinstance(body[0].value.value, str):
                self.skip.add(id(body[0].value))
            if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
                self.skip.update(id(n) for n in ast.walk(node))
            if isinstance(node, (ast.JoinedStr, ast.Raise)):
                self.skip.update(id(n) for n in ast.walk(node) if isinstance(n, (ast.Constant, ast.JoinedStr)))

    def op_between(self, left: ast.AST, right: ast.AST, symbol: str) -> tuple[int, int] | None:
        a = self.off(left.end_lineno, left.end_col_offset)  # type: ignore[attr-defined]
        b = self.off(right.lineno, right.col_offset)  # type: ignore[attr-defined]
        gap = self.src[a:b].decode()
        pattern = r"\s+".join(map(re.escape, symbol.split()))
        m = re.search(rf"(?<![=<>!*/]){pattern}(?![=*/])", gap)
        if m is None or not _GAP_OK.match(gap[:m.start()] + gap[m.end():]):
            return None
        return a + m.start(), a + m.end()

    def collect(self) -> list[Mutation]:
        for node in ast.walk(self.tree):
            if id(node) in self.skip or not hasattr(node, "lineno"):
                continue
            line = node.lineno
            if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
                sym = _BINOPS[type(node.op)]
                span = self.op_between(node.left, node.right, sym)
                if span:
                    self.add("operator", line, *span, _BINOP_SWAP[sym])
            elif isinstance(node, ast.AugAssign) and type(node.op) in _BINOPS:
                sym = _BINOPS[type(node.op)] + "="
                span = self.op_between(node.target, node.value, sym)
                if span:
                    self.add("operator", line, *span, _BINOP_SWAP[sym[:-1]] + "=")
            elif isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _CMPOPS:
                sym = _CMPOPS[type(node.ops[0])]
                span = self.op_between(node.left, node.comparators[0], sym)
                if span:
                    self.add("comparison", line, *span, _CMP_SWAP[sym])
            elif isinstance(node, ast.BoolOp) and len(node.values) >= 2:
                sym = "and" if isinstance(node.op, ast.And) else "or"
                span = self.op_between(node.values[0], node.values[1], sym)
                if span:
                    self.add("boolean", line, *span, "or" if sym == "and" else "and")
            elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
                s, e = self.seg(node)
                inner_s, inner_e = self.seg(node.operand)
                self.add("boolean", line, s, e, self.src[inner_s:inner_e].decode())
            elif isinstance(node, ast.Constant):
                self._constant(node)
            elif isinstance(node, ast.Call) and len(node.args) >= 2 and not any(
                    isinstance(a, ast.Starred) for a in node.args[:2]):
                a0, a1 = self.seg(node.args[0]), self.seg(node.args[1])
                t0, t1 = self.src[a0[0]:a0[1]], self.src[a1[0]:a1[1]]
                if t0 != t1 and a0[1] <= a1[0]:
                    s, e = a0[0], a1[1]
                    middle = self.src[a0[1]:a1[0]]
                    self.add("swap_args", line, s, e, (t1 + middle + t0).decode())
            if isinstance(node, ast.If) and not node.orelse:
                self._remove_if(node)
        return self.out

    def _constant(self, node: ast.Constant) -> None:
        s, e = self.seg(node)
        v = node.value
        text = self.src[s:e].decode()
        if isinstance(v, bool):
            self.add("constant", node.lineno, s, e, repr(not v))
        elif isinstance(v, int):
            if not re.fullmatch(r"\d+", text.replace("_", "")):
                return
            self.add("off_by_one", node.lineno, s, e, str(v + 1))
            if v > 0:
                self.add("off_by_one", node.lineno, s, e, str(v - 1))
        elif isinstance(v, float):
            self.add("constant", node.lineno, s, e, repr(v * 2) if v else "1.0")
        elif isinstance(v, str) and 2 <= len(v) <= 12 and text[:1] in "'\"" and "\\" not in text:
            self.add("constant", node.lineno, s, e, repr(v[:-1]))

    def _remove_if(self, node: ast.If) -> None:
        first = self.line_starts[node.lineno - 1]
        head = self.src[first:self.off(node.lineno, node.col_offset)].decode()
        if head.strip() not in ("", "el"):
            return
        end = self.off(node.end_lineno, node.end_col_offset)  # type: ignore[arg-type]
        rest_end = self.src.find(b"\n", end)
        rest_end = len(self.src) if rest_end < 0 else rest_end + 1
        if self.src[end:rest_end].strip() not in (b"",):
            return
        indent = head[: len(head) - len(head.lstrip())]
        # Keep the block non-empty: a lone statement in its body becomes ``pass``.
        replacement = "" if not self._only_child(node) else f"{indent}pass\n"
        if head.strip() == "el":
            return  # an elif clause: removing it would change the enclosing if, not delete a branch
        self.add("remove_branch", node.lineno, first, rest_end, replacement)

    def _only_child(self, node: ast.AST) -> bool:
        for parent in ast.walk(self.tree):
            for fname in ("body", "orelse", "finalbody"):
                block = getattr(parent, fname, None)
                if isinstance(block, list) and node in block:
                    return len(block) == 1
        return False


def enumerate_mutations(project: Project, kinds: Iterable[str] | None = None) -> list[Mutation]:
    """Every candidate mutation of the project's source files, in a fixed order."""
    allowed = set(kinds or MUTATION_KINDS)
    unknown = allowed - set(MUTATION_KINDS)
    if unknown:
        raise ConfigError(f"unknown mutation kind(s) {sorted(unknown)}; choose from {MUTATION_KINDS}")
    key = (project.digest, tuple(sorted(allowed)))
    return list(SWE_MUTATIONS.get_or_build(key, lambda: tuple(_enumerate(project, allowed))))


def _enumerate(project: Project, allowed: set[str]) -> list[Mutation]:
    out: list[Mutation] = []
    for path in project.source_files:
        sites = _Sites(path, project.files[path]).collect()
        for m in sorted(sites, key=lambda m: (m.start, m.end, m.kind, m.replacement)):
            if m.kind not in allowed:
                continue
            try:
                mutated = m.apply(project.files[path])
                if ast.dump(ast.parse(mutated)) == ast.dump(ast.parse(project.files[path])):
                    continue
            except SyntaxError:
                continue
            out.append(m)
    seen: set[str] = set()
    unique = []
    for m in out:
        if m.id not in seen:
            seen.add(m.id)
            unique.append(m)
    return unique


# --------------------------------------------------------------------------- validation
@dataclass(frozen=True)
class ValidatedBug:
    """A mutation that breaks tests: which ones, and what their failures look like."""

    mutation_id: str
    fail_to_pass: tuple[str, ...]
    pass_to_pass: tuple[str, ...]
    excerpts: Mapping[str, str]


def validate_mutation(project: Project, mutation: Mutation, baseline: Mapping[str, str],
                      runner: TestRunner = run_tests_locally, timeout_s: float = 20.0) -> ValidatedBug | str:
    """Run the suite with ``mutation`` applied; return the bug, or why it was rejected
    (``"no_failure"``, ``"timeout"``, ``"collection_error"``, ``"import_error"``)."""
    files = dict(project.files)
    files[mutation.path] = mutation.apply(files[mutation.path])
    run = runner(files, timeout_s)
    if run.timed_out:
        return "timeout"
    if run.collection_error or not run.statuses:
        return "collection_error"
    passing = [t for t, s in baseline.items() if s in PASSING]
    f2p = tuple(t for t in passing if run.statuses.get(t) not in PASSING)
    if not f2p:
        return "no_failure"
    if len(f2p) == len(passing) and len(passing) > 3:
        return "import_error"  # everything broke: not a realistic, localisable bug
    p2p = tuple(t for t in passing if t not in f2p)
    ex = failure_excerpts(run.output)
    excerpts = {}
    for t in f2p[:3]:
        name = t.split("::", 1)[-1].replace("::", ".")
        if name in ex:
            excerpts[t] = ex[name]
    return ValidatedBug(mutation.id, f2p, p2p, excerpts)


# --------------------------------------------------------------------------- tasks
def _diff(path: str, before: bytes, after: bytes) -> str:
    a = before.decode().splitlines(keepends=True)
    b = after.decode().splitlines(keepends=True)
    body = "".join(difflib.unified_diff(a, b, f"a/{path}", f"b/{path}", n=3))
    return f"diff --git a/{path} b/{path}\n{body}" if body else ""


def _new_file_patch(path: str, content: bytes) -> str:
    lines = content.decode().splitlines(keepends=True)
    body = "".join(difflib.unified_diff([], lines, "/dev/null", f"b/{path}", n=3))
    return f"diff --git a/{path} b/{path}\nnew file mode 100644\n{body}"


def _statement(project: Project, bug: ValidatedBug) -> str:
    return write_statement(project.name, project.version, project.files, bug.fail_to_pass, bug.excerpts)


def build_task(project: Project, mutation: Mutation, bug: ValidatedBug) -> SWETask:
    """The SWE task of a validated bug: buggy tree without the hidden test files, gold patch, test patch."""
    original = project.files[mutation.path]
    mutated = mutation.apply(original)
    hidden = sorted({t.split("::")[0] for t in bug.fail_to_pass})
    tree = {p: d for p, d in project.files.items() if p not in hidden}
    tree[mutation.path] = mutated
    gold = _diff(mutation.path, mutated, original)
    test_patch = "".join(_new_file_patch(p, project.files[p]) for p in hidden)
    tree_digest = content_digest([p for k in sorted(tree) for p in (k, tree[k])])
    return SWETask(
        instance_id=f"{project.name}__{mutation.id}",
        repo=f"rlvr-gen/{project.name}",
        base_commit=tree_digest[:40],
        problem_statement=_statement(project, bug),
        patch=gold,
        test_patch=test_patch,
        FAIL_TO_PASS=bug.fail_to_pass,
        PASS_TO_PASS=bug.pass_to_pass,
        version=project.version,
        files=tree,
        source="generated",
        metadata={"project": project.name, "mutation": mutation.id, "kind": mutation.kind, "path": mutation.path,
                  "line": mutation.line, "hidden_tests": hidden, "tree_digest": tree_digest},
    )


# --------------------------------------------------------------------------- catalog and generator
def _load_catalog(path: Path | None) -> dict[str, Any]:
    if path is None or not path.is_file():
        return {"version": CATALOG_VERSION, "projects": {}}
    key = (str(path), path.stat().st_mtime)
    data = json.loads(SWE_CATALOGS.get_or_build(key, path.read_text))  # a private copy: generators add to it
    if data.get("version") != CATALOG_VERSION:
        return {"version": CATALOG_VERSION, "projects": {}}
    return data


class SWESmithGenerator:
    """Deterministic SWE tasks from the shipped projects.

    Args:
        projects: project names to draw from (default: all of :func:`list_projects`).
        kinds: mutation kinds allowed (default: all of :data:`MUTATION_KINDS`).
        catalog: validation cache: ``"builtin"`` (the shipped catalog), a path, or ``None`` (validate
            every candidate on demand).
        runner: runs a test suite for validation (default: pytest on this machine; see
            :func:`sandbox_test_runner` to validate inside sandboxes).
        max_tries: candidates validated at most per task before giving up.
    """

    def __init__(self, projects: Sequence[str] | None = None, *, kinds: Sequence[str] | None = None,
                 catalog: str | os.PathLike[str] | None = "builtin", runner: TestRunner = run_tests_locally,
                 max_tries: int = 200) -> None:
        available = list_projects()
        self.projects = tuple(sorted(projects)) if projects else available
        bad = [p for p in self.projects if p not in available]
        if bad:
            raise ConfigError(f"unknown project(s) {bad}; available: {', '.join(available)}")
        self.kinds = tuple(kinds) if kinds else MUTATION_KINDS
        enumerate_mutations(load_project(self.projects[0]), self.kinds)  # validates kinds early
        self.catalog_path = CATALOG_PATH if catalog == "builtin" else (Path(catalog) if catalog else None)
        self.catalog = _load_catalog(self.catalog_path)
        self.runner = runner
        self.max_tries = max_tries
        self._new_runtime_state()

    def _new_runtime_state(self) -> None:
        self._lock = threading.Lock()
        # the tasks built so far (each holds its whole file tree): bounded, emptied by rlvr.clear_caches()
        self._tasks: LRUCache[SWETask] = LRUCache("swe.generated_tasks", max_bytes=256 * MiB, size=tree_bytes)

    def __getstate__(self) -> dict[str, Any]:
        """Pickle the configuration and catalog; the lock and the task cache are rebuilt empty on load."""
        return {k: v for k, v in self.__dict__.items() if k not in ("_lock", "_tasks")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._new_runtime_state()

    @property
    def dataset_hash(self) -> str:
        """Hash of the project contents, kinds and projects: identifies the task distribution."""
        parts = [load_project(p).digest for p in self.projects] + list(self.kinds) + [f"statements-v{STATEMENT_VERSION}"]
        return content_digest(parts)[:16]

    def _entry(self, project: Project) -> dict[str, Any]:
        entry = self.catalog["projects"].get(project.name)
        if entry is None or entry.get("digest") != project.digest:
            base = self.runner(project.files, 60.0)
            failing = [t for t, s in base.statuses.items() if s not in PASSING]
            if not base.statuses or failing:
                raise TaskError(f"project {project.name}: its own test suite does not pass cleanly "
                                f"(failing: {failing[:5]}); output tail: {base.output[-500:]}")
            entry = {"digest": project.digest, "baseline": base.statuses, "mutations": {}}
            self.catalog["projects"][project.name] = entry
        return entry

    def validated(self, project: Project, mutation: Mutation) -> ValidatedBug | None:
        """The validated bug of ``mutation`` (from the catalog, or by running the tests)."""
        with self._lock:
            entry = self._entry(project)
            rec = entry["mutations"].get(mutation.id, "missing")
        if rec == "missing":
            res = validate_mutation(project, mutation, entry["baseline"], self.runner)
            rec = (res if isinstance(res, str) else {"f2p": list(res.fail_to_pass), "excerpts": dict(res.excerpts)})
            with self._lock:
                entry["mutations"][mutation.id] = rec
        if isinstance(rec, str):
            return None
        passing = [t for t, s in entry["baseline"].items() if s in PASSING]
        f2p = tuple(rec["f2p"])
        return ValidatedBug(mutation.id, f2p, tuple(t for t in passing if t not in f2p), rec.get("excerpts", {}))

    def task(self, seed: int) -> SWETask:
        """The task of ``seed`` (same seed, same task, on every machine)."""
        rng = random.Random(int(seed))
        project = load_project(self.projects[rng.randrange(len(self.projects))])
        candidates = enumerate_mutations(project, self.kinds)
        order = list(range(len(candidates)))
        rng.shuffle(order)
        for i in order[: self.max_tries]:
            m = candidates[i]
            key = (project.name, m.id)
            hit = self._tasks.get(key)
            if hit is not None:
                return hit
            bug = self.validated(project, m)
            if bug is not None:
                return self._tasks.put(key, build_task(project, m, bug))
        raise TaskError(f"no valid bug among {min(len(order), self.max_tries)} candidates of {project.name} "
                        f"(kinds {self.kinds}); allow more kinds or raise max_tries")

    def task_by_id(self, instance_id: str) -> SWETask:
        """The task with ``instance_id`` (``project__mutation-id``)."""
        name, _, mid = instance_id.partition("__")
        if name not in self.projects:
            raise TaskError(f"unknown task {instance_id!r}: project {name!r} is not in {self.projects}")
        project = load_project(name)
        for m in enumerate_mutations(project, self.kinds):
            if m.id == mid:
                bug = self.validated(project, m)
                if bug is None:
                    raise TaskError(f"{instance_id} is not a valid bug (its mutation breaks no test)")
                return build_task(project, m, bug)
        raise TaskError(f"unknown task {instance_id!r}: no mutation {mid!r} in {name}")

    def valid_task_ids(self, project: str) -> list[str]:
        """Ids of every valid task of ``project`` (validates uncached candidates)."""
        p = load_project(project)
        return [f"{project}__{m.id}" for m in enumerate_mutations(p, self.kinds) if self.validated(p, m)]

    def save_catalog(self, path: str | os.PathLike[str] | None = None) -> Path:
        """Write the validation cache (sorted, stable JSON)."""
        target = Path(path) if path else self.catalog_path
        if target is None:
            raise ConfigError("no catalog path: pass path=")
        target.write_text(json.dumps(self.catalog, indent=1, sort_keys=True) + "\n")
        return target


def build_catalog(projects: Sequence[str] | None = None, *, workers: int = 2, path: Path | None = None) -> Path:
    """Validate every candidate mutation of ``projects`` and write the catalog."""
    gen = SWESmithGenerator(projects, catalog=path or CATALOG_PATH)
    for name in gen.projects:
        project = load_project(name)
        gen._entry(project)
        cands = enumerate_mutations(project)
        with ThreadPoolExecutor(workers) as ex:
            results = list(ex.map(lambda m, p=project: gen.validated(p, m), cands))
        n_valid = sum(r is not None for r in results)
        print(f"{name}: {len(cands)} candidates, {n_valid} valid bugs", flush=True)
        # drop cache entries of mutations that no longer exist
        ids = {m.id for m in cands}
        entry = gen.catalog["projects"][name]
        entry["mutations"] = {k: v for k, v in entry["mutations"].items() if k in ids}
        gen.save_catalog(path or CATALOG_PATH)
    return gen.save_catalog(path or CATALOG_PATH)

