"""The agent's tools for SWE tasks: bash, view_file, edit_file (str_replace), create_file, run_tests, submit.

Every tool works on the sandbox of the current episode through a :class:`Session` (the environment).
File tools are confined to the repository work tree; bash runs as the unprivileged ``agent`` user
with the sandbox's timeout and output limits. A failure the agent caused (a missing file, an
ambiguous edit) raises ``ValueError`` with a message saying what to do, which the environment turns
into an error observation.
"""

from __future__ import annotations

import posixpath
import shlex
from typing import Protocol

from rlvr.envs.swe.sandbox import WORKDIR, Sandbox
from rlvr.envs.tools import Tool, ToolOutput

__all__ = ["Session", "make_tools", "resolve_path", "TOOL_NAMES", "MUTATING_TOOLS"]

TOOL_NAMES = ("bash", "view_file", "edit_file", "create_file", "run_tests", "submit")
MUTATING_TOOLS = frozenset({"bash", "edit_file", "create_file"})
MAX_VIEW_LINES = 400
MAX_FILE_BYTES = 1 << 20


class Session(Protocol):
    """What the tools need from the environment."""

    command_timeout_s: float
    test_timeout_s: float

    def sandbox(self) -> Sandbox: ...  # the episode's sandbox (recovered if it died)

    def test_command(self, target: str) -> str: ...  # the visible-tests command

    def submit(self) -> ToolOutput | str: ...  # grade; the report text, and (ToolOutput.apply) the episode's end


def resolve_path(path: str, *, write: bool = False) -> str:
    """An absolute path inside the work tree, or ``ValueError`` saying why not."""
    if not isinstance(path, str) or not path.strip():
        raise ValueError("path must be a non-empty string, e.g. 'src/module.py' (relative to /testbed)")
    p = path.strip()
    if "\x00" in p:
        raise ValueError(f"path {path!r} holds a NUL byte, which no file name can contain; give the path without it")
    full = posixpath.normpath(p if p.startswith("/") else posixpath.join(WORKDIR, p))
    if full != WORKDIR and not full.startswith(WORKDIR + "/"):
        raise ValueError(f"{path!r} is outside the repository; file tools only work inside {WORKDIR} "
                         "(use bash to read other files)")
    rel = full[len(WORKDIR) + 1:]
    if write and (full == WORKDIR or rel == ".git" or rel.startswith(".git/")):
        raise ValueError(f"cannot write {path!r}: choose a file inside {WORKDIR}, outside .git")
    return full


def _read(sb: Sandbox, full: str) -> str:
    try:
        data = sb.read_file(full)
    except FileNotFoundError:
        raise ValueError(f"{full} does not exist; list files with bash (e.g. 'ls {posixpath.dirname(full)}')") from None
    except IsADirectoryError:
        raise ValueError(f"{full} is a directory or a link, not a regular file") from None
    if len(data) > MAX_FILE_BYTES:
        raise ValueError(f"{full} has {len(data)} bytes; view it in parts with bash (sed -n '1,100p' {full})")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{full} is not UTF-8 text") from None


def make_tools(session: Session) -> list[Tool]:
    """The six tools bound to ``session``."""

    def bash(command: str) -> str:
        if not command.strip():
            raise ValueError("command is empty; give a shell command such as 'ls' or 'grep -rn name .'")
        res = session.sandbox().exec(command, timeout_s=session.command_timeout_s)
        return res.render(session.command_timeout_s)

    def view_file(path: str, start_line: int = 1, end_line: int | None = None) -> str:
        full = resolve_path(path)
        sb = session.sandbox()
        listing = sb.exec(["bash", "-c", 'if [ -d "$1" ]; then find "$1" -maxdepth 2 -not -path "*/.git*" | sort; '
                           'else exit 3; fi', "ls", full], timeout_s=10)
        if listing.exit_code == 0:
            return listing.output or f"{full} is an empty directory"
        text = _read(sb, full)
        lines = text.splitlines()
        if start_line < 1:
            raise ValueError(f"start_line must be >= 1, got {start_line}")
        last = len(lines) if end_line is None else min(end_line, len(lines))
        if end_line is not None and end_line < start_line:
            raise ValueError(f"end_line ({end_line}) is before start_line ({start_line})")
        if start_line > max(1, len(lines)):
            raise ValueError(f"{full} has {len(lines)} lines; start_line {start_line} is past the end")
        last = min(last, start_line + MAX_VIEW_LINES - 1)
        body = "\n".join(f"{i:6d}\t{lines[i - 1]}" for i in range(start_line, last + 1))
        more = f"\n[... {len(lines) - last} more lines; use start_line={last + 1}]" if last < len(lines) else ""
        return (body or "(empty file)") + more

    def edit_file(path: str, old_str: str, new_str: str) -> str:
        full = resolve_path(path, write=True)
        sb = session.sandbox()
        text = _read(sb, full)
        if not old_str:
            raise ValueError("old_str is empty; copy the exact text to replace from view_file output "
                             "(without the line numbers)")
        count = text.count(old_str)
        if count == 0:
            raise ValueError(f"old_str was not found in {full}; it must match the file exactly, whitespace "
                             "and indentation included (view the file first)")
        if count > 1:
            starts, pos = [], -1
            for _ in range(count):
                pos = text.index(old_str, pos + 1)
                starts.append(text.count("\n", 0, pos) + 1)
            raise ValueError(f"old_str occurs {count} times in {full} (lines {starts[:10]}); include more "
                             "surrounding lines so that it is unique")
        new_text = text.replace(old_str, new_str, 1)
        sb.write_files({posixpath.relpath(full, WORKDIR): new_text})
        line = text[: text.index(old_str)].count("\n") + 1
        snippet = new_text.splitlines()[max(0, line - 3): line + new_str.count("\n") + 3]
        shown = "\n".join(f"{i:6d}\t{s}" for i, s in enumerate(snippet, max(1, line - 2)))
        return f"Edited {full}. The changed region now reads:\n{shown}"

    def create_file(path: str, content: str) -> str:
        full = resolve_path(path, write=True)
        if len(content.encode()) > MAX_FILE_BYTES:
            raise ValueError(f"content has {len(content.encode())} bytes; at most {MAX_FILE_BYTES} are accepted")
        sb = session.sandbox()
        existed = sb.exec(["test", "-e", full], timeout_s=10).exit_code == 0
        sb.write_files({posixpath.relpath(full, WORKDIR): content})
        return f"{'Overwrote' if existed else 'Created'} {full} ({len(content.splitlines())} lines)."

    def run_tests(target: str = "") -> str:
        if target:
            for part in shlex.split(target):
                if not part.startswith("-"):
                    resolve_path(part.split("::")[0])
        res = session.sandbox().exec(session.test_command(target), timeout_s=session.test_timeout_s,
                                     tail_bytes=24_000)
        return res.render(session.test_timeout_s)

    def submit() -> str:
        return session.submit()

    s = {"type": "string"}
    return [
        Tool("bash", "Run a shell command in /testbed as an unprivileged user (no network). Output is truncated; "
             "long-running commands are killed.",
             {"type": "object", "properties": {"command": {**s, "description": "the bash command line"}},
              "required": ["command"], "additionalProperties": False}, bash),
        Tool("view_file", "Show a file of the repository with line numbers (or list a directory).",
             {"type": "object", "properties": {
                 "path": {**s, "description": "path relative to /testbed (or absolute inside it)"},
                 "start_line": {"type": "integer", "minimum": 1, "description": "first line to show (default 1)"},
                 "end_line": {"type": "integer", "minimum": 1, "description": "last line to show (default: end)"}},
              "required": ["path"], "additionalProperties": False}, view_file),
        Tool("edit_file", "Replace the one occurrence of old_str in a file with new_str (exact match, "
             "whitespace included).",
             {"type": "object", "properties": {
                 "path": {**s, "description": "file to edit, relative to /testbed"},
                 "old_str": {**s, "description": "exact text to replace; must occur exactly once"},
                 "new_str": {**s, "description": "replacement text"}},
              "required": ["path", "old_str", "new_str"], "additionalProperties": False}, edit_file),
        Tool("create_file", "Create (or overwrite) a file in the repository with the given content.",
             {"type": "object", "properties": {
                 "path": {**s, "description": "file to write, relative to /testbed"},
                 "content": {**s, "description": "the whole file content"}},
              "required": ["path", "content"], "additionalProperties": False}, create_file),
        Tool("run_tests", "Run the repository's visible tests with pytest (optionally only a file or test id).",
             {"type": "object", "properties": {
                 "target": {**s, "description": "optional test path or id, e.g. 'tests/test_x.py::test_y'"}},
              "additionalProperties": False}, run_tests),
        Tool("submit", "Submit the current state of the repository as your solution. This ends the episode.",
             {"type": "object", "properties": {}, "additionalProperties": False}, submit),
    ]
