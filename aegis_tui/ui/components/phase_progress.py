"""The phase pane: a progress bar with words for the phase the agent is in.

Phase 1: "examples collected 347/1000 (34.7%)"; Phase 2: "epoch 7/20, loss 0.41, val acc
92%"; Phase 3: RL updates and the HRM's rolling reward against the teacher's.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import ProgressBar, Static

from aegis_tui.ui.model import STARTING, DashboardModel, Progress

UNSIZED_RETRIES = 20  # re-tries, one per refresh, while the bar has no width yet


class PhaseProgress(Horizontal):
    DEFAULT_CSS = """
    PhaseProgress { height: 1; }
    PhaseProgress #phase-label { width: 10; padding: 0 1; text-style: bold; }
    PhaseProgress ProgressBar { width: 24; }
    PhaseProgress ProgressBar Bar { width: 24; }
    PhaseProgress #phase-words { width: 1fr; padding: 0 1; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._shown: tuple[int, Progress] | None = None
        self._words = ""
        self._unsized_tries = 0

    def compose(self) -> ComposeResult:
        yield Static(Text("Phase 1"), id="phase-label")
        yield ProgressBar(total=1, show_eta=False, show_percentage=False, id="phase-bar")
        yield Static(Text(""), id="phase-words")

    @property
    def words(self) -> str:
        return self._words

    def show(self, model: DashboardModel) -> None:
        progress = model.phase_progress()
        key = (model.phase, progress)
        if key == self._shown:
            return
        # Fixed one-line sizes: repaint only, no layout pass (it would cost every frame).
        label = "Starting" if model.state is None and model.run_state == STARTING \
            else f"Phase {model.phase}"
        self.query_one("#phase-label", Static).update(Text(label), layout=False)
        bar = self.query_one(ProgressBar)
        # No total means nothing to measure yet: hide the bar rather than let it pulse.
        bar.display = progress.total is not None
        # Textual rounds the bar to its width when the value is set, so a value set before
        # the bar has a width would be drawn differently: wait for the width (next call).
        sized = bool(bar.size.width)
        if progress.total is not None and sized:
            bar.update(total=progress.total, progress=progress.progress)
        if sized or progress.total is None:
            self._shown, self._unsized_tries = key, 0
        else:
            self._shown = None
            if self._unsized_tries < UNSIZED_RETRIES:  # a pane that is never laid out
                self._unsized_tries += 1
                self.call_after_refresh(self.show, model)
        self._words = progress.words
        self.query_one("#phase-words", Static).update(Text(progress.words), layout=False)
