"""Training metrics to TensorBoard and Weights & Biases (offline), next to ``metrics.jsonl``.

``TrainConfig.report_to`` (``rlvr train --report-to``) picks the destinations:

* ``tensorboard``: event files in ``output_dir/tensorboard`` (``tensorboard --logdir runs/train``),
  one scalar per numeric ``metrics.jsonl`` field, at the row's ``step``;
* ``wandb``: an offline run in ``output_dir/wandb`` (``wandb sync`` uploads it later), nothing sent;
* ``auto`` (default): each of the two that is installed; ``none``: ``metrics.jsonl`` only.

Asking for one that is not installed is a :class:`~rlvr.errors.ConfigError` when the configuration
is built, before any model loads. Rows are flushed to every destination as each step finishes.
"""

from __future__ import annotations

import atexit
import importlib.util
import math
import numbers
from pathlib import Path
from typing import Any, Sequence

from rlvr.errors import ConfigError

__all__ = ["REPORT_TO", "check_report_to", "destinations", "ReportingLog", "TensorBoardReporter", "WandbReporter",
           "with_reporters"]

REPORT_TO = ("auto", "tensorboard", "wandb", "none")

_PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb"}


def _installed(name: str) -> bool:
    return importlib.util.find_spec(_PACKAGES[name]) is not None


def destinations(report_to: str) -> list[str]:
    """The destinations ``report_to`` stands for on this machine (``auto``: the installed ones)."""
    check_report_to(report_to)
    if report_to == "none":
        return []
    if report_to == "auto":
        return [name for name in ("tensorboard", "wandb") if _installed(name)]
    return [report_to]


def check_report_to(report_to: str) -> None:
    """Raise :class:`ConfigError` for an unknown destination or one whose package is missing."""
    if report_to not in REPORT_TO:
        raise ConfigError(f"report_to must be one of {', '.join(REPORT_TO)}, got {report_to!r}")
    if report_to in _PACKAGES and not _installed(report_to):
        raise ConfigError(f"report_to={report_to!r} needs the {_PACKAGES[report_to]!r} package, which is not installed: "
                          f"pip install {_PACKAGES[report_to]}, or use --report-to auto / none")


def _scalars(row: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in row.items()
            if k != "step" and isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(float(v))}


class TensorBoardReporter:
    """Scalars of each metrics row to a TensorBoard event file under ``logdir``."""

    def __init__(self, logdir: str | Path) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(logdir))

    def log(self, row: dict[str, Any], step: int) -> None:
        for key, value in _scalars(row).items():
            self.writer.add_scalar(key, value, step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class WandbReporter:
    """Each metrics row to an offline Weights & Biases run under ``root/wandb``."""

    def __init__(self, root: str | Path, config: dict[str, Any]) -> None:
        import wandb

        self.run = wandb.init(mode="offline", dir=str(root), project="rlvr", config=config)

    def log(self, row: dict[str, Any], step: int) -> None:
        self.run.log(_scalars(row), step=step)

    def close(self) -> None:
        self.run.finish()


class ReportingLog:
    """A metrics log (``append(row)``, ``rows``) that also sends every row to ``reporters``."""

    def __init__(self, log: Any, reporters: Sequence[Any]) -> None:
        self.log = log
        self.reporters = list(reporters)
        self._closed = False
        atexit.register(self.close)

    @property
    def rows(self) -> list[dict[str, Any]]:
        return self.log.rows

    @property
    def path(self) -> Path:
        return self.log.path

    def append(self, row: dict[str, Any]) -> None:
        self.log.append(row)
        step = int(row.get("step", len(self.log.rows) - 1))
        for r in self.reporters:
            r.log(row, step)

    def close(self) -> None:
        """Close every destination (also run at interpreter exit)."""
        if self._closed:
            return
        self._closed = True
        for r in self.reporters:
            r.close()


def with_reporters(log: Any, report_to: str, output_dir: str | Path, config: dict[str, Any] | None = None) -> Any:
    """``log`` as is for no destination, else a :class:`ReportingLog` writing to each of ``report_to``'s."""
    out = Path(output_dir)
    reporters: list[Any] = []
    for name in destinations(report_to):
        reporters.append(TensorBoardReporter(out / "tensorboard") if name == "tensorboard"
                         else WandbReporter(out, dict(config or {})))
    return ReportingLog(log, reporters) if reporters else log
