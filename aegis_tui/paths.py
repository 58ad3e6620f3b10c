"""Where AEGIS keeps its files: the data directory and the names inside it.

The directory is platformdirs' user data dir for ``aegis-tui``, overridden by ``AEGIS_HOME``
and then by ``--data-dir``. Nothing here creates files except ``ensure``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

APP_NAME = "aegis-tui"

EXAMPLES_FILE = "hrm_training_data.msgpack"
DATABASE_FILE = "agent.sqlite3"
LOG_FILE = "aegis.log"
LOCK_FILE = "aegis.lock"
CONFIG_FILE = "config.toml"
CORPUS_FILE = "offline_corpus.sqlite3"
CHECKPOINT_DIR = "checkpoints"
QUARANTINE_DIR = "quarantine"
WORKER_LOG_FILE = "training_worker.log"


def default_data_dir() -> Path:
    env = os.environ.get("AEGIS_HOME", "").strip()
    if env:
        return Path(env).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir(APP_NAME, appauthor=False))


@dataclass(frozen=True, slots=True)
class DataPaths:
    root: Path

    @classmethod
    def resolve(cls, data_dir: str | os.PathLike[str] | None = None) -> DataPaths:
        root = Path(data_dir).expanduser() if data_dir else default_data_dir()
        return cls(root.absolute())

    @property
    def examples(self) -> Path:
        return self.root / EXAMPLES_FILE

    @property
    def database(self) -> Path:
        return self.root / DATABASE_FILE

    @property
    def log(self) -> Path:
        return self.root / LOG_FILE

    @property
    def lock(self) -> Path:
        return self.root / LOCK_FILE

    @property
    def config(self) -> Path:
        return self.root / CONFIG_FILE

    @property
    def corpus(self) -> Path:
        return self.root / CORPUS_FILE

    @property
    def checkpoints(self) -> Path:
        return self.root / CHECKPOINT_DIR

    @property
    def quarantine(self) -> Path:
        return self.root / QUARANTINE_DIR

    @property
    def worker_log(self) -> Path:
        return self.root / WORKER_LOG_FILE


    @property
    def trained_checkpoint(self) -> Path:
        return self.checkpoints / "hrm_trained.pt"

    @property
    def rl_checkpoint(self) -> Path:
        return self.checkpoints / "hrm_rl.pt"

    @property
    def best_rl_checkpoint(self) -> Path:
        return self.checkpoints / "hrm_rl_best.pt"

    def ensure(self) -> DataPaths:
        self.root.mkdir(parents=True, exist_ok=True)
        self.checkpoints.mkdir(exist_ok=True)
        return self
