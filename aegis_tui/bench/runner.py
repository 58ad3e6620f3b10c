"""``aegis-tui bench``: measure speed and learning on this machine, as a table and as JSON.

Every figure is measured here, now: medians (and p95 where asked) over repeats, on the
sim world, offline. Targets are printed beside the figures with whether they were met,
including where they were not. ``--quick`` runs fewer repeats and shorter learning runs
for a smoke test; its figures are not the ones to report.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aegis_tui.bench import long_run, teachers
from aegis_tui.bench.learning_speed import (
    hrm_parameter_count,
    measure_hrm_decide_ms,
    measure_rl_update_ms,
    measure_train_seconds,
)
from aegis_tui.bench.pipeline import run_agent, run_phase3
from aegis_tui.bench.synthetic_states import synthetic_examples
from aegis_tui.bench.teacher_threads import measure_teacher_threads
from aegis_tui.config import ImitationSettings
from aegis_tui.policy.devices import DeviceUnavailable, resolve_device
from aegis_tui.policy.lm_teacher import LMTeacher
from aegis_tui.policy.local_lm import build_local_gpt2
from aegis_tui.policy.rules_teacher import RulesTeacher
from aegis_tui.policy.torch_threads import limit_agent_threads, wanted_threads
from aegis_tui.training.example_log import read_examples
from aegis_tui.training.imitation import train_imitation
from aegis_tui.ui.latency_probe import measure_key_latency

SECTIONS = ("train", "decide", "rl", "sim", "teachers", "long_run", "ui", "threads")
# What a plain ``aegis-tui bench`` runs; ``threads`` (minutes, a training child) on request.
DEFAULT_SECTIONS = ("train", "decide", "rl", "sim", "teachers", "long_run", "ui")

TARGETS = {
    "train_seconds": ("<=", 15.0),
    "hrm_speedup_over_teacher": (">=", 50.0),
    "rl_update_ms_p50": ("<=", 5.0),
    "imitation_val_accuracy": (">=", 0.95),
    "ui_key_latency_ms_p95": ("<", 50.0),
}


def _log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def machine() -> dict[str, Any]:
    import torch

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
    }


def _collect_examples(workdir: Path, n: int) -> list[Any]:
    paths = run_agent(workdir / "collect", 42, RulesTeacher(42), n,
                      collect_threshold=10_000_000)
    return read_examples(paths.examples).examples[:n]


def bench_train(workdir: Path, quick: bool, out: dict[str, Any]) -> None:
    examples = _collect_examples(workdir, 1000)
    runs = measure_train_seconds(examples, 1 if quick else 3, workdir / "train")
    out["train_seconds"] = statistics.median(runs)
    out["train_seconds_runs"] = runs
    out["train_examples"] = len(examples)
    _log(f"train_seconds {out['train_seconds']:.1f} (runs {', '.join(f'{r:.1f}' for r in runs)})")


def _time_decisions(policy: Any, states: list[Any], n: int) -> list[float]:
    for state in states[:3]:
        policy.decide(state)  # warm-up
    times = []
    for state in states[:n]:
        start = time.perf_counter()
        policy.decide(state)
        times.append((time.perf_counter() - start) * 1e3)
    return times


def bench_decide(workdir: Path, quick: bool, out: dict[str, Any]) -> None:
    import torch

    device = out.get("device", "cpu")
    hrm_threads = torch.get_num_threads()
    hrm = measure_hrm_decide_ms(100 if quick else 500)
    out["hrm_decide_ms_p50"] = statistics.median(hrm)
    out["hrm_decide_ms_p95"] = percentile(hrm, 0.95)
    out["hrm_parameters"] = hrm_parameter_count()
    folder = build_local_gpt2(workdir / "gpt2-sized", size="gpt2", seed=0)
    teacher = LMTeacher.load(str(folder), timeout_s=600, seed=0, device=device)
    try:
        states = [ex.state for ex in synthetic_examples(40, seed=5)]
        # The agent's process runs an LM teacher on this many threads (policy/torch_threads).
        torch.set_num_threads(wanted_threads(teacher=True))
        out["teacher_torch_threads"] = torch.get_num_threads()
        out["teacher_device"] = teacher.placement.label
        times = _time_decisions(teacher, states, 8 if quick else 30)
        out["teacher_decide_ms_p50"] = statistics.median(times)
        out["teacher_decide_ms_p95"] = percentile(times, 0.95)
        out["teacher_parameters"] = teacher.parameter_count
        if teacher.device == "cpu":
            # For transparency: one thread, and every core.
            for key, threads in (("teacher_decide_ms_p50_one_thread", 1),
                                 ("teacher_decide_ms_p50_all_cores", os.cpu_count() or 1)):
                torch.set_num_threads(threads)
                out[key] = statistics.median(
                    _time_decisions(teacher, states, 5 if quick else 15))
    finally:
        torch.set_num_threads(hrm_threads)
        teacher.close()
    out["hrm_speedup_over_teacher"] = out["teacher_decide_ms_p50"] / out["hrm_decide_ms_p50"]
    _log(f"decide: HRM {out['hrm_decide_ms_p50']:.2f} ms, GPT-2-sized teacher "
         f"{out['teacher_decide_ms_p50']:.0f} ms on {out['teacher_device']} "
         f"({out['hrm_speedup_over_teacher']:.0f}x)")


def bench_threads(workdir: Path, quick: bool, out: dict[str, Any]) -> None:
    """The teacher at 1..N threads, alone and beside a training child (README, Threads)."""
    result = measure_teacher_threads(workdir, decisions=5 if quick else 15,
                                     device=out.get("device", "cpu"))
    out["teacher_threads"] = result
    for n, idle, busy in zip(result["threads"], result["idle_ms_p50"],
                             result["training_ms_p50"], strict=True):
        _log(f"teacher on {n} thread(s): {idle:.0f} ms alone, {busy:.0f} ms beside training")


def bench_rl(workdir: Path, quick: bool, out: dict[str, Any]) -> None:
    runs = measure_rl_update_ms(50 if quick else 300)
    out["rl_update_ms_p50"] = statistics.median(runs)
    out["rl_update_ms_p95"] = percentile(runs, 0.95)
    _log(f"rl_update_ms p50 {out['rl_update_ms_p50']:.2f}")


def bench_sim(workdir: Path, quick: bool, out: dict[str, Any]) -> None:
    """Iterations per second of the whole Phase 3 loop (HRM deciding, RL updating)."""
    examples = _collect_examples(workdir, 600)
    result = train_imitation(examples, ImitationSettings(epochs=5, checkpoint_every=5),
                             checkpoint_dir=workdir / "sim-ckpt", seed=0)
    assert result is not None
    iterations = 500 if quick else 2000
    rates = []
    for r in range(1 if quick else 3):
        start = time.perf_counter()
        run_phase3(workdir / f"sim-rl-{r}", 77 + r, workdir / "sim-ckpt" / "hrm_trained.pt",
                   iterations)
        rates.append(iterations / (time.perf_counter() - start))
    out["sim_iterations_per_s"] = statistics.median(rates)
    _log(f"sim_iterations_per_s {out['sim_iterations_per_s']:.0f} (HRM deciding, Phase 3)")


def bench_teachers(workdir: Path, quick: bool, out: dict[str, Any]) -> None:
    summary = teachers.run_teachers(workdir, teachers.quick_settings() if quick else None,
                                    extra_model=out.get("teacher_model"), log=_log)
    out["teachers"] = summary
    rules = next(r for r in summary["rows"] if r["teacher"] == "rules")
    out["imitation_val_accuracy"] = rules["imitation_val_accuracy"]


def bench_long_run(workdir: Path, quick: bool, out: dict[str, Any]) -> None:
    out["long_run"] = long_run.run_long(workdir, long_run.quick_settings() if quick else None,
                                        log=_log)


def bench_ui(workdir: Path, quick: bool, out: dict[str, Any]) -> None:
    runs = measure_key_latency(20 if quick else 60, workdir / "ui")
    out["ui_key_latency_ms_p50"] = statistics.median(runs)
    out["ui_key_latency_ms_p95"] = percentile(runs, 0.95)
    _log(f"ui_key_latency_ms p50 {out['ui_key_latency_ms_p50']:.1f}, "
         f"p95 {out['ui_key_latency_ms_p95']:.1f}")


_RUNNERS: dict[str, Callable[[Path, bool, dict[str, Any]], None]] = {
    "train": bench_train, "decide": bench_decide, "rl": bench_rl, "sim": bench_sim,
    "teachers": bench_teachers, "long_run": bench_long_run, "ui": bench_ui,
    "threads": bench_threads,
}


def verdicts(results: dict[str, Any]) -> dict[str, bool]:
    out = {}
    for key, (op, target) in TARGETS.items():
        value = results.get(key)
        if isinstance(value, int | float):
            out[key] = {"<=": value <= target, ">=": value >= target, "<": value < target}[op]
    return out


_ROWS = (
    ("train_seconds", "Phase 2: 1000 examples x 20 epochs (s)", "{:.1f}"),
    ("hrm_decide_ms_p50", "HRM decide p50 (ms)", "{:.2f}"),
    ("hrm_decide_ms_p95", "HRM decide p95 (ms)", "{:.2f}"),
    ("teacher_decide_ms_p50", "GPT-2-sized teacher decide p50 (ms)", "{:.0f}"),
    ("teacher_decide_ms_p50_one_thread", "  the same on one torch thread (ms)", "{:.0f}"),
    ("teacher_decide_ms_p50_all_cores", "  the same with torch on every core (ms)", "{:.0f}"),
    ("hrm_speedup_over_teacher", "HRM speed-up over the teacher (x)", "{:.0f}"),
    ("hrm_parameters", "HRM parameters", "{:,}"),
    ("teacher_parameters", "teacher parameters", "{:,}"),
    ("rl_update_ms_p50", "RL update every 10 decisions (minibatch 32), p50 (ms)", "{:.2f}"),
    ("sim_iterations_per_s", "sim iterations/s, HRM deciding", "{:.0f}"),
    ("imitation_val_accuracy", "imitation val accuracy vs rules teacher", "{:.1%}"),
    ("ui_key_latency_ms_p50", "UI key latency p50 (ms)", "{:.1f}"),
    ("ui_key_latency_ms_p95", "UI key latency p95 (ms)", "{:.1f}"),
)


def format_table(results: dict[str, Any]) -> str:
    checks = verdicts(results)
    lines = ["| figure | value | target |", "| --- | --- | --- |"]
    for key, label, fmt in _ROWS:
        if key not in results or results[key] is None:
            continue
        target = ""
        if key in TARGETS:
            op, goal = TARGETS[key]
            target = f"{op} {goal:g} " + ("(met)" if checks.get(key) else "(MISSED)")
        lines.append(f"| {label} | {fmt.format(results[key])} | {target} |")
    if results.get("teacher_device"):
        lines.append(f"| teacher ran on | {results['teacher_device']}, "
                     f"{results.get('teacher_torch_threads')} torch thread(s) |  |")
    threads = results.get("teacher_threads")
    if threads:
        for n, idle, busy in zip(threads["threads"], threads["idle_ms_p50"],
                                 threads["training_ms_p50"], strict=True):
            lines.append(f"| teacher decide p50, {n} thread(s): alone / beside training (ms) | "
                         f"{idle:.0f} / {busy:.0f} |  |")
    m = results.get("machine", {})
    lines.append("")
    lines.append(f"Machine: {m.get('cpu_count')} CPU cores ({m.get('processor')}), "
                 f"{m.get('platform')}, Python {m.get('python')}, torch {m.get('torch')}.")
    return "\n".join(lines)


def run_bench(*, json_only: bool = False, quick: bool = False, only: str | None = None,
              device: str = "cpu", teacher_model: str | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the bench never downloads anything
    wanted = DEFAULT_SECTIONS if not only else tuple(
        s.strip() for s in only.split(",") if s.strip())
    unknown = [s for s in wanted if s not in SECTIONS]
    if unknown:
        print(f"aegis-tui: error: unknown bench section(s) {', '.join(unknown)}; choose from "
              f"{', '.join(SECTIONS)}", file=sys.stderr)
        return 2

    if "decide" in wanted or "threads" in wanted:
        try:
            resolve_device(device)
        except DeviceUnavailable as exc:
            print(f"aegis-tui: error: --device {device}: {exc}", file=sys.stderr)
            return 2
    # Measure what the agent experiences: the HRM on one thread, an LM teacher on the count
    # policy/torch_threads.py picks; the training child picks its own.
    limit_agent_threads()
    results: dict[str, Any] = {"machine": machine(), "quick": quick, "device": device,
                               "teacher_model": teacher_model}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="aegis-bench-") as tmp:
        for section in wanted:
            _log(f"running {section}...")
            _RUNNERS[section](Path(tmp) / section, quick, results)
    results["bench_seconds"] = time.perf_counter() - started
    results["targets_met"] = verdicts(results)
    if json_only:
        print(json.dumps(results, indent=2, default=str))
    else:
        print(format_table(results))
        print()
        print(json.dumps(results, indent=2, default=str))
    return 0
