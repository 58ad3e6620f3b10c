"""The ``aegis-tui`` command line: the dashboard, the headless runner, and the tools around them.

``aegis-tui`` opens the dashboard; ``run --headless`` runs the same agent printing log lines;
``status``, ``training``, ``answer``, ``review``, ``export`` and ``train`` work on a data
directory whether or not an agent is running on it; ``doctor`` checks the setup; ``bench``
measures. Heavy imports
(torch, transformers, Textual) happen inside the commands that need them, so ``--help`` and
``status`` start fast.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from aegis_tui import __version__
from aegis_tui.config import (
    DEVICES,
    SAFESEARCH,
    TEACHERS,
    WORLDS,
    Config,
    ConfigError,
    apply_overrides,
    load_file,
    parse_assignment,
    to_toml,
)
from aegis_tui.exit_codes import EXIT_FAIL, EXIT_OK, EXIT_USAGE
from aegis_tui.knobs import lookup, parse_text, value_at
from aegis_tui.paths import DataPaths


# -- argument types (argparse turns their ValueErrors into "invalid ... value" errors) ------
def _int_at_least(low: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value

    return parse


def _setting(key: str) -> Callable[[str], Any]:
    """The argparse type of a flag that sets ``key``: the key's own declaration checks it."""
    spec, kind = lookup(Config, key)

    def parse(text: str) -> Any:
        try:
            return parse_text(key, spec, kind, text)
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(str(exc).removeprefix(f"{key}: ")) from None

    return parse


_DEFAULTS = Config()


def _default(key: str) -> str:
    """``(default: X)`` for a flag's help, from the key's declaration."""
    return f"(default: {value_at(_DEFAULTS, key)})"


class _Options:
    """Adds shared options; on a subcommand their default is SUPPRESS, so a value given
    before the subcommand (``aegis-tui --data-dir D status``) is not overwritten by it."""

    def __init__(self, parser: argparse.ArgumentParser, sub: bool) -> None:
        self.parser = parser
        self.sub = sub

    def add_argument(self, *names: str, **kwargs: Any) -> None:
        if self.sub and kwargs.get("action") not in ("store_true",):
            kwargs["default"] = argparse.SUPPRESS
        self.parser.add_argument(*names, **kwargs)


def _add_data_dir(parser: argparse.ArgumentParser, sub: bool = True) -> None:
    p = _Options(parser, sub)
    p.add_argument("--data-dir", metavar="DIR",
                   help="data directory (default: $AEGIS_HOME or the platform's user data dir)")
    p.add_argument("--config", metavar="FILE", type=Path,
                   help="TOML config file (default: config.toml in the data directory, if any)")


def _add_run_options(parser: argparse.ArgumentParser, sub: bool = True) -> None:
    _add_data_dir(parser, sub)
    p = _Options(parser, sub)
    p.add_argument("--world", choices=WORLDS, help="where searches go (default: auto)")
    p.add_argument("--teacher", choices=TEACHERS, help="who decides in Phase 1 (default: auto)")
    p.add_argument("--teacher-model", metavar="ID_OR_PATH",
                   help="Hugging Face causal LM id or local folder (default: gpt2)")
    p.add_argument("--teacher-temperature", type=_setting("teacher_temperature"), metavar="T",
                   help="the LM teacher's sampling temperature, in units of its own score "
                        f"spread {_default('teacher_temperature')}")
    p.add_argument("--seed", type=_setting("seed"), help=f"random seed {_default('seed')}")
    p.add_argument("--think-interval", type=_setting("think_interval"), metavar="S",
                   help=f"seconds to sleep between iterations {_default('think_interval')}")
    p.add_argument("--collect-threshold", type=_setting("collect_threshold"), metavar="N",
                   help="examples that trigger imitation training "
                        f"{_default('collect_threshold')}")
    p.add_argument("--check-every", type=_setting("check_every"), metavar="N",
                   help=f"iterations between threshold checks {_default('check_every')}")
    p.add_argument("--epochs", type=_setting("imitation.epochs"), metavar="N",
                   help=f"imitation epochs {_default('imitation.epochs')}")
    p.add_argument("--accuracy-gate", type=_setting("accuracy_gate"), metavar="F",
                   help="validation accuracy the HRM needs to take over "
                        f"{_default('accuracy_gate')}")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="any setting, e.g. rl.clip=0.1 or imitation.model.d_model=128 "
                        "(repeatable; `aegis-tui config` lists them all)")
    p.add_argument("--iterations", type=_int_at_least(1), metavar="N",
                   help="stop after N iterations (default: run until stopped)")
    p.add_argument("--tensorboard", metavar="DIR", type=Path,
                   help="log reward, action shares, training and RL losses to TensorBoard "
                        "event files in DIR (needs pip install 'aegis-tui[tensorboard]')")


# `export`: the tables come from aegis_tui/training/export_tables.py (TABLES).
EXPORT_FORMATS = ("json", "csv", "jsonl", "tensorboard")
EXPORT_TABLES = ("metrics", "epochs", "rl")

# Flags whose setting lives in a table.
_FLAG_KEYS = {"epochs": "imitation.epochs"}
_RUN_KEYS: tuple[str, ...] = ("world", "teacher", "teacher_model", "teacher_temperature", "seed",
             "think_interval", "collect_threshold", "check_every", "epochs", "accuracy_gate")


def _add_hardware_and_web_options(parser: argparse.ArgumentParser, sub: bool = True) -> None:
    """Where the teacher runs, which revision, and how the live web is searched."""
    p = _Options(parser, sub)
    p.add_argument("--device", choices=DEVICES,
                   help="where the LM teacher runs: auto (CUDA, else MPS, else CPU), cpu, "
                        "cuda or mps (default: auto)")
    p.add_argument("--teacher-revision", metavar="REV",
                   help="branch, tag or commit of a hub teacher model (default: main)")
    p.add_argument("--no-chat-template", dest="teacher_chat_template", action="store_const",
                   const=False, help="score the plain prompt even when the model has a chat "
                                     "template")
    p.add_argument("--torch-threads", type=_setting("torch_threads"), metavar="N",
                   help="torch threads in the agent's process (default: $AEGIS_TORCH_THREADS,"
                        " else one less than the cores, at most 4, with an LM teacher)")
    p.add_argument("--search-backend", metavar="NAMES",
                   help="ddgs backends for --world live, comma-separated (default: auto)")
    p.add_argument("--region", metavar="CC-LL", help="search region, e.g. us-en, de-de, wt-wt "
                                                     "(default: us-en)")
    p.add_argument("--safesearch", choices=SAFESEARCH, help="(default: moderate)")
    p.add_argument("--proxy", metavar="URL",
                   help="proxy for web search (default: $DDGS_PROXY, else $HTTPS_PROXY)")


# The hardware and web settings the CLI can set, kept apart from the run options above.
_RUN_KEYS += ("device", "teacher_revision", "teacher_chat_template", "torch_threads",
              "search_backend", "region", "safesearch", "proxy")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aegis-tui",
        description="AEGIS: an autonomous agent that distils a teacher LM into a small "
                    "Hierarchical Reasoning Model and improves it by RL, with a dashboard.",
    )
    parser.add_argument("--version", action="version", version=f"aegis-tui {__version__}")
    _add_run_options(parser, sub=False)
    _add_hardware_and_web_options(parser, sub=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="run the agent (the dashboard, or --headless)")
    _add_run_options(run)
    _add_hardware_and_web_options(run)
    run.add_argument("--headless", action="store_true",
                     help="no dashboard: print log lines and a final report")
    run.add_argument("--quiet", action="store_true",
                     help="with --headless: don't print a line per iteration")

    for name, text in (("status", "the status overview"), ("training", "the training report")):
        p = sub.add_parser(name, help=f"print {text}")
        _add_data_dir(p)
        p.add_argument("--json", action="store_true", help="machine-readable output")

    answer = sub.add_parser("answer", help="list and answer the agent's pending questions")
    _add_data_dir(answer)
    answer.add_argument("question_id", nargs="?", type=_int_at_least(1), metavar="ID")
    answer.add_argument("text", nargs="?", help="the answer (prompted for when omitted)")
    answer.add_argument("--list", action="store_true", help="only list pending questions")

    review = sub.add_parser("review", help="list, approve or reject pending proposals")
    _add_data_dir(review)
    review.add_argument("proposal_id", nargs="?", type=_int_at_least(1), metavar="ID")
    review.add_argument("verdict", nargs="?", choices=("approve", "reject"))
    review.add_argument("--list", action="store_true", help="only list pending proposals")

    export = sub.add_parser(
        "export", help="export the training examples, or a run's metrics as CSV, JSON Lines "
                       "or TensorBoard files",
        description="json: the training examples in the hrm_training_data.json shape. "
                    "csv, jsonl: one table, chosen with --table (columns in the README). "
                    "tensorboard: every table as event files in the directory DIR.")
    _add_data_dir(export)
    export.add_argument("--format", choices=EXPORT_FORMATS, default="json",
                        help="json (default), csv, jsonl or tensorboard")
    export.add_argument("--table", choices=EXPORT_TABLES,
                        help="for csv and jsonl: metrics (one row per iteration; the default), "
                             "epochs (imitation training, one row per epoch) or rl (one row "
                             "per RL update)")
    export.add_argument("--output", "-o", metavar="FILE",
                        help="write here instead of standard output (for tensorboard: the "
                             "directory)")
    export.add_argument("directory", nargs="?", metavar="DIR", type=Path,
                        help="for --format tensorboard: the (new or empty) directory to write")

    config = sub.add_parser("config", help="print the settings in effect as a config.toml "
                                           "(every key, with its help)")
    _add_run_options(config)
    _add_hardware_and_web_options(config)
    config.add_argument("--defaults", action="store_true",
                        help="the built-in defaults, ignoring config files and flags")

    train = sub.add_parser("train", help="force imitation training now")
    _add_data_dir(train)
    for name, text in (("adopt", "let the trained HRM decide whatever its accuracy (RL "
                                 "takes over)"),
                       ("keep-teacher", "keep the teacher deciding; no training starts on "
                                        "its own")):
        _add_data_dir(sub.add_parser(name, help=text))

    doctor = sub.add_parser("doctor", help="check Python, torch, the teacher model, the web and "
                                           "the data directory; exit 1 if something is broken")
    _add_run_options(doctor)

    bench = sub.add_parser("bench", help="measure speed and learning (see README)")
    bench.add_argument("--json", action="store_true", help="print JSON only")
    bench.add_argument("--quick", action="store_true",
                       help="fewer repeats and seeds (a smoke run, not the reported figures)")
    bench.add_argument("--only", metavar="NAMES",
                       help="comma-separated subset: train,decide,rl,sim,teachers,long_run,ui,"
                            "threads")
    bench.add_argument("--device", choices=DEVICES, default="cpu",
                       help="where the teacher runs for the decide section (default: cpu)")
    bench.add_argument("--teacher-model", metavar="ID_OR_PATH",
                       help="also measure this LM as a teacher in the teachers section")

    fetch = sub.add_parser("fetch-model", help="download a teacher model ahead of a run")
    _add_data_dir(fetch)
    fetch.add_argument("model", nargs="?", metavar="ID",
                       help="Hugging Face model id (default: the configured teacher_model)")
    fetch.add_argument("--revision", metavar="REV",
                       help="branch, tag or commit (default: the configured teacher_revision, "
                            "else main)")
    return parser


def load_config(args: argparse.Namespace, paths: DataPaths) -> Config:
    config = Config()
    cfg_path: Path | None = getattr(args, "config", None)
    if cfg_path is not None:
        config = load_file(cfg_path, config)
    elif paths.config.exists():
        config = load_file(paths.config, config)
    overrides = {_FLAG_KEYS.get(k, k): getattr(args, k) for k in _RUN_KEYS
                 if getattr(args, k, None) is not None}
    for item in getattr(args, "set", None) or ():
        key, value = parse_assignment(item)
        overrides[key] = value
    return apply_overrides(config, overrides)


def _err(message: str) -> None:
    print(f"aegis-tui: error: {message}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    command = args.command or "dashboard"
    if command == "bench":
        from aegis_tui.bench.runner import run_bench

        return run_bench(json_only=args.json, quick=args.quick, only=args.only,
                         device=args.device, teacher_model=args.teacher_model)
    paths = DataPaths.resolve(getattr(args, "data_dir", None))
    try:
        config = load_config(args, paths)
    except ConfigError as exc:
        _err(str(exc))
        return EXIT_USAGE
    handlers: dict[str, Callable[[argparse.Namespace, DataPaths, Config], int]] = {
        "dashboard": cmd_dashboard, "run": cmd_run, "status": cmd_status,
        "training": cmd_training, "answer": cmd_answer, "review": cmd_review,
        "export": cmd_export, "train": cmd_train, "fetch-model": cmd_fetch_model,
        "doctor": cmd_doctor, "adopt": cmd_choice, "keep-teacher": cmd_choice,
        "config": cmd_config,
    }
    problem = _tensorboard_problem(getattr(args, "tensorboard", None))
    if problem and command in ("dashboard", "run"):
        _err(problem)
        return EXIT_USAGE
    try:
        return handlers[command](args, paths, config)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # Output piped into `head` and closed early: not an error worth a traceback.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK


# -- running ---------------------------------------------------------------------------------
# The headless runner prints events as they are published (a bus listener) and never drains
# the bus: a few events of look-back are plenty, where the default (for the dashboard, which
# drains it ten times a second) would keep 20,000 of them, tens of MB, for nothing.
HEADLESS_BUS_EVENTS = 64


def _open_runtime(paths: DataPaths, config: Config, bus: Any = None) -> Any:
    from aegis_tui.agent.open_errors import OPEN_ERRORS, open_failure
    from aegis_tui.agent.runtime import AgentRuntime

    try:
        return AgentRuntime.open(config, paths, bus=bus)
    except OPEN_ERRORS as exc:
        reason, code = open_failure(exc, config, paths)
        _err(reason)
        raise SystemExit(code) from None


def _tensorboard_problem(directory: Path | None) -> str:
    """Why ``--tensorboard DIR`` cannot work (the extra, the directory), or ""."""
    if directory is None:
        return ""
    from aegis_tui.agent.tensorboard_log import TensorBoardMissing, require_tensorboard

    try:
        require_tensorboard("--tensorboard")
        directory.mkdir(parents=True, exist_ok=True)
    except TensorBoardMissing as exc:
        return str(exc)
    except OSError as exc:
        return f"--tensorboard: cannot use {directory}: {exc.strerror or exc}"
    if not os.access(directory, os.W_OK):
        return f"--tensorboard: {directory} is not writable"
    return ""


def cmd_dashboard(args: argparse.Namespace, paths: DataPaths, config: Config) -> int:
    if getattr(args, "headless", False):
        return cmd_run(args, paths, config)
    from aegis_tui.ui.launch import run_dashboard

    return run_dashboard(config, paths, iterations=getattr(args, "iterations", None),
                         tensorboard=getattr(args, "tensorboard", None))


def cmd_run(args: argparse.Namespace, paths: DataPaths, config: Config) -> int:
    if not args.headless:
        return cmd_dashboard(args, paths, config)
    from aegis_tui.agent import reports
    from aegis_tui.agent.event_log import add_console_log, remove_handler
    from aegis_tui.events import EventBus

    console = add_console_log(verbose_iterations=not args.quiet)
    try:
        runtime = _open_runtime(paths, config, EventBus(maxlen=HEADLESS_BUS_EVENTS))
    except SystemExit as exc:
        remove_handler(console)
        return int(exc.code or EXIT_FAIL)
    agent = runtime.agent
    tensorboard = None
    if getattr(args, "tensorboard", None) is not None:
        from aegis_tui.agent.tensorboard_log import TensorBoardLog

        tensorboard = TensorBoardLog(args.tensorboard, paths)
        runtime.bus.subscribe(tensorboard)
    interrupts = 0

    def on_signal(signum: int, frame: object) -> None:
        nonlocal interrupts
        interrupts += 1
        if interrupts > 1:
            raise KeyboardInterrupt
        print("\nstopping (press Ctrl-C again to force)...", file=sys.stderr)
        agent.stop()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        summary = agent.run(max_iterations=getattr(args, "iterations", None))
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        runtime.close()
        if tensorboard is not None:
            tensorboard.close()
        remove_handler(console)
    src = reports.gather(paths, config)
    try:
        print(reports.format_status(reports.status_data(src)))
        print(reports.format_training(reports.training_data(src)))
    finally:
        reports.close(src)
    if summary.stopped_by == "error":
        _err(summary.message)
        return EXIT_FAIL
    return EXIT_OK


# -- reports ---------------------------------------------------------------------------------
def _report(paths: DataPaths, config: Config, as_json: bool, kind: str) -> int:
    from aegis_tui.agent import reports

    if not paths.root.exists():
        _err(f"no data directory at {paths.root} (run the agent first, or pass --data-dir)")
        return EXIT_FAIL
    src = reports.gather(paths, config)
    try:
        data = reports.status_data(src) if kind == "status" else reports.training_data(src)
        if as_json:
            print(json.dumps(data, indent=2, default=str))
        else:
            print(reports.format_status(data) if kind == "status"
                  else reports.format_training(data))
    finally:
        reports.close(src)
    return EXIT_OK


def cmd_status(args: argparse.Namespace, paths: DataPaths, config: Config) -> int:
    return _report(paths, config, args.json, "status")


def cmd_training(args: argparse.Namespace, paths: DataPaths, config: Config) -> int:
    return _report(paths, config, args.json, "training")


# -- people ----------------------------------------------------------------------------------
def _open_db(paths: DataPaths) -> Any:
    from aegis_tui.storage.database import Database, DatabaseError

    if not paths.database.exists():
        _err(f"no agent database in {paths.root} (run the agent first, or pass --data-dir)")
        raise SystemExit(EXIT_FAIL)
    try:
        return Database(paths.database)
    except DatabaseError as exc:
        _err(str(exc))
        raise SystemExit(EXIT_FAIL) from None


def _interactive() -> bool:
    return sys.stdin.isatty()


def cmd_answer(args: argparse.Namespace, paths: DataPaths, config: Config) -> int:
    from aegis_tui.agent.questions import AnswerRefused
    from aegis_tui.agent.resolutions import (
        ResolutionError,
        answer_or_keep,
        hold_question,
        release_question,
    )
    from aegis_tui.storage.records import LATE, PENDING
    from aegis_tui.text import clean

    late_note = "it had expired, so the answer is kept as knowledge (no reward)"
    db = _open_db(paths)
    try:
        if args.question_id is not None and args.text is not None:
            try:
                status, stored = answer_or_keep(db, args.question_id, args.text)
            except (AnswerRefused, ResolutionError) as exc:
                _err(str(exc))
                return EXIT_USAGE
            if status == LATE:
                print(f"question #{args.question_id}: {late_note}")
                return EXIT_OK
            print(f"answered question #{args.question_id} ({len(stored)} characters); "
                  "the agent credits it on its next iteration")
            return EXIT_OK
        pending = db.questions(PENDING)
        if args.question_id is not None:
            pending = [q for q in pending if q.id == args.question_id]
            if not pending:
                _err(f"question #{args.question_id} is not pending")
                return EXIT_USAGE
        if not pending:
            print("no pending questions")
            return EXIT_OK
        for q in pending:
            print(f"#{q.id} (iteration {q.iteration}): {clean(q.text, 300)}")
        if args.list or not _interactive():
            return EXIT_OK
        answered = 0
        for q in pending:
            # Being asked here, it does not expire while the person types (real time).
            hold_question(db, q.id, config.question_expiry_s)
            try:
                while True:
                    try:
                        text = input(f"answer #{q.id} (empty to skip): ")
                    except EOFError:
                        print()
                        return EXIT_OK
                    if not text.strip():
                        break
                    try:
                        status, _ = answer_or_keep(db, q.id, text)
                    except AnswerRefused as exc:
                        print(f"  refused: {exc}; try again")
                        continue
                    except ResolutionError as exc:
                        print(f"  {exc}")
                        break
                    if status == LATE:
                        print(f"  {late_note}")
                    answered += 1
                    break
            finally:
                release_question(db, q.id)
        print(f"answered {answered} question(s)")
        return EXIT_OK
    finally:
        db.close()


def cmd_review(args: argparse.Namespace, paths: DataPaths, config: Config) -> int:
    from aegis_tui.agent.resolutions import ResolutionError, review_proposal
    from aegis_tui.storage.records import PENDING
    from aegis_tui.text import clean

    db = _open_db(paths)
    try:
        if args.proposal_id is not None and args.verdict is not None:
            try:
                status = review_proposal(db, args.proposal_id, args.verdict == "approve")
            except ResolutionError as exc:
                _err(str(exc))
                return EXIT_USAGE
            print(f"proposal #{args.proposal_id} {status}; the agent applies it on its next "
                  "iteration")
            return EXIT_OK
        pending = db.proposals(PENDING)
        if not pending:
            print("no pending proposals")
            return EXIT_OK
        for p in pending:
            print(f"#{p.id} [{p.kind}] (iteration {p.iteration}): {clean(p.text, 300)}")
        if args.list or not _interactive():
            return EXIT_OK
        for p in pending:
            try:
                choice = input(f"#{p.id}: [a]pprove, [r]eject, [l]ater? ").strip().lower()
            except EOFError:
                print()
                return EXIT_OK
            if choice[:1] not in ("a", "r"):
                continue
            try:
                status = review_proposal(db, p.id, choice.startswith("a"))
                print(f"  {status}")
            except ResolutionError as exc:
                print(f"  {exc}")
        return EXIT_OK
    finally:
        db.close()


# -- data ------------------------------------------------------------------------------------
def _export_usage(args: argparse.Namespace) -> str:
    """What is wrong with the combination of export options, or ""."""
    fmt, directory = args.format, args.directory
    if args.table is not None and fmt not in ("csv", "jsonl"):
        return (f"--table is for --format csv or jsonl (--format {fmt} exports "
                + ("the training examples)" if fmt == "json" else "every table)"))
    if fmt == "tensorboard":
        if directory is not None and args.output and Path(args.output) != directory:
            return "give the directory once: as DIR or as -o DIR"
        if directory is None and not args.output:
            return "--format tensorboard needs a directory: aegis-tui export --format " \
                   "tensorboard DIR"
    elif directory is not None:
        return f"DIR is for --format tensorboard; write {fmt} to a file with -o FILE"
    return ""


def _export_table(args: argparse.Namespace, paths: DataPaths) -> int:
    """``--format csv|jsonl``: one table to standard output or ``-o FILE``."""
    from aegis_tui.storage.atomic import atomic_write_bytes
    from aegis_tui.training.export_tables import ExportError, read_table, to_csv, to_jsonl

    table = args.table or "metrics"
    try:
        rows = read_table(paths, table)
    except ExportError as exc:
        _err(str(exc))
        return EXIT_FAIL
    text = to_csv(table, rows) if args.format == "csv" else to_jsonl(rows)
    if not args.output:
        sys.stdout.write(text)
        return EXIT_OK
    try:
        atomic_write_bytes(Path(args.output), text.encode())
    except OSError as exc:
        _err(f"cannot write {args.output}: {exc.strerror or exc}")
        return EXIT_FAIL
    print(f"wrote {len(rows)} {table} rows to {args.output}", file=sys.stderr)
    return EXIT_OK


def _export_tensorboard(args: argparse.Namespace, paths: DataPaths) -> int:
    from aegis_tui.agent.tensorboard_log import (
        TensorBoardMissing,
        export_tensorboard,
        require_tensorboard,
    )
    from aegis_tui.training.export_tables import ExportError

    directory = args.directory or Path(args.output)
    try:
        require_tensorboard("--format tensorboard")
        count = export_tensorboard(paths, directory)
    except TensorBoardMissing as exc:
        _err(str(exc))
        return EXIT_USAGE
    except ExportError as exc:
        _err(str(exc))
        return EXIT_FAIL
    except OSError as exc:
        _err(f"cannot write {directory}: {exc.strerror or exc}")
        return EXIT_FAIL
    print(f"wrote {count} scalars to {directory} (tensorboard --logdir {directory})",
          file=sys.stderr)
    return EXIT_OK


def cmd_export(args: argparse.Namespace, paths: DataPaths, config: Config) -> int:
    problem = _export_usage(args)
    if problem:
        _err(problem)
        return EXIT_USAGE
    if args.format in ("csv", "jsonl"):
        return _export_table(args, paths)
    if args.format == "tensorboard":
        return _export_tensorboard(args, paths)
    from aegis_tui.training.example_log import ExampleLogError
    from aegis_tui.training.export import export_json

    try:
        document = export_json(paths)
    except (OSError, ValueError, ExampleLogError) as exc:
        _err(str(exc))
        return EXIT_FAIL
    for warning in document["metadata"]["warnings"]:
        print(f"aegis-tui: warning: {warning}", file=sys.stderr)
    text = json.dumps(document, indent=2)
    if args.output:
        from aegis_tui.storage.atomic import atomic_write_bytes

        # A file the user asked for gets the permissions their umask gives new files.
        atomic_write_bytes(Path(args.output), text.encode(), private=False)
        print(f"wrote {document['metadata']['total_examples']} examples to {args.output}",
              file=sys.stderr)
    else:
        print(text)
    return EXIT_OK


def cmd_config(args: argparse.Namespace, paths: DataPaths, config: Config) -> int:
    print(to_toml(Config() if args.defaults else config), end="")
    return EXIT_OK


def cmd_choice(args: argparse.Namespace, paths: DataPaths, config: Config) -> int:
    from aegis_tui.agent.choice_cli import request_choice

    return request_choice(paths, "adopt" if args.command == "adopt" else "keep_teacher")


def cmd_train(args: argparse.Namespace, paths: DataPaths, config: Config) -> int:
    from aegis_tui.agent.training_cli import force_training

    return force_training(paths, config)


# -- models ----------------------------------------------------------------------------------
def cmd_fetch_model(args: argparse.Namespace, paths: DataPaths, config: Config) -> int:
    """Download a teacher model into the Hugging Face cache, with a progress bar."""
    from aegis_tui.agent.fetch_cli import fetch_model

    model = (args.model or config.teacher_model).strip()
    revision = config.teacher_revision if args.revision is None else args.revision.strip()
    try:
        revision = apply_overrides(config, {"teacher_revision": revision}).teacher_revision
    except ConfigError as exc:
        _err(str(exc).replace("teacher_revision", "--revision", 1))
        return EXIT_USAGE
    return fetch_model(model, revision=revision, stall_timeout_s=config.download_stall_timeout_s)


def cmd_doctor(args: argparse.Namespace, paths: DataPaths, config: Config) -> int:
    from aegis_tui.agent.doctor import FAIL, format_checks, run_checks

    checks = run_checks(config, paths)
    print(format_checks(checks))
    return EXIT_FAIL if any(c.status == FAIL for c in checks) else EXIT_OK
