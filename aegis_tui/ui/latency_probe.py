"""How long a key press takes to show on screen while the agent runs flat out.

``measure_key_latency`` runs the dashboard headless on the sim world with
``think_interval=0`` (about a thousand iterations a second competing for the GIL) and, when
the training supervisor is available, with an imitation training child running. It presses
``p`` repeatedly and times each press until the header is repainted with the new state
(paused/running): the delay a person feels. ``aegis-tui bench`` reports its percentiles.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from aegis_tui.ui.harness import prepare_data_dir, sim_config, wait_ready, wait_until

PROBE_ITERATIONS = 120  # enough examples (>= min_forced_examples) to force training
SETTLE_S = 0.05  # between presses, so one press's repaint never overlaps the next


def supervisor_available() -> bool:
    return importlib.util.find_spec("aegis_tui.training.supervisor") is not None


async def _measure(repeats: int, workdir: Path, with_training: bool,
                   overrides: dict[str, Any]) -> list[float]:

    from aegis_tui.ui.app import AegisApp
    from aegis_tui.ui.components.header_bar import HeaderBar

    root = workdir / "latency-data"
    paths = prepare_data_dir(root, PROBE_ITERATIONS)
    # Many epochs so the child is still training while we measure; it is stopped at exit.
    config = sim_config(**{"think_interval": 0,
                           "imitation": {"epochs": 1000, "checkpoint_every": 1000},
                           **overrides})
    app = AegisApp(config, paths)
    out: list[float] = []
    async with app.run_test(size=(160, 48)):
        await wait_ready(app, timeout=60)
        agent = app.agent
        if app.failure or agent is None:
            raise RuntimeError(app.failure or "the agent did not start")
        if with_training:
            ok, message = agent.request_training()
            if not ok:
                raise RuntimeError(f"could not start training for the probe: {message}")
            await wait_until(lambda: bool(app.model.training.epochs), timeout=120,
                             what="the training child's first epoch")
        header = app.query_one(HeaderBar)
        for _ in range(repeats):
            expected = "running" if agent.paused else "paused"
            start = time.perf_counter()
            # What a real key press does: a Key event reaches the app. (Pilot.press would
            # also wait for the process to go idle, which a busy agent never does.)
            app.simulate_key("p")
            await wait_until(lambda: header.rendered_state == expected, timeout=10,  # noqa: B023
                             step=0.0005, what="the header to show the new state")
            out.append((time.perf_counter() - start) * 1000.0)
            await asyncio.sleep(SETTLE_S)
    return out


def measure_key_latency(repeats: int, workdir: Path, *, training: bool | None = None,
                        **overrides: Any) -> list[float]:
    """Milliseconds from pressing ``p`` to the header showing paused/running, per press.

    ``training``: run an imitation training child meanwhile (default: when available).
    ``overrides``: settings for the agent, e.g. ``teacher="lm", teacher_model=FOLDER`` to
    measure while a language model scores every decision.
    """
    if repeats < 1:
        raise ValueError("repeats must be at least 1")
    workdir.mkdir(parents=True, exist_ok=True)
    with_training = supervisor_available() if training is None else training
    return asyncio.run(_measure(repeats, workdir, with_training, overrides))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m aegis_tui.ui.latency_probe",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=40)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        values = sorted(measure_key_latency(args.repeats, Path(tmp)))
    p95 = values[min(len(values) - 1, round(0.95 * (len(values) - 1)))]
    print(f"key latency over {len(values)} presses (training child: "
          f"{'yes' if supervisor_available() else 'no'}): median "
          f"{statistics.median(values):.1f} ms, p95 {p95:.1f} ms, max {values[-1]:.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
