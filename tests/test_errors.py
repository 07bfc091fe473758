"""One exception tree: every exception class rlvr defines derives from RLVRError and is named in rlvr.errors'
module docstring; environments never import rlvr.agents."""

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path

import rlvr
import rlvr.errors
from rlvr.errors import RLVRError

ROOT = Path(rlvr.__file__).parent


def _rlvr_modules():
    for info in pkgutil.walk_packages(rlvr.__path__, "rlvr."):
        if info.name.rsplit(".", 1)[-1] != "__main__":  # running it is not importing it
            yield importlib.import_module(info.name)


def _defined_exceptions():
    """Exception classes defined in rlvr's modules (warning categories are not raised, so not in the tree)."""
    found = {}
    for mod in _rlvr_modules():
        for _, cls in inspect.getmembers(mod, inspect.isclass):
            if issubclass(cls, BaseException) and not issubclass(cls, Warning) and cls.__module__ == mod.__name__:
                found[f"{cls.__module__}.{cls.__qualname__}"] = cls
    return found


def _subclasses(cls):
    out = set()
    for sub in cls.__subclasses__():
        if sub.__module__.startswith("rlvr."):
            out.add(sub)
            out |= _subclasses(sub)
    return out


def test_every_exception_class_derives_from_rlvr_error_and_is_documented():
    found = _defined_exceptions()
    assert len(found) >= 15  # the scan sees the whole package (RetrievalError, TaskError, SandboxError, ...)
    outside = sorted(name for name, cls in found.items() if not issubclass(cls, RLVRError))
    assert outside == [], f"exception classes outside the RLVRError tree: {outside}"
    assert set(found.values()) == _subclasses(RLVRError) | {RLVRError}
    doc = rlvr.errors.__doc__
    undocumented = sorted(name for name, cls in found.items() if cls.__name__ not in doc)
    assert undocumented == [], f"add these to the tree in rlvr/errors.py's docstring: {undocumented}"


def test_named_classes_sit_where_the_tree_says():
    from rlvr.envs.deepsearch import RetrievalError, ToolInputError
    from rlvr.envs.swe.errors import EngineUnavailable, ImageError, PoolExhausted, SandboxError, SandboxLost, TaskError
    from rlvr.errors import ConfigError, InfrastructureError

    assert issubclass(TaskError, ConfigError) and issubclass(TaskError, ValueError)
    assert issubclass(ToolInputError, RLVRError) and issubclass(ToolInputError, ValueError)
    assert issubclass(RetrievalError, InfrastructureError) and issubclass(SandboxError, RLVRError)
    for cls in (EngineUnavailable, SandboxLost, ImageError, PoolExhausted):
        assert issubclass(cls, SandboxError) and issubclass(cls, InfrastructureError)
    assert not issubclass(SandboxError, InfrastructureError)  # a plain one may come from what the agent did


def _imports(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            yield from (f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("rlvr."):
            yield node.value  # importlib.import_module("rlvr....")


def test_environments_never_import_agents():
    files = sorted((ROOT / "envs").rglob("*.py"))
    assert len(files) > 20
    bad = sorted(f"{f.relative_to(ROOT.parent)}: {name}" for f in files for name in _imports(f)
                 if name == "rlvr.agents" or name.startswith("rlvr.agents."))
    assert bad == []


def test_the_import_scan_sees_an_agents_import(tmp_path):
    p = tmp_path / "m.py"
    p.write_text("def f():\n    from rlvr.agents.models import cache_dir\n    from rlvr import agents\n")
    names = set(_imports(p))
    assert "rlvr.agents.models" in names and "rlvr.agents" in names
