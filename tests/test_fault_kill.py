"""``kill -9`` of a headless run at random moments, 21 times, then restart and check.

One data directory goes through all three phases while the agent is killed over and over:
during collection (at a random iteration), while a training child runs (a random time after
it was spawned), and while an RL checkpoint is being written (the moment its temp file
appears). Every kill uses another seed. After every kill the test checks what the issue
asks: the restart resumes in the right phase, every example the killed run had written is
still there (counted before the restart, and compared record by record afterwards), the
orphaned training child goes away, no file is corrupt (the example log scans clean, the
database passes ``PRAGMA integrity_check``, every checkpoint loads) and a half-written
checkpoint is never loaded.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from aegis_tui.policy.checkpoints import load_checkpoint
from tests.headless import (
    FAST,
    HeadlessRun,
    db_phase,
    integrity,
    read_meta,
    scan_log,
    wait_until,
    worker_pids,
)

pytestmark = pytest.mark.timeout(400)

CONFIG = "autosave_every = 25\n[imitation]\ncheckpoint_every = 1\n[rl]\ncheckpoint_every = 1\n"
ARGS = (*FAST, "--check-every", "25", "--epochs", "2", "--accuracy-gate", "0")
# Collection runs more than 600 iterations a second here: while the kills aim at Phase 1
# the threshold is out of their reach, then it drops so training starts on the next check.
THRESHOLD = {"collect": "1500", "training": "400", "rl": "400"}
PLAN = ["collect"] * 7 + ["training"] * 7 + ["rl"] * 7
START_LINE = re.compile(r"INFO (Phase (\d): [^;]+); (\d+) examples collected")


def _fingerprint(data_dir: Path) -> list[tuple[int, str, float]]:
    scan = scan_log(data_dir)
    assert not scan.corrupt_spans, "kill -9 must never leave garbage in the example log"
    return [(e.iteration, e.action, e.time) for e in scan.examples]


def _workers_started(data_dir: Path) -> int:
    log = data_dir / "training_worker.log"
    return log.read_text(errors="replace").count("=== training run started") if log.exists() \
        else 0


def _rl_temp(data_dir: Path) -> bool:
    try:
        return any(p.name.startswith(".hrm_rl") and p.name.endswith(".tmp")
                   for p in (data_dir / "checkpoints").iterdir())
    except FileNotFoundError:
        return False


class _Writes:
    """Counts RL checkpoint writes (their temp files coming and going) to pick one to kill."""

    def __init__(self, data_dir: Path, skip: int) -> None:
        self.data_dir = data_dir
        self.skip = skip
        self.seen = 0
        self.present = False

    def at_target(self) -> bool:
        present = _rl_temp(self.data_dir)
        if present and not self.present:
            self.seen += 1
        self.present = present
        return present and self.seen > self.skip


def _check_restart(run: HeadlessRun, expected_phase: int, examples: int, temp_left: bool,
                   tail: str) -> None:
    """The restart's opening lines: the phase it resumed in and the examples it found."""
    assert run.wait_for(lambda: START_LINE.search(run.output()) is not None, 120), tail
    out = run.output()
    match = START_LINE.search(out)
    assert match is not None
    assert int(match.group(2)) == expected_phase, (match.group(1), tail)
    assert int(match.group(3)) == examples, "every example on disk at the kill is counted"
    assert "took over the lock left by aegis-tui pid" in out
    if temp_left:  # the half-written checkpoint is deleted, never read
        assert "half-written temporary file(s) left by a crash" in out
    if expected_phase == 3:
        assert run.wait_for_text("HRM loaded from", 60), out[-3000:]
        assert "could not be used" not in run.output()
        assert "could not be loaded" not in run.output()


def test_kill_9_at_random_moments_loses_nothing(tmp_path: Path) -> None:
    rng = random.Random(5)
    data = tmp_path / "data"
    data.mkdir()
    (data / "config.toml").write_text(CONFIG)
    kept: list[tuple[int, str, float]] = []  # what every run so far had written
    moments: dict[str, int] = {"collect": 0, "training": 0, "rl": 0}
    temps_left = 0
    temp_left = False
    resumed_rl = 0  # restarts that went on from an RL checkpoint, not from imitation
    expected_phase, expected_examples = 1, 0
    previous_tail = ""
    for n, planned in enumerate(PLAN):
        # On a fast machine training may finish before its kill: then go on with RL kills.
        moment = "rl" if planned == "training" and expected_phase == 3 else planned
        with HeadlessRun(data, tmp_path / f"run{n}.out", *ARGS, "--seed", str(n),
                         "--collect-threshold", THRESHOLD[moment]) as run:
            if n:
                _check_restart(run, expected_phase, expected_examples, temp_left,
                               previous_tail)
            else:
                assert run.wait_for_text("agent running", 60), run.output()
            resumed_rl += "HRM loaded from hrm_rl.pt" in run.output()
            phase_at_kill = 0
            if moment == "collect":
                run.wait_for(lambda: False, rng.uniform(0.02, 0.3))
            elif moment == "training":
                spawned = _workers_started(data) + 1
                assert run.wait_for(lambda n=spawned: _workers_started(data) >= n, 60), \
                    run.output()[-3000:]
                # From the child's start-up (importing torch) to the middle of an epoch.
                run.wait_for(lambda: False, rng.uniform(0.3, 3.5))
            else:
                # Let a few checkpoints complete first, so an older hrm_rl.pt is on disk.
                writes = _Writes(data, skip=rng.randint(0, 3))
                assert run.wait_for(writes.at_target, 90, poll_s=0.0005), run.output()[-3000:]
            assert run.running(), run.output()[-3000:]
            run.kill()
            phase_at_kill = db_phase(data)
            out = run.output()
        previous_tail = out[-3000:]
        temp_left = _rl_temp(data)
        if moment == "training" and phase_at_kill == 2:
            moments["training"] += 1
            # The orphaned child notices its parent is gone and stops on its own.
            assert wait_until(lambda: not worker_pids(data), 15), "orphaned worker kept running"
        elif moment == "rl" and phase_at_kill == 3:
            moments["rl"] += 1
            temps_left += temp_left
        elif moment == "collect" and phase_at_kill == 1:
            moments["collect"] += 1
        # Flushed examples: everything the killed run had written, at least what it reported.
        now = _fingerprint(data)
        assert now[:len(kept)] == kept, "an example that was written before is gone"
        iterations = [i for i, _, _ in now]
        assert iterations == sorted(set(iterations)), "examples out of order or repeated"
        reported = [int(x) for x in re.findall(r"Collected (\d+) training examples", out)]
        assert max(reported, default=0) <= len(now)
        kept = now
        expected_phase = 1 if phase_at_kill == 2 else phase_at_kill
        expected_examples = len(now)
        assert integrity(data) == "ok"

    # Every kind of moment was hit (a kill that landed elsewhere still counts above).
    assert moments["collect"] >= 5 and moments["training"] >= 4 and moments["rl"] >= 5, moments
    assert temps_left >= 1, "no kill landed mid-write of an RL checkpoint"
    assert resumed_rl >= 1, "no restart went on from the RL checkpoint"

    # A last run ends cleanly; then nothing is corrupt and nothing was lost.
    with HeadlessRun(data, tmp_path / "final.out", *ARGS, "--iterations", "40",
                     "--collect-threshold", "400") as run:
        code = run.wait(180)
        out = run.output()
    assert code == 0, out[-3000:]
    match = START_LINE.search(out)
    assert match and int(match.group(2)) == expected_phase == 3
    assert int(match.group(3)) == expected_examples
    scan = scan_log(data)
    assert not scan.corrupt_spans and scan.torn_at is None and scan.skipped == 0
    assert [(e.iteration, e.action, e.time) for e in scan.examples][:len(kept)] == kept
    assert integrity(data) == "ok"
    checkpoints = sorted((data / "checkpoints").glob("*.pt"))
    assert {p.name for p in checkpoints} >= {"hrm_trained.pt", "hrm_rl.pt"}
    for path in checkpoints:
        load_checkpoint(path)  # raises on a damaged file
    leftovers = [p.name for p in data.rglob("*.tmp")]
    assert not leftovers and not (data / "checkpoints" / "hrm_trained.candidate.pt").exists()
    quarantined = [p.name for p in (data / "quarantine").iterdir()] \
        if (data / "quarantine").exists() else []
    assert not [q for q in quarantined if "torn-tail" not in q], quarantined
    state = read_meta(data)["phase_state"]
    # The HRM decides, or (this last run is on another sim seed than the teacher's
    # reference) the teacher is being measured on this world first.
    assert state["phase"] == 3 and (state["hrm_active"] or state["measuring_teacher"])
    assert not worker_pids(data)
