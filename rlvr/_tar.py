"""Safe tar extraction on every Python 3.11, including 3.11.0-3.11.3 (Debian 12's 3.11.2).

``TarFile.extractall(filter="data")`` arrived in Python 3.11.4. Where it exists :func:`extract_data`
uses it; elsewhere it applies the same rules itself to each member as it extracts, so an archive
that would escape the destination is refused on every interpreter, never unpacked unchecked.
"""

from __future__ import annotations

import copy
import os
import stat
import tarfile

from rlvr.errors import ConfigError

PathLike = str | os.PathLike[str]

HAS_DATA_FILTER = hasattr(tarfile, "data_filter")


class UnsafeArchiveMember(ConfigError, tarfile.TarError):
    """A member the ``data`` filter refuses: outside the destination, a device, or a link that escapes."""


def extract_data(tf: tarfile.TarFile, target: PathLike) -> None:
    """Extract every member of ``tf`` under ``target`` with the rules of tarfile's ``data`` filter.

    Leading slashes are stripped from member names. Refused with a :class:`tarfile.TarError`: names
    that lead outside ``target``, symbolic or hard links pointing outside it (also through links
    extracted earlier), absolute link targets, device and FIFO members. Owners are not restored;
    setuid/setgid/sticky and group/other write bits are cleared; the owner can always read and write.
    As with the ``data`` filter, members before the refused one are already written.
    """
    if HAS_DATA_FILTER:
        tf.extractall(target, filter="data")
        return
    root = os.path.realpath(target)
    for member in tf.getmembers():
        # checked one by one against the disk as it stands, so links extracted earlier are followed
        tf.extract(data_member(member, root), root, numeric_owner=True)


def _inside(root: str, path: str) -> bool:
    return os.path.commonpath([root, os.path.realpath(path)]) == root


def data_member(member: tarfile.TarInfo, root: str) -> tarfile.TarInfo:
    """``member`` rewritten as the ``data`` filter would for the destination ``root`` (a real path), or
    :class:`UnsafeArchiveMember`."""
    name = member.name.lstrip("/" + os.sep)  # as the data filter does: "/a/b" lands at "a/b"
    dest = os.path.join(root, name)
    if not _inside(root, dest):
        raise UnsafeArchiveMember(f"archive member {name!r} would be written outside the destination {root!r}")
    if member.ischr() or member.isblk() or member.isfifo():
        raise UnsafeArchiveMember(f"archive member {name!r} is a device or FIFO; only files, directories "
                                  "and links are extracted")
    if member.issym() or member.islnk():
        link = member.linkname
        if os.path.isabs(link):
            raise UnsafeArchiveMember(f"archive member {name!r} links to the absolute path {link!r}; "
                                      "expected a link inside the destination")
        resolved = (os.path.join(os.path.dirname(dest), link) if member.issym()
                    else os.path.join(root, link))
        if not _inside(root, resolved):
            raise UnsafeArchiveMember(f"archive member {name!r} links to {link!r}, outside the destination "
                                      f"{root!r}")
    out = copy.copy(member)
    out.name = name
    mode = member.mode & ~(stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX | stat.S_IWGRP | stat.S_IWOTH)
    mode |= stat.S_IRUSR | stat.S_IWUSR
    if member.isreg() and not mode & stat.S_IXUSR:
        mode &= ~(stat.S_IXGRP | stat.S_IXOTH)
    if member.isdir():
        mode |= stat.S_IXUSR
    out.mode = mode
    out.uid, out.gid = os.getuid(), os.getgid()  # chown (as root only) keeps the extractor's owner
    out.uname = out.gname = ""
    return out


__all__ = ["HAS_DATA_FILTER", "UnsafeArchiveMember", "data_member", "extract_data"]
