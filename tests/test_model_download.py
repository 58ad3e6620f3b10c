"""The first download of a hub teacher, against a local stand-in for the Hugging Face Hub.

``hub_server.HubServer`` serves a model built by ``build_local_lm`` on 127.0.0.1, slowly or
stalling; the CLI runs in a child process with ``HF_ENDPOINT`` pointed at it (the endpoint
is read when ``huggingface_hub`` is imported), exactly as a user's first run would go:
progress in the headless log, a timeout only on a stall, ``fetch-model`` ahead of a run,
a pinned revision, and the commit recorded in the examples.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hub_server import HubServer

from aegis_tui.policy.local_lm import build_local_lm
from aegis_tui.training.example_log import read_examples

REPO = "tester/tiny-gpt2"
_built: dict[str, Path] = {}


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if "gpt2" not in _built:
        _built["gpt2"] = build_local_lm(tmp_path_factory.mktemp("hub") / "tiny-gpt2")
    return _built["gpt2"]


def _env(hub: HubServer | None, cache: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k.upper() not in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY")}
    env.update({"HF_HUB_OFFLINE": "0", "TRANSFORMERS_OFFLINE": "0", "HF_HUB_CACHE": str(cache),
                "HF_HUB_DISABLE_TELEMETRY": "1", "PYTHONUNBUFFERED": "1"})
    if hub is not None:
        env["HF_ENDPOINT"] = hub.url
    env.update(extra)
    return env


def _cli(env: dict[str, str], *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "aegis_tui", *args], env=env,
                          capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def _config(tmp_path: Path, stall_s: float) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(f"download_stall_timeout_s = {stall_s}\n")
    return path


def _run(env: dict[str, str], data_dir: Path, config: Path, *extra: str,
         teacher: str = "lm") -> subprocess.CompletedProcess[str]:
    return _cli(env, "run", "--headless", "--world", "sim", "--teacher", teacher,
                "--teacher-model", REPO, "--think-interval", "0", "--iterations", "4",
                "--data-dir", str(data_dir), "--config", str(config), *extra)


@pytest.mark.timeout(300)
def test_a_slow_first_download_shows_progress_and_is_not_timed_out(
        model_folder: Path, tmp_path: Path, data_dir: Path) -> None:
    # ~750 KB in 8 KB pieces every 0.03 s: several seconds in all, never 1.5 s silent.
    with HubServer({REPO: model_folder}, chunk_bytes=8 * 1024, chunk_delay_s=0.03) as hub:
        result = _run(_env(hub, tmp_path / "cache"), data_dir, _config(tmp_path, 1.5))
        commit = hub.commits[REPO]
    out = result.stdout
    assert result.returncode == 0, result.stderr + out
    assert hub.first_byte_at is not None and hub.last_byte_at is not None
    assert hub.last_byte_at - hub.first_byte_at > 1.5  # longer in all than the stall timeout
    # The log gets a line when a file starts or ends (as often as the watcher samples it)
    # and every 5 s; the weights file is long enough to be seen at any load.
    assert f"downloading {REPO}: file 5/5 model.safetensors" in out and "/s" in out
    assert f"downloaded {REPO}: 5 files, 752.5 KB" in out
    assert "teacher: tiny-gpt2 (0.2M parameters) on cpu (float32)" in out
    assert f"commit {commit[:7]}" in out and "by tiny-gpt2:" in out
    examples = read_examples(data_dir / "hrm_training_data.msgpack").examples
    assert {(e.teacher_model, e.teacher_revision) for e in examples} == {(REPO, commit)}
    assert ("GET", f"/{REPO}/resolve/{commit}/model.safetensors") in hub.requests
    # The dashboard's phase pane draws the same events (tests/test_ui_teacher.py).


@pytest.mark.timeout(300)
@pytest.mark.parametrize("teacher", ["lm", "auto"])
def test_a_stalled_download_gives_up_after_the_stall_timeout(
        teacher: str, model_folder: Path, tmp_path: Path, data_dir: Path) -> None:
    with HubServer({REPO: model_folder}, chunk_bytes=16 * 1024, stall_after=64 * 1024,
                   stall_file="model.safetensors") as hub:
        result = _run(_env(hub, tmp_path / "cache"), data_dir, _config(tmp_path, 1.5),
                      teacher=teacher)
    stalled = (f"the download of {REPO} stalled: no data for 1.5 s while fetching "
               "model.safetensors")
    if teacher == "lm":
        assert result.returncode == 1
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("aegis-tui: error: ")
        assert stalled in lines[0] and "Traceback" not in result.stderr
    else:
        assert result.returncode == 0, result.stderr
        assert f"teacher: rules (could not load {REPO}: {stalled}" in result.stdout
        assert "by rules:" in result.stdout


@pytest.mark.timeout(300)
def test_fetch_model_ahead_then_a_run_without_the_network(
        model_folder: Path, tmp_path: Path, data_dir: Path) -> None:
    cache = tmp_path / "cache"
    with HubServer({REPO: model_folder}, chunk_bytes=32 * 1024, chunk_delay_s=0.01) as hub:
        fetched = _cli(_env(hub, cache), "fetch-model", REPO)
        commit = hub.commits[REPO]
        again = _cli(_env(hub, cache), "fetch-model", REPO)
    assert fetched.returncode == 0, fetched.stderr
    assert f"fetched {REPO} at commit {commit[:12]} (5 files; 752.5 KB downloaded)" in \
        fetched.stdout
    assert f"downloading {REPO}: file 5/5 model.safetensors" in fetched.stderr  # not a tty
    assert again.returncode == 0 and "everything was already cached" in again.stdout
    # The hub is gone and offline mode is on: the cache alone serves the run.
    offline = _env(None, cache, HF_HUB_OFFLINE="1", HF_ENDPOINT="http://127.0.0.1:9")
    result = _run(offline, data_dir, _config(tmp_path, 1.5))
    assert result.returncode == 0, result.stderr
    assert f"commit {commit[:7]}" in result.stdout and "by tiny-gpt2:" in result.stdout
    pinned = _run(offline, tmp_path / "pinned", _config(tmp_path, 1.5),
                  "--teacher-revision", commit)
    assert pinned.returncode == 0, pinned.stderr


@pytest.mark.timeout(300)
def test_fetch_model_errors_are_one_line(model_folder: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    with HubServer({REPO: model_folder}) as hub:
        env = _env(hub, cache)
        missing = _cli(env, "fetch-model", "tester/no-such-model")
        branch = _cli(env, "fetch-model", REPO, "--revision", "no-such-branch")
        bad = _cli(env, "fetch-model", REPO, "--revision", "a b")
        folder = _cli(env, "fetch-model", str(model_folder))
    for result, needle in (
        (missing, "tester/no-such-model was not found on the Hugging Face Hub"),
        (branch, f"{REPO} has no revision no-such-branch on the Hugging Face Hub"),
        (bad, "--revision: not a branch, tag or commit: 'a b'"),
        (folder, "is a local folder; fetch-model downloads Hugging Face Hub models"),
    ):
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert result.returncode in (1, 2) and len(lines) == 1, result.stderr
        assert lines[0].startswith("aegis-tui: error: ") and needle in lines[0], lines[0]


def test_fetch_models_bar_on_a_terminal_and_lines_elsewhere() -> None:
    import io

    from aegis_tui.agent.fetch_cli import _ProgressBar
    from aegis_tui.policy.model_download import DownloadStatus

    def status(done: int, *, file: str = "model.safetensors", milestone: bool = False,
               finished: bool = False) -> DownloadStatus:
        return DownloadStatus(model="gpt2", file=file, file_bytes=done, file_total=548_000,
                              done_bytes=done, total_bytes=548_000, rate_bps=1e5,
                              files_done=4, files_total=5, file_index=5,
                              milestone=milestone, finished=finished)

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    screen = Terminal()
    bar = _ProgressBar(screen)
    for done in (0, 100_000, 548_000):
        bar(status(done))
    bar.close()
    drawn = screen.getvalue()
    assert "model.safetensors (5/5)" in drawn and "548k/548k" in drawn

    log = io.StringIO()
    lines = _ProgressBar(log)
    lines(status(0, milestone=True))
    lines(status(100_000))  # not a milestone: no line
    lines(status(548_000, milestone=True, finished=True))  # the caller prints the summary
    assert log.getvalue().splitlines() == [
        "downloading gpt2: file 5/5 model.safetensors 0 B of 548.0 KB (0%), 100.0 KB/s; "
        "0 B of 548.0 KB in all (0%)"]
