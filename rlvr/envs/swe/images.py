"""Task images, built offline in three layers (as SWE-bench does): base, then environment, then instance.

* **base** (``rlvr-swe-base:bookworm``): a Debian bookworm minbase root filesystem made with
  ``debootstrap`` (python3, pip, venv, pytest, git) and the user ``agent``, imported with
  ``docker import`` by ``containers/build_base.sh``. Nothing is ever pulled from a registry.
* **environment** (``rlvr-swe-env:<name>-<digest>``): the base plus the in-sandbox runner and,
  optionally, files and setup commands (for example ``pip install --no-index`` of shipped wheels).
* **instance** (``rlvr-swe-inst:<id>-<digest>``): an environment plus one task's repository at
  ``/testbed`` as a fresh single-commit git repository (no history to leak the fix).

Every layer is tagged with the first 12 hex digits of a content digest (parent image id, Dockerfile
and context files), so a build runs only when its inputs changed; builds run with no network.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import subprocess
import tarfile
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from rlvr.envs.swe.errors import ImageError
from rlvr.envs.swe.sandbox import GIT_ENV, RUNNER_PATH, WORKDIR

__all__ = [
    "BASE_IMAGE", "ensure_base_image", "build_layer", "ensure_env_image", "build_instance_image",
    "adapt_image", "content_digest", "find_containers_dir",
]

BASE_IMAGE = os.environ.get("RLVR_SWE_BASE_IMAGE", "rlvr-swe-base:bookworm")
_RUNNER_FILE = Path(__file__).with_name("runner.py")


def content_digest(parts: Iterable[bytes | str]) -> str:
    """SHA-256 over length-prefixed parts (so that part boundaries matter)."""
    h = hashlib.sha256()
    for p in parts:
        b = p.encode() if isinstance(p, str) else p
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()


def find_containers_dir() -> Path | None:
    """The ``containers/`` directory with the build scripts: ``$RLVR_CONTAINERS_DIR`` or the source checkout's."""
    env = os.environ.get("RLVR_CONTAINERS_DIR")
    candidates = [Path(env)] if env else []
    candidates.append(Path(__file__).resolve().parents[3] / "containers")
    for c in candidates:
        if (c / "build_base.sh").is_file():
            return c
    return None


def ensure_base_image(client: Any, tag: str = BASE_IMAGE, *, build: bool = True) -> str:
    """Return the id of the base image, building it with ``containers/build_base.sh`` when it is absent
    (needs root and a Debian mirror). Raises :class:`ImageError` with the fix otherwise."""
    import docker.errors

    try:
        return client.api.inspect_image(tag)["Id"]
    except docker.errors.ImageNotFound:
        pass
    scripts = find_containers_dir()
    if not build or scripts is None or os.geteuid() != 0:
        why = ("building was not allowed" if not build else
               "containers/build_base.sh was not found (set RLVR_CONTAINERS_DIR)" if scripts is None else
               "debootstrap needs root")
        raise ImageError(f"the base image {tag!r} does not exist and {why}. Build it once as root with "
                         f"'containers/build_base.sh {tag}' (or 'containers/provision.sh').")
    proc = subprocess.run([str(scripts / "build_base.sh"), tag], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise ImageError(f"building the base image {tag!r} failed: {(proc.stderr or proc.stdout).strip()[-800:]}")
    return client.api.inspect_image(tag)["Id"]


def _context_tar(dockerfile: str, files: Mapping[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in [("Dockerfile", dockerfile.encode()), *sorted(files.items())]:
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode, ti.mtime = len(data), 0o755 if name.endswith("rlvr-exec") else 0o644, 946684800
            tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def _slug(text: str, n: int = 80) -> str:
    s = re.sub(r"[^a-z0-9_.-]+", "-", text.lower()).strip("-.") or "x"
    return s[:n]


def build_layer(client: Any, repository: str, name: str, parent: str, dockerfile_body: str,
                files: Mapping[str, bytes] | None = None, labels: Mapping[str, str] | None = None) -> str:
    """Build ``FROM parent`` + ``dockerfile_body`` with ``files`` as context; return the tag.

    The tag is ``repository:name-<digest12>`` where the digest covers the parent's image id, the
    Dockerfile and the files; an existing tag is reused without building.
    """
    import docker.errors

    try:
        parent_id = client.api.inspect_image(parent)["Id"]
    except docker.errors.ImageNotFound as e:
        raise ImageError(f"parent image {parent!r} does not exist; build it first") from e
    files = dict(files or {})
    dockerfile = f"FROM {parent_id}\n{dockerfile_body.strip()}\n"
    digest = content_digest([parent_id, dockerfile, *[p for k in sorted(files) for p in (k, files[k])]])
    tag = f"{repository}:{_slug(name, 100)}-{digest[:12]}"
    try:
        client.api.inspect_image(tag)
        return tag
    except docker.errors.ImageNotFound:
        pass
    all_labels = {"rlvr.digest": digest, "rlvr.parent": parent, **(labels or {})}
    dockerfile += "LABEL " + " ".join(f'{k}="{v}"' for k, v in all_labels.items()) + "\n"
    try:
        client.images.build(fileobj=io.BytesIO(_context_tar(dockerfile, files)), custom_context=True, tag=tag,
                            rm=True, forcerm=True, network_mode="none", pull=False)
    except docker.errors.BuildError as e:
        log = "".join(str(x.get("stream", x.get("error", ""))) for x in e.build_log)[-1500:]
        raise ImageError(f"building {tag} failed: {e.msg}\n{log}") from e
    except docker.errors.APIError as e:
        raise ImageError(f"building {tag} failed: {e.explanation or e}") from e
    return tag


def ensure_env_image(client: Any, name: str = "python", *, base: str = BASE_IMAGE,
                     files: Mapping[str, bytes] | None = None, setup: Sequence[str] = (), build_base: bool = True) -> str:
    """The environment layer: ``base`` + the runner (+ ``files`` under ``/opt/rlvr/env`` and ``setup``
    commands run as root with no network). Builds the base image first when it is missing."""
    ensure_base_image(client, base, build=build_base)
    ctx = {"rlvr-exec": _RUNNER_FILE.read_bytes()}
    body = ["USER root", f"COPY rlvr-exec {RUNNER_PATH}", f"RUN chmod 0755 {RUNNER_PATH}"]
    if files:
        ctx.update({f"env/{k}": v for k, v in files.items()})
        body.append("COPY env/ /opt/rlvr/env/")
    body += [f"RUN {cmd}" for cmd in setup]
    body += ["USER 1000:1000", f"WORKDIR {WORKDIR}"]
    return build_layer(client, "rlvr-swe-env", name, base, "\n".join(body), ctx, {"rlvr.layer": "env"})


def build_instance_image(client: Any, env_image: str, instance_id: str, files: Mapping[str, bytes]) -> str:
    """The instance layer: ``env_image`` + ``files`` as a single-commit repository at ``/testbed``
    (deterministic commit id). Sandboxes started from it have the repository ready; a pool resets
    them with ``git reset --hard``."""
    ctx = {f"testbed/{k}": (v.encode() if isinstance(v, str) else v) for k, v in files.items()}
    env = " ".join(f'{k}="{v}"' for k, v in GIT_ENV.items())
    body = "\n".join([
        f"COPY --chown=1000:1000 testbed/ {WORKDIR}/",
        "USER 1000:1000",
        f"RUN cd {WORKDIR} && git init -q && git add -A && {env} git commit -q -m 'instance {_slug(instance_id)}'",
    ])
    return build_layer(client, "rlvr-swe-inst", instance_id, env_image, body, ctx,
                       {"rlvr.layer": "instance", "rlvr.instance_id": instance_id})


def adapt_image(client: Any, image: str, *, repo_dir: str = WORKDIR, base_commit: str | None = None,
                name: str | None = None) -> str:
    """Make a user-provided image (for example a SWE-bench instance image) usable as an rlvr sandbox:
    add the runner and the ``agent`` user, and turn the repository at ``repo_dir`` (checked out at
    ``base_commit`` when given) into a fresh single-commit repository at ``/testbed`` owned by the agent.

    The image needs ``bash``, ``git``, ``python3`` and ``useradd``; its history after ``base_commit``
    (which may hold the fix) is dropped.
    """
    env = " ".join(f'{k}="{v}"' for k, v in GIT_ENV.items())
    checkout = f"git -c advice.detachedHead=false checkout -q -f {base_commit} && " if base_commit else ""
    copy = "" if repo_dir.rstrip("/") == WORKDIR else f"mkdir -p {WORKDIR} && cp -a {repo_dir}/. {WORKDIR}/ && "
    body = "\n".join([
        "USER root",
        f"COPY rlvr-exec {RUNNER_PATH}",
        f"RUN chmod 0755 {RUNNER_PATH} && (id -u agent >/dev/null 2>&1 || useradd -u 1000 -m -s /bin/bash agent)",
        f"RUN set -e; cd {repo_dir} && {checkout}git clean -qfdx && cd / && {copy}cd {WORKDIR} && rm -rf .git "
        f"&& git init -q && git add -A && {env} git -c user.name=rlvr -c user.email=rlvr@localhost commit -q -m base "
        f"&& chown -R 1000:1000 {WORKDIR} && mkdir -p /home/agent && chown 1000:1000 /home/agent",
        "USER 1000:1000",
        f"WORKDIR {WORKDIR}",
    ])
    return build_layer(client, "rlvr-swe-adapted", name or image, image, body,
                       {"rlvr-exec": _RUNNER_FILE.read_bytes()}, {"rlvr.layer": "adapted", "rlvr.source": image})
