"""Events as log lines: ``aegis.log`` (rotating) and the headless runner's output.

One function, ``describe``, turns any event into a one-line message (or None for events
that only matter to the dashboard), so the log file, the headless output and the
dashboard's event log all say the same thing.
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
from typing import TextIO

from aegis_tui.config import Config
from aegis_tui.events import (
    DownloadProgress,
    Event,
    EventBus,
    IterationDone,
    KnowledgeAdded,
    Notice,
    PhaseChanged,
    ProposalMade,
    ProposalResolved,
    QuestionAsked,
    QuestionResolved,
    RLUpdated,
    RunStateChanged,
    TrainingFinished,
    TrainingProgress,
    TrainingStarted,
)
from aegis_tui.paths import DataPaths
from aegis_tui.policy.model_download import describe_status
from aegis_tui.text import clean

LOGGER_NAME = "aegis"
_LEVELS = {"info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def describe(event: Event) -> tuple[int, str] | None:
    """``(logging level, message)`` for an event, or None when it is not worth a line."""
    match event:
        case Notice(message=message, level=level):
            return _LEVELS.get(level, logging.INFO), clean(message, 400)
        case IterationDone():
            sign = "+" if event.reward >= 0 else ""
            return logging.INFO, (f"[iter {event.iteration}] {event.action} by "
                                  f"{event.policy_name}: {sign}{event.reward:.2f} "
                                  f"{clean(event.detail, 160)}")
        case QuestionAsked():
            return logging.INFO, f"QUESTION #{event.question_id}: {clean(event.text, 200)}"
        case QuestionResolved():
            return logging.INFO, (f"question #{event.question_id} {event.status} "
                                  f"(reward {event.reward:+.2f})")
        case ProposalMade(duplicate=False):
            return logging.INFO, f"PROPOSAL #{event.proposal_id}: {clean(event.text, 200)}"
        case ProposalResolved():
            applied = f": {clean(event.applied, 120)}" if event.applied else ""
            return logging.INFO, (f"proposal #{event.proposal_id} {event.status} "
                                  f"(reward {event.reward:+.2f}){applied}")
        case TrainingStarted():
            how = "forced" if event.forced else "automatic"
            return logging.INFO, (f"Phase 2: imitation training started ({how}) on "
                                  f"{event.examples} examples, {event.epochs} epochs")
        case TrainingProgress():
            return logging.INFO, (f"training epoch {event.epoch}/{event.epochs}: loss "
                                  f"{event.loss:.4f}, train acc {event.train_accuracy:.1%}, "
                                  f"val acc {event.val_accuracy:.1%} ({event.elapsed_s:.1f}s)")
        case TrainingFinished():
            severity = logging.INFO if event.ok else logging.ERROR
            acc = f"val acc {event.val_accuracy:.1%}" if event.val_accuracy is not None else ""
            state = "passed the gate" if event.passed_gate else (
                "below the gate" if event.ok else "FAILED")
            return severity, f"training finished: {state} {acc} {clean(event.message, 300)}".strip()
        case PhaseChanged():
            who = "HRM" if event.hrm_active else "teacher"
            return logging.INFO, (f"phase {event.old} -> {event.new} ({who} deciding): "
                                  f"{clean(event.reason, 200)}")
        case RLUpdated():
            if event.update % 10:
                return None
            return logging.INFO, (f"RL update {event.update}: loss {event.loss:.4f}, mean "
                                  f"reward {event.mean_reward:+.3f}, entropy "
                                  f"{event.entropy:.3f}, KL {event.kl:.4f}")
        case RunStateChanged():
            return logging.INFO, f"agent {event.state}"
        case KnowledgeAdded():
            return None
        case DownloadProgress(milestone=True):
            return logging.INFO, describe_status(event)
        case DownloadProgress():
            return None  # the dashboard shows every one; the log a line per file or 5 s
    return None


class _AegisFileHandler(logging.handlers.RotatingFileHandler):
    """The data directory's log file (told apart from handlers others attached)."""


def configure_file_log(paths: DataPaths, config: Config) -> logging.Logger:
    """Send the ``aegis`` logger to the data dir's rotating ``aegis.log``."""
    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    for handler in list(logger.handlers):
        if isinstance(handler, _AegisFileHandler):
            logger.removeHandler(handler)
            handler.close()
    handler = _AegisFileHandler(
        paths.log, maxBytes=config.log_max_bytes, backupCount=config.log_backups,
        encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger.addHandler(handler)
    return logger


def add_console_log(stream: TextIO | None = None, *,
                    verbose_iterations: bool = True) -> logging.Handler:
    """Echo the ``aegis`` logger to the terminal (the headless runner)."""
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s",
                                           datefmt="%H:%M:%S"))
    if not verbose_iterations:
        handler.addFilter(lambda record: not record.getMessage().startswith("[iter "))
    logging.getLogger(LOGGER_NAME).addHandler(handler)
    return handler


def remove_handler(handler: logging.Handler) -> None:
    logging.getLogger(LOGGER_NAME).removeHandler(handler)
    handler.close()


def attach(bus: EventBus) -> None:
    """Log every event published on ``bus``."""
    logger = logging.getLogger(LOGGER_NAME)

    def listener(event: Event) -> None:
        line = describe(event)
        if line is not None:
            logger.log(*line)

    bus.subscribe(listener)
