"""Downloading a teacher model from the Hugging Face Hub with progress and a stall timeout.

``download_model`` asks the hub which files a revision holds (``HfApi.model_info``), picks
what a causal LM needs to load (config, tokenizer files, one set of weights: safetensors
when there are any, else PyTorch ``.bin``; never the ONNX, TF, Flax or GGUF copies many
repos also carry), and fetches them one at a time with ``hf_hub_download`` into the normal
Hugging Face cache, where ``transformers`` finds them later without the network. The
revision (``main`` unless pinned) is resolved to its commit first, so every file comes from
the same commit and the commit can be recorded with the examples the model labels; at the
end the branch or tag is written to the cache's ``refs``, so the next start finds the
model by name, offline.

Progress. ``hf_hub_download`` reports bytes through a ``tqdm_class``; ours counts them and
``download_model`` turns the counts into ``DownloadStatus`` values (file, bytes, total, rate)
for a callback: the agent publishes them as events, ``aegis-tui fetch-model`` draws a bar.

Stall, not total, timeout. A slow link may take an hour for a big model and that is fine;
what is not fine is a download that stopped. The work runs in a daemon thread and the
caller gives up when no byte (and no answer from the hub) arrived for ``stall_timeout_s``
seconds. The abandoned thread is told to stop at its next byte; a half-downloaded file is
left as ``huggingface_hub``'s ``.incomplete`` file, which the next attempt resumes.

``huggingface_hub`` is imported when a download starts.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from aegis_tui.text import clean

# What from_pretrained reads for a causal LM and its tokenizer (top-level files only).
CONFIG_FILES = ("config.json", "generation_config.json")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                   "added_tokens.json", "vocab.json", "merges.txt", "tokenizer.model",
                   "spiece.model", "vocab.txt", "chat_template.jinja", "chat_template.json")
# huggingface_hub reads a response in DOWNLOAD_CHUNK_SIZE pieces (10 MB) and reports bytes
# to the tqdm hook once per piece: on a 100 KB/s link that is 100 s of silence, longer than
# any sensible stall timeout. 64 KB pieces cost nothing in speed and hear from the link often.
PROGRESS_CHUNK_BYTES = 64 * 1024
PROGRESS_INTERVAL_S = 0.5  # how often the callback hears about bytes
MILESTONE_INTERVAL_S = 5.0  # how often a status is marked worth a log line
RATE_WINDOW_S = 5.0
_POLL_S = 0.1


class ModelDownloadError(Exception):
    """The download failed or stalled; the message is one line for people."""


@dataclass(frozen=True, slots=True)
class DownloadStatus:
    """Where a download stands; ``total_bytes`` is None until the hub said how big it is."""

    model: str
    file: str
    file_bytes: int
    file_total: int | None
    done_bytes: int
    total_bytes: int | None
    rate_bps: float
    files_done: int
    files_total: int
    file_index: int = 0  # 1-based position of ``file`` among the files
    finished: bool = False
    milestone: bool = False  # a file started or finished, or MILESTONE_INTERVAL_S passed


@dataclass(frozen=True, slots=True)
class DownloadedModel:
    folder: Path  # the snapshot folder in the Hugging Face cache
    commit: str
    files: tuple[str, ...]
    downloaded_bytes: int  # bytes fetched now (0 when everything was cached)


ProgressCallback = Callable[[DownloadStatus], None]


class _Cancelled(Exception):
    """Raised inside the download thread once the caller gave up on it."""


def choose_files(names: Iterable[str]) -> list[str]:
    """The files to fetch from a repo's file list; raises when there are no usable weights."""
    top = sorted({n for n in names if "/" not in n})
    wanted = [n for n in top if n in CONFIG_FILES or n in TOKENIZER_FILES]
    safetensors = [n for n in top if n.endswith(".safetensors")
                   and (n == "model.safetensors" or n.startswith("model-"))]
    bins = [n for n in top if n.endswith(".bin")
            and (n == "pytorch_model.bin" or n.startswith("pytorch_model-"))]
    if "model.safetensors" in top:
        weights = ["model.safetensors"]
    elif "model.safetensors.index.json" in top:
        weights = ["model.safetensors.index.json", *safetensors]
    elif "pytorch_model.bin" in top:
        weights = ["pytorch_model.bin"]
    elif "pytorch_model.bin.index.json" in top:
        weights = ["pytorch_model.bin.index.json", *bins]
    else:
        weights = []
    if "config.json" not in top:
        raise ModelDownloadError("the repository has no config.json, so it is not a "
                                 "transformers model")
    if not weights:
        raise ModelDownloadError("the repository has no PyTorch or safetensors weights "
                                 "(model.safetensors or pytorch_model.bin)")
    return wanted + weights


class _Meter:
    """Shared between the download thread (writes) and the watcher (reads), under a lock."""

    def __init__(self, files: int = 0) -> None:
        self.lock = threading.Lock()
        self.file = ""
        self.file_bytes = 0
        self.file_total: int | None = None
        self.file_finished = False  # the current file is complete (counted in done_before)
        self.done_before = 0  # bytes of finished files (and of cached ones)
        self.total: int | None = None
        self.files_done = 0
        self.files_total = files
        self.activity = time.monotonic()
        self.fetched = 0  # bytes received in this process
        self.samples: deque[tuple[float, int]] = deque()
        self.cancelled = threading.Event()
        self.milestone = True

    def touch(self) -> None:
        self.activity = time.monotonic()

    def add(self, n: int) -> None:
        if self.cancelled.is_set():
            raise _Cancelled
        with self.lock:
            self.file_bytes += n
            self.fetched += n
            now = time.monotonic()
            self.activity = now
            self.samples.append((now, self.fetched))
            while self.samples and now - self.samples[0][0] > RATE_WINDOW_S:
                self.samples.popleft()

    def rate(self) -> float:
        with self.lock:
            if len(self.samples) < 2:
                return 0.0
            (t0, b0), (t1, b1) = self.samples[0], self.samples[-1]
            # Up to now, not to the last byte: a link that went quiet shows its rate falling.
            span = max(time.monotonic() - t0, t1 - t0, 1e-3)
            return (b1 - b0) / span


def _bar_class(meter: _Meter) -> type:
    """A ``tqdm_class`` for ``hf_hub_download`` that feeds ``meter`` and draws nothing.

    ``huggingface_hub`` builds it with tqdm's keyword arguments (``total``, ``initial``,
    ``desc``, ``unit``...), uses it as a context manager and calls ``update(n)`` per chunk
    (negative when it restarts a file whose resume the server refused).
    """

    class _Bar:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            total = kwargs.get("total")
            initial = kwargs.get("initial") or 0
            with meter.lock:
                if isinstance(total, int | float) and total > 0:
                    meter.file_total = int(total)
                meter.file_bytes = int(initial)
            meter.touch()

        def update(self, n: float | None = 1) -> None:
            meter.add(int(n or 0))

        def __enter__(self) -> _Bar:
            return self

        def __exit__(self, *exc: object) -> None:
            return None

        def close(self) -> None:
            return None

        def refresh(self, *args: Any, **kwargs: Any) -> None:
            return None

        def set_description(self, *args: Any, **kwargs: Any) -> None:
            return None

        def set_postfix_str(self, *args: Any, **kwargs: Any) -> None:
            return None

    return _Bar


def human_bytes(n: float | None) -> str:
    if n is None:
        return "?"
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


class StatusLike(Protocol):
    """``DownloadStatus``, or the ``events.DownloadProgress`` made from it (read-only)."""

    @property
    def model(self) -> str: ...
    @property
    def file(self) -> str: ...
    @property
    def file_bytes(self) -> int: ...
    @property
    def file_total(self) -> int | None: ...
    @property
    def done_bytes(self) -> int: ...
    @property
    def total_bytes(self) -> int | None: ...
    @property
    def rate_bps(self) -> float: ...
    @property
    def file_index(self) -> int: ...
    @property
    def files_total(self) -> int: ...
    @property
    def finished(self) -> bool: ...


def describe_status(s: StatusLike) -> str:
    """One line: ``downloading gpt2: file 7/7 model.safetensors 120.3 MB of 548.1 MB ...``."""
    if s.finished:
        return (f"downloaded {clean(s.model, 80)}: {s.files_total} files, "
                f"{human_bytes(s.done_bytes)}")
    part = f"{clean(s.file, 60)} {human_bytes(s.file_bytes)}"
    if s.file_total:
        part += f" of {human_bytes(s.file_total)} ({min(1.0, s.file_bytes / s.file_total):.0%})"
    overall = ""
    if s.total_bytes:
        overall = (f"; {human_bytes(s.done_bytes)} of {human_bytes(s.total_bytes)} in all "
                   f"({min(1.0, s.done_bytes / s.total_bytes):.0%})")
    return (f"downloading {clean(s.model, 80)}: file {s.file_index}/{s.files_total} {part}, "
            f"{human_bytes(s.rate_bps)}/s{overall}")


def _status(model: str, meter: _Meter, *, finished: bool = False,
            milestone: bool = False) -> DownloadStatus:
    rate = meter.rate()
    with meter.lock:
        file_bytes = meter.file_bytes
        done = meter.done_before + file_bytes
        if meter.file_finished:
            file_bytes = meter.file_total if meter.file_total is not None else file_bytes
            done = meter.done_before
        return DownloadStatus(
            model=model, file=meter.file, file_bytes=file_bytes,
            file_total=meter.file_total, done_bytes=done,
            total_bytes=meter.total, rate_bps=rate, files_done=meter.files_done,
            files_total=meter.files_total,
            file_index=meter.files_done + (0 if meter.file_finished else 1),
            finished=finished, milestone=milestone)


def _work(model: str, revision: str | None, cache_dir: str | None, meter: _Meter,
          box: dict[str, Any]) -> None:
    from huggingface_hub import HfApi, constants, hf_hub_download

    constants.DOWNLOAD_CHUNK_SIZE = min(constants.DOWNLOAD_CHUNK_SIZE, PROGRESS_CHUNK_BYTES)
    ref = revision or "main"  # huggingface_hub's and transformers' default revision too
    info = HfApi().model_info(model, revision=ref, files_metadata=True)
    meter.touch()
    if meter.cancelled.is_set():
        raise _Cancelled
    commit = info.sha
    if not isinstance(commit, str) or not commit:
        raise ModelDownloadError("the hub did not say which commit the revision is")
    siblings = {s.rfilename: s.size for s in (info.siblings or [])}
    files = choose_files(siblings)
    sizes = [siblings.get(f) for f in files]
    with meter.lock:
        meter.files_total = len(files)
        meter.total = sum(s for s in sizes if isinstance(s, int)) if all(
            isinstance(s, int) for s in sizes) else None
    bar = _bar_class(meter)
    folder: Path | None = None
    for name, size in zip(files, sizes, strict=True):
        with meter.lock:
            meter.file = name
            meter.file_bytes = 0
            meter.file_total = size if isinstance(size, int) else None
            meter.file_finished = False
            meter.milestone = True
        path = hf_hub_download(model, name, revision=commit, cache_dir=cache_dir,
                               tqdm_class=bar)
        if name == "config.json":
            folder = Path(path).parent
        with meter.lock:
            # A cached file reports no bytes; count it as done all the same.
            done = meter.file_total if meter.file_total is not None else meter.file_bytes
            meter.done_before += max(done, meter.file_bytes)
            meter.file_finished = True
            meter.files_done += 1
            meter.milestone = True
        meter.touch()
    assert folder is not None  # choose_files always includes config.json
    if ref != commit:
        # Record which commit the branch or tag names (refs/<ref> in the cache), so the next
        # start finds the model by name without the network; the file is already there.
        hf_hub_download(model, "config.json", revision=ref, cache_dir=cache_dir)
    box["result"] = DownloadedModel(folder=folder, commit=commit, files=tuple(files),
                                    downloaded_bytes=meter.fetched)


def download_model(model: str, *, revision: str | None = None,
                   cache_dir: str | None = None, stall_timeout_s: float = 60.0,
                   on_progress: ProgressCallback | None = None,
                   cancel: threading.Event | None = None) -> DownloadedModel:
    """Fetch what ``model`` (a hub id) needs at ``revision`` into the cache; see the module.

    Raises ``ModelDownloadError`` when the download stalls for ``stall_timeout_s`` or is
    cancelled; errors of ``huggingface_hub`` (repository not found, offline, HTTP errors)
    propagate for the caller to explain.
    """
    if not (math.isfinite(stall_timeout_s) and stall_timeout_s > 0):
        raise ValueError("stall_timeout_s must be a positive number")
    meter = _Meter()
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            _work(model, revision, cache_dir, meter, box)
        except BaseException as exc:  # handed to the caller, never lost in the thread
            box["error"] = exc

    thread = threading.Thread(target=target, name="aegis-download", daemon=True)
    thread.start()
    last_report = last_milestone = 0.0
    name = clean(model, 80)
    while thread.is_alive():
        thread.join(_POLL_S)
        now = time.monotonic()
        if cancel is not None and cancel.is_set():
            meter.cancelled.set()
            raise ModelDownloadError(f"the download of {name} was cancelled")
        if thread.is_alive() and now - meter.activity > stall_timeout_s:
            meter.cancelled.set()
            where = f" while fetching {clean(meter.file, 60)}" if meter.file else \
                " waiting for the hub to list the files"
            raise ModelDownloadError(
                f"the download of {name} stalled: no data for {stall_timeout_s:g} s{where} "
                f"({human_bytes(meter.done_before + meter.file_bytes)} received); run "
                "`aegis-tui fetch-model` to resume it")
        if on_progress is not None and meter.files_total and (
                now - last_report >= PROGRESS_INTERVAL_S or meter.milestone):
            milestone = meter.milestone or now - last_milestone >= MILESTONE_INTERVAL_S
            meter.milestone = False
            if milestone:
                last_milestone = now
            last_report = now
            on_progress(_status(model, meter, milestone=milestone))
    if "error" in box:
        error = box["error"]
        if isinstance(error, _Cancelled):
            raise ModelDownloadError(f"the download of {name} was cancelled")
        raise error
    result: DownloadedModel = box["result"]
    if on_progress is not None:
        on_progress(_status(model, meter, finished=True, milestone=True))
    return result
