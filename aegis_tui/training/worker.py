"""The training subprocess: ``python -m aegis_tui.training.worker --data-dir D --end-offset N``.

It reads the example log up to ``--end-offset`` bytes (the agent keeps appending; the
offset it passes is the end of a whole record, so the worker never sees a half-written
one), trains the HRM by imitation, writes checkpoints atomically and reports progress as
JSON lines on stdout, one object per line:

- ``{"type": "start", "examples", "skipped", "train_size", "val_size", "epochs",
  "parameters", "threads", "pid"}``
- ``{"type": "epoch", "epoch", "epochs", "loss", "train_accuracy", "val_accuracy",
  "val_action_accuracy", "elapsed_s"}``
- ``{"type": "checkpoint", "path", "epoch"}``
- ``{"type": "done", "path", "val_accuracy", "val_action_accuracy", "best_epoch",
  "train_accuracy", "elapsed_s"}``
- ``{"type": "error", "message"}``: one line a person can act on; exit code non-zero.

If the parent dies, the worker notices within 0.1 s (a watchdog thread) and exits. stdout carries
nothing else: at start the worker keeps a private copy of the stdout pipe
for the protocol and points file descriptor 1 at stderr, so a stray ``print`` or a
library's output lands in ``training_worker.log`` (the parent sends stderr there) instead
of corrupting the protocol. Exit codes: 0 done, 1 unexpected failure, 2 bad input
(arguments, too few examples, an unreadable log).

``AEGIS_WORKER_FAULT`` is for tests only: ``crash`` (exit 3 after "start"), ``hang``
(sleep forever after "start"), ``garbage`` (a non-JSON line), ``exit0`` (exit 0 without
"done"), ``kill`` (SIGKILL itself), ``slow`` (sleep 0.2 s per epoch), ``corrupt`` (damage
the final model file, then report "done" as if all were well).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any, TextIO

from aegis_tui.config import ImitationSettings
from aegis_tui.paths import DataPaths
from aegis_tui.training.example_log import ExampleLogError, read_examples
from aegis_tui.training.imitation import ImitationError, stratified_split, train_imitation
from aegis_tui.training.threads import ThreadGovernor, default_max_threads

FAULT_ENV = "AEGIS_WORKER_FAULT"
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
RECORD_TYPES = ("start", "epoch", "checkpoint", "done", "error")


class _Protocol:
    """Writes one JSON object per line to the private copy of the original stdout."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def send(self, kind: str, **fields: Any) -> None:
        record = {"type": kind, **{k: _finite(v) for k, v in fields.items()}}
        self.stream.write(json.dumps(record, separators=(",", ":")) + "\n")
        self.stream.flush()

    def raw(self, line: str) -> None:
        self.stream.write(line + "\n")
        self.stream.flush()


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _take_stdout() -> _Protocol:
    """Keep fd 1 for the protocol only; everything else written to stdout goes to stderr."""
    sys.stdout.flush()
    proto_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return _Protocol(os.fdopen(proto_fd, "w", encoding="utf-8", buffering=1))


def _log(message: str) -> None:
    sys.stderr.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n")
    sys.stderr.flush()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m aegis_tui.training.worker",
                                     description="Train the HRM on the logged examples.")
    parser.add_argument("--data-dir", required=True, type=Path)
    parser.add_argument("--end-offset", required=True, type=int,
                        help="read the example log up to this many bytes")
    parser.add_argument("--settings", default="{}",
                        help="ImitationSettings as JSON (missing keys take defaults)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=None,
                        help="where the final model goes (default: checkpoints/hrm_trained.pt)")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads; 0 = adapt to the cores other processes leave free")
    parser.add_argument("--parent-pid", type=int, default=0,
                        help="stop when this process is no longer the parent (default: the "
                             "parent at start)")
    return parser


class _BadInput(Exception):
    pass


def _fault(name: str) -> bool:
    return os.environ.get(FAULT_ENV, "") == name


def _inject_after_start(proto: _Protocol) -> None:
    if _fault("crash"):
        _log("fault injected: simulated crash")
        os._exit(3)
    if _fault("hang"):
        _log("fault injected: hanging")
        while True:
            time.sleep(60)
    if _fault("garbage"):
        proto.raw("this is not a protocol record {")
    if _fault("exit0"):
        _log("fault injected: exiting early with status 0")
        os._exit(0)
    if _fault("kill"):
        os.kill(os.getpid(), signal.SIGKILL)


def _watch_parent(parent: int, interval_s: float = 0.1) -> threading.Thread:
    """Exit as soon as the agent that started this worker is gone.

    ``on_step`` only runs between training steps; reading the log, featurizing and saving
    take seconds without one, and an orphan of a killed agent must not go on writing
    checkpoints next to the worker its restarted agent starts in the same folder.
    """

    def watch() -> None:
        while True:
            time.sleep(interval_s)
            if os.getppid() != parent:
                _log("the parent process is gone; stopping")
                os._exit(EXIT_FAILED)

    thread = threading.Thread(target=watch, name="aegis-parent-watch", daemon=True)
    thread.start()
    return thread


def run(args: argparse.Namespace, proto: _Protocol) -> int:
    parent = args.parent_pid or _PARENT_AT_START
    _watch_parent(parent)
    if args.end_offset < 0:
        raise _BadInput(f"end offset must be >= 0, got {args.end_offset}")
    try:
        settings = ImitationSettings.from_dict(json.loads(args.settings))
    except (ValueError, TypeError) as exc:
        raise _BadInput(f"bad training settings: {exc}") from None
    paths = DataPaths.resolve(args.data_dir)
    if not paths.root.is_dir():
        raise _BadInput(f"data directory {paths.root} does not exist")
    try:
        scan = read_examples(paths.examples, args.end_offset)
    except (ExampleLogError, OSError) as exc:
        raise _BadInput(f"cannot read {paths.examples.name}: {exc}") from None
    examples = scan.examples
    for warning in scan.warnings:
        _log(f"warning: {warning}")
    if len(examples) < settings.min_examples:
        raise _BadInput(
            f"too few examples to train: {len(examples)} in {paths.examples.name} "
            f"(need at least {settings.min_examples})"
        )

    import torch

    from aegis_tui.policy.hrm import HRM

    if args.threads > 0:
        torch.set_num_threads(args.threads)
        governor = None
    else:
        governor = ThreadGovernor(default_max_threads(), torch.set_num_threads)
    train_idx, val_idx = stratified_split([ex.label for ex in examples],
                                          settings.val_fraction, args.seed)
    parameters = HRM(settings.model).parameter_count()  # ~40 ms; meta would cost ~1 s
    proto.send("start", examples=len(examples), skipped=scan.skipped,
               train_size=len(train_idx), val_size=len(val_idx), epochs=settings.epochs,
               parameters=parameters, threads=torch.get_num_threads(), pid=os.getpid())
    _log(f"training on {len(examples)} examples ({len(train_idx)} train, {len(val_idx)} "
         f"validation), {settings.epochs} epochs, {parameters} parameters")
    _inject_after_start(proto)

    def on_epoch(report: Any) -> None:
        proto.send("epoch", epoch=report.epoch, epochs=report.epochs, loss=report.loss,
                   train_accuracy=report.train_accuracy, val_accuracy=report.val_accuracy,
                   val_action_accuracy=report.val_action_accuracy,
                   elapsed_s=report.elapsed_s)
        _log(f"epoch {report.epoch}/{report.epochs} loss {report.loss:.4f} train "
             f"{report.train_accuracy:.3f} val {report.val_accuracy:.3f} "
             f"({report.elapsed_s:.1f}s, {torch.get_num_threads()} threads)")
        if _fault("slow"):
            time.sleep(0.2)

    def on_checkpoint(path: Path, epoch: int) -> None:
        proto.send("checkpoint", path=str(path), epoch=epoch)

    def on_step() -> None:
        if governor is not None:
            governor.update()
        if os.getppid() != parent:  # the agent died (kill -9): nobody wants the result
            _log("the parent process is gone; stopping")
            os._exit(EXIT_FAILED)

    try:
        result = train_imitation(
            examples, settings, checkpoint_dir=paths.checkpoints, seed=args.seed,
            output=args.output or paths.trained_checkpoint, on_epoch=on_epoch,
            on_checkpoint=on_checkpoint, on_step=on_step,
        )
    except ImitationError as exc:
        raise _BadInput(str(exc)) from None
    if _fault("corrupt") and result.trained_path is not None:
        result.trained_path.write_bytes(b"not a checkpoint")
    proto.send("done", path=str(result.trained_path), val_accuracy=result.val_accuracy,
               val_action_accuracy=result.val_action_accuracy,
               best_epoch=result.best_epoch, train_accuracy=result.train_accuracy,
               elapsed_s=result.elapsed_s)
    _log(f"done: best epoch {result.best_epoch}, validation accuracy "
         f"{result.val_accuracy:.3f}, wrote {result.trained_path}")
    return EXIT_OK


_PARENT_AT_START = os.getppid()


def main(argv: list[str] | None = None) -> int:
    proto = _take_stdout()
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse already printed help or the reason to stderr
        if not exc.code:
            return EXIT_OK
        proto.send("error", message="bad worker arguments (see training_worker.log)")
        return EXIT_BAD_INPUT
    try:
        return run(args, proto)
    except _BadInput as exc:
        _log(f"error: {exc}")
        proto.send("error", message=str(exc))
        return EXIT_BAD_INPUT
    except Exception as exc:
        traceback.print_exc(file=sys.stderr)
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        message = f"training failed: {type(exc).__name__}: {first}".rstrip(": ")
        _log(f"error: {message}")
        proto.send("error", message=message)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
