"""``aegis-tui fetch-model [ID]``: download a teacher model ahead of a run, with a progress bar.

The same download the agent does on its first start (``policy.model_download``: the files a
causal LM needs, into the Hugging Face cache, a stall timeout instead of a total one), but
in the foreground with a ``tqdm`` bar, so a slow first download is something a person can
watch and resume (an interrupted or stalled file resumes where it stopped). Later runs find
the model in the cache without the network.
"""

from __future__ import annotations

import sys
from typing import IO, Any

from aegis_tui.policy import lm_teacher
from aegis_tui.policy.model_download import (
    DownloadStatus,
    ModelDownloadError,
    describe_status,
    download_model,
    human_bytes,
)
from aegis_tui.text import clean

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


def _err(message: str) -> None:
    print(f"aegis-tui: error: {message}", file=sys.stderr)


class _ProgressBar:
    """A ``tqdm`` bar over all bytes on a terminal; a line per file (or 5 s) otherwise."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self._bar: Any = None

    def __call__(self, status: DownloadStatus) -> None:
        if not self.tty:
            if status.milestone and not status.finished:
                print(describe_status(status), file=self.stream, flush=True)
            return
        from tqdm import tqdm

        if self._bar is None:
            self._bar = tqdm(total=status.total_bytes, unit="B", unit_scale=True,
                             unit_divisor=1000, file=self.stream, dynamic_ncols=True)
        bar = self._bar
        if status.total_bytes and bar.total != status.total_bytes:
            bar.total = status.total_bytes
        bar.set_description_str(f"{clean(status.file, 30)} ({status.file_index}/"
                                f"{status.files_total})", refresh=False)
        bar.update(status.done_bytes - bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def fetch_model(model: str, *, revision: str = "", stall_timeout_s: float = 60.0,
                cache_dir: str | None = None, stream: IO[str] | None = None) -> int:
    """Download ``model`` (a hub id) at ``revision``; returns the process exit code."""
    name = clean(model, 120)
    if not model:
        _err("no model given")
        return EXIT_USAGE
    if lm_teacher.as_folder(model) is not None:
        _err(f"{name} is a local folder; fetch-model downloads Hugging Face Hub models "
             "(a folder is used as it is: --teacher-model FOLDER)")
        return EXIT_USAGE
    lm_teacher.silence_libraries()
    pinned = f" at revision {clean(revision, 60)}" if revision else ""
    if lm_teacher.hub_offline():
        cached = lm_teacher.cached_snapshot(model, revision, cache_dir)
        if cached is None:
            _err(f"{name}{pinned} is not in the Hugging Face cache and offline mode is on "
                 "(HF_HUB_OFFLINE)")
            return EXIT_FAIL
        print(f"{name}{pinned} is already in the cache (commit {cached.name[:12]}): {cached}")
        return EXIT_OK
    if not lm_teacher.hub_reachable():
        _err("cannot reach the Hugging Face Hub (check the network, HF_ENDPOINT and "
             "HTTPS_PROXY)")
        return EXIT_FAIL
    bar = _ProgressBar(stream or sys.stderr)
    try:
        got = download_model(model, revision=revision or None, cache_dir=cache_dir,
                             stall_timeout_s=stall_timeout_s, on_progress=bar)
    except ModelDownloadError as exc:
        bar.close()
        _err(str(exc))
        return EXIT_FAIL
    except Exception as exc:
        bar.close()
        _err(lm_teacher.load_failure_reason(exc, model, revision))
        return EXIT_FAIL
    bar.close()
    try:
        lm_teacher.check_model_folder(got.folder)
    except lm_teacher.TeacherLoadError as exc:
        _err(str(exc))
        return EXIT_FAIL
    fetched = (f"{human_bytes(got.downloaded_bytes)} downloaded" if got.downloaded_bytes
               else "everything was already cached")
    print(f"fetched {name}{pinned} at commit {got.commit[:12]} ({len(got.files)} files; "
          f"{fetched}): {got.folder}")
    return EXIT_OK
