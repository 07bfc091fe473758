"""Problem statements of generated SWE tasks, written as a user reports a bug.

The failing tests are hidden from the agent (their files are not in the sandbox), so a statement
never names a test file or a test id. For each failing test with a recorded failure (up to three) it
gives a reproduction built from that test's code: the imports and module-level helpers it uses, then
its statements up to the one that fails, as a runnable snippet. What was expected is read from the
failing statement (an assertion, a ``pytest.raises`` block, a call), what happened from the
failure's error lines (``E ...`` of pytest's short traceback; frames inside the library are left
out, as a user would paste only the error).
"""

from __future__ import annotations

import ast
import re
import textwrap
from dataclasses import dataclass
from typing import Mapping, Sequence

__all__ = ["STATEMENT_VERSION", "Scenario", "scenario", "write_statement"]

STATEMENT_VERSION = 2
"""Bumped whenever the wording of generated statements changes (part of the generator's dataset hash)."""

_TB_HEAD = re.compile(r"^(?P<path>[^\s:]+\.py):(?P<line>\d+): in (?P<func>\S+)$")
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
_TEST_ID = re.compile(r"^(?P<name>[A-Za-z_]\w*)(?:\[(?P<param>.*)\])?$", re.S)
_MAX_CODE = 160


@dataclass(frozen=True)
class Scenario:
    """One failing behaviour: a runnable reproduction, what should happen, and what happens."""

    snippet: str
    expected: str
    happened: str
    error_lines: tuple[str, ...]
    call: str | None
    outcome: str  # "wrong_result", "no_raise" or "raises"


def _code(text: str, limit: int = _MAX_CODE) -> str:
    one = " ".join(text.split())
    return one if len(one) <= limit else one[: limit - 3] + "..."


def _lines(source_lines: Sequence[str], node: ast.AST) -> str:
    first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])  # type: ignore[attr-defined]
    return textwrap.dedent("\n".join(source_lines[first - 1: node.end_lineno]))  # type: ignore[attr-defined]


def _names(nodes: Sequence[ast.AST]) -> set[str]:
    return {n.id for node in nodes for n in ast.walk(node) if isinstance(n, ast.Name)} | {
        n.value.id for node in nodes for n in ast.walk(node)
        if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)}


def _defined(stmt: ast.stmt) -> set[str]:
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {stmt.name}
    if isinstance(stmt, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
        targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
        return {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
    return set()


def _find_test(tree: ast.Module, parts: Sequence[str]) -> ast.FunctionDef | None:
    scope: Sequence[ast.stmt] = tree.body
    for cls in parts[:-1]:
        owner = next((s for s in scope if isinstance(s, ast.ClassDef) and s.name == cls), None)
        if owner is None:
            return None
        scope = owner.body
    return next((s for s in scope if isinstance(s, ast.FunctionDef) and s.name == parts[-1]), None)


def _param_binding(fn: ast.FunctionDef, param: str | None) -> str:
    """``name = value`` lines for the parametrize case whose pytest id is ``param``."""
    if param is None:
        return ""
    for dec in fn.decorator_list:
        if not (isinstance(dec, ast.Call) and len(dec.args) >= 2 and isinstance(dec.args[0], ast.Constant)
                and "parametrize" in ast.unparse(dec.func)):
            continue
        names = [n.strip() for n in str(dec.args[0].value).split(",") if n.strip()]
        if not isinstance(dec.args[1], (ast.List, ast.Tuple)):
            continue
        cases = dec.args[1].elts
        for i, case in enumerate(cases):
            values = case.elts if len(names) > 1 and isinstance(case, (ast.Tuple, ast.List)) else [case]
            try:
                literal = [ast.literal_eval(v) for v in values]
            except ValueError:
                literal = None
            ids = "-".join(str(v) for v in literal) if literal is not None else None
            if ids == param or param == f"{names[0]}{i}":
                return "\n".join(f"{n} = {ast.unparse(v)}" for n, v in zip(names, values))
    return ""


def _innermost(stmt: ast.stmt, line: int) -> ast.stmt:
    best = stmt
    for node in ast.walk(stmt):
        if isinstance(node, ast.stmt) and node.lineno <= line <= node.end_lineno:  # type: ignore[operator]
            if (node.end_lineno - node.lineno) <= (best.end_lineno - best.lineno):  # type: ignore[operator]
                best = node
    return best


def _raises_target(stmt: ast.stmt) -> str | None:
    if isinstance(stmt, ast.With):
        for item in stmt.items:
            e = item.context_expr
            if isinstance(e, ast.Call) and ast.unparse(e.func).endswith("raises") and e.args:
                return ast.unparse(e.args[0])
    return None


_OPS = {ast.Eq: "be", ast.NotEq: "not be", ast.In: "be in", ast.NotIn: "not be in", ast.Is: "be",
        ast.IsNot: "not be"}


def _expectation(stmt: ast.stmt) -> str:
    if isinstance(stmt, ast.Assert):
        t = stmt.test
        if isinstance(t, ast.Compare) and len(t.ops) == 1 and type(t.ops[0]) in _OPS:
            return f"`{_code(ast.unparse(t.left))}` should {_OPS[type(t.ops[0])]} `{_code(ast.unparse(t.comparators[0]))}`"
        if isinstance(t, ast.UnaryOp) and isinstance(t.op, ast.Not):
            return f"`{_code(ast.unparse(t.operand))}` should be false"
        if isinstance(t, (ast.Compare, ast.BoolOp)):
            return f"`{_code(ast.unparse(t))}` should hold"
        return f"`{_code(ast.unparse(t))}` should be true"
    target = _raises_target(stmt)
    if target is not None:
        inner = "; ".join(ast.unparse(s) for s in stmt.body)  # type: ignore[attr-defined]
        return f"`{_code(inner)}` should raise `{target}`"
    return f"`{_code(ast.unparse(stmt))}` should run without an error"


def _first_call(stmts: Sequence[ast.stmt], helpers: set[str]) -> str | None:
    """The library call a failing step is about: the first call of the failing statement, else of the
    steps before it (latest first), that is neither pytest's nor a helper of the test file."""
    for stmt in stmts:
        target = stmt.body[0] if _raises_target(stmt) and stmt.body else stmt  # type: ignore[attr-defined]
        for node in ast.walk(target):
            if isinstance(node, ast.Call):
                func = ast.unparse(node.func)
                if not func.startswith("pytest.") and func.split(".")[0] not in helpers:
                    return _code(ast.unparse(node), 70)
    return None


def _error_lines(excerpt: str) -> list[str]:
    out = []
    for ln in excerpt.splitlines():
        if ln.startswith("E "):
            out.append(_ADDRESS.sub("", ln[4:] if ln.startswith("E   ") else ln[2:]).rstrip())
    return out


def scenario(files: Mapping[str, bytes], test_id: str, excerpt: str) -> Scenario | None:
    """The reproduction of failing test ``test_id`` (``path::[Class::]name[param]``) from the test
    file in ``files`` and the failure ``excerpt``; ``None`` when the test cannot be found or parsed."""
    path, _, rest = test_id.partition("::")
    parts = rest.split("::")
    m = _TEST_ID.match(parts[-1])
    if path not in files or m is None:
        return None
    try:
        source = files[path].decode()
        tree = ast.parse(source)
    except (UnicodeDecodeError, SyntaxError):
        return None
    fn = _find_test(tree, [*parts[:-1], m.group("name")])
    if fn is None:
        return None
    src_lines = source.splitlines()
    body = [s for s in fn.body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]
    if not body:
        return None
    line = None
    for ln in excerpt.splitlines():
        head = _TB_HEAD.match(ln)
        if head and head.group("path") == path:
            line = int(head.group("line"))
            break
    if line is None:  # a deep traceback cut the test's frame off: find its source line in the excerpt
        shown = {ln.strip() for ln in excerpt.splitlines() if ln.startswith("    ")}
        line = next((i for i in range(fn.lineno, fn.end_lineno + 1) if src_lines[i - 1].strip() in shown), None)  # type: ignore[operator]
    upto = len(body) - 1
    if line is not None:
        upto = next((i for i, s in enumerate(body) if s.lineno <= line <= s.end_lineno), upto)  # type: ignore[operator]
    steps = body[: upto + 1]
    failing = _innermost(steps[-1], line) if line is not None else steps[-1]
    if line is not None:  # an error inside ``with pytest.raises(X):`` still means "should raise X"
        for node in ast.walk(steps[-1]):
            if isinstance(node, ast.With) and _raises_target(node) and node.lineno <= line <= node.end_lineno:  # type: ignore[operator]
                failing = node

    # module-level helpers and imports the steps need, transitively, in source order
    top = [s for s in tree.body if s is not fn and not (isinstance(s, (ast.FunctionDef, ast.ClassDef))
                                                        and s.name.startswith(("test_", "Test")))]
    binding = _param_binding(fn, m.group("param"))
    need = _names(steps) | (_names([ast.parse(binding)]) if binding else set())
    chosen: set[int] = set()
    changed = True
    while changed:
        changed = False
        for i, s in enumerate(top):
            if i not in chosen and not isinstance(s, (ast.Import, ast.ImportFrom)) and _defined(s) & need:
                chosen.add(i)
                need |= _names([s])
                changed = True
    pieces: list[str] = []
    for i, s in enumerate(top):
        if isinstance(s, (ast.Import, ast.ImportFrom)):
            used = [a for a in s.names if (a.asname or a.name).split(".")[0] in need]
            if used:
                pieces.append(ast.unparse(type(s)(**{**{f: getattr(s, f) for f in s._fields}, "names": used})))
    helpers = [_lines(src_lines, s) for i, s in enumerate(top) if i in chosen]
    parts_out = ["\n".join(pieces)] if pieces else []
    parts_out += helpers
    script = "\n".join(_lines(src_lines, s) for s in steps)
    parts_out.append(f"{binding}\n{script}" if binding else script)
    snippet = "\n\n".join(p for p in parts_out if p.strip())

    errors = _error_lines(excerpt)
    first = errors[0].strip() if errors else ""
    if first.startswith("Failed: DID NOT RAISE"):
        outcome, happened = "no_raise", "nothing is raised."
    elif first.startswith(("assert ", "AssertionError")) and "assert" in first:
        outcome, happened = "wrong_result", "the check fails:"
        errors[0] = errors[0].replace("AssertionError: ", "", 1)
    else:
        outcome, happened = "raises", "it raises an error:"
    helper_names = set().union(*(_defined(top[i]) for i in chosen)) if chosen else set()
    order = [failing, *reversed(steps)]
    call = _first_call(order, helper_names) or _first_call(order, set())
    return Scenario(snippet, _expectation(failing), happened, tuple(errors), call, outcome)


def _humanise(test_id: str) -> str:
    name = test_id.rsplit("::", 1)[-1]
    m = _TEST_ID.match(name)
    base = m.group("name") if m else name
    return base.removeprefix("test_").replace("_", " ").strip() or base


def write_statement(project: str, version: str, files: Mapping[str, bytes], failing: Sequence[str],
                    excerpts: Mapping[str, str]) -> str:
    """The bug report of a generated task.

    Args:
        project: the package name.
        version: its version.
        files: the project's original files (the hidden test files included; they are read, never named).
        failing: the FAIL_TO_PASS test ids.
        excerpts: test id -> pytest short-traceback excerpt of its failure.
    """
    scenarios: list[tuple[str, Scenario]] = []
    for t in failing:
        s = scenario(files, t, excerpts[t]) if t in excerpts else None
        if s is not None and all(s.snippet != o.snippet for _, o in scenarios):  # one report per reproduction
            scenarios.append((t, s))
            if len(scenarios) == 3:  # a report shows at most three reproductions
                break
    lead = scenarios[0][1] if scenarios else None
    if lead is not None and lead.call:
        verb = {"wrong_result": "gives a wrong result", "no_raise": "does not raise",
                "raises": "raises an unexpected error"}[lead.outcome]
        title = f"{project}: `{lead.call}` {verb}"
    else:
        title = f"{project}: {_humanise(failing[0])} is broken"
    intro = "Here is how to reproduce it." if scenarios else "I have no small reproduction yet."
    lines = [title, "", f"With `{project}` {version} the behaviour below is wrong. {intro}"]
    hidden = sorted({t.split("::")[0] for t in failing} | set(failing), key=len, reverse=True)

    def redact(text: str) -> str:  # error messages may quote a test's id or file; the agent has neither
        for h in hidden:
            text = text.replace(h, "<snippet>")
        return text

    for n, (_t, s) in enumerate(scenarios[:3]):
        if n:
            lines += ["", "Another case that goes wrong:"]
        lines += ["", "```python", s.snippet, "```", "", f"Expected: {s.expected}.", "", f"What happens: {s.happened}"]
        if s.error_lines:
            lines += ["", "```", *(redact(e) for e in s.error_lines), "```"]
    shown = {t for t, _ in scenarios[:3]}
    others = list(dict.fromkeys(_humanise(t) for t in failing if t not in shown))
    others = [o for o in others if o not in {_humanise(t) for t in shown}]
    if others:
        more = f" and {len(others) - 8} more" if len(others) > 8 else ""
        lines += ["", f"Other behaviour that looks broken too: {', '.join(others[:8])}{more}."]
    if not scenarios:
        lines += ["", f"{len(failing)} behaviour(s) of the library are affected."]
    lines += ["", f"Please fix `{project}` so that these work as expected, without changing its other behaviour."]
    return "\n".join(lines)
