"""``AegisApp``: the full-screen dashboard that runs and steers the agent.

The agent runs in a thread worker (opening the runtime there too: loading a teacher LM
takes seconds). The UI never waits on it: a 5 Hz timer drains the event bus into the
``DashboardModel`` (coalescing bursts) and repaints only the panes that changed (the
busiest panes at most twice a second); a 1 Hz thread worker reads the reward curves from
the database. Keys call the agent's thread-safe controls and get a frame of their own, so
a press shows at once even with the agent running flat out. Questions and proposals are
resolved through the database, which the agent picks up on its next iteration, so a modal
never blocks the agent.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual import work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Container
from textual.screen import Screen
from textual.widgets import Footer

from aegis_tui.agent.control import AgentControl
from aegis_tui.agent.decision_outcome import read_outcome
from aegis_tui.agent.metrics_view import read_history, read_metrics
from aegis_tui.agent.open_errors import open_failure
from aegis_tui.agent.phases import gate_verdict
from aegis_tui.agent.resolutions import (
    answer_or_keep,
    hold_question,
    release_question,
    review_proposal,
)
from aegis_tui.agent.runtime import AgentRuntime
from aegis_tui.agent.tensorboard_log import TensorBoardLog
from aegis_tui.config import Config
from aegis_tui.events import DownloadProgress, EventBus
from aegis_tui.exit_codes import EXIT_FAIL, EXIT_OK
from aegis_tui.paths import DataPaths
from aegis_tui.storage.database import Database
from aegis_tui.storage.records import PENDING
from aegis_tui.text import clean
from aegis_tui.ui.components.action_chart import ActionChart
from aegis_tui.ui.components.curiosity import CuriosityPane
from aegis_tui.ui.components.curves import CurvesPane
from aegis_tui.ui.components.event_log import EventLog
from aegis_tui.ui.components.goals import GoalsPane
from aegis_tui.ui.components.header_bar import HeaderBar
from aegis_tui.ui.components.knowledge import KnowledgePane
from aegis_tui.ui.components.phase_progress import PhaseProgress
from aegis_tui.ui.log_tail import recent_log_lines
from aegis_tui.ui.messages import AgentFailed, AgentFinished, AgentReady, MetricsLoaded
from aegis_tui.ui.model import (
    ACTIONS_PANE,
    CURIOSITY,
    CURVES,
    GOALS,
    HEADER,
    KNOWLEDGE,
    PAUSED,
    PHASE,
    RUNNING,
    STOPPED,
    STOPPING,
    TRAINING,
    DashboardModel,
    LogLine,
)
from aegis_tui.ui.screens.confirm import ConfirmScreen
from aegis_tui.ui.screens.gate import GateScreen
from aegis_tui.ui.screens.help import HelpScreen
from aegis_tui.ui.screens.inspector import InspectorScreen, wants_comparison
from aegis_tui.ui.screens.proposal import ProposalScreen, Review
from aegis_tui.ui.screens.question import CLOSED, KEPT, Outcome, QuestionScreen
from aegis_tui.ui.screens.report import ReportScreen
from aegis_tui.ui.settings import load_settings, save_setting

log = logging.getLogger("aegis")

EARLIER_LOG_LINES = 30  # lines of aegis.log the event log starts with
QUIT_GRACE_S = 5.0  # a second `q` (or this long) exits without waiting for the agent
QUESTION_TOAST_INTERVAL_S = 8.0  # a fast agent asks often: one toast at most this often
ERROR_TOAST_INTERVAL_S = 3.0  # errors go to the log at once; toasts are rate-limited
# Panes that change with every iteration but need not move faster than the eye reads them;
# repainting them less often keeps each frame short, so a key press shows sooner.
SLOW_PANES = frozenset({GOALS, CURIOSITY, ACTIONS_PANE, KNOWLEDGE})
SLOW_PANE_INTERVAL_S = 0.5
# After a key press the next frame should carry only its effect: other repaints wait this
# long (events keep queueing on the bus, nothing is lost).
KEY_QUIET_S = 0.1

RuntimeFactory = Callable[[Config, DataPaths, EventBus], Any]

@dataclass(frozen=True, slots=True)
class Key:
    """One key of the dashboard: its binding, and the words the help screen and the command
    palette show for it. ``KEYS`` is the one table; ``BINDINGS`` and both are made from it."""

    id: str  # the binding id, for keymap.toml
    keys: str
    action: str
    footer: str  # the footer's short label
    title: str  # the help screen's and the palette's name for it
    text: str  # what it does, in a sentence (the palette's help and the binding's tooltip)
    show: bool = True  # in the footer (80 columns hold no more than seven)
    key_display: str | None = None
    palette: bool = True  # offered in the command palette (it has its own quit)


KEYS: tuple[Key, ...] = (
    Key("pause", "p,space", "toggle_pause", "Pause", "Pause / resume",
        "Pause the agent, or resume it"),
    Key("train", "t", "force_training", "Train", "Force training",
        "Train the HRM now on the examples collected so far"),
    Key("answer", "a", "answer", "Answer", "Answer questions",
        "Answer the agent's pending questions, one at a time"),
    Key("review", "r", "review", "Review", "Review proposals",
        "Approve or reject the agent's pending proposals"),
    Key("reports", "s", "reports", "Reports", "Status and training reports",
        "The reports `aegis-tui status` prints"),
    Key("plots", "g", "switch_curves", "Curves", "Switch curves",
        "Switch between the reward and the training curves", show=False),
    # Off the footer; the event log's title names it.
    Key("inspect", "i", "inspect", "Inspect", "Inspect the latest decision",
        "Why the agent picked its latest action: state, probabilities, value, rewards, "
        "features (or click an iteration line of the event log)", show=False),
    Key("gate", "h", "gate", "HRM?", "HRM or teacher",
        "After imitation runs below the gate: adopt the trained HRM anyway (RL takes over) "
        "or keep the teacher (no more automatic training)", show=False),
    Key("help", "question_mark", "help", "Help", "Help", "Keys and what the panes show",
        key_display="?"),
    Key("quit", "q", "quit", "Quit", "Quit",
        "Stop the agent (and any training) cleanly and exit", palette=False),
)
KEY_IDS: tuple[str, ...] = tuple(k.id for k in KEYS)
_KEYS_BY_ID = {k.id: k for k in KEYS}


def default_runtime_factory(config: Config, paths: DataPaths, bus: EventBus) -> Any:
    return AgentRuntime.open(config, paths, bus=bus)



class AegisApp(App[int]):
    CSS_PATH = "app.tcss"
    TITLE = "AEGIS"
    AUTO_FOCUS = None  # keys go to the app's bindings, not to a focused pane
    # Typed as Textual declares them (its ``ClassVar[...] | None`` reads as an instance
    # variable to type checkers, so ours may not say ClassVar).
    HORIZONTAL_BREAKPOINTS: list[tuple[int, str]] | None = [(0, "-narrow"), (120, "-wide")]  # noqa: RUF012
    VERTICAL_BREAKPOINTS: list[tuple[int, str]] | None = [(0, "-short"), (36, "-tall")]  # noqa: RUF012
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(k.keys, k.action, k.footer, show=k.show, key_display=k.key_display,
                tooltip=k.text, id=k.id) for k in KEYS
    ]

    def __init__(self, config: Config, paths: DataPaths, *, iterations: int | None = None,
                 start_paused: bool = False, runtime_factory: RuntimeFactory | None = None,
                 keymap: dict[str, str] | None = None, drain_interval: float = 0.2,
                 metrics_interval: float = 1.0, tensorboard_dir: Path | None = None) -> None:
        super().__init__()
        self.config = config
        self.paths = paths
        self.iterations = iterations
        self.start_paused = start_paused
        self.runtime_factory = runtime_factory or default_runtime_factory
        self.keymap = dict(keymap or {})
        if self.keymap:
            self.set_keymap(self.keymap)
        self.drain_interval = drain_interval
        self.metrics_interval = metrics_interval
        self.tensorboard_dir = tensorboard_dir  # --tensorboard: a bus listener logs there
        self.bus: EventBus = EventBus()
        self.model = DashboardModel(config, max_log_lines=20)
        self._slow_dirty: set[str] = set()
        self._slow_painted_at = 0.0
        self._quiet_until = 0.0
        self.runtime: Any = None
        self.failure = ""  # the one-line reason when the runtime would not open
        self.summary: Any = None
        self.ready = False  # the runtime is open and the model holds the history
        self.metrics_reads = 0
        self._agent_done = threading.Event()
        self._quit = threading.Event()
        self._quitting = False
        self._ro_db: Database | None = None
        self._rw_db: Database | None = None
        self._metrics_busy = False
        self._questions: deque[Any] = deque()
        self._proposals: deque[Any] = deque()
        self._resolved: dict[str, int] = {}
        self._unannounced: list[Any] = []
        self._question_toast_at = -QUESTION_TOAST_INTERVAL_S
        self._errors: list[str] = []
        self._error_toast_at = -ERROR_TOAST_INTERVAL_S
        self._held_events: list[Any] = []  # published while starting, applied once ready
        self._held_log: list[LogLine] = []
        self._held: int | None = None  # the question on screen, held from expiring
        self._gone_before_shown = 0
        self._saved_theme: str | None = None

    # -- layout ----------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield HeaderBar(id="header")
        yield PhaseProgress(id="phase")
        with Container(id="panes"):
            yield GoalsPane(id="goals", classes="pane")
            yield ActionChart(id="actions", classes="pane")
            yield CuriosityPane(id="curiosity", classes="pane")
            yield CurvesPane(id="curves", classes="pane")
            yield KnowledgePane(id="knowledge", classes="pane")
            yield EventLog(id="log", classes="pane")
        yield Footer()

    def on_mount(self) -> None:
        self._restore_theme()
        self.query_one(EventLog).border_title = f"Event log ({self.key_for('inspect')}: inspect)"
        self._paint({HEADER, PHASE})
        self.set_interval(self.drain_interval, self.drain)
        self.set_interval(self.metrics_interval, self.refresh_metrics)
        self._run_agent()

    # -- the agent thread ------------------------------------------------------------------
    @work(thread=True, exclusive=True, group="agent", exit_on_error=False)
    def _run_agent(self) -> None:
        # Read before the runtime opens: it appends this run's first notices to the file.
        earlier = recent_log_lines(self.paths.log, EARLIER_LOG_LINES)
        try:
            runtime = self._open_runtime()
        except Exception as exc:
            reason, code = open_failure(exc, self.config, self.paths)
            self._agent_done.set()
            self.post_message(AgentFailed(clean(reason, 500), code))
            return
        if runtime is None:  # the user quit while the teacher was loading
            self._agent_done.set()
            return
        summary, error = None, ""
        tensorboard = None
        try:
            if self.tensorboard_dir is not None:
                tensorboard = TensorBoardLog(self.tensorboard_dir, self.paths)
                self.bus.subscribe(tensorboard)
            self._ro_db = Database(self.paths.database, readonly=True)
            self._rw_db = Database(self.paths.database)
            history = read_history(self._ro_db)
            self.runtime = runtime
            if self.start_paused:
                runtime.agent.pause()
            self.post_message(AgentReady(history, earlier))
            summary = runtime.agent.run(max_iterations=self.iterations)
        except Exception as exc:  # the loop itself catches per-iteration errors
            log.exception("the agent thread failed")
            error = f"{type(exc).__name__}: {exc}"
        finally:
            runtime.close()
            if tensorboard is not None:
                tensorboard.close()
            self._agent_done.set()
        self.post_message(AgentFinished(summary, error))

    def _open_runtime(self) -> Any:
        """Open the runtime in a daemon thread so quitting never waits for a model load."""
        box: dict[str, Any] = {}
        opened = threading.Event()

        def target() -> None:
            try:
                box["runtime"] = self.runtime_factory(self.config, self.paths, self.bus)
            except BaseException as exc:
                box["error"] = exc
            opened.set()
            if self._quit.is_set() and "runtime" in box:
                box["runtime"].close()  # abandoned by a quit: release the lock now

        threading.Thread(target=target, name="aegis-open-runtime", daemon=True).start()
        while not opened.wait(0.05):
            if self._quit.is_set():
                return None
        if "error" in box:
            raise box["error"]
        if self._quit.is_set():
            box["runtime"].close()
            return None
        return box["runtime"]

    @property
    def agent(self) -> AgentControl | None:
        return self.runtime.agent if self.runtime is not None else None

    def on_agent_ready(self, message: AgentReady) -> None:
        self.ready = True
        if message.earlier:
            self.query_one(EventLog).add(
                [LogLine(level, text) for level, text in message.earlier]
                + [LogLine("skipped", "── earlier lines above are from aegis.log ──")])
        self._paint(self.model.load_history(message.history))
        if self._held_log:
            self.query_one(EventLog).add(self._held_log)
        held, self._held_events, self._held_log = self._held_events, [], []
        if held:
            self._apply(held)
        self.drain()
        self.refresh_metrics()

    def on_agent_failed(self, message: AgentFailed) -> None:
        self.failure = message.reason
        self.exit(return_code=message.exit_code)

    def on_agent_finished(self, message: AgentFinished) -> None:
        self.summary = message.summary
        self.drain()
        self._paint(self.model.set_run_state(STOPPED))
        self.refresh_metrics(final=True)  # the curves as the run left them
        if self._quitting:
            self.exit(return_code=self._exit_code())
            return
        summary = message.summary
        if message.error:
            text = f"the agent stopped: {message.error}"
            self.notify(clean(text, 300), severity="error", markup=False, timeout=30)
        elif summary is not None and summary.stopped_by == "limit":
            self.notify(f"Finished {summary.iterations} iterations. "
                        f"Press {self.key_for('quit')} to quit.", markup=False, timeout=30)
        elif summary is not None and summary.stopped_by == "error":
            self.notify(clean(summary.message, 300), severity="error", markup=False,
                        timeout=30)

    def _exit_code(self) -> int:
        summary = self.summary
        if summary is not None and getattr(summary, "stopped_by", "") == "error":
            return EXIT_FAIL
        return EXIT_OK

    # -- repainting ------------------------------------------------------------------------
    def drain(self) -> None:
        """Fold every queued event into the model and repaint what changed (the 5 Hz tick)."""
        if not self.ready and self.is_running and not self.failure:
            self._drain_while_starting()
            return
        if not self.ready or not self.is_running:  # not yet, or shutting down (panes gone)
            return
        if time.monotonic() < self._quiet_until:
            return
        events = self.bus.drain()
        if events:
            self._apply(events)
        elif self._slow_dirty:
            self._paint(set(), throttle=True)
        if self._unannounced and (time.monotonic() - self._question_toast_at
                                  >= QUESTION_TOAST_INTERVAL_S):
            self._announce_questions(self._unannounced)
            self._unannounced = []
            self._question_toast_at = time.monotonic()
        if self._errors and time.monotonic() - self._error_toast_at >= ERROR_TOAST_INTERVAL_S:
            more = len(self._errors) - 1
            self.notify(self._errors[-1] + (f" (+{more} more in the log)" if more else ""),
                        severity="error", markup=False)
            self._errors = []
            self._error_toast_at = time.monotonic()

    def _drain_while_starting(self) -> None:
        """While the runtime opens, show the teacher's download; keep the rest for later.

        The model must start from the database's history (``on_agent_ready``), so any other
        event, and the download's log lines, wait until then.
        """
        events = self.bus.drain()
        downloads = [e for e in events if isinstance(e, DownloadProgress)]
        self._held_events.extend(e for e in events if not isinstance(e, DownloadProgress))
        if downloads:
            batch = self.model.apply(downloads)
            self._held_log.extend(batch.log)
            self._paint(batch.changed)

    def _apply(self, events: list[Any]) -> None:
        batch = self.model.apply(events)
        self._paint(batch.changed, throttle=True)
        if batch.log:
            self.query_one(EventLog).add(batch.log)
        if batch.training_started:
            self.query_one(CurvesPane).show_training_tab()
        self._unannounced.extend(batch.questions)
        self._errors.extend(batch.errors)

    @property
    def slow_panes_pending(self) -> bool:
        """Whether some pane has changes it has not shown yet (it repaints at most 2x/s)."""
        return bool(self._slow_dirty)

    def _paint(self, changed: set[str], throttle: bool = False) -> None:
        if not self.is_running:
            return
        if throttle:
            self._slow_dirty |= changed & SLOW_PANES
            changed = changed - SLOW_PANES
            now = time.monotonic()
            if self._slow_dirty and now - self._slow_painted_at >= SLOW_PANE_INTERVAL_S:
                changed |= self._slow_dirty
                self._slow_dirty = set()
                self._slow_painted_at = now
        model = self.model
        if HEADER in changed:
            self.query_one(HeaderBar).show(model, self.key_for("answer"),
                                           self.key_for("review"))
        if PHASE in changed:
            self.query_one(PhaseProgress).show(model)
        if GOALS in changed:
            self.query_one(GoalsPane).show(model)
        if CURIOSITY in changed:
            self.query_one(CuriosityPane).show(model)
        if ACTIONS_PANE in changed:
            self.query_one(ActionChart).show(model)
        if KNOWLEDGE in changed:
            self.query_one(KnowledgePane).show(model)
        if CURVES in changed or TRAINING in changed:
            self.query_one(CurvesPane).show(model)

    def _announce_questions(self, asked: list[Any]) -> None:
        key = self.key_for("answer")
        if len(asked) == 1:
            q = asked[0]
            text = (f"New question #{q.question_id}: {clean(q.text, 120)}\n"
                    f"Press {key} to answer.")
        else:
            text = f"{len(asked)} new questions. Press {key} to answer."
        self.notify(text, title="The agent asks", markup=False, timeout=10)

    def refresh_metrics(self, final: bool = False) -> None:
        """Start a read of the curves unless one is still running (the 1 Hz tick)."""
        if self._metrics_busy or self._ro_db is None or self._quit.is_set():
            return
        if self._agent_done.is_set() and not final:
            return  # nothing changes any more
        self._metrics_busy = True
        self._load_metrics()

    @work(thread=True, group="metrics", exit_on_error=False)
    def _load_metrics(self) -> None:
        try:
            db = self._ro_db
            if db is None:
                return
            view = read_metrics(db, fallback_window=self.config.fallback_window)
        except Exception as exc:  # e.g. the database went away at shutdown
            log.warning("dashboard could not read metrics: %s", exc)
            return
        finally:
            self._metrics_busy = False
        self.post_message(MetricsLoaded(view))

    def on_metrics_loaded(self, message: MetricsLoaded) -> None:
        self.metrics_reads += 1
        self._paint(self.model.set_metrics(message.view))

    # -- keys ------------------------------------------------------------------------------
    def key_for(self, binding_id: str) -> str:
        """The key (as shown to people) that runs ``binding_id``, honouring the keymap."""
        for binding in self.BINDINGS:
            if isinstance(binding, Binding) and binding.id == binding_id:
                key = self.keymap.get(binding_id, binding.key).split(",")[0].strip()
                if binding_id not in self.keymap and binding.key_display:
                    return binding.key_display
                return self.get_key_display(Binding(key, ""))
        return binding_id

    def key_rows(self) -> list[tuple[str, str, str]]:
        rows = []
        for binding in self.BINDINGS:
            if isinstance(binding, Binding) and binding.id in _KEYS_BY_ID:
                keys = self.keymap.get(binding.id, binding.key)
                shown = ", ".join(
                    binding.key_display if binding.key_display and binding.id not in self.keymap
                    else self.get_key_display(Binding(k.strip(), "")) for k in keys.split(","))
                rows.append((shown, _KEYS_BY_ID[binding.id].title, binding.id))
        rows.append(("ctrl+p", "Command palette", "command_palette"))
        return rows

    def _key_pressed(self) -> None:
        """Hold other repaints briefly so the next frame shows the key's effect alone."""
        self._quiet_until = time.monotonic() + KEY_QUIET_S

    def _require_agent(self) -> AgentControl | None:
        agent = self.agent
        if agent is None:
            self.notify("The agent is still starting (opening the data directory and the "
                        "teacher).", severity="warning", markup=False)
        elif self._agent_done.is_set() or agent.stopping:
            self.notify("The agent has stopped.", severity="warning", markup=False)
            return None
        return agent

    def action_toggle_pause(self) -> None:
        agent = self._require_agent()
        if agent is None:
            return
        paused = agent.toggle_pause()
        # Show it now rather than on the next drain, in a frame of its own: this is the
        # latency people feel.
        self._key_pressed()
        self._paint(self.model.set_run_state(PAUSED if paused else RUNNING))

    def action_force_training(self) -> None:
        self._key_pressed()
        agent = self._require_agent()
        if agent is None:
            return
        examples = agent.examples_collected
        ok, why = agent.can_force_training()
        if not ok:
            self._training_refused(why)
            return
        threshold = self.config.collect_threshold
        if examples >= threshold:
            self._request_training()
            return
        message = Text(f"Only {examples} examples are collected; automatic training waits "
                       f"for {threshold}.\nA model trained on fewer examples is usually less "
                       "accurate.\n\nTrain on the "
                       f"{examples} examples now?")
        self.push_screen(ConfirmScreen("Force training?", message, yes="Train now (y)",
                                       no="Cancel (n)"),
                         callback=lambda yes: self._request_training() if yes else None)

    def _request_training(self) -> None:
        agent = self._require_agent()
        if agent is None:
            return
        ok, message = agent.request_training()
        if not ok:
            self._training_refused(message)
            return
        self.notify(message, title="Training", markup=False)
        self.query_one(EventLog).add([LogLine("info", clean(message, 300))])

    def _training_refused(self, why: str) -> None:
        text = f"Training not started: {why}"
        self.notify(clean(text, 300), title="Training", severity="warning", markup=False)
        self.query_one(EventLog).add([LogLine("warning", clean(text, 300))])

    def action_gate(self) -> None:
        """Adopt the trained HRM anyway, or keep the teacher (after a gate it missed)."""
        self._key_pressed()
        agent = self._require_agent()
        if agent is None:
            return
        state = agent.phase_state()
        summary = Text(f"Last imitation run: {gate_verdict(state, self.config.accuracy_gate)}."
                       "\n\n")
        deciding = "the HRM" if agent.hrm_deciding else "the teacher"
        summary.append(f"Now {deciding} decides. Adopting hands the decisions to the trained "
                       "HRM and lets RL improve it; keeping the teacher stops automatic "
                       "training (t still trains on request).")
        can_adopt = self.paths.trained_checkpoint.exists()
        self.push_screen(GateScreen(summary, can_adopt=can_adopt), callback=self._gate_chosen)

    def _gate_chosen(self, choice: str | None) -> None:
        agent = self._require_agent()
        if choice is None or agent is None:
            return
        agent.choose(choice)
        words = ("the HRM will be adopted" if choice == "adopt"
                 else "the teacher will be kept")
        self.query_one(EventLog).add([LogLine("info", f"{words} on the next iteration")])

    # Questions: one modal at a time, in the order they were asked.
    def action_answer(self) -> None:
        self._key_pressed()
        if self._require_agent() is None or self._rw_db is None:
            return
        if self._questions:
            return  # a question modal is already on its way
        pending = self._rw_db.questions(PENDING)
        if not pending:
            self.notify("No pending questions.", markup=False)
            return
        self._questions.extend((q, i + 1, len(pending)) for i, q in enumerate(pending))
        self._resolved["answered"] = 0
        self._resolved["kept"] = 0
        self._gone_before_shown = 0
        self._next_question()

    def _recount_pending(self) -> None:
        """Show resolved records as gone now, not when the paused agent next iterates."""
        if self._rw_db is not None:
            self.model.pending_override = (self._rw_db.count_questions(PENDING),
                                           self._rw_db.count_proposals(PENDING))
            self._paint({HEADER})

    def _next_question(self) -> None:
        self._recount_pending()
        # Questions that expired (or were answered elsewhere) while the person answered
        # the ones before them are not shown: nobody has read them yet.
        while self._questions and not self._still_pending(self._questions[0][0].id):
            self._questions.popleft()
            self._gone_before_shown += 1
        if not self._questions:
            self._questions_done()
            return
        q, position, total = self._questions[0]
        assert self._rw_db is not None
        # On screen, it does not expire for question_expiry_s of real time, whatever the
        # world's clock (the sim's runs at one second per iteration).
        hold_question(self._rw_db, q.id, self.config.question_expiry_s)
        self._held = q.id
        self.push_screen(QuestionScreen(q.id, q.text, position, total, self._answer),
                         callback=self._question_closed)

    def _still_pending(self, question_id: int) -> bool:
        assert self._rw_db is not None
        q = self._rw_db.question(question_id)
        return q is not None and q.status == PENDING

    def _questions_done(self, left: int = 0) -> None:
        answered = self._resolved.get("answered", 0)
        text = (f"Answered {answered} question{'s' * (answered != 1)}; the agent credits "
                "answers on its next iteration.")
        kept = self._resolved.get("kept", 0)
        if kept:
            text += f" {kept} came after the question expired: kept as knowledge, no reward."
        if self._gone_before_shown:
            n = self._gone_before_shown
            text += (f" {n} question{'s' * (n != 1)} expired or {'were' if n != 1 else 'was'} "
                     "answered elsewhere before you reached them.")
        if left:
            text += (f" {left} left pending for later (press {self.key_for('answer')} to "
                     "answer them).")
        self.notify(text, markup=False)

    def _answer(self, question_id: int, text: str) -> str:
        assert self._rw_db is not None
        return answer_or_keep(self._rw_db, question_id, text)[0]

    def _release_held(self) -> None:
        if self._held is not None and self._rw_db is not None:
            release_question(self._rw_db, self._held)
        self._held = None

    def _question_closed(self, outcome: Outcome | None) -> None:
        self._release_held()
        if self._questions:
            self._questions.popleft()
        if outcome is not None and outcome.status == "answered":
            self._resolved["answered"] = self._resolved.get("answered", 0) + 1
        elif outcome is not None and outcome.status == KEPT:
            self._resolved["kept"] = self._resolved.get("kept", 0) + 1
            self.notify(clean(outcome.message, 200), severity="warning", markup=False)
        elif outcome is not None and outcome.status == "gone":
            self.notify(clean(outcome.message, 200), severity="warning", markup=False)
        elif outcome is not None and outcome.status == CLOSED:
            left = len(self._questions) + 1  # the one on screen stays pending too
            self._questions.clear()
            self._recount_pending()
            self._questions_done(left)
            return
        self._next_question()

    # Proposals: the same shape.
    def action_review(self) -> None:
        self._key_pressed()
        if self._require_agent() is None or self._rw_db is None:
            return
        if self._proposals:
            return
        pending = self._rw_db.proposals(PENDING)
        if not pending:
            self.notify("No pending proposals.", markup=False)
            return
        self._proposals.extend((p, i + 1, len(pending)) for i, p in enumerate(pending))
        self._resolved["reviewed"] = 0
        self._next_proposal()

    def _next_proposal(self) -> None:
        self._recount_pending()
        if not self._proposals:
            reviewed = self._resolved.get("reviewed", 0)
            self.notify(f"Reviewed {reviewed} proposal{'s' * (reviewed != 1)}; the agent "
                        "applies them on its next iteration.", markup=False)
            return
        p, position, total = self._proposals[0]
        self.push_screen(ProposalScreen(p.id, p.kind, p.text, p.iteration, position, total,
                                        self._review), callback=self._proposal_closed)

    def _review(self, proposal_id: int, approve: bool) -> None:
        assert self._rw_db is not None
        review_proposal(self._rw_db, proposal_id, approve, reviewer="dashboard")

    def _proposal_closed(self, review: Review | None) -> None:
        if self._proposals:
            self._proposals.popleft()
        if review is not None and review.status in ("approved", "rejected"):
            self._resolved["reviewed"] = self._resolved.get("reviewed", 0) + 1
        elif review is not None and review.status == "gone":
            self.notify(clean(review.message, 200), severity="warning", markup=False)
        self._next_proposal()

    def action_reports(self) -> None:
        self._key_pressed()
        self.push_screen(ReportScreen(self.paths, self.config))

    def action_help(self) -> None:
        self._key_pressed()
        self.push_screen(HelpScreen(self.key_rows()))

    def action_switch_curves(self) -> None:
        self.query_one(CurvesPane).next_tab()

    # The decision inspector.
    def action_inspect(self) -> None:
        self._key_pressed()
        if not self.model.decisions:
            self.notify("No decision yet in this run (the inspector keeps this run's latest "
                        "decisions).", markup=False)
            return
        self._open_inspector(self.model.decisions[-1])

    def on_event_log_decision_selected(self, message: EventLog.DecisionSelected) -> None:
        event = self.model.decision(message.iteration)
        if event is None:
            self.notify(f"Iteration {message.iteration} is no longer among the "
                        f"{len(self.model.decisions)} decisions the inspector keeps.",
                        markup=False)
            return
        self._open_inspector(event)

    def _open_inspector(self, event: Any) -> None:
        if isinstance(self.screen, InspectorScreen):
            return
        self.push_screen(InspectorScreen(self.model.decisions, event, self._read_outcome,
                                         self._what_if))

    def _read_outcome(self, iteration: int) -> Any:
        """The database side of a decision (called from the inspector's thread worker)."""
        db = self._ro_db
        if db is None:
            raise RuntimeError("the database is not open")
        return read_outcome(db, iteration)

    def _what_if(self, event: Any) -> Any:
        """What the teacher and the imitation policy would choose (inspector's worker)."""
        agent = self.agent
        if agent is None or self._agent_done.is_set():
            raise RuntimeError("the agent has stopped, so its teacher and the imitation "
                               "model are no longer loaded")
        assert wants_comparison(event)
        return agent.what_if(event.snapshot, teacher=event.policy == "hrm")

    # The theme chosen in the command palette is remembered in the data directory.
    def _restore_theme(self) -> None:
        saved = load_settings(self.paths.root).get("theme")
        if isinstance(saved, str) and saved in self.available_themes:
            self._saved_theme = saved
            self.theme = saved
        elif saved is not None:
            log.warning("ignoring the saved theme %r: not a theme this version has", saved)

    def watch_theme(self, theme: str) -> None:
        if not self.is_running or theme == self._saved_theme:
            return
        try:
            save_setting(self.paths.root, "theme", theme)
        except OSError as exc:
            self.notify(clean(f"The theme could not be saved for the next run: {exc}", 200),
                        severity="warning", markup=False)
            return
        self._saved_theme = theme

    async def action_quit(self) -> None:
        """Stop the agent (it stops a training child and checkpoints), then exit."""
        if self._quitting:
            self.exit(return_code=self._exit_code())  # asked twice: don't wait any longer
            return
        self._quitting = True
        self._quit.set()
        agent = self.agent
        if agent is None or self._agent_done.is_set():
            self.exit(return_code=self._exit_code())
            return
        self._paint(self.model.set_run_state(STOPPING))
        agent.stop()
        self.set_timer(QUIT_GRACE_S, lambda: self.exit(return_code=self._exit_code()))

    def on_unmount(self) -> None:
        # Every way out (q, ctrl+q, an error, a test's exit) stops the agent and waits for
        # its thread to close the runtime, so the lock and the files are released here.
        self._quit.set()
        agent = self.agent
        if agent is not None:
            agent.stop()
        self._agent_done.wait(QUIT_GRACE_S)
        with contextlib.suppress(Exception):  # a question left on screen expires as usual
            self._release_held()
        for db in (self._ro_db, self._rw_db):
            if db is not None:
                db.close()

    # -- command palette -------------------------------------------------------------------
    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for key in KEYS:
            if not key.palette:
                continue
            callback = getattr(self, f"action_{key.action}")
            binding_id, title, text = key.id, key.title, key.text
            yield SystemCommand(title, f"{text} (key: {self.key_for(binding_id)})", callback)
