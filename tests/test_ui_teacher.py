"""The teacher in the dashboard: its download in the phase pane (shown literally), and where
it runs in the header."""

from __future__ import annotations

import threading
from pathlib import Path

from textual.widgets import Static

from aegis_tui.events import DownloadProgress, EventBus
from aegis_tui.paths import DataPaths
from aegis_tui.ui.app import AegisApp
from aegis_tui.ui.components.phase_progress import PhaseProgress
from aegis_tui.ui.harness import sim_config, wait_until
from aegis_tui.ui.model import DashboardModel

SIZE = (120, 40)


def _progress(file: str = "model.safetensors", done: int = 200_000_000,
              finished: bool = False) -> DownloadProgress:
    return DownloadProgress(model="gpt2", file=file, file_bytes=done - 48_000_000,
                            file_total=548_105_171, done_bytes=done, total_bytes=549_000_000,
                            rate_bps=2_300_000.0, file_index=5, files_total=7,
                            finished=finished, milestone=False)


def test_the_phase_pane_shows_file_bytes_and_rate() -> None:
    model = DashboardModel(sim_config(teacher="lm"))
    batch = model.apply([_progress()])
    assert "phase" in batch.changed and batch.log == []  # a bar, not a log line per update
    shown = model.phase_progress()
    assert shown.words == ("downloading gpt2: model.safetensors (5/7), 200.0 MB of 549.0 MB, "
                           "2.3 MB/s")
    assert (shown.progress, shown.total) == (200_000_000, 549_000_000)
    model.apply([_progress(finished=True)])
    assert model.phase_progress().words.startswith("starting: opening the data directory")


async def test_the_dashboard_draws_a_download_literally(tmp_path: Path) -> None:
    release = threading.Event()
    hostile = "[bold red]x[/bold red]\x1b[31m.safetensors"

    def factory(config: object, paths: object, bus: EventBus) -> object:
        bus.publish(_progress(file=hostile))
        release.wait(20)
        raise OSError("stop here")

    app = AegisApp(sim_config(teacher="lm"), DataPaths.resolve(tmp_path / "data"),
                   runtime_factory=factory)
    try:
        async with app.run_test(size=SIZE):
            pane = app.query_one(PhaseProgress)
            await wait_until(lambda: pane.words.startswith("downloading gpt2"),
                             what="the download on screen")
            assert "[bold red]x[/bold red].safetensors (5/7)" in pane.words
            # On screen as typed: the brackets are text, not Rich markup.
            words = pane.query_one("#phase-words", Static)
            assert "[bold red]x[/bold red].safetensors" in str(words.render())
            assert "\x1b" not in pane.words
            release.set()
            await wait_until(lambda: bool(app.failure), what="the failure")
    finally:
        release.set()


def test_the_header_says_where_the_teacher_runs() -> None:
    from aegis_tui.ui.components.header_bar import HeaderBar, HeaderInfo

    info = HeaderInfo(title="Phase 1: Data Collection", policy="GPT-2", device="cuda",
                      world="sim (seed 0)", iteration=12)
    assert "GPT-2 on cuda deciding" in HeaderBar._left(info, info.title, True, True).plain
    narrow = HeaderBar._left(info, "Phase 1", False, False, with_device=False).plain
    assert "GPT-2" in narrow and "cuda" not in narrow  # the last thing a narrow header drops
    hrm = HeaderInfo(policy="HRM", hrm=True, device="cuda")
    assert "on cuda" not in HeaderBar._left(hrm, "Phase 3", True, True).plain  # HRM: the CPU
