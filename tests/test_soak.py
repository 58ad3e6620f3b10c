"""The soak: a shorter run of ``aegis_tui.bench.soak`` in CI, and its judge on made-up data.

The full soak is ``python -m aegis_tui.bench.soak --iterations 20000``; CI runs 3,000
iterations (all three phases, ~20 s) with the same checks. ``-m "not slow"`` deselects it.
The judge's tests feed it samples that grow, so each check is shown to be able to fail.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from aegis_tui.bench.soak import (
    Sample,
    SoakReport,
    SoakSettings,
    _judge,
    format_report,
    main,
    row_bounds,
    run_soak,
)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_short_soak_through_all_phases_stays_bounded(tmp_path: Path) -> None:
    # Long enough for memory to settle after the HRM takes over (warm-up 1250 iterations).
    settings = SoakSettings.for_iterations(5000, sample_interval_s=0.25)
    report = run_soak(settings, tmp_path / "data")
    text = format_report(report)
    assert report.ok, text + "\n" + report.output_tail
    assert report.exit_code == 0 and report.iterations == 5000
    assert report.phases_seen[0] == 1 and 3 in report.phases_seen
    assert report.samples >= 8 and report.warmup_iteration is not None
    assert report.rss_growth_mb <= settings.memory_tolerance_mb
    assert report.log_rotated, "aegis.log must rotate"
    assert report.log_bytes_total <= settings.log_max_bytes * (settings.log_backups + 1) + 65536
    grew = {name for name, rate in report.file_growth_per_1000.items() if rate > 65536}
    assert grew <= {"hrm_training_data.msgpack", "agent.sqlite3", "aegis.log",
                    "aegis.log.1", "aegis.log.2"}, grew
    assert not [n for n in report.files_end if n.startswith("quarantine/")]
    checkpoints = {n for n in report.files_end if n.startswith("checkpoints/")}
    assert {"checkpoints/hrm_trained.pt", "checkpoints/hrm_rl.pt"} <= checkpoints
    for table, bound in report.row_bounds.items():
        assert report.rows_end.get(table, 0) <= bound, table
    assert "Verdict:         OK" in text


def _sample(iteration: int, rss_mb: float, files: dict[str, int], phase: int = 3) -> Sample:
    return Sample(elapsed_s=iteration / 100, iteration=iteration, phase=phase,
                  hrm_active=phase == 3, rss_kb=int(rss_mb * 1024),
                  hwm_kb=int(rss_mb * 1024), worker_rss_kb=0, files=files)


def _judged(tmp_path: Path, rss: list[float], files: list[dict[str, int]],
            rows: dict[str, int] | None = None) -> SoakReport:
    root = tmp_path / "data"
    root.mkdir(exist_ok=True)
    settings = SoakSettings(iterations=4000, warmup=100)
    samples = [_sample(100, 200.0, {}, phase=1)]
    samples += [_sample(200 + 100 * k, mb, f) for k, (mb, f) in enumerate(
        zip(rss, files, strict=True))]
    report = SoakReport(settings=settings, data_dir=str(root), exit_code=0)
    report.rows_end = rows or {}
    report.row_bounds = row_bounds(report.rows_end, examples=0)
    _judge(report, samples, root, settings)
    return report


FLAT = {"hrm_training_data.msgpack": 0, "checkpoints/hrm_rl.pt": 6_000_000}


def test_the_judge_passes_flat_memory_and_files(tmp_path: Path) -> None:
    files = [{**FLAT, "hrm_training_data.msgpack": 1000 * k} for k in range(20)]
    report = _judged(tmp_path, [300.0 + (k % 3) for k in range(20)], files)
    assert report.ok, report.failures
    assert report.rl_from_iteration == 200 and report.warmup_iteration == 300
    assert abs(report.rss_slope_mb_per_1000) < 1


def test_the_judge_fails_growing_memory(tmp_path: Path) -> None:
    report = _judged(tmp_path, [300.0 + 5 * k for k in range(20)], [FLAT] * 20)
    assert not report.ok and report.rss_growth_mb > 25
    assert any(f.startswith("memory grew by") for f in report.failures)
    assert report.rss_slope_mb_per_1000 == pytest.approx(50, abs=1)


def test_the_judge_fails_a_growing_file_and_quarantine(tmp_path: Path) -> None:
    files = [{**FLAT, "checkpoints/hrm_epoch_5.pt": 200_000 * k} for k in range(20)]
    files[-1]["quarantine/agent.sqlite3.damaged"] = 10
    report = _judged(tmp_path, [300.0] * 20, files)
    assert any("checkpoints/hrm_epoch_5.pt grew by" in f for f in report.failures)
    assert not report.ok


def test_warm_up_waits_for_the_first_rl_checkpoint_but_not_for_a_new_file(
        tmp_path: Path) -> None:
    # The RL checkpoint is first written at iteration 600, after warmup (300): creating it
    # is not growth, so warm-up ends there; a checkpoint file that appears later still is.
    files = [{"hrm_training_data.msgpack": 0} for _ in range(4)] + [FLAT] * 16
    report = _judged(tmp_path, [300.0] * 20, files)
    assert report.ok, report.failures
    assert report.warmup_iteration == 600
    files = [dict(f) for f in files]
    for f in files[10:]:
        f["checkpoints/hrm_rl_2.pt"] = 6_000_000
    report = _judged(tmp_path, [300.0] * 20, files)
    assert any("checkpoints/hrm_rl_2.pt grew by" in f for f in report.failures)


def test_the_judge_fails_a_table_over_its_bound(tmp_path: Path) -> None:
    report = _judged(tmp_path, [300.0] * 20, [FLAT] * 20,
                     rows={"metrics": 10**6, "knowledge": 10**6, "mystery": 1})
    assert any(f.startswith("table metrics holds 1,000,000 rows") for f in report.failures)
    assert any(f == "table mystery has no known bound" for f in report.failures)
    assert not any("knowledge" in f for f in report.failures), "knowledge grows with learning"


def test_the_judge_needs_phase_3_and_enough_samples(tmp_path: Path) -> None:
    root = tmp_path / "data"
    root.mkdir()
    settings = SoakSettings(iterations=4000, warmup=100)
    report = SoakReport(settings=settings, data_dir=str(root), exit_code=0)
    _judge(report, [_sample(100 * k, 200.0, {}, phase=1) for k in range(10)], root, settings)
    assert any("Phase 3 was not reached" in f for f in report.failures)


def test_the_command_refuses_a_run_too_short_for_every_phase(capsys) -> None:
    assert main(["--iterations", "10"]) == 2
    assert "at least 1000" in capsys.readouterr().err
