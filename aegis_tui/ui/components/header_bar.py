"""The one-line header: phase, who decides, the world, the iteration, running or paused."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.widget import Widget

from aegis_tui.text import clean
from aegis_tui.ui.model import PAUSED, RUNNING, STARTING, STOPPED, STOPPING, DashboardModel
from aegis_tui.ui.safe import fit, join

_RUN_STYLES = {
    RUNNING: ("▶ running", "bold green"),
    PAUSED: ("‖ PAUSED", "bold black on yellow"),
    STOPPING: ("■ stopping…", "bold yellow"),
    STOPPED: ("■ stopped", "bold red"),
    STARTING: ("… starting", "bold"),
}


@dataclass(frozen=True, slots=True)
class HeaderInfo:
    title: str = "AEGIS"
    short_title: str = "AEGIS"
    policy: str = ""
    device: str = ""  # where an LM teacher runs
    hrm: bool = False
    world: str = ""
    iteration: int = 0
    run_state: str = STARTING
    questions: int = 0
    proposals: int = 0
    answer_key: str = "a"
    review_key: str = "r"


class HeaderBar(Widget):
    """Rebuilt from the model on every change; the text adapts to the width it gets."""

    DEFAULT_CSS = "HeaderBar { height: 1; }"

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.info = HeaderInfo()
        self.rendered_state = ""  # the run state in the last painted frame (latency probe)

    def show(self, model: DashboardModel, answer_key: str = "a", review_key: str = "r") -> None:
        state = model.state
        questions, proposals = model.pending
        if state is None:
            info = HeaderInfo(run_state=model.run_state, iteration=model.iteration,
                              answer_key=answer_key, review_key=review_key)
        else:
            title = clean(state.phase_title, 120) or f"Phase {state.phase}"
            info = HeaderInfo(
                title=title, short_title=title.split(" (", 1)[0],
                policy=clean(state.policy_name, 40), hrm=state.hrm_active,
                device=clean(state.teacher_device, 8),
                world=clean(state.world, 60), iteration=model.iteration,
                run_state=model.run_state, questions=questions, proposals=proposals,
                answer_key=answer_key, review_key=review_key)
        if info != self.info:
            self.info = info
            self.refresh()

    def render(self) -> Text:
        info = self.info
        width = self.size.width
        # Longest first; each step gives up something less important to fit the width.
        variants = (
            (info.title, True, True, False, True),
            (info.short_title, True, True, False, True),
            (info.short_title, False, True, False, True),
            (info.short_title, False, True, True, True),
            (info.short_title, False, False, True, True),
            (info.short_title, False, False, True, False),
        )
        for title, with_world, with_verb, compact, with_device in variants:
            left = self._left(info, title, with_world, with_verb, with_device)
            right = self._right(info, compact)
            if left.cell_len + right.cell_len + 2 <= width:
                break
        left = fit(left, max(0, width - right.cell_len - 1))
        pad = Text(" " * max(1, width - left.cell_len - right.cell_len))
        self.rendered_state = info.run_state
        return join(left, pad, right)

    @staticmethod
    def _right(info: HeaderInfo, compact: bool) -> Text:
        label, style = _RUN_STYLES.get(info.run_state, (info.run_state, "bold"))
        right = Text()
        pending = []
        if info.questions:
            pending.append(f"Q:{info.questions} ({info.answer_key})" if compact else
                           f"{info.questions} question{'s' * (info.questions != 1)} "
                           f"({info.answer_key})")
        if info.proposals:
            pending.append(f"P:{info.proposals} ({info.review_key})" if compact else
                           f"{info.proposals} proposal{'s' * (info.proposals != 1)} "
                           f"({info.review_key})")
        if pending:
            right.append(" · ".join(pending) + " ", style="bold magenta")
        right.append(f" {label} ", style=style)
        return right

    @staticmethod
    def _left(info: HeaderInfo, title: str, with_world: bool, with_verb: bool,
              with_device: bool = True) -> Text:
        out = Text(f" {title}", style="bold")
        if info.policy:
            who = "HRM" if info.hrm else info.policy
            if info.device and not info.hrm and with_device:
                who += f" on {info.device}"
            if with_verb:
                who += " deciding"
            out.append(" │ ")
            out.append(who, style="bold magenta" if info.hrm else "bold cyan")
        if info.world and with_world:
            out.append(" │ ")
            out.append(info.world)
        out.append(" │ ")
        out.append(f"iter {info.iteration:,}")
        return out
