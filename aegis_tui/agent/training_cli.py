"""``aegis-tui train``: force imitation training now, with or without a running agent.

If an agent holds the data directory, the request is written to its database and the agent
starts training on its next iteration (the same path as the dashboard's ``t`` key). If not,
training runs in the foreground here, through the same ``LearningController`` and child
process the agent uses, printing the epoch lines; the phase it ends in is saved, so the
next ``aegis-tui`` run continues from it.
"""

from __future__ import annotations

import contextlib
import sys
import time

from aegis_tui.agent.event_log import add_console_log, attach, configure_file_log, remove_handler
from aegis_tui.agent.learning import LearningController
from aegis_tui.agent.loop import TRAINING_REQUEST_META_KEY
from aegis_tui.agent.state import STATE_META_KEY, Counters
from aegis_tui.config import Config
from aegis_tui.events import EventBus, TrainingFinished
from aegis_tui.paths import DataPaths
from aegis_tui.storage.database import Database, DatabaseError
from aegis_tui.storage.lock import DataDirLock, DataDirLocked, read_holder
from aegis_tui.training.example_log import ExampleLog, ExampleLogError


def _err(message: str) -> None:
    print(f"aegis-tui: error: {message}", file=sys.stderr)


def force_training(paths: DataPaths, config: Config) -> int:
    if not paths.database.exists():
        _err(f"no agent data in {paths.root} (run the agent first, or pass --data-dir)")
        return 1
    holder = read_holder(paths.lock)
    if holder is not None:
        return _ask_running_agent(paths, holder)
    try:
        lock = DataDirLock(paths.lock).acquire()
    except DataDirLocked:  # an agent started in the meantime: ask it instead
        return _ask_running_agent(paths, read_holder(paths.lock) or {})
    try:
        return _train_here(paths, config)
    finally:
        lock.release()


def _ask_running_agent(paths: DataPaths, holder: dict[str, object]) -> int:
    try:
        db = Database(paths.database)
    except DatabaseError as exc:
        _err(str(exc))
        return 1
    try:
        db.set_meta(TRAINING_REQUEST_META_KEY, time.time())
    finally:
        db.close()
    print(f"asked the running agent (pid {holder.get('pid', '?')}) to start training; it "
          "answers in its log and in `aegis-tui training`")
    return 0


def _train_here(paths: DataPaths, config: Config) -> int:
    try:
        db = Database(paths.database, quarantine_dir=paths.quarantine)
        examples = ExampleLog(paths.examples, paths.quarantine).open()
    except (DatabaseError, ExampleLogError) as exc:
        _err(str(exc))
        return 1
    configure_file_log(paths, config)
    console = add_console_log()
    bus = EventBus()
    attach(bus)
    run = db.get_meta("run") or {}
    controller = LearningController(config=config, paths=paths, db=db, bus=bus,
                                    examples=examples,
                                    teacher_label=str(run.get("teacher_label", "teacher")))
    iteration = Counters.from_meta(db.get_meta(STATE_META_KEY)).iteration
    result: TrainingFinished | None = None
    try:
        for event in controller.start(iteration):
            bus.publish(event)
        ok, why = controller.can_force(examples.count)
        if not ok:
            _err(f"training not started: {why}")
            return 1
        for event in controller.force(iteration):
            bus.publish(event)
            result = event if isinstance(event, TrainingFinished) else result
        while result is None:
            time.sleep(0.2)
            for event in controller.poll(iteration):
                bus.publish(event)
                result = event if isinstance(event, TrainingFinished) else result
    except KeyboardInterrupt:
        print("\ncancelling training...", file=sys.stderr)
    finally:
        for event in controller.shutdown(iteration):
            bus.publish(event)
        with contextlib.suppress(Exception):
            examples.close()
        db.close()
        remove_handler(console)
    return 0 if result is not None and result.ok else 1
