"""Opening and closing everything one running agent holds: lock, files, world, teacher.

``AgentRuntime.open`` is the single way the headless runner, the dashboard, ``train`` and
the benchmark start an agent, so they all get the same recovery (damaged files), the same
notices (which world, which teacher and why) and the same clean shutdown.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from aegis_tui.agent.event_log import attach, configure_file_log
from aegis_tui.agent.loop import Agent
from aegis_tui.config import Config, to_dict
from aegis_tui.events import DownloadProgress, EventBus, Notice
from aegis_tui.paths import DataPaths
from aegis_tui.policy.base import Policy
from aegis_tui.policy.model_download import DownloadStatus
from aegis_tui.policy.teacher import make_teacher, teacher_label
from aegis_tui.storage.atomic import remove_stale_temps
from aegis_tui.storage.database import Database
from aegis_tui.storage.lock import DataDirLock, describe
from aegis_tui.training.example_log import ExampleLog, read_examples
from aegis_tui.world.base import World
from aegis_tui.world.select import create_world

CONFIG_META_KEY = "config"
RUN_META_KEY = "run"


def _resume_numbering(agent: Agent, paths: DataPaths) -> list[str]:
    """After the database was rebuilt, go on from the example log's last iteration.

    The iteration counter lives in the database; starting again from 0 would give new
    examples the numbers of old ones, and delayed credit (keyed by iteration) would reach
    the wrong decisions.
    """
    last = max((ex.iteration for ex in read_examples(paths.examples).examples), default=0)
    counters = agent.state.counters
    if last <= counters.iteration:
        return []
    counters.iteration = last
    agent.state.save()
    return [f"iterations continue from {last}, the last one in {paths.examples.name}"]


def _download_publisher(bus: EventBus) -> Callable[[DownloadStatus], None]:
    """Publish the teacher model's download progress on the bus (dashboard, headless log)."""

    def publish(status: DownloadStatus) -> None:
        bus.publish(DownloadProgress(
            model=status.model, file=status.file, file_bytes=status.file_bytes,
            file_total=status.file_total, done_bytes=status.done_bytes,
            total_bytes=status.total_bytes, rate_bps=status.rate_bps,
            file_index=status.file_index, files_total=status.files_total,
            finished=status.finished, milestone=status.milestone))

    return publish


def teacher_facts(teacher: Policy) -> dict[str, str]:
    """Where an LM teacher runs and which commit it is, for ``status`` (empty for the rules)."""
    placement = getattr(teacher, "placement", None)
    if placement is None:
        return {}
    return {"teacher_model": str(getattr(teacher, "model_id", "")),
            "teacher_revision": str(getattr(teacher, "revision", "")),
            "teacher_device": str(placement.label)}


def redact_config(settings: dict[str, object]) -> dict[str, object]:
    """The settings with a proxy's password taken out (they are stored in the database)."""
    proxy = settings.get("proxy")
    if isinstance(proxy, str) and "@" in proxy:
        scheme, _, rest = proxy.rpartition("://")
        host = rest.rsplit("@", 1)[-1]
        settings = {**settings, "proxy": f"{scheme}://***@{host}" if scheme else f"***@{host}"}
    return settings


@dataclass(slots=True)
class AgentRuntime:
    config: Config
    paths: DataPaths
    bus: EventBus
    agent: Agent
    world: World
    teacher: Policy
    world_notice: str
    teacher_notice: str
    _lock: DataDirLock
    _db: Database
    _examples: ExampleLog
    _cancel: threading.Event
    notices: list[str] = field(default_factory=list)

    @classmethod
    def open(cls, config: Config, paths: DataPaths, *, bus: EventBus | None = None,
             world: World | None = None, teacher: Policy | None = None) -> AgentRuntime:
        """Take the data directory and build the agent; raises with a clear message if not."""
        bus = bus if bus is not None else EventBus()
        paths.ensure()
        lock = DataDirLock(paths.lock).acquire()
        opened: list[Database | ExampleLog | World] = []
        try:
            configure_file_log(paths, config)
            attach(bus)
            notices: list[str] = []
            if lock.previous_holder:
                notices.append(f"took over the lock left by {describe(lock.previous_holder)}, "
                               "which is no longer running")
            removed = remove_stale_temps(paths.checkpoints) + remove_stale_temps(paths.root)
            if removed:
                notices.append(f"removed {removed} half-written temporary file(s) left by a "
                               "crash")
            db = Database(paths.database, quarantine_dir=paths.quarantine)
            opened.append(db)
            if db.recovery_message:
                notices.append(db.recovery_message)
            examples = ExampleLog(paths.examples, paths.quarantine,
                                  fsync_every=config.autosave_every).open()
            opened.append(examples)
            notices.extend(examples.notices)
            cancel = threading.Event()
            world_notice = ""
            if world is None:
                world, world_notice = create_world(config, paths, cancel=cancel)
            opened.append(world)
            teacher_notice = ""
            if teacher is None:
                teacher, teacher_notice = make_teacher(config,
                                                       on_progress=_download_publisher(bus))
            label = teacher_label(teacher.name)
            db.set_meta(CONFIG_META_KEY, redact_config(to_dict(config)))
            db.set_meta(RUN_META_KEY, {"world": world.description, "teacher": teacher.name,
                                       "teacher_label": label, **teacher_facts(teacher)})
            agent = Agent(config=config, paths=paths, db=db, examples=examples, world=world,
                          teacher=teacher, bus=bus, teacher_label=label, stop_event=cancel)
            if db.recovered_from is not None:
                notices.extend(_resume_numbering(agent, paths))
        except BaseException:
            for thing in reversed(opened):
                with contextlib.suppress(Exception):
                    thing.close()
            lock.release()
            raise
        runtime = cls(config=config, paths=paths, bus=bus, agent=agent, world=world,
                      teacher=teacher, world_notice=world_notice, teacher_notice=teacher_notice,
                      _lock=lock, _db=db, _examples=examples, _cancel=cancel, notices=notices)
        for line in (world_notice, teacher_notice):
            if line:
                bus.publish(Notice(line))
        for line in notices:
            bus.publish(Notice(line, "warning"))
        return runtime

    def close(self) -> None:
        """Stop the agent and release everything; safe to call twice."""
        self.agent.stop()
        for closer in (self.teacher.close, self.world.close, self._examples.close,
                       self._db.close):
            with contextlib.suppress(Exception):
                closer()
        self._lock.release()

    def __enter__(self) -> AgentRuntime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
