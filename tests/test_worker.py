"""The training worker as a subprocess: its JSON-lines protocol and exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from aegis_tui.bench.learning_speed import write_example_log
from aegis_tui.bench.synthetic_states import synthetic_examples
from aegis_tui.paths import DataPaths
from aegis_tui.policy.checkpoints import load_checkpoint
from aegis_tui.training.worker import FAULT_ENV

TINY = {"epochs": 3, "checkpoint_every": 2, "model": {"d_model": 32, "n_heads": 2,
                                                       "expansion": 2.0}}


def _run(data_dir: Path, *args: str, settings: dict | None = None, end: int | None = None,
         fault: str | None = None) -> tuple[int, list[dict], str, str]:
    env = {k: v for k, v in os.environ.items() if k != FAULT_ENV}
    if fault:
        env[FAULT_ENV] = fault
    cmd = [sys.executable, "-m", "aegis_tui.training.worker", "--data-dir", str(data_dir),
           "--end-offset", str(end if end is not None else 10**9), "--threads", "1",
           "--settings", json.dumps(settings if settings is not None else TINY), *args]
    proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          env=env, timeout=120)
    records = [json.loads(line) for line in proc.stdout.splitlines()
               if line.startswith("{")]
    return proc.returncode, records, proc.stdout, proc.stderr


@pytest.fixture(scope="module")
def trained_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, tuple]:
    data_dir = tmp_path_factory.mktemp("worker")
    end = write_example_log(synthetic_examples(120, seed=5), data_dir)
    return data_dir, end, _run(data_dir)


def test_happy_path_protocol(trained_dir) -> None:
    data_dir, _, (code, records, stdout, _stderr) = trained_dir
    assert code == 0
    assert all(line.startswith("{") for line in stdout.splitlines())  # nothing but records
    kinds = [r["type"] for r in records]
    assert kinds[0] == "start" and kinds[-1] == "done"
    assert kinds.count("epoch") == 3
    assert [r["path"].rsplit("/", 1)[-1] for r in records if r["type"] == "checkpoint"] == [
        "hrm_epoch_2.pt", "hrm_epoch_3.pt"]
    start = records[0]
    assert start["examples"] == 120 and start["train_size"] + start["val_size"] == 120
    epoch = next(r for r in records if r["type"] == "epoch")
    assert set(epoch) >= {"epoch", "epochs", "loss", "train_accuracy", "val_accuracy",
                          "elapsed_s"}
    done = records[-1]
    paths = DataPaths(data_dir)
    assert Path(done["path"]) == paths.trained_checkpoint
    loaded = load_checkpoint(paths.trained_checkpoint)
    assert loaded.meta["val_accuracy"] == pytest.approx(done["val_accuracy"])


def test_end_offset_limits_what_is_read(trained_dir, tmp_path: Path) -> None:
    data_dir, end, _ = trained_dir
    # Half the bytes: only the whole records before that point count.
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / DataPaths(data_dir).examples.name).write_bytes(DataPaths(data_dir).examples
                                                           .read_bytes())
    code, records, _, _ = _run(copy, end=end // 2, settings={**TINY, "epochs": 1})
    assert code == 0
    assert 40 <= records[0]["examples"] < 120


def test_too_few_examples(tmp_path: Path) -> None:
    end = write_example_log(synthetic_examples(5, seed=1), tmp_path)
    code, records, _, stderr = _run(tmp_path, end=end)
    assert code == 2
    assert records[-1]["type"] == "error"
    assert "too few examples" in records[-1]["message"] and "5" in records[-1]["message"]
    assert "too few examples" in stderr
    assert not (tmp_path / "checkpoints" / "hrm_trained.pt").exists()


def test_missing_data_dir_and_bad_settings(tmp_path: Path) -> None:
    code, records, _, _ = _run(tmp_path / "nope")
    assert code == 2 and "does not exist" in records[-1]["message"]
    code, records, _, _ = _run(tmp_path, settings={"epochs": "many"})
    assert code == 2 and "settings" in records[-1]["message"]
    code, records, _, _ = _run(tmp_path, "--bogus-flag")
    assert code == 2 and records[-1]["type"] == "error"


def test_stray_prints_do_not_reach_the_protocol() -> None:
    code = ("from aegis_tui.training import worker\n"
            "proto = worker._take_stdout()\n"
            "print('stray text from a library')\n"
            "import os; os.write(1, b'raw fd write\\n')\n"
            "proto.send('done', value=float('nan'))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert proc.stdout.splitlines() == ['{"type":"done","value":null}']
    assert "stray text" in proc.stderr and "raw fd write" in proc.stderr


def test_thread_governor_leaves_busy_cores_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    from aegis_tui.training import threads

    clock = {"t": 0.0, "busy": 0.0, "own": 0.0}
    monkeypatch.setattr(threads.time, "monotonic", lambda: clock["t"])
    monkeypatch.setattr(threads, "_system_busy_seconds", lambda: clock["busy"])
    monkeypatch.setattr(threads, "_own_cpu_seconds", lambda: clock["own"])
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 2)
    calls: list[int] = []
    gov = threads.ThreadGovernor(2, calls.append, interval_s=0.5)
    assert calls == [2]

    def tick(own: float, others: float) -> int:
        clock["t"] += 1.0
        clock["own"] += own
        clock["busy"] += own + others
        return gov.update()

    assert tick(own=1.9, others=0.1) == 2  # the machine is ours
    assert tick(own=1.0, others=1.0) == 1  # another process took a core
    assert gov.others_busy == pytest.approx(1.0)
    assert tick(own=1.0, others=0.6) == 1
    assert tick(own=1.0, others=0.0) == 2  # it left again
    assert calls == [2, 1, 2]
    clock["t"] += 0.1  # re-checks at most every interval_s
    assert gov.update() == 2 and calls == [2, 1, 2]
    monkeypatch.setattr(threads, "_system_busy_seconds", lambda: None)
    blind = threads.ThreadGovernor(2, calls.append)  # no /proc/stat: half the cores
    assert blind.update() == 1 and calls[-1] == 1


def test_worker_stops_when_its_parent_dies(tmp_path: Path) -> None:
    import time

    end = write_example_log(synthetic_examples(100, seed=6), tmp_path)
    log = tmp_path / "worker.log"
    # An intermediate parent starts the worker and exits at once, as a killed agent would.
    launcher = (
        "import os, subprocess, sys\n"
        f"p = subprocess.Popen([sys.executable, '-m', 'aegis_tui.training.worker', "
        f"'--data-dir', {str(tmp_path)!r}, '--end-offset', '{end}', '--threads', '1', "
        f"'--settings', {json.dumps(json.dumps(TINY | {'epochs': 200}))}, "
        "'--parent-pid', str(os.getpid())], "
        f"stdout=subprocess.DEVNULL, stderr=open({str(log)!r}, 'ab'), "
        "stdin=subprocess.DEVNULL)\n"
        "print(p.pid)\n"
    )
    out = subprocess.run([sys.executable, "-c", launcher], capture_output=True, text=True,
                         timeout=60, check=True)
    pid = int(out.stdout)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    assert "the parent process is gone" in log.read_text()
    assert not (tmp_path / "checkpoints" / "hrm_trained.pt").exists()
