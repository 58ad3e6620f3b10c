"""TensorBoard scalars for a run: live (``--tensorboard DIR``) or afterwards (``export``).

Needs the optional extra (``pip install 'aegis-tui[tensorboard]'``); without it,
``require_tensorboard`` raises ``TensorBoardMissing`` with the one line to show. The
writer is ``torch.utils.tensorboard.SummaryWriter``, imported only here.

Tags (every tag's steps only grow, which TensorBoard needs):

- ``reward/immediate``: each decision's immediate reward (step: its iteration).
- ``actions/<action>``: that action's share of the last ``ACTION_WINDOW`` decisions, every
  ``ACTION_EVERY`` iterations.
- ``imitation/loss``, ``imitation/train_accuracy``, ``imitation/val_accuracy``: per epoch
  (step: the epoch counted over every training run of the data directory, so a second
  run continues the first one's axis).
- ``rl/loss``, ``rl/mean_reward``, ``rl/entropy``, ``rl/kl``: per RL update (step: the
  iteration it ran at).
- Live only, ``reward/credited``: delayed rewards (answers, approvals) credited during an
  iteration (step: that iteration). Export only, ``reward/total``: each decision's
  immediate plus delayed reward as finally credited (step: its iteration).

Live logging is a bus listener that only queues the events it needs (a cheap call in the
agent's thread); a background thread writes them twice a second. A failing writer (disk
full) stops logging with a warning and never stops the agent.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from aegis_tui.actions import ACTION_NAMES
from aegis_tui.events import (
    Event,
    IterationDone,
    ProposalResolved,
    QuestionResolved,
    RLUpdated,
    TrainingProgress,
    TrainingStarted,
)
from aegis_tui.paths import DataPaths
from aegis_tui.storage.database import Database
from aegis_tui.training.export_tables import ExportError, read_table

log = logging.getLogger("aegis")

EXTRA = "pip install 'aegis-tui[tensorboard]'"
ACTION_WINDOW = 100
ACTION_EVERY = 10
FLUSH_INTERVAL_S = 0.5
QUEUE_MAX = 200_000  # events waiting for the writer; beyond this the oldest are dropped

Scalar = tuple[str, float, int, float | None]  # tag, value, step, wall time (None: now)


class TensorBoardMissing(RuntimeError):
    """The tensorboard extra is not installed; the message names it."""


def require_tensorboard(what: str = "TensorBoard logging") -> None:
    if importlib.util.find_spec("tensorboard") is None:
        raise TensorBoardMissing(f"{what} needs the tensorboard extra: {EXTRA}")


def _writer(log_dir: Path) -> Any:
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(log_dir=str(log_dir))


class ActionShares:
    """The share of each action over the last ``ACTION_WINDOW`` decisions."""

    def __init__(self) -> None:
        self._recent: deque[str] = deque(maxlen=ACTION_WINDOW)

    def add(self, iteration: int, action: str, wall: float | None) -> list[Scalar]:
        self._recent.append(action)
        if iteration % ACTION_EVERY:
            return []
        n = len(self._recent)
        return [(f"actions/{name}", sum(a == name for a in self._recent) / n, iteration, wall)
                for name in ACTION_NAMES]


def epochs_logged_before(paths: DataPaths | None) -> int:
    """Epochs the data directory's earlier training runs hold (where this run's axis starts)."""
    if paths is None or not paths.database.exists():
        return 0

    try:
        db = Database(paths.database, readonly=True)
        try:
            return sum(len(run.epochs) for run in db.training_runs(limit=10**9))
        finally:
            db.close()
    except Exception as exc:  # an unreadable database: start the axis at 0
        log.warning("tensorboard: could not count earlier epochs: %s", exc)
        return 0


class LiveScalars:
    """Turns the agent's events into scalars, in order (pure: tested without a writer)."""

    def __init__(self, epochs_before: int = 0) -> None:
        self.shares = ActionShares()
        self.epoch_base = epochs_before  # epochs of the runs before the current one
        self._run_epochs = 0
        self._iteration = 0
        self._credited = 0.0

    def scalars(self, event: Event) -> list[Scalar]:
        match event:
            case IterationDone():
                self._iteration = event.iteration
                out: list[Scalar] = [("reward/immediate", event.reward, event.iteration, None)]
                if self._credited:
                    out.append(("reward/credited", self._credited, event.iteration, None))
                    self._credited = 0.0
                out.extend(self.shares.add(event.iteration, event.action, None))
                return out
            case QuestionResolved() | ProposalResolved():
                # Settled at the start of an iteration, published before its IterationDone.
                self._credited += event.reward
                return []
            case TrainingStarted():
                self.epoch_base += self._run_epochs
                self._run_epochs = 0
                return []
            case TrainingProgress():
                self._run_epochs = max(self._run_epochs, event.epoch)
                step = self.epoch_base + event.epoch
                return [("imitation/loss", event.loss, step, None),
                        ("imitation/train_accuracy", event.train_accuracy, step, None),
                        ("imitation/val_accuracy", event.val_accuracy, step, None)]
            case RLUpdated():
                step = self._iteration
                return [("rl/loss", event.loss, step, None),
                        ("rl/mean_reward", event.mean_reward, step, None),
                        ("rl/entropy", event.entropy, step, None),
                        ("rl/kl", event.kl, step, None)]
        return []


_LOGGED = (IterationDone, QuestionResolved, ProposalResolved, TrainingStarted,
           TrainingProgress, RLUpdated)


class TensorBoardLog:
    """A bus listener writing ``LiveScalars`` to ``log_dir`` from a background thread."""

    def __init__(self, log_dir: Path, paths: DataPaths | None = None) -> None:
        require_tensorboard("--tensorboard")
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._scalars = LiveScalars(epochs_logged_before(paths))
        self._queue: deque[Event] = deque(maxlen=QUEUE_MAX)
        self._stop = threading.Event()
        self._closed = False
        self.written = 0
        self.error = ""
        self._thread = threading.Thread(target=self._run, name="aegis-tensorboard",
                                        daemon=True)
        self._thread.start()

    def __call__(self, event: Event) -> None:
        """The bus listener: runs in the agent's thread, so it only queues."""
        if not self._closed and isinstance(event, _LOGGED):
            self._queue.append(event)

    def _drain(self) -> Iterator[Scalar]:
        while self._queue:
            yield from self._scalars.scalars(self._queue.popleft())

    def _run(self) -> None:
        try:
            writer = _writer(self.log_dir)
        except Exception as exc:
            self._fail(exc)
            return
        try:
            while True:
                stopping = self._stop.wait(FLUSH_INTERVAL_S)
                for tag, value, step, _ in self._drain():
                    writer.add_scalar(tag, value, global_step=step)
                    self.written += 1
                writer.flush()
                if stopping:
                    break
        except Exception as exc:
            self._fail(exc)
        finally:
            try:
                writer.close()
            except Exception as exc:  # e.g. the disk filled up
                self._fail(exc)

    def _fail(self, exc: Exception) -> None:
        self._closed = True
        self._queue.clear()
        if not self.error:
            self.error = f"{type(exc).__name__}: {exc}"
            log.warning("tensorboard logging to %s stopped: %s", self.log_dir, self.error)

    def close(self, timeout_s: float = 10.0) -> None:
        """Write what is queued and close the event file."""
        self._closed = True
        self._stop.set()
        self._thread.join(timeout_s)


# -- after the run ------------------------------------------------------------------------
def finished_run_scalars(metrics: Iterable[dict[str, Any]], epochs: Iterable[dict[str, Any]],
                         rl: Iterable[dict[str, Any]]) -> Iterator[Scalar]:
    """The scalars of a finished run, from ``export_tables`` rows (oldest first)."""
    shares = ActionShares()
    for row in metrics:
        step, wall = int(row["iteration"]), float(row["time"])
        yield "reward/immediate", float(row["reward"]), step, wall
        yield "reward/total", float(row["reward"]) + float(row["delayed_reward"]), step, wall
        yield from shares.add(step, str(row["action"]), wall)
    for step, row in enumerate(epochs, start=1):
        start, elapsed = row.get("started_at"), row.get("elapsed_s")
        epoch_wall = (float(start) + float(elapsed) if isinstance(start, int | float)
                and isinstance(elapsed, int | float) else None)
        for name in ("loss", "train_accuracy", "val_accuracy"):
            if isinstance(row.get(name), int | float):
                yield f"imitation/{name}", float(row[name]), step, epoch_wall
    for row in rl:
        step, wall = int(row["iteration"]), float(row["time"])
        for name in ("loss", "mean_reward", "entropy", "kl"):
            yield f"rl/{name}", float(row[name]), step, wall


def export_tensorboard(paths: DataPaths, log_dir: Path) -> int:
    """Write a finished run's scalars to ``log_dir``; returns how many. Raises
    ``TensorBoardMissing``, ``ExportError`` (the database) or ``OSError`` (the directory)."""
    require_tensorboard("--format tensorboard")
    tables = {name: read_table(paths, name) for name in ("metrics", "epochs", "rl")}
    log_dir = Path(log_dir)
    if log_dir.exists() and not log_dir.is_dir():
        raise ExportError(f"{log_dir} is a file, not a directory")
    if log_dir.is_dir() and any(log_dir.glob("events.out.tfevents.*")):
        raise ExportError(f"{log_dir} already holds TensorBoard event files; export into "
                          "an empty or new directory")
    log_dir.mkdir(parents=True, exist_ok=True)
    writer = _writer(log_dir)
    count = 0
    try:
        for tag, value, step, wall in finished_run_scalars(tables["metrics"],
                                                           tables["epochs"], tables["rl"]):
            writer.add_scalar(tag, value, global_step=step, walltime=wall)
            count += 1
    finally:
        writer.close()
    return count
