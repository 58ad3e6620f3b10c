"""``aegis-tui export --format csv|jsonl|tensorboard``: every format read back and compared
with the database it came from, and every bad input a one-line error that loses nothing."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import time
from pathlib import Path

import pytest

from aegis_tui.cli import main
from aegis_tui.storage.database import Database
from aegis_tui.training.export_tables import COLUMNS
from tests.headless import one_line_error

RUN = ["run", "--headless", "--quiet", "--world", "sim", "--teacher", "rules",
       "--think-interval", "0", "--collect-threshold", "100000"]
EPOCHS = [{"epoch": e, "loss": 1.0 / e, "train_accuracy": 0.5 + e / 100,
           "val_accuracy": 0.4 + e / 100, "elapsed_s": 0.7 * e} for e in (1, 2, 3)]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """60 sim iterations, then two training runs and three RL updates as the agent writes
    them (through the same ``Database`` methods ``LearningController`` calls)."""
    d = tmp_path_factory.mktemp("export") / "data"
    assert main([*RUN, "--iterations", "60", "--data-dir", str(d)]) == 0
    db = Database(d / "agent.sqlite3")
    for k in range(2):
        run = db.start_training_run(50 + k, bool(k), time.time())
        db.update_training_run(run, status="passed" if k else "below_gate",
                               epochs=EPOCHS[: 2 + k], val_accuracy=0.43 + k / 100)
    for k, it in enumerate((20, 30, 40)):
        db.record_rl_update(it, 1_700_000_000.0 + it, 0.5 - k / 10, 1.5 + k, 1.2 - k / 10,
                            0.01 * (k + 1))
    db.close()
    return d


@pytest.fixture
def data(template: Path, tmp_path: Path) -> Path:
    import shutil

    target = tmp_path / "data"
    shutil.copytree(template, target)
    return target


def db_rows(data: Path, sql: str) -> list[sqlite3.Row]:
    conn = sqlite3.connect(data / "agent.sqlite3")
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def export(data: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["export", "--data-dir", str(data), *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_metrics_as_csv_and_jsonl_match_the_database(data: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    code, text, _ = export(data, capsys, "--format", "csv")
    assert code == 0
    reader = csv.DictReader(io.StringIO(text))
    assert tuple(reader.fieldnames or ()) == COLUMNS["metrics"]
    rows = list(reader)
    expected = db_rows(data, "SELECT * FROM metrics ORDER BY iteration")
    assert len(rows) == len(expected) == 60
    for got, want in zip(rows, expected, strict=True):
        assert int(got["iteration"]) == want["iteration"]
        assert float(got["time"]) == want["at"]
        assert int(got["phase"]) == want["phase"]
        assert (got["policy"], got["action"]) == (want["policy"], want["action"])
        assert float(got["reward"]) == want["reward"]
        assert float(got["delayed_reward"]) == want["delayed_reward"]
        assert int(got["knowledge_gained"]) == want["knowledge_gained"]
        assert int(got["success"]) == want["success"]
    code, text, _ = export(data, capsys, "--format", "jsonl", "--table", "metrics")
    assert code == 0
    lines = [json.loads(line) for line in text.splitlines()]
    assert [tuple(line) for line in lines] == [COLUMNS["metrics"]] * 60
    assert [line["reward"] for line in lines] == [r["reward"] for r in expected]
    assert [line["success"] for line in lines] == [bool(r["success"]) for r in expected]
    assert any(r["delayed_reward"] for r in expected)  # the sim's people credited some


def test_epochs_and_rl_tables(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, text, _ = export(data, capsys, "--format", "csv", "--table", "epochs")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [(int(r["run"]), int(r["epoch"])) for r in rows] == [(1, 1), (1, 2), (2, 1),
                                                                 (2, 2), (2, 3)]
    assert [r["status"] for r in rows] == ["below_gate"] * 2 + ["passed"] * 3
    assert [int(r["forced"]) for r in rows] == [0, 0, 1, 1, 1]
    assert [float(r["loss"]) for r in rows] == [1.0, 0.5, 1.0, 0.5, 1 / 3]
    code, text, _ = export(data, capsys, "--format", "jsonl", "--table", "rl")
    assert code == 0
    rl = [json.loads(line) for line in text.splitlines()]
    assert [tuple(r) for r in rl] == [COLUMNS["rl"]] * 3
    assert [(r["iteration"], r["loss"], r["kl"]) for r in rl] == [
        (20, 0.5, 0.01), (30, 0.4, 0.02), (40, pytest.approx(0.3), 0.03)]
    assert [r["update"] for r in rl] == [1, 2, 3]


def test_output_file_and_json_keeps_its_meaning(data: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    _, stdout, _ = export(data, capsys, "--format", "csv", "--table", "rl")
    target = tmp_path / "out" / "rl.csv"
    code, _, err = export(data, capsys, "--format", "csv", "--table", "rl", "-o", str(target))
    assert code == 0 and "wrote 3 rl rows" in err
    assert target.read_text() == stdout
    code, text, _ = export(data, capsys)  # the default: the examples as JSON
    assert code == 0
    document = json.loads(text)
    assert document["metadata"]["total_examples"] == 60 and len(document["examples"]) == 60


@pytest.mark.parametrize(("args", "message"), [
    (["--table", "rl"], "--table is for --format csv or jsonl"),
    (["--format", "csv", "somewhere"], "DIR is for --format tensorboard"),
    (["--format", "tensorboard"], "--format tensorboard needs a directory"),
    (["--format", "tensorboard", "--table", "rl", "d"], "--table is for --format csv"),
])
def test_option_mistakes_are_one_line_usage_errors(data: Path, args: list[str], message: str,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = export(data, capsys, *args)
    assert code == 2 and out == ""
    assert message in one_line_error(err)


def test_bad_databases_and_paths_are_one_line_errors(tmp_path: Path, data: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = export(empty, capsys, "--format", "csv")
    assert code == 1 and "no agent database" in one_line_error(err)
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "agent.sqlite3").write_bytes(b"not a database at all" * 100)
    code, _, err = export(garbage, capsys, "--format", "jsonl")
    assert code == 1 and "damaged or not a database" in one_line_error(err)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    conn = sqlite3.connect(foreign / "agent.sqlite3")
    conn.execute("CREATE TABLE metrics(iteration INTEGER)")
    conn.commit()
    conn.close()
    code, _, err = export(foreign, capsys, "--format", "csv", "--table", "rl")
    assert code == 1 and "has no rl_updates table" in one_line_error(err)
    # An output path that cannot be written: nothing else changes.
    blocker = tmp_path / "a-file"
    blocker.write_text("keep me")
    before = (data / "agent.sqlite3").read_bytes()
    code, _, err = export(data, capsys, "--format", "csv", "-o", str(blocker / "x.csv"))
    assert code == 1 and f"cannot write {blocker / 'x.csv'}" in one_line_error(err)
    assert blocker.read_text() == "keep me"
    assert (data / "agent.sqlite3").read_bytes() == before


def test_tensorboard_export_reads_back_with_tensorboards_reader(
        data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logdir = tmp_path / "tb"
    code, _, err = export(data, capsys, "--format", "tensorboard", str(logdir))
    assert code == 0 and "scalars" in err
    acc = EventAccumulator(str(logdir), size_guidance={"scalars": 0})
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"reward/immediate", "reward/total", "actions/web_search", "actions/idle",
            "imitation/loss", "imitation/val_accuracy", "rl/loss", "rl/kl"} <= tags
    metrics = db_rows(data, "SELECT * FROM metrics ORDER BY iteration")
    immediate = acc.Scalars("reward/immediate")
    assert [s.step for s in immediate] == [r["iteration"] for r in metrics]
    assert [s.value for s in immediate] == pytest.approx([r["reward"] for r in metrics])
    total = acc.Scalars("reward/total")
    assert [s.value for s in total] == pytest.approx(
        [r["reward"] + r["delayed_reward"] for r in metrics])
    shares = {name: acc.Scalars(f"actions/{name}") for name in
              ("web_search", "ask_human", "propose_improvement", "idle")}
    assert [s.step for s in shares["idle"]] == list(range(10, 61, 10))
    last = [r["action"] for r in metrics]
    for name, series in shares.items():
        assert series[-1].value == pytest.approx(last.count(name) / 60)
    assert [s.step for s in acc.Scalars("imitation/loss")] == [1, 2, 3, 4, 5]
    assert [s.value for s in acc.Scalars("imitation/loss")] == pytest.approx(
        [1.0, 0.5, 1.0, 0.5, 1 / 3])
    assert [(s.step, s.value) for s in acc.Scalars("rl/kl")] == [
        (20, pytest.approx(0.01)), (30, pytest.approx(0.02)), (40, pytest.approx(0.03))]
    # A second export into the same directory would mix two runs: refused.
    code, _, err = export(data, capsys, "--format", "tensorboard", "-o", str(logdir))
    assert code == 1 and "already holds TensorBoard event files" in one_line_error(err)


def test_without_the_extra_tensorboard_is_a_one_line_error_naming_it(
        data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "tensorboard" else real(name, *a))
    code, _, err = export(data, capsys, "--format", "tensorboard", str(tmp_path / "tb"))
    assert code == 2
    assert "pip install 'aegis-tui[tensorboard]'" in one_line_error(err)
    capsys.readouterr()
    code = main([*RUN, "--iterations", "1", "--data-dir", str(data),
                 "--tensorboard", str(tmp_path / "tb")])
    err = capsys.readouterr().err
    assert code == 2
    assert one_line_error(err) == ("aegis-tui: error: --tensorboard needs the tensorboard extra: "
                                   "pip install 'aegis-tui[tensorboard]'")
    assert not (tmp_path / "tb").exists()
