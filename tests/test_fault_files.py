"""Corrupt or foreign files in the data directory, met by the real agent and the CLI.

Each damaged file gets a clear one-line error or a recovery with a warning (the damaged
original kept in ``quarantine/``), never a traceback, and good data is never dropped
silently: checkpoints that hold garbage or pickled code in a Phase 3 directory, a damaged
``agent.sqlite3``, a damaged, truncated, foreign or newer example log, and bad config files.
The unit tests of each module check the readers; these check what a user running
``aegis-tui`` sees.
"""

from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path

import msgpack
import pytest

from aegis_tui.agent.phases import PHASE_META_KEY, PhaseState
from aegis_tui.cli import main
from aegis_tui.events import Event, IterationDone, Notice
from aegis_tui.training.example_log import read_examples
from tests.fakes import make_runtime
from tests.headless import cli_in_process, integrity, one_line_error

RUN = ["run", "--headless", "--quiet", "--world", "sim", "--teacher", "rules",
       "--think-interval", "0", "--collect-threshold", "100000"]


_cli = cli_in_process
_one_line_error = one_line_error


@pytest.fixture(scope="module")
def collected_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir after 60 headless sim iterations (copied per test)."""
    d = tmp_path_factory.mktemp("template") / "data"
    assert main([*RUN, "--iterations", "60", "--data-dir", str(d)]) == 0
    return d


@pytest.fixture
def collected(collected_template: Path, tmp_path: Path,
              capsys: pytest.CaptureFixture[str]) -> Path:
    capsys.readouterr()
    d = tmp_path / "data"
    shutil.copytree(collected_template, d)
    return d


# -- checkpoints in a Phase 3 directory ----------------------------------------------------
class _Evil:
    """Pickled code: loading this with a plain ``torch.load`` would create the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


def _phase3_dir(data_dir: Path) -> None:
    """Phase 3 with a small imitation model, as if training had just passed the gate."""
    from aegis_tui.policy.checkpoints import save_checkpoint
    from aegis_tui.policy.hrm import HRMConfig, build_model

    with make_runtime(data_dir) as rt:
        rt.agent.run(max_iterations=20)
        rt.agent.db.set_meta(PHASE_META_KEY, PhaseState(
            phase=3, hrm_active=True, passed_gate=True, last_val_accuracy=0.9,
            training_attempts=1).to_meta())
    model = build_model(HRMConfig(d_model=32, n_heads=2, expansion=2.0), seed=0)
    save_checkpoint(data_dir / "checkpoints" / "hrm_trained.pt", model,
                    meta={"epoch": 1, "val_accuracy": 0.9})


def _spoil(path: Path, how: str, marker: Path) -> None:
    import torch

    from aegis_tui.policy.checkpoints import FORMAT, load_checkpoint

    if how == "garbage":
        path.write_bytes(os.urandom(3000))
    elif how == "truncated":
        shutil.copyfile(path.with_name("hrm_trained.pt"), path)
        data = path.read_bytes()
        path.write_bytes(data[:len(data) // 2])
    elif how == "pickled code":
        good = load_checkpoint(path.with_name("hrm_trained.pt"))
        payload = {"format": FORMAT, "format_version": 1,
                   "model_config": good.config.to_dict(), "state_dict": good.state_dict,
                   "meta": {"note": _Evil(marker)}, "optimizer_state": None, "extra": {}}
        buffer = io.BytesIO()
        torch.save(payload, buffer)
        path.write_bytes(buffer.getvalue())


def _run_agent(data_dir: Path, iterations: int) -> tuple[list[Event], str]:
    with make_runtime(data_dir) as rt:
        events: list[Event] = []
        rt.bus.subscribe(events.append)
        summary = rt.agent.run(max_iterations=iterations)
        assert summary.stopped_by == "limit" and summary.iterations == iterations
    return events, (data_dir / "aegis.log").read_text()


@pytest.mark.parametrize("how", ["garbage", "truncated", "pickled code"])
def test_a_bad_rl_checkpoint_falls_back_to_the_imitation_model(data_dir: Path, how: str) -> None:
    from aegis_tui.policy.checkpoints import load_checkpoint

    _phase3_dir(data_dir)
    marker = data_dir.parent / "pwned"
    rl = data_dir / "checkpoints" / "hrm_rl.pt"
    _spoil(rl, how, marker)
    events, log = _run_agent(data_dir, 30)
    notices = [e for e in events if isinstance(e, Notice)]
    warning = next(n.message for n in notices if "hrm_rl.pt could not be used" in n.message)
    assert warning.endswith("starting from hrm_trained.pt") and "\n" not in warning
    if how == "pickled code":
        assert "pickled code" in warning
    assert not marker.exists(), "pickled code in a checkpoint must never run"
    assert any("HRM loaded from hrm_trained.pt" in n.message for n in notices)
    decided = {e.policy for e in events if isinstance(e, IterationDone)}
    assert decided == {"hrm"}, "the imitation model decides"
    assert "hrm_rl.pt could not be used" in log
    # The next RL checkpoint replaced the bad file with a good one.
    load_checkpoint(rl)


@pytest.mark.parametrize("how", ["garbage", "pickled code"])
def test_a_bad_imitation_model_leaves_the_teacher_deciding(data_dir: Path, how: str) -> None:
    _phase3_dir(data_dir)
    marker = data_dir.parent / "pwned"
    trained = data_dir / "checkpoints" / "hrm_trained.pt"
    if how == "pickled code":
        _spoil(data_dir / "checkpoints" / "hrm_rl.pt", how, marker)
        os.replace(data_dir / "checkpoints" / "hrm_rl.pt", trained)
    else:
        _spoil(trained, how, marker)
    spoiled = trained.read_bytes()
    events, log = _run_agent(data_dir, 40)
    errors = [e.message for e in events if isinstance(e, Notice) and e.level == "error"]
    assert errors and all("\n" not in m for m in errors)
    assert errors[0].startswith("the HRM could not be loaded (checkpoint ")
    assert errors[0].endswith("; the teacher keeps deciding")
    if how == "pickled code":
        assert "pickled code" in errors[0]
    assert not marker.exists()
    done = [e for e in events if isinstance(e, IterationDone)]
    assert len(done) == 40 and {e.policy for e in done} == {"teacher"}
    assert "the HRM could not be loaded" in log
    assert trained.read_bytes() == spoiled, "the damaged file is left for the user to inspect"


# -- agent.sqlite3 ---------------------------------------------------------------------------
def test_a_garbage_database_is_quarantined_and_the_run_goes_on(collected: Path, capsys) -> None:
    db = collected / "agent.sqlite3"
    for side in ("-wal", "-shm"):
        Path(f"{db}{side}").unlink(missing_ok=True)
    garbage = os.urandom(20_000)
    db.write_bytes(garbage)
    code, out, err = _cli(capsys, *RUN, "--iterations", "5", "--data-dir", str(collected))
    assert code == 0, err
    line = next(x for x in out.splitlines() if "agent.sqlite3 was damaged" in x)
    assert "WARNING" in line and "moved to" in line and "fresh database" in line
    kept = [p for p in (collected / "quarantine").iterdir() if p.name.endswith(".damaged")]
    assert [p.read_bytes() for p in kept] == [garbage], "the damaged original is kept"
    assert integrity(collected) == "ok"
    examples = read_examples(collected / "hrm_training_data.msgpack").examples
    assert len(examples) == 65, "the example log is untouched by the database's recovery"
    assert [e.iteration for e in examples] == list(range(1, 66)), \
        "numbering goes on from the log, so delayed credit cannot reach an old example"
    assert "iterations continue from 60" in out


def test_a_database_damaged_in_the_middle_keeps_the_rows_it_can(collected: Path,
                                                                capsys) -> None:
    db = collected / "agent.sqlite3"
    data = bytearray(db.read_bytes())
    page = int.from_bytes(data[16:18], "big") or 65536
    assert len(data) > 6 * page
    data[3 * page:4 * page] = b"\xff" * page  # one page of one table's b-tree
    db.write_bytes(bytes(data))
    code, out, err = _cli(capsys, *RUN, "--iterations", "5", "--data-dir", str(collected))
    assert code == 0, err
    line = next(x for x in out.splitlines() if "agent.sqlite3 was damaged" in x)
    recovered = int(line.split("recovered ")[1].split(" rows")[0])
    assert recovered > 0, line
    assert integrity(collected) == "ok"


@pytest.mark.parametrize("command", [["answer", "--list"], ["review", "--list"]])
def test_cli_tools_on_a_damaged_database_say_so_in_one_line(collected: Path, capsys,
                                                            command: list[str]) -> None:
    (collected / "agent.sqlite3").write_bytes(b"this is not a database" * 100)
    code, _out, err = _cli(capsys, *command, "--data-dir", str(collected))
    assert code == 1
    assert "is damaged or not a database" in _one_line_error(err)
    code, _out, err = _cli(capsys, "status", "--data-dir", str(collected))
    assert code == 0 and "Traceback" not in err


# -- the example log -------------------------------------------------------------------------
def _append(path: Path, record: object) -> None:
    with path.open("ab") as handle:
        handle.write(msgpack.packb(record))


@pytest.mark.parametrize(("damage", "kept", "needle", "aside"), [
    ("middle", range(55, 60), "was damaged", ".corrupt"),
    ("torn", range(59, 60), "cut a torn last record", ".torn-tail"),
    ("garbage", range(0, 1), "was damaged", ".corrupt"),
    ("wrong shape", range(60, 61), "skipped 2 record(s) of the wrong shape", None),
])
def test_a_damaged_example_log_keeps_every_readable_example(
        collected: Path, capsys, damage: str, kept: range, needle: str,
        aside: str | None) -> None:
    log = collected / "hrm_training_data.msgpack"
    data = bytearray(log.read_bytes())
    if damage == "middle":
        data[len(data) // 2:len(data) // 2 + 50] = b"\xc1" * 50
    elif damage == "torn":
        data = data[:-7]
    elif damage == "garbage":
        data = bytearray(b"\xc1" * 5000)
    log.write_bytes(bytes(data))
    if damage == "wrong shape":
        _append(log, {"v": 1, "kind": "example", "action": "fly"})
        _append(log, ["not", "a", "map"])
    original = log.read_bytes()
    code, out, err = _cli(capsys, *RUN, "--iterations", "5", "--data-dir", str(collected))
    assert code == 0, err
    warning = next(x for x in out.splitlines() if needle in x)
    assert "WARNING" in warning
    count = read_examples(log).count
    assert count - 5 in kept, (count, warning)
    if aside is not None:
        copies = [p for p in (collected / "quarantine").iterdir() if p.name.endswith(aside)]
        assert len(copies) == 1
        if aside == ".corrupt":
            assert copies[0].read_bytes() == original, "the damaged original is kept whole"
        else:
            assert original.endswith(copies[0].read_bytes())
    else:
        assert log.read_bytes().startswith(original), "foreign records stay in the file"
    code, out, err = _cli(capsys, "export", "--data-dir", str(collected))
    assert code == 0 and '"total_examples": ' + str(count) in out


def test_a_newer_example_log_is_refused_and_left_untouched(collected: Path, capsys) -> None:
    log = collected / "hrm_training_data.msgpack"
    _append(log, {"v": 99, "kind": "example", "action": "idle"})
    before = log.read_bytes()
    code, _out, err = _cli(capsys, *RUN, "--iterations", "5", "--data-dir", str(collected))
    assert code == 1
    assert "format version 99, newer than this aegis-tui reads" in _one_line_error(err)
    assert log.read_bytes() == before
    code, _out, err = _cli(capsys, "export", "--data-dir", str(collected))
    assert code == 1 and "format version 99" in _one_line_error(err)
    code, out, err = _cli(capsys, "status", "--data-dir", str(collected))
    assert code == 0 and "warning: a record has format version 99" in out


def test_export_of_a_damaged_log_warns_about_what_it_skips(collected: Path, capsys) -> None:
    log = collected / "hrm_training_data.msgpack"
    data = bytearray(log.read_bytes())
    data[len(data) // 2:len(data) // 2 + 50] = b"\xc1" * 50
    log.write_bytes(bytes(data))
    code, out, err = _cli(capsys, "export", "--data-dir", str(collected))
    assert code == 0
    assert "unreadable bytes" in err and "skipped" in err
    document = json.loads(out)
    assert 55 <= document["metadata"]["total_examples"] < 60
    assert document["metadata"]["warnings"]
    assert log.read_bytes() == bytes(data), "export never repairs: it only reads"


# -- config ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "needle"), [
    (b"collect_threshold = 0\n", "collect_threshold: must be between 1 and"),
    (b"colect_threshold = 5\n", "unknown setting (did you mean 'collect_threshold'?)"),
    (b"think_interval = 'fast'\n", "think_interval: expected a number"),
    (b"world = 'mars'\n", "world: must be one of auto, live, offline, sim"),
    (b"[rewards]\nbonus = 1.0\n", "rewards.bonus: unknown setting"),
    (b"[rewards]\nidle = nan\n", "rewards.idle: must be finite"),
    (b"goals = []\n", "goals: must be a non-empty list"),
    (b"epochs = 3\ncheckpoint_every = 5\n", "epochs: moved to the [imitation] table"),
    (b"[rl]\ngamma = 1.5\n", "rl.gamma: must be between 0 and 1"),
    (b"this is [not toml\n", "is not valid TOML"),
    (b"\xff\xfe\x00binary", "is not UTF-8 text"),
])
def test_a_bad_config_file_stops_the_run_in_one_line_and_touches_nothing(
        collected: Path, capsys, text: bytes, needle: str) -> None:
    (collected / "config.toml").write_bytes(text)
    before = {p: p.read_bytes() for p in collected.rglob("*") if p.is_file()}
    code, _out, err = _cli(capsys, *RUN, "--iterations", "5", "--data-dir", str(collected))
    assert code == 2
    line = _one_line_error(err)
    assert needle in line and "config.toml" in line
    after = {p: p.read_bytes() for p in collected.rglob("*") if p.is_file()}
    assert after == before


def test_a_missing_config_file_named_on_the_command_line(collected: Path, capsys) -> None:
    code, _out, err = _cli(capsys, *RUN, "--config", str(collected / "nope.toml"),
                           "--data-dir", str(collected))
    assert code == 2 and "nope.toml does not exist" in _one_line_error(err)
