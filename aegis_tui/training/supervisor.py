"""The parent side of Phase 2: start the training worker, watch it, turn it into events.

``TrainingSupervisor`` runs ``python -m aegis_tui.training.worker`` with stdin closed,
stdout a pipe (the JSON-lines protocol, see ``worker.py``) and stderr appended to
``training_worker.log``. A reader thread parses the pipe into a queue; ``poll()`` (called
by the agent every iteration, never blocking) turns records into ``TrainingProgress`` and
``Notice`` events and ends every run with exactly one ``TrainingFinished``.

Every way a run can go wrong ends as ``TrainingFinished(ok=False, message=...)``: an error
record, a crash (non-zero exit; the message quotes the last line of the worker log), a
signal, a hang past ``training_timeout_s`` (killed), an exit 0 without a "done" record,
garbage on the pipe (a protocol error: killed), a final model that does not load.

The final model is never trusted on the worker's word: the worker writes it to a
candidate file (``hrm_trained.candidate.pt``); only after a clean "done", exit 0 and a
successful ``load_checkpoint`` does the supervisor move it over ``hrm_trained.pt``
(``os.replace``, atomic). A failed run deletes the candidate and leaves any earlier
``hrm_trained.pt`` untouched.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from aegis_tui.config import Config
from aegis_tui.events import Event, Notice, TrainingFinished, TrainingProgress
from aegis_tui.knobs import merge
from aegis_tui.paths import DataPaths
from aegis_tui.policy.checkpoints import CheckpointError, load_checkpoint
from aegis_tui.storage.atomic import fsync_dir
from aegis_tui.text import clean

CANDIDATE_NAME = "hrm_trained.candidate.pt"
MAX_LINE_BYTES = 64 * 1024
MAX_WORKER_LOG_BYTES = 2 * 1024 * 1024
_EOF = object()


@dataclass(slots=True)
class _Run:
    process: subprocess.Popen[bytes]
    reader: threading.Thread
    records: queue.Queue[Any]
    started: float
    examples: int
    forced: bool
    candidate: Path
    done: dict[str, Any] | None = None
    error: str | None = None
    eof: bool = False
    exited_at: float | None = None


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _last_log_line(path: Path) -> str:
    """The last non-empty line of the worker log (what it said before it died)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 8192))
            tail = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    for line in reversed(tail.splitlines()):
        if line.strip() and not line.startswith("==="):
            return clean(line, 200)
    return ""


def _remove_worker_temps(checkpoints: Path) -> None:
    """Delete temp files a killed worker left (only its own: the agent may be writing
    ``hrm_rl.pt`` through a temp file in the same folder at the same time)."""
    for pattern in (".hrm_epoch_*.tmp", f".{CANDIDATE_NAME}.*.tmp"):
        for tmp in checkpoints.glob(pattern):
            with contextlib.suppress(OSError):
                tmp.unlink()


def _read_records(stream: IO[bytes], out: queue.Queue[Any]) -> None:
    """Reader thread: one parsed record (dict) or ("garbage", text) per line, then _EOF."""
    try:
        while True:
            line = stream.readline(MAX_LINE_BYTES + 1)
            if not line:
                break
            if len(line) > MAX_LINE_BYTES:
                out.put(("garbage", "a line longer than 64 KiB"))
                break
            text = line.decode("utf-8", errors="replace").strip()
            if not text:
                continue
            try:
                record = json.loads(text)
            except ValueError:
                out.put(("garbage", clean(text, 80)))
                continue
            if not isinstance(record, dict) or record.get("type") not in (
                "start", "epoch", "checkpoint", "done", "error"
            ):
                out.put(("garbage", clean(text, 80)))
                continue
            out.put(record)
    except (OSError, ValueError):
        pass
    finally:
        out.put(_EOF)


def _num(record: dict[str, Any], key: str, default: float = 0.0) -> float:
    value = record.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return default
    return float(value)


class TrainingSupervisor:
    """Runs at most one training worker at a time; see the module docstring."""

    def __init__(self, paths: DataPaths, config: Config, *,
                 settings: dict[str, Any] | None = None,
                 python: str | None = None, env: dict[str, str] | None = None) -> None:
        """``settings``: extra ``ImitationSettings`` fields (e.g. a smaller model in tests)."""
        self.paths = paths
        self.config = config
        self.python = python or sys.executable
        self.extra_settings = dict(settings or {})
        self.extra_env = dict(env or {})
        self._run: _Run | None = None
        self._pending: list[Event] = []
        self.runs = 0

    @property
    def running(self) -> bool:
        return self._run is not None

    @property
    def pid(self) -> int | None:
        return self._run.process.pid if self._run is not None else None

    def _settings_json(self) -> str:
        # The [imitation] table whole (the worker gets every knob), plus a test's or the
        # bench's extras on top; a bad extra is a one-line ConfigError here, not in the child.
        settings = merge(self.config.imitation, self.extra_settings, "imitation.",
                         internal=True)
        return json.dumps(settings.to_dict())

    def _open_log(self) -> IO[bytes]:
        log = self.paths.worker_log
        log.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):
            if log.stat().st_size > MAX_WORKER_LOG_BYTES:
                os.replace(log, log.with_name(log.name + ".1"))
        handle = open(log, "ab")  # noqa: SIM115 - handed to the child, closed after spawn
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        handle.write(f"=== training run started {stamp} ===\n".encode())
        handle.flush()
        return handle

    def start(self, *, end_offset: int, examples: int, forced: bool) -> None:
        """Spawn the worker on the first ``end_offset`` bytes of the example log.

        Raises ``RuntimeError`` when a run is already going.
        """
        if self._run is not None:
            raise RuntimeError("training is already running")
        self.paths.ensure()
        _remove_worker_temps(self.paths.checkpoints)
        candidate = self.paths.checkpoints / CANDIDATE_NAME
        with contextlib.suppress(FileNotFoundError):
            candidate.unlink()
        cmd = [
            self.python, "-m", "aegis_tui.training.worker",
            "--data-dir", str(self.paths.root),
            "--end-offset", str(int(end_offset)),
            "--settings", self._settings_json(),
            "--seed", str(self.config.seed),
            "--output", str(candidate),
            "--parent-pid", str(os.getpid()),
        ]
        env = {**os.environ, **self.extra_env}
        env.setdefault("PYTHONIOENCODING", "utf-8")
        log = self._open_log()
        try:
            process = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log,
                env=env, close_fds=True, start_new_session=True,
            )
        except OSError as exc:
            log.close()
            self._finish(ok=False, val=None, message=f"could not start the training worker: "
                                                     f"{exc.strerror or exc}")
            return
        log.close()
        assert process.stdout is not None
        records: queue.Queue[Any] = queue.Queue()
        reader = threading.Thread(target=_read_records, args=(process.stdout, records),
                                  name="aegis-training-reader", daemon=True)
        reader.start()
        self._run = _Run(process=process, reader=reader, records=records,
                         started=time.monotonic(), examples=examples, forced=forced,
                         candidate=candidate)
        self.runs += 1

    def poll(self) -> list[Event]:
        """Events since the last call; never blocks. The last one of a run is TrainingFinished."""
        events, self._pending = self._pending, []
        run = self._run
        if run is None:
            return events
        while True:
            try:
                item = run.records.get_nowait()
            except queue.Empty:
                break
            if item is _EOF:
                run.eof = True
                break
            if isinstance(item, tuple):
                self._kill(run)
                self._fail(run, f"training worker broke the protocol (sent {item[1]!r}); "
                                "it was stopped")
                return events + self._drain_pending()
            events.extend(self._on_record(run, item))
        code = run.process.poll()
        if code is None:
            elapsed = time.monotonic() - run.started
            if elapsed > self.config.training_timeout_s:
                self._kill(run)
                self._fail(run, f"training timed out after {elapsed:.0f}s "
                                f"(training_timeout_s = {self.config.training_timeout_s:g}); "
                                "the worker was killed")
                return events + self._drain_pending()
            return events
        if not run.eof:
            # Exited, but the reader may still hold its last lines: wait for them (a
            # grandchild holding the pipe open must not stall the run forever, though).
            if run.exited_at is None:
                run.exited_at = time.monotonic()
            if time.monotonic() - run.exited_at < 2.0:
                return events
        self._settle(run, code)
        return events + self._drain_pending()

    def _drain_pending(self) -> list[Event]:
        events, self._pending = self._pending, []
        return events

    def _on_record(self, run: _Run, record: dict[str, Any]) -> list[Event]:
        kind = record["type"]
        if kind == "start":
            return [Notice(
                f"HRM training started: {int(_num(record, 'train_size'))} training and "
                f"{int(_num(record, 'val_size'))} validation examples, "
                f"{int(_num(record, 'parameters')):,} parameters"
            )]
        if kind == "epoch":
            return [TrainingProgress(
                epoch=int(_num(record, "epoch")), epochs=int(_num(record, "epochs")),
                loss=_num(record, "loss"), train_accuracy=_num(record, "train_accuracy"),
                val_accuracy=_num(record, "val_accuracy"),
                elapsed_s=_num(record, "elapsed_s"),
            )]
        if kind == "checkpoint":
            name = Path(str(record.get("path", ""))).name
            return [Notice(f"checkpoint saved: {clean(name, 80)}")]
        if kind == "done":
            run.done = record
        elif kind == "error":
            run.error = clean(record.get("message", "unknown error"), 300)
        return []

    def _settle(self, run: _Run, code: int) -> None:
        if run.error is not None:
            self._fail(run, f"training failed: {run.error}")
        elif code < 0:
            self._fail(run, f"training worker was killed by {_signal_name(-code)}")
        elif code != 0:
            last = _last_log_line(self.paths.worker_log)
            self._fail(run, f"training worker crashed (exit code {code})"
                            + (f": {last}" if last else ""))
        elif run.done is None:
            self._fail(run, "training worker exited without finishing (no 'done' record)")
        else:
            self._promote(run)

    def _promote(self, run: _Run) -> None:
        try:
            loaded = load_checkpoint(run.candidate)
        except CheckpointError as exc:
            self._fail(run, f"trained model is unusable: {exc}")
            return
        target = self.paths.trained_checkpoint
        try:
            os.replace(run.candidate, target)
            fsync_dir(target.parent)
        except OSError as exc:
            self._fail(run, f"cannot install the trained model: {exc.strerror or exc}")
            return
        val = loaded.meta.get("val_accuracy", run.done.get("val_accuracy") if run.done else None)
        val = float(val) if isinstance(val, int | float) and not isinstance(val, bool) else None
        epoch = loaded.meta.get("epoch")
        gate = self.config.accuracy_gate
        passed = val is not None and val >= gate
        acc = f"{val:.1%}" if val is not None else "unknown"
        verdict = "passed" if passed else "did not pass"
        meta = loaded.meta
        self._finish(ok=True, val=val, passed=passed,
                     message=f"HRM trained: validation accuracy {acc} (best epoch {epoch}) "
                             f"{verdict} the {gate:.0%} gate",
                     baseline=_fraction(meta.get("baseline_accuracy")),
                     probe=_fraction(meta.get("probe_accuracy")),
                     decisiveness=_fraction(meta.get("teacher_decisiveness")))
        self._run = None

    def _fail(self, run: _Run, message: str) -> None:
        with contextlib.suppress(FileNotFoundError, OSError):
            run.candidate.unlink()
        _remove_worker_temps(self.paths.checkpoints)
        self._finish(ok=False, val=None, message=message)
        self._run = None

    def _finish(self, *, ok: bool, val: float | None, message: str, passed: bool = False,
                baseline: float | None = None, probe: float | None = None,
                decisiveness: float | None = None) -> None:
        self._pending.append(TrainingFinished(
            ok=ok, val_accuracy=val, passed_gate=ok and passed, message=message,
            baseline_accuracy=baseline, probe_accuracy=probe,
            teacher_decisiveness=decisiveness))

    def _kill(self, run: _Run, grace_s: float = 0.5) -> None:
        """SIGTERM, then SIGKILL after ``grace_s``; reaps the child and the reader."""
        process = run.process
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError, OSError):
                process.terminate()
            try:
                process.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, OSError):
                    process.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=2.0)
        run.reader.join(timeout=0.5)
        if process.stdout is not None:
            with contextlib.suppress(OSError):
                process.stdout.close()

    def cancel(self) -> None:
        """Stop a running worker; the next ``poll()`` returns its TrainingFinished."""
        run = self._run
        if run is None:
            return
        self._kill(run)
        self._fail(run, "training cancelled")

    def close(self) -> None:
        """Cancel and reap (about 1 s at most)."""
        self.cancel()


def _fraction(value: object) -> float | None:
    """A number in [0, 1] from checkpoint metadata, else None."""
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= 1:
        return float(value)
    return None
