"""Optimisers of the trainer: torch's AdamW, or AdamW with its moment estimates in bfloat16.

Full fine-tuning with AdamW holds 12 bytes per float32 weight beyond the weight itself (the gradient
and two moments, 4 bytes each); :class:`BF16StateAdamW` stores the two moments in bfloat16 (8 bytes),
which for SmolLM2-135M is 540 MB less. Each parameter's update is computed in float32 (the moments
are widened, updated, applied, and rounded back) a million elements at a time, so the extra working
memory is a few MB whatever the size of the largest weight (an embedding matrix).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from rlvr.errors import ConfigError

__all__ = ["BF16StateAdamW", "make_optimizer"]

_CHUNK = 1 << 20  # elements updated at a time


class BF16StateAdamW(torch.optim.Optimizer):
    """AdamW (decoupled weight decay, bias correction, as ``torch.optim.AdamW``) whose ``exp_avg`` and
    ``exp_avg_sq`` are stored in bfloat16."""

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.01) -> None:
        if lr <= 0 or eps <= 0 or weight_decay < 0 or not all(0 <= b < 1 for b in betas):
            raise ConfigError(f"BF16StateAdamW needs lr > 0, eps > 0, weight_decay >= 0 and betas in [0, 1); "
                              f"got lr={lr}, eps={eps}, weight_decay={weight_decay}, betas={betas}")
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p, dtype=torch.bfloat16)
                    state["exp_avg_sq"] = torch.zeros_like(p, dtype=torch.bfloat16)
                state["step"] += 1
                t = state["step"]
                if group["weight_decay"]:
                    p.mul_(1 - group["lr"] * group["weight_decay"])
                flat = [x.view(-1) for x in (p.data, p.grad, state["exp_avg"], state["exp_avg_sq"])]
                for w, g, m16, v16 in zip(*(x.split(_CHUNK) for x in flat)):  # float32 temporaries stay small
                    g = g.float()
                    m = m16.float().lerp_(g, 1 - beta1)
                    v = v16.float().mul_(beta2).addcmul_(g, g, value=1 - beta2)
                    m16.copy_(m)
                    v16.copy_(v)
                    denom = v.div_(1 - beta2**t).sqrt_().add_(group["eps"])
                    w.addcdiv_(m.to(w.dtype), denom.to(w.dtype), value=-group["lr"] / (1 - beta1**t))
        return loss


def make_optimizer(name: str, params: Iterable[Any], *, lr: float, weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """The optimiser ``name`` (``adamw`` or ``adamw_bf16``) over ``params``."""
    params = list(params)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw_bf16":
        return BF16StateAdamW(params, lr=lr, weight_decay=weight_decay)
    raise ConfigError(f"optimizer must be 'adamw' or 'adamw_bf16'; got {name!r}")
