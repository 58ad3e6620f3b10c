"""The command line as a user runs it: headless runs, reports, answering, reviewing, export."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from aegis_tui.cli import main
from aegis_tui.storage.database import Database
from aegis_tui.storage.records import PENDING


def run_cli(*args: str) -> int:
    return main(list(args))


@pytest.fixture
def collected(data_dir, capsys):  # type: ignore[no-untyped-def]
    """A data dir after a short headless sim run (threshold out of reach)."""
    code = run_cli("run", "--headless", "--quiet", "--world", "sim", "--teacher", "rules",
                   "--iterations", "150", "--think-interval", "0", "--collect-threshold",
                   "100000", "--data-dir", str(data_dir))
    assert code == 0
    capsys.readouterr()
    return data_dir


def test_headless_run_prints_log_lines_and_final_reports(data_dir, capsys):
    code = run_cli("run", "--headless", "--world", "sim", "--teacher", "rules",
                   "--iterations", "120", "--think-interval", "0", "--collect-threshold",
                   "100000", "--data-dir", str(data_dir))
    out = capsys.readouterr().out
    assert code == 0
    assert "Collected 100 training examples (auto-saved)" in out
    assert "[iter 120]" in out
    assert "AEGIS STATUS" in out and "HRM TRAINING REPORT" in out
    assert "Phase 1: Data Collection (Bootstrap from rules)" in out


def test_status_and_training_reports(collected, capsys):
    assert run_cli("status", "--data-dir", str(collected)) == 0
    text = capsys.readouterr().out
    assert "OPERATION STATISTICS" in text and "Iterations:             150" in text
    assert run_cli("status", "--json", "--data-dir", str(collected)) == 0
    status = json.loads(capsys.readouterr().out)
    op = status["operation"]
    assert op["iterations"] == 150
    assert op["web_searches"] + op["questions_asked"] + op["improvements_proposed"] <= 150
    assert status["agent_running"] is False
    assert run_cli("training", "--json", "--data-dir", str(collected)) == 0
    training = json.loads(capsys.readouterr().out)
    assert training["examples"] == 150 and training["phase"]["number"] == 1
    shares = [v["share"] for v in training["action_distribution"].values()]
    assert abs(sum(shares) - 1) < 0.01
    assert training["action_distribution"]["web_search"]["count"] > 0


def test_answer_and_review_from_the_cli(collected, capsys):
    db = Database(collected / "agent.sqlite3")
    qid = db.add_question("What is [b]this[/b]?", "topic", 151, 0.0)
    pid = db.add_proposal("add_goal", {"text": "Learn about sockets"},
                          "Add goal: Learn about sockets", "add goal learn about sockets",
                          PENDING, 151, 0.0)
    db.close()
    assert run_cli("answer", "--list", "--data-dir", str(collected)) == 0
    assert "What is [b]this[/b]?" in capsys.readouterr().out
    assert run_cli("answer", str(qid), "   ", "--data-dir", str(collected)) == 2
    assert "answer is empty" in capsys.readouterr().err
    assert run_cli("answer", str(qid), "It is a test.", "--data-dir", str(collected)) == 0
    assert run_cli("answer", str(qid), "again", "--data-dir", str(collected)) == 2
    assert "already answered" in capsys.readouterr().err
    assert run_cli("review", "--data-dir", str(collected)) == 0
    assert "Learn about sockets" in capsys.readouterr().out
    assert run_cli("review", str(pid), "approve", "--data-dir", str(collected)) == 0
    # The next run credits both and applies the goal.
    assert run_cli("run", "--headless", "--quiet", "--world", "sim", "--teacher", "rules",
                   "--iterations", "1", "--think-interval", "0", "--data-dir",
                   str(collected)) == 0
    db = Database(collected / "agent.sqlite3")
    assert db.question(qid).credited and db.proposal(pid).reward == 10.0
    assert any(g.text == "Learn about sockets" for g in db.goals())
    db.close()


def test_export_json_has_the_seed_shape(collected, tmp_path, capsys):
    out = tmp_path / "hrm_training_data.json"
    umask = os.umask(0o022)
    try:
        assert run_cli("export", "--format", "json", "-o", str(out), "--data-dir",
                       str(collected)) == 0
    finally:
        os.umask(umask)
    # A file the user asked for gets the umask's permissions, not mkstemp's 0600.
    assert (out.stat().st_mode & 0o777) == 0o644
    doc = json.loads(out.read_text())
    assert doc["metadata"]["total_examples"] == 150 == len(doc["examples"])
    first = doc["examples"][0]
    assert set(first) >= {"timestamp", "state", "action", "action_probs", "outcome", "reward"}
    assert set(first["action_probs"]) == {"web_search", "ask_human", "propose_improvement",
                                          "idle"}


@pytest.mark.parametrize(("args", "needle"), [
    (["run", "--headless", "--iterations", "-5"], "must be at least 1"),
    (["run", "--headless", "--collect-threshold", "0"], "must be between 1 and 10000000, got 0"),
    (["run", "--headless", "--world", "mars"], "invalid choice: 'mars'"),
    (["run", "--headless", "--think-interval", "soon"], "expected a number"),
    (["run", "--headless", "--accuracy-gate", "2"], "between 0 and 1"),
])
def test_bad_arguments_are_argparse_errors(args, needle, capsys):
    with pytest.raises(SystemExit) as info:
        run_cli(*args)
    assert info.value.code == 2
    assert needle in capsys.readouterr().err


def test_bad_config_file_is_one_line(data_dir, capsys):
    (data_dir / "config.toml").write_text("collect_threshold = -3\n")
    assert run_cli("status", "--data-dir", str(data_dir)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("aegis-tui: error:") and "collect_threshold" in err
    assert len(err.splitlines()) == 1


def test_reports_on_a_missing_dir_are_clear(tmp_path, capsys):
    assert run_cli("status", "--data-dir", str(tmp_path / "nope")) == 1
    assert "no data directory" in capsys.readouterr().err


def test_help_is_fast_and_does_not_import_torch():
    code = ("import sys; from aegis_tui.cli import build_parser; build_parser(); "
            "print('torch' in sys.modules, 'textual' in sys.modules, "
            "'transformers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "False False False"


def test_module_entry_point(data_dir):
    result = subprocess.run([sys.executable, "-m", "aegis_tui", "--version"],
                            capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.startswith("aegis-tui ")


def test_options_before_the_command_are_kept(data_dir, capsys):
    assert run_cli("--data-dir", str(data_dir), "--world", "sim", "--teacher", "rules",
                   "--think-interval", "0", "--iterations", "3", "run", "--headless",
                   "--quiet") == 0
    capsys.readouterr()
    assert run_cli("--data-dir", str(data_dir), "status", "--json") == 0
    status = json.loads(capsys.readouterr().out)
    assert status["operation"]["iterations"] == 3 and status["world"] == "sim (seed 0)"
