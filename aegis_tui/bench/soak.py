"""Soak test: a long headless run through all three phases, watched for growth from outside.

``python -m aegis_tui.bench.soak --iterations 20000 [--data-dir D] [--json]`` runs the real
agent (``aegis-tui run --headless``: sim world, rules teacher, ``--think-interval 0``, small
thresholds so collection, imitation and RL all happen) in a child process and samples, every
``--sample-interval`` seconds: the agent's resident memory (``VmRSS`` in
``/proc/<pid>/status``; the training child's separately), its iteration and phase (read from
its database the way ``aegis-tui status`` does), and the size of every file in the data
directory. At the end it reads each table's row count and reports peak memory, memory after
warm-up and its slope, disk use per file, and whether ``aegis.log`` rotated.

It exits non-zero when, after warm-up (``--warmup`` iterations after the HRM took over, when
torch is loaded and the RL buffers are full, and not before its first RL checkpoint):

- resident memory grows by more than ``--memory-tolerance-mb`` (median of the last quarter
  of the samples against the first quarter);
- any file other than the example log and the database grows (checkpoints are rewritten at
  a constant size, the log rotates within ``log_max_bytes * (log_backups + 1)``), or a file
  lands in ``quarantine/``;
- any database table except those that hold what the agent learns grows past its bound.

What grows by design: ``hrm_training_data.msgpack`` (one record per teacher decision; none
while the HRM decides) and, inside ``agent.sqlite3``, ``knowledge`` (every new item found,
deduplicated), ``goals`` (approved "add goal" proposals) and ``proposals`` (every distinct
idea, each about something newly learned). Those grow with what is learned, not with time:
the soak reports their rate (rows and bytes per 1000 iterations) and does not fail on them.
Every other table has a bound the soak checks: ``metrics`` (the newest 50,000 iterations),
``rl_updates`` (5,000), ``curiosity`` (the queue plus 5,000 inactive topics), ``questions``
(pending plus the newest 2,000 resolved), duplicate proposals (the newest 1,000),
``training_runs`` (one per attempt) and ``meta`` (a fixed set of keys).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from aegis_tui.agent.loop import DUPLICATES_KEEP, METRICS_KEEP, QUESTIONS_KEEP
from aegis_tui.config import TUNABLE_SETTINGS, Config
from aegis_tui.storage.database import Database
from aegis_tui.training.example_log import read_examples

EXAMPLES = "hrm_training_data.msgpack"
DATABASE = "agent.sqlite3"
LOG = "aegis.log"
RL_CHECKPOINT = "checkpoints/hrm_rl.pt"
# Tables that hold what the agent learns: they grow with new knowledge, not with time.
LEARNING_TABLES = ("knowledge", "goals", "proposals")
FILE_SLACK_BYTES = 64 * 1024  # a file may move this much after warm-up (page reuse, fsync)


@dataclass(frozen=True, slots=True)
class SoakSettings:
    iterations: int = 20_000
    collect_threshold: int = 1000
    check_every: int = 100
    epochs: int = 5
    accuracy_gate: float = 0.5
    seed: int = 0
    sample_interval_s: float = 0.5
    warmup: int = 2000  # iterations after the HRM takes over before memory must be flat
    memory_tolerance_mb: float = 25.0
    log_max_bytes: int = 1_000_000
    log_backups: int = 2
    timeout_s: float = 3600.0

    @classmethod
    def for_iterations(cls, iterations: int, **overrides: Any) -> SoakSettings:
        """Thresholds scaled so every phase happens and a quarter of the run is after warm-up."""
        settings = cls(
            iterations=iterations,
            collect_threshold=max(200, min(1000, iterations // 6)),
            # Memory settles over ~1500 iterations after the HRM takes over (caches and
            # buffers filling: 354 -> 372 MB, then +1 MB per 1000 in a 20,000-iteration soak).
            warmup=max(300, min(2000, iterations // 4)),
            # About 150 bytes per iteration reach aegis.log: rotate a few times per run.
            log_max_bytes=max(10_000, min(5_000_000, iterations * 150 // 4)),
        )
        return _replace(settings, overrides)


def _replace(settings: SoakSettings, overrides: dict[str, Any]) -> SoakSettings:
    values = asdict(settings)
    values.update({k: v for k, v in overrides.items() if v is not None})
    return SoakSettings(**values)


@dataclass(slots=True)
class Sample:
    elapsed_s: float
    iteration: int
    phase: int
    hrm_active: bool
    rss_kb: int
    hwm_kb: int
    worker_rss_kb: int
    files: dict[str, int]


@dataclass(slots=True)
class SoakReport:
    settings: SoakSettings
    data_dir: str
    exit_code: int | None = None
    wall_s: float = 0.0
    iterations: int = 0
    phases_seen: list[int] = field(default_factory=list)
    rl_from_iteration: int | None = None
    warmup_iteration: int | None = None
    peak_rss_mb: float = 0.0
    peak_worker_rss_mb: float = 0.0
    rss_after_warmup_mb: float = 0.0
    rss_end_mb: float = 0.0
    rss_growth_mb: float = 0.0
    rss_slope_mb_per_1000: float = 0.0
    iterations_per_s: dict[str, float] = field(default_factory=dict)
    files_end: dict[str, int] = field(default_factory=dict)
    file_growth_per_1000: dict[str, float] = field(default_factory=dict)
    rows_warmup: dict[str, int] = field(default_factory=dict)
    rows_end: dict[str, int] = field(default_factory=dict)
    row_bounds: dict[str, int] = field(default_factory=dict)
    log_rotated: bool = False
    log_bytes_total: int = 0
    samples: int = 0
    failures: list[str] = field(default_factory=list)
    output_tail: str = ""

    @property
    def ok(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["ok"] = self.ok
        return out


# -- sampling --------------------------------------------------------------------------------
def _status_kb(pid: int) -> tuple[int, int]:
    """``(VmRSS, VmHWM)`` in KiB, or zeros once the process is gone."""
    rss = hwm = 0
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith("VmHWM:"):
                    hwm = int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return rss, hwm


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(x) for x in text.split()]


def _file_sizes(root: Path) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for path in root.rglob("*"):
        with contextlib.suppress(OSError):
            if path.is_file():
                sizes[path.relative_to(root).as_posix()] = path.stat().st_size
    return sizes


def _connect(root: Path) -> sqlite3.Connection | None:
    path = root / DATABASE
    if not path.exists():
        return None
    try:
        return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error:
        return None


def _progress(root: Path) -> tuple[int, int, bool]:
    """``(iteration, phase, HRM deciding)`` as the agent last committed them."""
    conn = _connect(root)
    if conn is None:
        return 0, 1, False
    try:
        meta = dict(conn.execute("SELECT key, value FROM meta WHERE key IN "
                                 "('agent_state', 'phase_state')").fetchall())
    except sqlite3.Error:
        return 0, 1, False
    finally:
        conn.close()
    try:
        state = json.loads(meta.get("agent_state", "{}"))
        phase = json.loads(meta.get("phase_state", "{}"))
    except ValueError:
        return 0, 1, False
    return (int(state.get("iteration", 0)), int(phase.get("phase", 1)),
            bool(phase.get("hrm_active", False)))


def table_rows(root: Path) -> dict[str, int]:
    """Rows per table (plus ``proposals:duplicate`` and ``questions:pending``)."""
    conn = _connect(root)
    if conn is None:
        return {}
    try:
        names = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'")]
        rows = {name: int(conn.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0])
                for name in names}
        if "proposals" in rows:
            rows["proposals:duplicate"] = int(conn.execute(
                "SELECT count(*) FROM proposals WHERE status='duplicate'").fetchone()[0])
        if "questions" in rows:
            rows["questions:pending"] = int(conn.execute(
                "SELECT count(*) FROM questions WHERE status='pending'").fetchone()[0])
        return rows
    except sqlite3.Error:
        return {}
    finally:
        conn.close()


def row_bounds(rows: dict[str, int], examples: int) -> dict[str, int]:
    """The most rows each bounded table may hold (see the module docstring)."""
    prune_every = 1000  # the loop prunes every 1000 iterations
    return {
        "metrics": METRICS_KEEP + prune_every,
        "rl_updates": 5001,
        "curiosity": TUNABLE_SETTINGS["max_curiosity"][1] + Database.MAX_INACTIVE_TOPICS,
        "questions": QUESTIONS_KEEP + prune_every + rows.get("questions:pending", 0),
        "proposals:duplicate": DUPLICATES_KEEP + prune_every,
        # One per training attempt; an automatic retry needs retrain_after more examples.
        "training_runs": 10 + examples // Config().retrain_after,
        "meta": 50,
    }


# -- the run ---------------------------------------------------------------------------------
def _command(settings: SoakSettings, data_dir: Path) -> list[str]:
    return [
        sys.executable, "-m", "aegis_tui", "run", "--headless", "--quiet",
        "--world", "sim", "--teacher", "rules", "--think-interval", "0",
        "--seed", str(settings.seed), "--iterations", str(settings.iterations),
        "--collect-threshold", str(settings.collect_threshold),
        "--check-every", str(settings.check_every), "--epochs", str(settings.epochs),
        "--accuracy-gate", str(settings.accuracy_gate), "--data-dir", str(data_dir),
    ]


def _write_config(settings: SoakSettings, data_dir: Path) -> Path:
    """Log limits small enough that the run rotates ``aegis.log`` (kept outside the data dir)."""
    handle, name = tempfile.mkstemp(prefix="aegis-soak-", suffix=".toml")
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        out.write(f"log_max_bytes = {settings.log_max_bytes}\n"
                  f"log_backups = {settings.log_backups}\n")
    return Path(name)


def run_soak(settings: SoakSettings, data_dir: Path | None = None, *,
             progress: Any = None) -> SoakReport:
    """Run the agent in a child process and judge what it did; never raises on a bad run."""
    root = (Path(data_dir) if data_dir is not None
            else Path(tempfile.mkdtemp(prefix="aegis-soak-")) / "data")
    root.mkdir(parents=True, exist_ok=True)
    report = SoakReport(settings=settings, data_dir=str(root))
    config = _write_config(settings, root)
    out_handle, out_name = tempfile.mkstemp(prefix="aegis-soak-", suffix=".out")
    samples: list[Sample] = []
    started = time.monotonic()
    command = [*_command(settings, root), "--config", str(config)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with os.fdopen(out_handle, "wb") as out:
        child = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, env=env)
        try:
            rows_at_warmup: dict[str, int] = {}
            while True:
                code = child.poll()
                sample = _sample(child.pid, root, started)
                if sample.rss_kb:
                    samples.append(sample)
                    if progress is not None:
                        progress(sample)
                if not rows_at_warmup and _past_warmup(samples, settings):
                    rows_at_warmup = table_rows(root)
                if code is not None:
                    break
                if time.monotonic() - started > settings.timeout_s:
                    child.send_signal(signal.SIGTERM)
                    try:
                        child.wait(60)
                    except subprocess.TimeoutExpired:
                        child.kill()
                    report.failures.append(f"the run took longer than {settings.timeout_s:g}s")
                    break
                time.sleep(settings.sample_interval_s)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
    report.exit_code = child.returncode
    report.wall_s = round(time.monotonic() - started, 1)
    text = Path(out_name).read_text(encoding="utf-8", errors="replace")
    report.output_tail = text[-4000:]
    for path in (Path(out_name), config):
        with contextlib.suppress(OSError):
            path.unlink()
    report.rows_warmup = rows_at_warmup
    report.rows_end = table_rows(root)
    report.row_bounds = row_bounds(report.rows_end, _examples(root))
    _judge(report, samples, root, settings)
    return report


def _sample(pid: int, root: Path, started: float) -> Sample:
    rss, hwm = _status_kb(pid)
    worker = sum(_status_kb(c)[0] for c in _children(pid))
    iteration, phase, hrm = _progress(root)
    return Sample(elapsed_s=round(time.monotonic() - started, 2), iteration=iteration,
                  phase=phase, hrm_active=hrm, rss_kb=rss, hwm_kb=hwm, worker_rss_kb=worker,
                  files=_file_sizes(root))


def _examples(root: Path) -> int:
    return read_examples(root / EXAMPLES).count


def _rl_start(samples: list[Sample]) -> int | None:
    return next((s.iteration for s in samples if s.phase == 3 and s.hrm_active), None)


def _warmup_end(samples: list[Sample], start: int, settings: SoakSettings) -> int:
    """``warmup`` iterations after the HRM took over at ``start``, and not before its RL
    checkpoint was first written: creating that file is not growth, and when the first
    write falls just after ``warmup`` depends on how soon the decisions' rewards settle."""
    written = next((s.iteration for s in samples
                    if s.iteration >= start and RL_CHECKPOINT in s.files), start)
    return max(start + settings.warmup, written)


def _past_warmup(samples: list[Sample], settings: SoakSettings) -> bool:
    start = _rl_start(samples)
    return start is not None and samples[-1].iteration >= _warmup_end(samples, start,
                                                                       settings)


def _slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of y over x (0 when x does not vary)."""
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    var = sum((x - mx) ** 2 for x in xs)
    if var == 0:
        return 0.0
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var


def _judge(report: SoakReport, samples: list[Sample], root: Path,
           settings: SoakSettings) -> None:
    """Fill in the figures from ``samples`` and list what failed (rows and bounds are read
    by the caller, after the run)."""
    fail = report.failures.append
    report.samples = len(samples)
    report.files_end = _file_sizes(root)
    if report.exit_code != 0:
        fail(f"the agent exited with code {report.exit_code}")
    if not samples:
        fail("no samples (the agent did not start)")
        return
    report.iterations = max(s.iteration for s in samples)
    report.phases_seen = sorted({s.phase for s in samples})
    report.peak_rss_mb = round(max(max(s.hwm_kb, s.rss_kb) for s in samples) / 1024, 1)
    report.peak_worker_rss_mb = round(max(s.worker_rss_kb for s in samples) / 1024, 1)
    _speed(report, samples)
    start = _rl_start(samples)
    report.rl_from_iteration = start
    if start is None:
        fail("the HRM never took over (Phase 3 was not reached), so nothing was soaked in it")
        return
    warm = _warmup_end(samples, start, settings)
    report.warmup_iteration = warm
    after = [s for s in samples if s.iteration >= warm]
    if len(after) < 8 or after[-1].iteration - after[0].iteration < settings.warmup // 2:
        fail(f"too little of the run after warm-up ({len(after)} samples from iteration "
             f"{warm}); run more iterations")
        return
    _memory(report, after, settings)
    _files(report, after, settings)
    _tables(report)


def _speed(report: SoakReport, samples: list[Sample]) -> None:
    """Iterations per second in each phase (a slowdown over time would show here)."""
    by_phase: dict[str, list[Sample]] = {}
    for s in samples:
        key = f"phase {s.phase}" + (" (HRM)" if s.phase == 3 and s.hrm_active else "")
        by_phase.setdefault(key, []).append(s)
    for key, group in by_phase.items():
        span = group[-1].elapsed_s - group[0].elapsed_s
        if span > 0:
            report.iterations_per_s[key] = round(
                (group[-1].iteration - group[0].iteration) / span, 1)


def _memory(report: SoakReport, after: list[Sample], settings: SoakSettings) -> None:
    quarter = max(2, len(after) // 4)
    first = statistics.median(s.rss_kb for s in after[:quarter]) / 1024
    last = statistics.median(s.rss_kb for s in after[-quarter:]) / 1024
    report.rss_after_warmup_mb = round(first, 1)
    report.rss_end_mb = round(last, 1)
    report.rss_growth_mb = round(last - first, 1)
    report.rss_slope_mb_per_1000 = round(1000 * _slope(
        [(s.iteration, s.rss_kb / 1024) for s in after]), 2)
    if last - first > settings.memory_tolerance_mb:
        report.failures.append(
            f"memory grew by {last - first:.1f} MB after warm-up ({first:.1f} -> {last:.1f} MB, "
            f"tolerance {settings.memory_tolerance_mb:g} MB)")


def _files(report: SoakReport, after: list[Sample], settings: SoakSettings) -> None:
    fail = report.failures.append
    begin, end = after[0], after[-1]
    span = max(1, end.iteration - begin.iteration)
    for name in sorted(set(begin.files) | set(end.files)):
        grew = end.files.get(name, 0) - begin.files.get(name, 0)
        report.file_growth_per_1000[name] = round(1000 * grew / span, 1)
    logs = {k: v for k, v in report.files_end.items()
            if k == LOG or k.startswith(LOG + ".")}
    report.log_rotated = any(k != LOG for k in logs)
    report.log_bytes_total = sum(logs.values())
    log_bound = settings.log_max_bytes * (settings.log_backups + 1) + FILE_SLACK_BYTES
    if report.log_bytes_total > log_bound:
        fail(f"aegis.log and its backups hold {report.log_bytes_total:,} bytes, over "
             f"{log_bound:,}")
    quarantined = [k for k in report.files_end if k.startswith("quarantine/")]
    if quarantined:
        fail(f"files were quarantined during the run: {', '.join(quarantined)}")
    for name in sorted(set(begin.files) | set(end.files)):
        if name in (EXAMPLES, DATABASE) or name in logs:
            continue  # the example log and the database are judged by their content
        if name.startswith("quarantine/") or name.endswith(".tmp"):
            continue
        grew = end.files.get(name, 0) - begin.files.get(name, 0)
        if grew > FILE_SLACK_BYTES:
            fail(f"{name} grew by {grew:,} bytes after warm-up")


def _tables(report: SoakReport) -> None:
    for table, bound in report.row_bounds.items():
        rows = report.rows_end.get(table)
        if rows is not None and rows > bound:
            report.failures.append(f"table {table} holds {rows:,} rows, over its bound "
                                   f"{bound:,}")
    known = set(report.row_bounds) | set(LEARNING_TABLES)
    for table in report.rows_end:
        if ":" not in table and table not in known:
            report.failures.append(f"table {table} has no known bound")


# -- output ----------------------------------------------------------------------------------
def format_report(report: SoakReport) -> str:
    s = report.settings
    lines = [
        "=" * 60, "AEGIS SOAK", "=" * 60,
        f"Run:             {report.iterations:,} of {s.iterations:,} iterations in "
        f"{report.wall_s:.0f}s (exit code {report.exit_code}); phases seen "
        f"{report.phases_seen}; HRM from iteration {report.rl_from_iteration}",
        "Speed:           " + ", ".join(f"{k} {v:,.0f} it/s"
                                         for k, v in report.iterations_per_s.items()),
        f"Memory:          peak {report.peak_rss_mb:.1f} MB (agent), "
        f"{report.peak_worker_rss_mb:.1f} MB (training child)",
        f"After warm-up:   {report.rss_after_warmup_mb:.1f} MB at iteration "
        f"{report.warmup_iteration} -> {report.rss_end_mb:.1f} MB at the end "
        f"({report.rss_growth_mb:+.1f} MB, slope {report.rss_slope_mb_per_1000:+.2f} MB per "
        "1000 iterations)",
        f"Log:             aegis.log {'rotated' if report.log_rotated else 'did NOT rotate'}; "
        f"{report.log_bytes_total:,} bytes with its backups",
        "Disk (bytes at the end, growth per 1000 iterations after warm-up):",
    ]
    for name, size in sorted(report.files_end.items()):
        growth = report.file_growth_per_1000.get(name, 0.0)
        lines.append(f"  {name:<34} {size:>12,}  {growth:>+12,.0f}")
    lines.append(f"  {'total':<34} {sum(report.files_end.values()):>12,}")
    lines.append("Tables (rows at warm-up -> end; bound):")
    for table, rows in sorted(report.rows_end.items()):
        bound = report.row_bounds.get(table)
        kind = f"bound {bound:,}" if bound is not None else (
            "grows with learning" if table in LEARNING_TABLES else "")
        before = report.rows_warmup.get(table)
        lines.append(f"  {table:<22} {before if before is not None else '-':>8} -> "
                     f"{rows:>8,}  {kind}")
    lines.append("Verdict:         " + ("OK" if report.ok else "FAILED"))
    lines += [f"  - {f}" for f in report.failures]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m aegis_tui.bench.soak",
        description="Run the headless agent for many iterations through all phases and check "
                    "that memory and disk stay bounded.")
    parser.add_argument("--iterations", type=int, default=20_000)
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="where the agent runs (default: a fresh temporary directory, "
                             "removed afterwards)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--collect-threshold", type=int, default=None)
    parser.add_argument("--warmup", type=int, default=None,
                        help="iterations after the HRM takes over before memory must be flat")
    parser.add_argument("--memory-tolerance-mb", type=float, default=None)
    parser.add_argument("--sample-interval", type=float, default=None, dest="sample_interval_s")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.iterations < 1000:
        print("soak: --iterations must be at least 1000 to reach every phase", file=sys.stderr)
        return 2
    settings = SoakSettings.for_iterations(
        args.iterations, seed=args.seed, collect_threshold=args.collect_threshold,
        warmup=args.warmup, memory_tolerance_mb=args.memory_tolerance_mb,
        sample_interval_s=args.sample_interval_s)
    last = [0.0]

    def progress(sample: Sample) -> None:
        if args.quiet or args.json or sample.elapsed_s - last[0] < 10:
            return
        last[0] = sample.elapsed_s
        print(f"soak: {sample.elapsed_s:6.0f}s iteration {sample.iteration:>7,} phase "
              f"{sample.phase} rss {sample.rss_kb / 1024:6.1f} MB", file=sys.stderr)

    report = run_soak(settings, args.data_dir, progress=progress)
    if args.data_dir is None:
        shutil.rmtree(Path(report.data_dir).parent, ignore_errors=True)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(format_report(report))
        if not report.ok:
            print("\nlast output of the agent:\n" + report.output_tail[-2000:])
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
