"""Tools given as Python source (FTRL ``codes``, ToolHop ``functions``, the synthetic generator).

The sources are compiled once; every episode executes them into a fresh namespace, so module-level
state in a tool's source is per episode. Source code runs with the privileges of this process:
load tool code only from files you trust.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from rlvr.envs.toolcall.task import FunctionRuntime
from rlvr.errors import ConfigError

__all__ = ["CodeBackend"]


@dataclass(frozen=True)
class CodeBackend:
    """Builds a runtime from tool sources: ``{tool name: python source defining a function of that name}``.

    Args:
        codes: tool name -> source; the source must define a callable with the tool's name.
        label: where the code comes from, for error messages.
    """

    codes: tuple[tuple[str, str], ...]
    label: str = "tool code"
    _compiled: tuple[tuple[str, Any], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        compiled = []
        for name, source in self.codes:
            if not isinstance(source, str):
                raise ConfigError(f"{self.label}: the code of tool {name!r} must be a string, got {type(source).__name__}")
            try:
                compiled.append((name, compile(source, f"<{self.label}:{name}>", "exec")))
            except SyntaxError as e:
                raise ConfigError(f"{self.label}: the code of tool {name!r} does not compile: {e.msg} (line {e.lineno})") from e
        object.__setattr__(self, "_compiled", tuple(compiled))
        self()  # fail early when a source does not define its tool

    @classmethod
    def from_mapping(cls, codes: Mapping[str, str], label: str = "tool code") -> CodeBackend:
        return cls(tuple(sorted(codes.items())), label)

    def __call__(self) -> FunctionRuntime:
        fns: dict[str, Callable[..., Any]] = {}
        for name, code in self._compiled:
            namespace: dict[str, Any] = {"__name__": f"rlvr_tool_{name}"}
            try:
                exec(code, namespace)  # noqa: S102 - tool code is data the user chose to trust
            except Exception as e:  # noqa: BLE001 - reported with its cause
                raise ConfigError(f"{self.label}: running the code of tool {name!r} failed: {type(e).__name__}: {e}") from e
            fn = namespace.get(name)
            if not callable(fn):
                defined = sorted(k for k, v in namespace.items() if callable(v) and not k.startswith("__"))
                raise ConfigError(
                    f"{self.label}: the code of tool {name!r} must define a function named {name!r}; it defines {defined}"
                )
            fns[name] = fn
        return FunctionRuntime(fns)
