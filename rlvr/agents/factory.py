"""Build an agent from a command-line spec: ``oracle``, ``random``, ``smollm2``, ``hf:MODEL``,
``openai:URL`` (optionally ``openai:URL#model``), ``vllm:MODEL``, ``module:Class`` (the current
directory is importable, as with ``python -m``) or ``path/to/file.py:Class``.

``agent_kwargs`` are passed to the agent's constructor (``--agent-kwargs '{"top_p": 0.9}'``); a name
the constructor does not take is a :class:`~rlvr.errors.ConfigError` listing the accepted ones."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import os
import sys
from pathlib import Path
from typing import Any

from rlvr.errors import ConfigError, RLVRError, did_you_mean

__all__ = ["make_agent", "AGENT_SPECS"]

AGENT_SPECS = "oracle, random, smollm2, hf:MODEL, openai:URL[#model], vllm:MODEL, module:Class, path/file.py:Class"


def make_agent(
    spec: str, *, seed: int | None = None, max_new_tokens: int = 256, temperature: float = 0.7, batch_size: int = 16,
    agent_kwargs: dict[str, Any] | None = None,
) -> Any:
    """Return an agent for ``spec`` (see :data:`AGENT_SPECS`), its constructor also given ``agent_kwargs``."""
    extra = dict(agent_kwargs or {})
    if spec == "oracle":
        from rlvr.agents.base import OracleAgent

        return _build(spec, OracleAgent, {}, extra)
    if spec == "random":
        from rlvr.agents.base import RandomAgent

        return _build(spec, RandomAgent, {"seed": seed}, extra)
    if spec.startswith("hf:"):
        from rlvr.agents.vlm import VLMAgent, is_vision_checkpoint

        if is_vision_checkpoint(spec[3:]):  # a vision-language model: images through its processor
            return _build(spec, VLMAgent, {"max_new_tokens": max_new_tokens, "temperature": temperature, "seed": seed,
                                           "batch_size": batch_size}, extra, spec[3:])
    if spec == "smollm2" or spec.startswith("hf:"):
        from rlvr.agents.hf import HFAgent

        model = "smollm2" if spec == "smollm2" else spec[3:]
        return _build(spec, HFAgent, {"max_new_tokens": max_new_tokens, "temperature": temperature, "seed": seed,
                                      "batch_size": batch_size}, extra, model)
    if spec.startswith("openai:"):
        from rlvr.agents.openai import OpenAIAgent

        url, _, model = spec[len("openai:"):].partition("#")
        return _build(spec, OpenAIAgent, {"max_tokens": max_new_tokens, "temperature": temperature}, extra,
                      url, model or None)
    if spec.startswith("vllm:"):
        from rlvr.agents.vllm import VLLMAgent

        return _build(spec, VLLMAgent, {"max_new_tokens": max_new_tokens, "temperature": temperature, "seed": seed},
                      extra, spec[5:])
    if ":" in spec:
        return _instantiate(spec, _load_object(spec), extra)
    raise ConfigError(f"unknown agent {spec!r}; expected one of: {AGENT_SPECS}")


def _load_object(spec: str) -> Any:
    """The object named by ``module:Name`` (the current directory importable) or ``path/to/file.py:Name``."""
    source, _, name = spec.rpartition(":")
    if not source or not name:
        raise ConfigError(f"agent {spec!r}: expected module:Class or path/to/file.py:Class")
    if source.endswith(".py") or os.sep in source or "/" in source:
        path = Path(source).expanduser()
        if not path.is_file():
            raise ConfigError(f"agent {spec!r}: no such file {str(path)!r} (relative to {os.getcwd()!r}); "
                              "give the path of a Python file and the class in it, e.g. agents/mine.py:MyAgent")
        path = path.resolve()
        mod_name = f"rlvr_agent_{path.stem}_{hashlib.sha256(str(path).encode()).hexdigest()[:8]}"
        module = sys.modules.get(mod_name)
        if module is None:
            file_spec = importlib.util.spec_from_file_location(mod_name, path)
            assert file_spec is not None and file_spec.loader is not None
            module = importlib.util.module_from_spec(file_spec)
            sys.path.insert(0, str(path.parent))  # the file may import its neighbours
            try:
                sys.modules[mod_name] = module
                file_spec.loader.exec_module(module)
            except Exception as e:
                sys.modules.pop(mod_name, None)
                raise ConfigError(f"could not load agent file {str(path)!r}: {type(e).__name__}: {e}") from e
            finally:
                sys.path.remove(str(path.parent))
    else:
        if "" not in sys.path and os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())  # as `python -m` does: modules next to where rlvr runs import
        try:
            module = importlib.import_module(source)
        except ImportError as e:
            raise ConfigError(f"could not import agent {spec!r}: {e}; give module:Class for a module on the "
                              "Python path or in the current directory, or path/to/file.py:Class") from e
    try:
        return getattr(module, name)
    except AttributeError as e:
        public = sorted(k for k, v in vars(module).items() if isinstance(v, type) and not k.startswith("_"))
        raise ConfigError(f"could not import agent {spec!r}: {source} has no {name!r}"
                          f"{did_you_mean(name, public)}; classes there: {', '.join(public) or 'none'}") from e


def _check_kwargs(spec: str, cls: Any, kwargs: dict[str, Any]) -> None:
    """Refuse keyword names ``cls`` does not take, naming the accepted ones."""
    try:
        params = inspect.signature(cls).parameters.values()
    except (TypeError, ValueError):
        return
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return
    accepted = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    for key in kwargs:
        if key not in accepted:
            raise ConfigError(f"--agent-kwargs: agent {spec!r} takes no argument {key!r}{did_you_mean(key, accepted)}; "
                              f"accepted: {', '.join(accepted) or 'none'}")


def _build(spec: str, cls: Any, defaults: dict[str, Any], extra: dict[str, Any], *args: Any) -> Any:
    """A built-in agent: its defaults from the command line, overridden by ``extra`` (``--agent-kwargs``)."""
    _check_kwargs(spec, cls, extra)
    return cls(*args, **{**defaults, **extra})


_AGENT_HINT = "an agent is any object with act(messages) -> str (or act_batch(batch) -> list)"


def _instantiate(spec: str, cls: Any, kwargs: dict[str, Any] | None = None) -> Any:
    """Build a ``module:Class`` agent with ``kwargs`` (``--agent-kwargs``), checking it can be built and can act."""
    kwargs = dict(kwargs or {})
    if not callable(cls):
        raise ConfigError(f"agent {spec!r} is a {type(cls).__name__}, not a class or factory; {_AGENT_HINT}")
    _check_kwargs(spec, cls, kwargs)
    try:
        sig = inspect.signature(cls)
    except (TypeError, ValueError):
        sig = None
    if sig is not None:
        needed = [p.name for p in sig.parameters.values() if p.name not in kwargs
                  and p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        if needed:
            raise ConfigError(
                f"agent {spec!r} needs the argument(s) {', '.join(needed)}, but --agent module:Class builds it with "
                f"none; pass them with --agent-kwargs '{{\"{needed[0]}\": ...}}', give them defaults, or point "
                "--agent at a zero-argument factory function that builds the agent"
            )
    try:
        agent = cls(**kwargs)
    except RLVRError:
        raise
    except Exception as e:
        raise ConfigError(f"building agent {spec!r} failed: {type(e).__name__}: {e}") from e
    if not any(callable(getattr(agent, m, None)) for m in ("act", "act_batch")):
        raise ConfigError(
            f"agent {spec!r} built a {type(agent).__name__} with no act(messages) -> str method; {_AGENT_HINT}, e.g.\n"
            "    class MyAgent:\n        def act(self, messages):\n            return '<answer>42</answer>'"
        )
    return agent
