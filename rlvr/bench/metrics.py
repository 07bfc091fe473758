"""The benchmark's metrics, as small pure functions (each has a hand-computed test).

* :func:`zero_advantage` -- a group carries no learning signal: every advantage is (numerically) 0;
* :func:`advantage_energy` -- mean ``A^2`` over valid turns;
* :func:`success_failure_pairs` -- ``k (n - k)``, the (success, failure) pairs of a group;
* :func:`spearman` -- rank correlation (average ranks for ties) between advantages and true contributions;
* :func:`argmax_hit` -- does the largest ``|A_t|`` land on the decisive turn (the largest true ``|c_t|``)?
  Ties share the credit: ``|argmax A ∩ argmax c| / |argmax A|``;
* :func:`exploit_margin` -- ``(J(exploit) - J(honest)) / |J(honest)|``;
* :func:`mean_ci` -- mean and 95% Student-t confidence interval over seeds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from rlvr.errors import ConfigError

__all__ = ["zero_advantage", "advantage_energy", "success_failure_pairs", "spearman", "argmax_hit",
           "exploit_margin", "mean_ci", "ZERO"]

ZERO = 1e-6

# two-sided 95% quantiles of Student's t, df = 1..30 (then the normal 1.96)
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
         2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
         2.045, 2.042)


def zero_advantage(advantages: np.ndarray, mask: np.ndarray | None = None) -> bool:
    """True when every valid advantage of the group is below ``ZERO`` in magnitude (advantage collapse)."""
    a = np.asarray(advantages, dtype=float)
    m = np.ones_like(a, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    return bool(not m.any() or np.max(np.abs(a[m])) < ZERO)


def advantage_energy(advantages: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean of ``A^2`` over the valid entries (0.0 when there are none)."""
    a = np.asarray(advantages, dtype=float)
    m = np.ones_like(a, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    return float(np.mean(a[m] ** 2)) if m.any() else 0.0


def success_failure_pairs(successes: Sequence[bool]) -> int:
    """``k (n - k)`` for ``k`` successes among ``n`` rollouts: the pairs a group can contrast."""
    n, k = len(successes), int(sum(bool(s) for s in successes))
    return k * (n - k)


def _ranks(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x))
    xs = x[order]
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and xs[j + 1] == xs[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0
        i = j + 1
    return ranks


def spearman(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Spearman's rho with average ranks; ``None`` when either side is constant (undefined) or under 2 points."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ConfigError(f"spearman needs two 1-D sequences of equal length, got shapes {x.shape} and {y.shape}")
    if len(x) < 2:
        return None
    rx, ry = _ranks(x), _ranks(y)
    sx, sy = rx.std(), ry.std()
    if sx == 0 or sy == 0:
        return None
    return float(((rx - rx.mean()) * (ry - ry.mean())).mean() / (sx * sy))


def argmax_hit(advantages: Sequence[float], truth: Sequence[float], tol: float = 1e-9) -> float | None:
    """Share of the turns with the largest ``|A_t|`` that are also turns with the largest true ``|c_t|``.

    ``None`` when the truth is all zero (no decisive turn in this episode).
    """
    a, c = np.abs(np.asarray(advantages, dtype=float)), np.abs(np.asarray(truth, dtype=float))
    if a.shape != c.shape or a.size == 0:
        raise ConfigError(f"argmax_hit needs equal, non-empty lengths; got {a.shape} and {c.shape}")
    if c.max() <= tol:
        return None
    top_a = a >= a.max() - tol
    top_c = c >= c.max() - tol
    return float((top_a & top_c).sum() / top_a.sum())


def exploit_margin(j_exploit: float, j_honest: float) -> float | None:
    """``(J(exploit) - J(honest)) / |J(honest)|``; ``None`` when ``J(honest) == 0`` (no scale)."""
    if abs(j_honest) < 1e-12:
        return None
    return (j_exploit - j_honest) / abs(j_honest)


def mean_ci(values: Sequence[float]) -> tuple[float | None, list[float] | None]:
    """Mean and 95% Student-t interval; ``(mean, None)`` for one value, ``(None, None)`` for none."""
    v = [float(x) for x in values if x is not None and math.isfinite(float(x))]
    if not v:
        return None, None
    m = float(np.mean(v))
    if len(v) < 2:
        return m, None
    q = _T975[len(v) - 2] if len(v) - 1 <= len(_T975) else 1.96
    half = q * float(np.std(v, ddof=1)) / math.sqrt(len(v))
    return m, [m - half, m + half]
