"""The action distribution: the teacher's decisions, the HRM's, and the training labels.

Three columns of horizontal bars, one row per action, each column scaled to its own total
so the shapes compare directly: what the teacher did while deciding, what the HRM did, and
the teacher labels the imitation training learns from (``label_counts``).
"""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget

from aegis_tui.actions import ACTION_NAMES
from aegis_tui.ui.components.bars import bar
from aegis_tui.ui.model import DashboardModel
from aegis_tui.ui.safe import stack

SHORT_NAMES = {"web_search": "search", "ask_human": "ask", "propose_improvement": "propose",
               "idle": "idle"}
COLUMNS = (("teacher", "cyan"), ("HRM", "magenta"), ("labels", "green"))
NAME_WIDTH = 8


def compact(n: int) -> str:
    """12345 -> "12.3k": totals grow without bound, the column does not."""
    if n < 10_000:
        return str(n)
    if n < 1_000_000:
        return f"{n / 1000:.1f}k" if n < 100_000 else f"{n // 1000}k"
    return f"{n / 1_000_000:.1f}M"


class ActionChart(Widget):
    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.border_title = "Action distribution"
        self.columns: tuple[tuple[int, ...], ...] = ((0,) * 4,) * 3
        self.outcomes: tuple[str, ...] = ()

    def show(self, model: DashboardModel) -> None:
        columns = (tuple(model.counts["teacher"]), tuple(model.counts["hrm"]),
                   tuple(model.label_counts))
        outcomes = self.outcomes
        if model.state is not None:
            snap = model.state.snapshot
            outcomes = (
                f"searches {snap.web_searches:,} ({snap.failed_searches:,} failed)",
                f"questions {snap.questions_asked:,} ({snap.questions_answered:,} answered)",
                f"proposals {snap.improvements_proposed:,} "
                f"({snap.improvements_approved:,} approved)",
            )
        if (columns, outcomes) != (self.columns, self.outcomes):
            self.columns, self.outcomes = columns, outcomes
            self.refresh()

    def render(self) -> Text:
        width = self.size.width
        cell = max(6, (width - NAME_WIDTH) // len(COLUMNS))
        bar_width = max(1, cell - 6)
        head = Text(" " * NAME_WIDTH)
        labels = [f"{name} {compact(sum(counts))}"
                  for (name, _), counts in zip(COLUMNS, self.columns, strict=True)]
        if any(len(label) > cell - 1 for label in labels):
            labels = [name for name, _ in COLUMNS]  # totals only when all of them fit
        for label, (_, style) in zip(labels, COLUMNS, strict=True):
            head.append(label[: cell - 1].ljust(cell), style=f"bold {style}")
        lines = [head]
        for row, action in enumerate(ACTION_NAMES):
            line = Text(SHORT_NAMES[action].ljust(NAME_WIDTH))
            for (_, style), counts in zip(COLUMNS, self.columns, strict=True):
                total = sum(counts)
                share = counts[row] / total if total else 0.0
                line.append_text(bar(share, bar_width, style=style))
                line.append(f"{share:>4.0%} " if total else "   - ", style="" if total else "dim")
            lines.append(line)
        # Outcomes of the actions, when the pane is tall enough (wide layouts).
        if self.outcomes and self.size.height >= len(lines) + 1 + len(self.outcomes):
            lines.append(Text(""))
            lines.extend(Text(o, style="dim") for o in self.outcomes)
        return stack(lines, width)
