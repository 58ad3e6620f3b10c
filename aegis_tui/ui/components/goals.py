"""The goals pane: every goal with its progress; completed goals are ticked."""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget

from aegis_tui.snapshot import GoalView
from aegis_tui.ui.components.bars import bar
from aegis_tui.ui.model import DashboardModel
from aegis_tui.ui.safe import safe, stack


class GoalsPane(Widget):
    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.border_title = "Goals"
        self.goals: tuple[GoalView, ...] = ()

    def show(self, model: DashboardModel) -> None:
        if model.state is None:
            return
        snap = model.state.snapshot
        goals = tuple(snap.goals)
        title = f"Goals ({snap.goals_completed} done)"
        if title != self.border_title:
            self.border_title = title
        if goals != self.goals:
            self.goals = goals
            self.refresh()

    def render(self) -> Text:
        width = self.size.width
        if not self.goals:
            return Text("no goals yet", style="dim")
        # Active goals first: they are what the agent works on now.
        ordered = sorted(self.goals, key=lambda g: g.completed)
        lines = []
        for goal in ordered:
            if goal.completed:
                line = Text("✓ done   ", style="green")
                line.append_text(safe(goal.text, 200, style="green"))
            else:
                line = bar(goal.progress, 5, style="cyan")
                line.append(f" {goal.progress:>3.0%} ")
                line.append_text(safe(goal.text, 200))
            lines.append(line)
        return stack(lines, width)
