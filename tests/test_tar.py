"""Safe tar extraction: the same refusals with tarfile's own ``data`` filter (3.11.4+) and without it."""

import io
import os
import stat
import sys
import tarfile

import pytest

import rlvr._tar as tar_mod
from rlvr._tar import UnsafeArchiveMember, extract_data


@pytest.fixture(params=["builtin", "fallback"])
def mode(request, monkeypatch):
    if request.param == "builtin" and not tar_mod.HAS_DATA_FILTER:
        pytest.skip(f"Python {sys.version.split()[0]} has no tarfile data filter")
    if request.param == "fallback":
        monkeypatch.setattr(tar_mod, "HAS_DATA_FILTER", False)
    return request.param


def _archive(*members: tuple[str, str, bytes | str, int]) -> tarfile.TarFile:
    """An in-memory archive of (name, kind, payload, mode): kind is file, dir, sym, link or fifo."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, kind, payload, perm in members:
            info = tarfile.TarInfo(name)
            info.mode = perm
            if kind == "file":
                info.size = len(payload)
                tf.addfile(info, io.BytesIO(payload))
                continue
            info.type = {"dir": tarfile.DIRTYPE, "sym": tarfile.SYMTYPE, "link": tarfile.LNKTYPE,
                         "fifo": tarfile.FIFOTYPE}[kind]
            if kind in ("sym", "link"):
                info.linkname = payload
            tf.addfile(info)
    buf.seek(0)
    return tarfile.open(fileobj=buf, mode="r")


def test_extracts_files_dirs_and_inner_links_keeping_exec_bits(mode, tmp_path):
    tf = _archive(("pkg", "dir", b"", 0o755), ("pkg/run.sh", "file", b"#!/bin/sh\necho hi\n", 0o4777),
                  ("pkg/data.txt", "file", b"data", 0o644), ("pkg/alias", "sym", "data.txt", 0o777),
                  ("pkg/hard", "link", "pkg/data.txt", 0o644))
    extract_data(tf, tmp_path)
    run = tmp_path / "pkg" / "run.sh"
    assert run.read_bytes().startswith(b"#!/bin/sh")
    perm = stat.S_IMODE(run.stat().st_mode)
    assert perm & stat.S_IXUSR, "the owner's exec bit survives"
    assert not perm & (stat.S_ISUID | stat.S_IWGRP | stat.S_IWOTH), f"setuid, group/other write cleared: {perm:o}"
    assert (tmp_path / "pkg" / "alias").read_bytes() == b"data"
    assert (tmp_path / "pkg" / "hard").read_bytes() == b"data"


def test_absolute_names_land_inside_the_destination(mode, tmp_path):
    extract_data(_archive(("/etc/evil.txt", "file", b"x", 0o644)), tmp_path)
    assert (tmp_path / "etc" / "evil.txt").read_bytes() == b"x"


@pytest.mark.parametrize("members", [
    [("../evil.txt", "file", b"x", 0o644)],
    [("a/../../evil.txt", "file", b"x", 0o644)],
    [("out", "sym", "../..", 0o777)],
    [("abs", "sym", "/etc/passwd", 0o777)],
    [("hard", "link", "../evil.txt", 0o644)],
    [("pipe", "fifo", b"", 0o644)],
    # a chain: each link lies inside on its own, together they leave the destination
    [("a", "sym", ".", 0o777), ("a/b", "sym", "..", 0o777), ("a/b/evil.txt", "file", b"x", 0o644)],
], ids=["dotdot", "nested-dotdot", "symlink-out", "symlink-absolute", "hardlink-out", "fifo",
        "symlink-chain"])
def test_refuses_members_that_leave_the_destination(mode, tmp_path, members):
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(tarfile.TarError):
        extract_data(_archive(*members), dest)
    assert not (tmp_path / "evil.txt").exists()
    assert sorted(os.listdir(tmp_path)) == ["dest"], "nothing written next to the destination"


def test_fallback_error_says_what_and_why(monkeypatch, tmp_path):
    monkeypatch.setattr(tar_mod, "HAS_DATA_FILTER", False)
    with pytest.raises(UnsafeArchiveMember, match=r"'\.\./evil\.txt' would be written outside the destination"):
        extract_data(_archive(("../evil.txt", "file", b"x", 0o644)), tmp_path)
    with pytest.raises(UnsafeArchiveMember, match="absolute path '/etc/passwd'"):
        extract_data(_archive(("abs", "sym", "/etc/passwd", 0o777)), tmp_path)
