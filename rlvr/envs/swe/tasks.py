"""SWE tasks: the SWE-bench instance schema, a SWE-bench / SWE-Gym JSONL loader, and grading.

A task is resolved when, after the model's patch and then the task's test patch are applied to the
repository at ``base_commit``, every ``FAIL_TO_PASS`` test passes and every ``PASS_TO_PASS`` test still
passes. The hidden tests (the test patch) enter the sandbox only for grading.
"""

from __future__ import annotations

import io
import json
import re
import shlex
import subprocess
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from rlvr._jsonl import read_jsonl_located
from rlvr.caches import SWE_GIT_TREES
from rlvr.envs.swe.errors import SandboxError, TaskError
from rlvr.envs.swe.sandbox import WORKDIR, Sandbox
from rlvr.rewards.gated import SubmissionOutcome

__all__ = [
    "SWETask", "GradeReport", "load_swe_jsonl", "parse_pytest_log", "patch_files", "grade", "DEFAULT_TEST_CMD",
    "PASSING",
]

DEFAULT_TEST_CMD = "python3 -m pytest -rA -q -p no:cacheprovider --tb=short -o console_output_style=classic"
PASSING = frozenset({"PASSED", "XFAIL"})
REQUIRED = ("instance_id", "repo", "base_commit", "problem_statement", "patch", "test_patch", "FAIL_TO_PASS",
            "PASS_TO_PASS")


@dataclass(frozen=True, eq=False)
class SWETask:
    """One SWE-bench-style instance, plus where its repository comes from.

    Exactly one source of the repository is used, in this order: ``files`` (the tree at
    ``base_commit``, loaded into a pooled sandbox at reset), ``repo_path`` (a local clone; the tree is
    taken with ``git archive base_commit``), ``image`` (a Docker image holding the repository at
    ``repo_dir``, adapted with :func:`rlvr.envs.swe.images.adapt_image`).
    """

    instance_id: str
    repo: str
    base_commit: str
    problem_statement: str
    patch: str
    test_patch: str
    FAIL_TO_PASS: tuple[str, ...]
    PASS_TO_PASS: tuple[str, ...]
    hints_text: str = ""
    created_at: str = ""
    version: str = ""
    environment_setup_commit: str = ""
    files: Mapping[str, bytes] | None = field(default=None, repr=False)
    repo_path: str | None = None
    image: str | None = None
    repo_dir: str = WORKDIR
    test_cmd: str = DEFAULT_TEST_CMD
    source: str = "swe-bench"
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("instance_id", "repo", "base_commit"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise TaskError(f"SWETask.{name} must be a non-empty string, got {getattr(self, name)!r}")
        object.__setattr__(self, "FAIL_TO_PASS", tuple(self.FAIL_TO_PASS))
        object.__setattr__(self, "PASS_TO_PASS", tuple(self.PASS_TO_PASS))
        if not self.FAIL_TO_PASS:
            raise TaskError(f"task {self.instance_id}: FAIL_TO_PASS is empty; a task needs at least one failing test")
        if self.files is None and self.repo_path is None and self.image is None:
            raise TaskError(f"task {self.instance_id}: no repository source; give files=, repo_path= or image=")

    def tree(self) -> dict[str, bytes]:
        """The repository's files at ``base_commit`` (for ``files`` and ``repo_path`` tasks)."""
        if self.files is not None:
            return dict(self.files)
        if self.repo_path is None:
            raise TaskError(f"task {self.instance_id} lives in image {self.image!r}; it has no host-side tree")
        repo, commit = self.repo_path, self.base_commit
        return dict(SWE_GIT_TREES.get_or_build((repo, commit), lambda: _git_archive(repo, commit)))

    def to_record(self) -> dict[str, Any]:
        """The SWE-bench JSON record (lists for the test ids; ``files`` is not serialised)."""
        rec = {k: getattr(self, k) for k in (*REQUIRED, "hints_text", "created_at", "version",
                                             "environment_setup_commit")}
        rec["FAIL_TO_PASS"] = list(self.FAIL_TO_PASS)
        rec["PASS_TO_PASS"] = list(self.PASS_TO_PASS)
        return rec


def _git_archive(repo: str, commit: str) -> dict[str, bytes]:
    proc = subprocess.run(["git", "-C", repo, "archive", "--format=tar", commit], capture_output=True, check=False)
    if proc.returncode != 0:
        raise TaskError(f"git archive {commit} in {repo} failed: {proc.stderr.decode(errors='replace').strip()} "
                        "(is base_commit in that clone? fetch it first)")
    out: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(proc.stdout)) as tf:
        for m in tf.getmembers():
            if m.isfile():
                out[m.name] = tf.extractfile(m).read()  # type: ignore[union-attr]
    return out


def _id_list(value: Any, where: str, key: str) -> tuple[str, ...]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as e:
            raise TaskError(f"{where}: {key} must be a list of test ids or its JSON text, got {value[:80]!r}") from e
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TaskError(f"{where}: {key} must be a list of strings, got {type(value).__name__}")
    return tuple(value)


def load_swe_jsonl(path: str | Path, *, repos_dir: str | Path | None = None, image: str | None = None,
                   test_cmd: str | None = None, repo_dir: str = WORKDIR, limit: int | None = None,
                   source: str = "swe-bench") -> list[SWETask]:
    """Read SWE-bench or SWE-Gym instances (one JSON object per line).

    Args:
        repos_dir: a directory with one git clone per repository, named ``owner__name`` (or ``name``);
            each task's tree is ``git archive base_commit`` of its clone.
        image: an image name template for repositories provided as images, with ``{instance_id}``,
            ``{repo}`` and ``{repo_slug}`` fields (e.g. ``"sweb.eval.x86_64.{instance_id}"``); a record's
            own ``image`` / ``image_name`` field wins.
        test_cmd: the test command (pytest-style ``-rA`` output is parsed); a record's ``test_cmd`` wins.
        repo_dir: where the repository lives inside provided images.
        limit: read at most this many tasks.
    """
    path = Path(path)
    tasks: list[SWETask] = []
    # one reader for every JSONL file (rlvr._jsonl); its messages name path:line, raised as TaskError
    for where, rec in read_jsonl_located(path, what="task", allow_empty=True, error=TaskError):
        missing = [k for k in REQUIRED if k not in rec]
        if missing:
            raise TaskError(f"{where}: missing field(s) {missing}; SWE-bench records need {list(REQUIRED)}")
        repo = str(rec["repo"])
        slug = repo.replace("/", "__")
        repo_path = None
        img = rec.get("image") or rec.get("image_name")
        if not img and image:
            img = image.format(instance_id=rec["instance_id"], repo=repo, repo_slug=slug)
        if not img and repos_dir is not None:
            for cand in (Path(repos_dir) / slug, Path(repos_dir) / repo.split("/")[-1]):
                if (cand / ".git").exists() or (cand / "HEAD").exists():
                    repo_path = str(cand)
                    break
            else:
                raise TaskError(f"{where}: no clone of {repo} in {repos_dir} (expected {slug}/ or "
                                f"{repo.split('/')[-1]}/)")
        if not img and repo_path is None:
            raise TaskError(f"{where}: task {rec['instance_id']} has no repository source; pass repos_dir= "
                            "(one clone per repository) or image= (an image name template)")
        tasks.append(SWETask(
            instance_id=str(rec["instance_id"]), repo=repo, base_commit=str(rec["base_commit"]),
            problem_statement=str(rec["problem_statement"]), patch=str(rec["patch"]),
            test_patch=str(rec["test_patch"]),
            FAIL_TO_PASS=_id_list(rec["FAIL_TO_PASS"], where, "FAIL_TO_PASS"),
            PASS_TO_PASS=_id_list(rec["PASS_TO_PASS"], where, "PASS_TO_PASS"),
            hints_text=str(rec.get("hints_text") or ""), created_at=str(rec.get("created_at") or ""),
            version=str(rec.get("version") or ""),
            environment_setup_commit=str(rec.get("environment_setup_commit") or ""),
            repo_path=repo_path, image=img or None, repo_dir=str(rec.get("repo_dir") or repo_dir),
            test_cmd=str(rec.get("test_cmd") or test_cmd or DEFAULT_TEST_CMD), source=source,
        ))
        if limit is not None and len(tasks) >= limit:
            break
    if not tasks:
        raise TaskError(f"{path} holds no tasks")
    return tasks


_STATUS_LINE = re.compile(r"^(PASSED|FAILED|ERROR|XFAIL|XPASS|SKIPPED)\s+(\S.*?)(?:\s+-\s+.*)?\s*$")
_SUMMARY = re.compile(r"^=+ short test summary info =+\s*$", re.M)


def parse_pytest_log(text: str) -> dict[str, str]:
    """``{test id: status}`` from pytest ``-rA`` output (the short test summary section).

    Only the last summary section is read, so test output that imitates status lines earlier in
    the log is ignored. Statuses: PASSED, FAILED, ERROR, XFAIL, XPASS, SKIPPED.
    """
    matches = list(_SUMMARY.finditer(text))
    section = text[matches[-1].end():] if matches else text
    out: dict[str, str] = {}
    for line in section.splitlines():
        m = _STATUS_LINE.match(line)
        if m and not m.group(2).startswith("["):
            out[m.group(2)] = m.group(1)
    return out


def patch_files(patch: str) -> list[str]:
    """Paths a git patch touches (new side; old side for deletions), in order."""
    paths: list[str] = []
    for m in re.finditer(r"^diff --git a/(\S+) b/(\S+)$", patch, flags=re.M):
        p = m.group(2)
        if p not in paths:
            paths.append(p)
    return paths


@dataclass(frozen=True)
class GradeReport:
    """The result of grading one submission."""

    outcome: SubmissionOutcome
    model_patch: str
    fail_to_pass: dict[str, str] = field(default_factory=dict)
    pass_to_pass: dict[str, str] = field(default_factory=dict)
    apply_error: str | None = None
    log_tail: str = ""
    duration_s: float = 0.0

    @property
    def resolved(self) -> bool:
        return self.outcome is SubmissionOutcome.RESOLVED

    def summary(self) -> str:
        """A short text for the model and for logs."""
        if self.outcome is SubmissionOutcome.EMPTY_PATCH:
            return "Submitted an empty patch: the repository was not changed."
        if self.apply_error:
            return f"Submitted, but the patch could not be applied: {self.apply_error}"
        f_ok = sum(s in PASSING for s in self.fail_to_pass.values())
        p_ok = sum(s in PASSING for s in self.pass_to_pass.values())
        verdict = ("resolved" if self.resolved else
                   "not resolved, and the patch breaks tests that passed without it"
                   if self.outcome is SubmissionOutcome.REGRESSION else "not resolved")
        return (f"Submitted; the task is {verdict}: {f_ok}/{len(self.fail_to_pass)} target tests and "
                f"{p_ok}/{len(self.pass_to_pass)} regression tests pass.")


_APPLY = """
cd {wd} || exit 3
git -c core.hooksPath=/dev/null apply --binary --whitespace=nowarn "$1" 2>&1 || \
  patch --batch --fuzz=5 -p1 -i "$1" 2>&1 || exit 7
"""


def grade(sandbox: Sandbox, task: SWETask, *, model_patch: str | None = None, timeout_s: float = 300.0,
          tree: Mapping[str, bytes] | None = None) -> GradeReport:
    """Grade the sandbox's current work tree (or ``model_patch``) against ``task``.

    Takes the model patch (``git diff`` of the work tree against the prepared commit, new files
    included), restores a clean tree (a fresh load of the task tree, or ``git reset --hard``), applies
    the model patch, then the hidden test patch (after restoring the files it touches), runs the
    FAIL_TO_PASS and PASS_TO_PASS tests and parses their statuses. The sandbox is left dirty.
    """
    start = time.monotonic()
    patch = sandbox.diff() if model_patch is None else model_patch
    if not patch.strip():
        return GradeReport(SubmissionOutcome.EMPTY_PATCH, patch, duration_s=time.monotonic() - start)
    if task.files is not None or task.repo_path is not None:
        sandbox.load_tree(tree if tree is not None else task.tree(), message=task.instance_id,
                          digest=sandbox.loaded_tree)
    else:
        sandbox.reset()
    sandbox.put_archive(f"{WORKDIR}/.git", _tar({"rlvr-model.patch": patch.encode("utf-8", "surrogateescape"),
                                                 "rlvr-test.patch": task.test_patch.encode()}))
    applied = sandbox.exec(["bash", "-c", _APPLY.format(wd=WORKDIR), "apply", ".git/rlvr-model.patch"],
                           timeout_s=60)
    if not applied.ok:
        return GradeReport(SubmissionOutcome.TESTS_FAIL, patch, apply_error=applied.output.strip()[-500:],
                           duration_s=time.monotonic() - start)
    test_paths = patch_files(task.test_patch)
    if test_paths:
        restore = " ; ".join(f"rm -rf -- {shlex.quote(p)}; git checkout -q HEAD -- {shlex.quote(p)} 2>/dev/null"
                             for p in test_paths)
        sandbox.exec(["bash", "-c", f"cd {WORKDIR} && {{ {restore} ; true; }}"], timeout_s=60)
        tp = sandbox.exec(["bash", "-c", _APPLY.format(wd=WORKDIR), "apply", ".git/rlvr-test.patch"], timeout_s=60)
        if not tp.ok:
            raise SandboxError(f"task {task.instance_id}: its test patch does not apply: {tp.output.strip()[-400:]}")
    ids = list(dict.fromkeys([*task.FAIL_TO_PASS, *task.PASS_TO_PASS]))
    cmd = task.test_cmd + " " + " ".join(shlex.quote(i) for i in ids)
    run = sandbox.exec(cmd, timeout_s=timeout_s, max_output_bytes=4 << 20, tail_bytes=(4 << 20) - 4096)
    statuses = parse_pytest_log(run.output)
    f2p = {t: statuses.get(t, "MISSING") for t in task.FAIL_TO_PASS}
    p2p = {t: statuses.get(t, "MISSING") for t in task.PASS_TO_PASS}
    resolved = all(s in PASSING for s in f2p.values()) and all(s in PASSING for s in p2p.values())
    # the PASS_TO_PASS tests pass without the patch (the task's own check), so a failing one is the patch's doing
    regressed = any(s not in PASSING for s in p2p.values())
    outcome = (SubmissionOutcome.RESOLVED if resolved else
               SubmissionOutcome.REGRESSION if regressed else SubmissionOutcome.TESTS_FAIL)
    tail = run.render(timeout_s)[-2000:]
    return GradeReport(outcome, patch, f2p, p2p, None, tail, time.monotonic() - start)


def _tar(files: Mapping[str, bytes]) -> bytes:
    from rlvr.envs.swe.sandbox import make_tar

    return make_tar(files)


def iter_records(tasks: Iterable[SWETask]) -> Iterable[str]:
    """JSONL lines of ``tasks`` (SWE-bench records)."""
    for t in tasks:
        yield json.dumps(t.to_record(), ensure_ascii=False)
