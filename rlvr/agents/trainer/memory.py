"""Where a policy update's memory goes: weights, gradients, optimiser state, reference, activations, logits.

:func:`model_memory` counts what lives across steps from the tensors themselves (distinct storages,
so tied weights count once); :class:`SavedTensorMeter` measures what a forward pass keeps for the
backward pass (the activations, logits included) through autograd's saved-tensor hooks. The trainer
logs both (``mem/*`` in ``metrics.jsonl``); ``benchmarks/bench_update.py`` prints them.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Iterable
from typing import Any

import torch

__all__ = ["SavedTensorMeter", "model_memory", "return_freed_memory", "tensor_bytes", "trim_heap"]

_MB = 2**20
_M_MMAP_THRESHOLD = -3  # glibc mallopt parameter


def return_freed_memory(threshold_bytes: int = 1 << 20) -> bool:
    """Make glibc serve every allocation of at least ``threshold_bytes`` from its own memory map, so what a
    forward/backward pass frees goes back to the operating system at once.

    By default glibc raises that threshold as large blocks are freed (up to 32 MB) and serves the next
    ones from its heap, which then fragments: on CPU the resident set of a training process grows step
    after step well past its live tensors (about 600 MB more for SmolLM2-135M). Process-wide; costs a
    page fault per fresh page. Returns False where the C library is not glibc.
    """
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, int(threshold_bytes)))


_LIBC: Any = None


def trim_heap(device: Any = "cpu") -> bool:
    """Give the C heap's free pages back to the operating system (glibc's ``malloc_trim``) when ``device``
    is the CPU; returns whether it ran.

    Blocks under the memory-map threshold (the many small tensors and buffers of a forward/backward pass)
    live in glibc's heaps, which keep their freed pages: the training loops call this after each backward
    pass and optimiser step, so the next pass's peak starts from the live tensors (for SmolLM2-135M's
    full fine-tuning about 270 MB less peak resident memory). A few milliseconds a call; False (nothing
    done) off the CPU or where the C library is not glibc.
    """
    global _LIBC
    if getattr(device, "type", str(device)) != "cpu":
        return False
    if _LIBC is None:
        try:
            _LIBC = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _LIBC = False
    if _LIBC is False:
        return False
    _LIBC(0)
    return True


def tensor_bytes(tensors: Iterable[torch.Tensor]) -> int:
    """Bytes of the distinct storages behind ``tensors`` (views and tied tensors count once)."""
    seen: dict[int, int] = {}
    for t in tensors:
        if isinstance(t, torch.Tensor) and t.numel():
            st = t.untyped_storage()
            seen[st.data_ptr()] = st.nbytes()
    return sum(seen.values())


def _optimizer_tensors(optimizer: Any) -> list[torch.Tensor]:
    return [v for state in getattr(optimizer, "state", {}).values() for v in state.values()
            if isinstance(v, torch.Tensor)]


def model_memory(model: Any, optimizer: Any = None, ref_model: Any = None) -> dict[str, float]:
    """MB of the policy's weights, its gradients at their peak (one per trainable parameter), the
    optimiser's state, and a reference model's weights not shared with the policy (0 without one, or
    when the reference is the policy itself with its adapters disabled)."""
    params = list(model.parameters())
    trainable = [p for p in params if p.requires_grad]
    ref = 0
    if ref_model is not None and ref_model is not model:
        own = {p.untyped_storage().data_ptr() for p in params}
        ref = tensor_bytes(p for p in ref_model.parameters() if p.untyped_storage().data_ptr() not in own)
    return {"mem/weights_mb": tensor_bytes(params) / _MB,
            "mem/grads_mb": sum(p.numel() * p.element_size() for p in trainable) / _MB,
            "mem/optimizer_mb": tensor_bytes(_optimizer_tensors(optimizer)) / _MB if optimizer is not None else 0.0,
            "mem/reference_mb": ref / _MB}


class SavedTensorMeter:
    """Measures the bytes autograd saves for the backward pass inside ``with meter:`` blocks.

    Every tensor a forward op saves passes through a saved-tensor hook; the meter sums the distinct
    storages that are not parameters (``exclude``). ``last_bytes`` is the latest block's total,
    ``peak_bytes`` the largest over all blocks. Inside activation-checkpointed regions autograd saves
    nothing, so those count only for what they keep outside (their inputs are not seen).
    """

    def __init__(self, exclude: Iterable[torch.Tensor] = ()) -> None:
        self._exclude = {t.untyped_storage().data_ptr() for t in exclude}
        self._seen: dict[int, int] = {}
        self._hooks: Any = None
        self.last_bytes = 0
        self.peak_bytes = 0

    def _pack(self, t: torch.Tensor) -> torch.Tensor:
        try:
            st = t.untyped_storage()
        except (RuntimeError, NotImplementedError):  # tensors without storage (e.g. some wrappers)
            return t
        ptr = st.data_ptr()
        if ptr not in self._exclude:
            self._seen[ptr] = st.nbytes()
        return t

    def __enter__(self) -> "SavedTensorMeter":
        self._seen = {}
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t)
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._hooks.__exit__(*exc)
        self.last_bytes = sum(self._seen.values())
        self.peak_bytes = max(self.peak_bytes, self.last_bytes)
        self._seen = {}
