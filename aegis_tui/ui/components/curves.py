"""Reward and training curves, in two tabs, redrawn at most once per metrics read (~1 Hz).

"Reward": the rolling mean reward of the teacher's and the HRM's decisions over the latest
iterations (delayed rewards included), with phase changes marked as vertical lines.
"Training": loss, train and validation accuracy per epoch of the latest imitation run.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static, TabbedContent, TabPane
from textual_plot import HiResMode, PlotWidget

from aegis_tui.agent.metrics_view import EpochPoint, RewardCurves
from aegis_tui.text import clean
from aegis_tui.ui.model import DashboardModel

TEACHER_STYLE, HRM_STYLE, BOUNDARY_STYLE, SWITCH_STYLE = "cyan", "magenta", "yellow", "grey50"
LOSS_STYLE, TRAIN_STYLE, VAL_STYLE = "red", "blue", "green"


class StaticPlot(PlotWidget, can_focus=False):
    """A plot that never takes focus, so its zoom/pan keys never shadow the app's keys."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, allow_pan_and_zoom=False)

    def on_mount(self) -> None:
        self.margin_top = 0
        self.margin_bottom = 1
        self.margin_left = 7


def _key(style: str, label: str) -> Text:
    out = Text("── ", style=f"bold {style}")
    out.append(label)
    out.append("  ")
    return out


class CurvesPane(Vertical):
    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.border_title = "Curves"
        self._curves: tuple[RewardCurves, str] | None = None
        self._epochs: tuple[tuple[EpochPoint, ...], int] | None = None
        self.reward_draws = 0
        self.training_draws = 0

    def compose(self) -> ComposeResult:
        with TabbedContent(id="curve-tabs"):
            with TabPane("Reward", id="tab-reward"):
                yield Static(Text("waiting for the first iterations…", style="dim"),
                             id="reward-caption", classes="caption")
                yield StaticPlot(id="reward-plot")
            with TabPane("Training", id="tab-training"):
                yield Static(Text("no training run yet", style="dim"),
                             id="training-caption", classes="caption")
                yield StaticPlot(id="training-plot")

    def show_training_tab(self) -> None:
        self.query_one(TabbedContent).active = "tab-training"

    def next_tab(self) -> str:
        tabs = self.query_one(TabbedContent)
        tabs.active = "tab-training" if tabs.active == "tab-reward" else "tab-reward"
        return tabs.active

    def show(self, model: DashboardModel) -> None:
        teacher = clean(model.state.policy_name, 30) if model.state is not None \
            and not model.state.hrm_active else ""
        if model.metrics is not None:
            self._draw_rewards(model.metrics.curves, teacher)
        epochs = tuple(model.training.epochs)
        total = model.training.epochs_total or model.config.imitation.epochs
        if (epochs, total) != self._epochs:
            self._epochs = (epochs, total)
            self._draw_training(epochs, total)

    def _draw_rewards(self, curves: RewardCurves, teacher_label: str) -> None:
        if self._curves == (curves, teacher_label):
            return
        self._curves = (curves, teacher_label)
        self.reward_draws += 1
        plot = self.query_one("#reward-plot", StaticPlot)
        plot.clear()
        caption = Text()
        if curves.empty:
            caption.append("no iterations recorded yet", style="dim")
        else:
            for series, style in ((curves.teacher, TEACHER_STYLE), (curves.hrm, HRM_STYLE)):
                for xs, ys in series.runs():
                    plot.plot(xs, ys, line_style=style, hires_mode=HiResMode.BRAILLE)
            switches = False
            previous = None
            for boundary in curves.boundaries:
                # A new phase is yellow; a teacher/HRM switch inside Phase 3 is grey.
                is_phase = previous is None or boundary.phase != previous
                switches |= not is_phase
                plot.add_v_line(boundary.iteration,
                                line_style=BOUNDARY_STYLE if is_phase else SWITCH_STYLE)
                previous = boundary.phase
            plot.set_xlimits(curves.first, max(curves.last, curves.first + 1))
            name = f"teacher {curves.teacher.last:+.2f}" if curves.teacher else "teacher n/a"
            caption.append_text(_key(TEACHER_STYLE, name))
            hrm = f"HRM {curves.hrm.last:+.2f}" if curves.hrm else "HRM n/a"
            caption.append_text(_key(HRM_STYLE, hrm))
            caption.append("│ ", style=f"bold {BOUNDARY_STYLE}")
            caption.append("phase change  ")
            if switches:
                caption.append("│ ", style=f"bold {SWITCH_STYLE}")
                caption.append("teacher/HRM switch  ")
            caption.append(f"rolling reward: each policy's last {curves.window} decisions",
                           style="dim")
        self.query_one("#reward-caption", Static).update(caption, layout=False)

    def _draw_training(self, epochs: tuple[EpochPoint, ...], total: int) -> None:
        self.training_draws += 1
        plot = self.query_one("#training-plot", StaticPlot)
        plot.clear()
        caption = Text()
        if not epochs:
            caption.append("no training run yet", style="dim")
        else:
            xs = [float(e.epoch) for e in epochs]
            plot.plot(xs, [e.loss for e in epochs], line_style=LOSS_STYLE,
                      hires_mode=HiResMode.BRAILLE)
            plot.plot(xs, [e.train_accuracy for e in epochs], line_style=TRAIN_STYLE,
                      hires_mode=HiResMode.BRAILLE)
            plot.plot(xs, [e.val_accuracy for e in epochs], line_style=VAL_STYLE,
                      hires_mode=HiResMode.BRAILLE)
            plot.set_xlimits(0, max(total, epochs[-1].epoch, 1))
            last = epochs[-1]
            caption.append_text(_key(LOSS_STYLE, f"loss {last.loss:.2f}"))
            caption.append_text(_key(TRAIN_STYLE, f"train {last.train_accuracy:.0%}"))
            caption.append_text(_key(VAL_STYLE, f"val {last.val_accuracy:.0%}"))
            caption.append(f"epoch {last.epoch}/{total}", style="dim")
        self.query_one("#training-caption", Static).update(caption, layout=False)
