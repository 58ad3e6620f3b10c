"""``aegis-tui doctor``: one line per check, OK or what to do, exit 1 when something is
broken; it never downloads (HF_HUB_OFFLINE is set for the tests) and never waits long."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from aegis_tui.agent.doctor import FAIL, OK, WARN, check_web, run_checks
from aegis_tui.cli import main
from aegis_tui.config import Config, apply_overrides
from aegis_tui.paths import DataPaths
from aegis_tui.storage.lock import DataDirLock
from tests.lm_fixtures import empty_hf_cache, tiny_lm_dir  # noqa: F401

SIM = ["--world", "sim", "--teacher", "rules"]


def doctor(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, str]]:
    capsys.readouterr()
    code = main(["doctor", *args])
    lines = capsys.readouterr().out.splitlines()
    checks = {}
    for line in lines[:-1]:
        status, name = line[:4].strip(), line[6:14].strip()
        assert status in (OK, WARN, FAIL), line
        checks[name] = f"{status} {line[16:]}"
    return code, checks


def test_a_ready_setup_is_all_ok(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--headless", "--quiet", *SIM, "--think-interval", "0",
                 "--iterations", "5", "--data-dir", str(data_dir)]) == 0
    code, checks = doctor(capsys, *SIM, "--data-dir", str(data_dir))
    assert code == 0
    assert list(checks) == ["python", "torch", "teacher", "web", "data dir", "lock",
                            "database"]
    assert all(text.startswith("OK ") for text in checks.values()), checks
    assert "torch 2." in checks["torch"] and "device:" in checks["torch"]
    assert "not needed (--world sim)" in checks["web"]
    assert "free: no agent runs" in checks["lock"]
    assert "last iteration 5" in checks["database"]
    assert str(data_dir) in checks["data dir"] and "free" in checks["data dir"]


@pytest.mark.usefixtures("empty_hf_cache")
def test_an_uncached_teacher_offline_is_broken_for_lm_and_a_warning_for_auto(
        data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--world", "sim", "--teacher-model", "gpt2", "--data-dir", str(data_dir)]
    code, checks = doctor(capsys, "--teacher", "lm", *args)
    assert code == 1
    assert checks["teacher"].startswith("FAIL gpt2 is not in the Hugging Face cache")
    assert "HF_HUB_OFFLINE is set" in checks["teacher"]
    code, checks = doctor(capsys, "--teacher", "auto", *args)
    assert code == 0
    assert checks["teacher"].startswith("WARN") and "rules heuristic instead" in checks["teacher"]


def test_a_cached_teacher_says_where(empty_hf_cache: Path, data_dir: Path,  # noqa: F811
                                     capsys: pytest.CaptureFixture[str]) -> None:
    repo = empty_hf_cache / "models--someone--tiny"
    snapshot = repo / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123")
    (snapshot / "config.json").write_text("{}")
    (snapshot / "model.safetensors").write_bytes(b"x" * 2048)
    code, checks = doctor(capsys, "--teacher", "lm", "--teacher-model", "someone/tiny",
                          "--world", "sim", "--data-dir", str(data_dir))
    assert code == 0
    assert checks["teacher"].startswith(f"OK someone/tiny: in the Hugging Face cache at {repo}")


def test_a_local_model_folder(tiny_lm_dir: Path, data_dir: Path,  # noqa: F811
                              capsys: pytest.CaptureFixture[str]) -> None:
    code, checks = doctor(capsys, "--teacher", "lm", "--teacher-model", str(tiny_lm_dir),
                          "--world", "sim", "--data-dir", str(data_dir))
    assert code == 0 and checks["teacher"] == f"OK {tiny_lm_dir}: a local model folder"
    code, checks = doctor(capsys, "--teacher", "lm", "--teacher-model", str(data_dir),
                          "--world", "sim", "--data-dir", str(data_dir))
    assert code == 1 and "without config.json, not a model" in checks["teacher"]


def test_the_web_probe_is_asked_only_when_the_world_needs_it() -> None:
    asked: list[float] = []

    def down(timeout: float) -> tuple[bool, str]:
        asked.append(timeout)
        return False, "connection timed out after 3 s"

    config = Config()
    assert check_web(apply_overrides(config, {"world": "offline"}), down).status == OK
    assert asked == []
    auto = check_web(apply_overrides(config, {"world": "auto"}), down)
    assert auto.status == WARN and "offline corpus" in auto.text
    live = check_web(apply_overrides(config, {"world": "live"}), down)
    assert live.status == FAIL and "use --world auto or offline" in live.text
    assert asked == [config.probe_timeout_s] * 2
    up = check_web(apply_overrides(config, {"world": "live"}), lambda t: (True, "reached x"))
    assert up.status == OK and up.text == "reachable (reached x)"


def test_lock_holder_and_damaged_database(data_dir: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    paths = DataPaths.resolve(data_dir)
    with DataDirLock(paths.lock):
        code, checks = doctor(capsys, *SIM, "--data-dir", str(data_dir))
        assert code == 0
        assert f"held by aegis-tui pid {os.getpid()}" in checks["lock"]
    paths.database.write_bytes(b"garbage" * 500)
    code, checks = doctor(capsys, *SIM, "--data-dir", str(data_dir))
    assert code == 1
    assert checks["database"].startswith("FAIL") and "quarantine/" in checks["database"]


def test_a_data_dir_that_is_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "not-a-dir"
    target.write_text("x")
    code, checks = doctor(capsys, *SIM, "--data-dir", str(target))
    assert code == 1 and checks["data dir"] == f"FAIL {target} is a file: pass another --data-dir"
    fresh = tmp_path / "fresh"
    checks_list = run_checks(apply_overrides(Config(), {"world": "sim", "teacher": "rules"}),
                             DataPaths.resolve(fresh))
    assert [c.status for c in checks_list if c.name == "data dir"] == [OK]
    assert not fresh.exists()  # the doctor creates nothing
