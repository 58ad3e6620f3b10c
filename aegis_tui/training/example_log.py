"""``hrm_training_data.msgpack``: the append-only log of teacher decisions.

One msgpack map per example, appended and flushed per record, ``fsync``ed every
``fsync_every`` records (the seed's "auto-save"). Reading is defensive:

- a torn last record (the process died mid-write) is cut off with a warning and the cut
  bytes are kept in ``quarantine/``; a record that runs past the end of the file but has
  whole records after it is damage in the middle, not a torn tail;
- garbage in the middle quarantines a copy of the whole file, keeps every record that still
  decodes (resynchronising on the next record header after the damage) and rewrites the
  log atomically from them;
- a record that decodes but has the wrong shape is left in the file and skipped, counted;
- a record from a newer format version stops the run with a clear error rather than
  appending older records behind it.

Unpacking uses explicit size limits so a hostile file cannot make it allocate gigabytes.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import msgpack

from aegis_tui.actions import ACTION_NAMES, as_probs
from aegis_tui.snapshot import StateSnapshot
from aegis_tui.storage.atomic import atomic_write_with, fsync_dir

FORMAT_VERSION = 1
MAX_RECORD_BYTES = 256 * 1024
MAX_FILE_BYTES = 4 * 1024**3
_LIMITS = {
    "max_str_len": 64 * 1024,
    "max_bin_len": 64 * 1024,
    "max_array_len": 4096,
    "max_map_len": 256,
    "max_ext_len": 1024,
}
_DECODE_ERRORS = (msgpack.FormatError, msgpack.StackError, msgpack.ExtraData, ValueError,
                  TypeError, UnicodeDecodeError, msgpack.BufferFull)


class ExampleLogError(RuntimeError):
    """The log cannot be used as it is (e.g. written by a newer aegis-tui)."""


@dataclass(frozen=True, slots=True)
class Outcome:
    success: bool
    knowledge_gained: int
    details: str


@dataclass(frozen=True, slots=True)
class Example:
    """One teacher decision: what it saw, what it chose, what happened."""

    iteration: int
    time: float
    state: StateSnapshot
    action: str
    probs: tuple[float, float, float, float]
    policy: str
    outcome: Outcome
    reward: float
    # Which LM labelled it: the model id (or folder) and, for hub models, the commit. Optional
    # in the file (older records and the rules teacher have neither), so the format version
    # stays 1: older readers ignore the keys, this reader reads "" for records without them.
    teacher_model: str = ""
    teacher_revision: str = ""

    def to_record(self) -> dict[str, Any]:
        record = {
            "v": FORMAT_VERSION,
            "kind": "example",
            "t": self.time,
            "iteration": self.iteration,
            "state": self.state.to_dict(),
            "action": self.action,
            "probs": list(self.probs),
            "policy": self.policy,
            "outcome": {"success": self.outcome.success,
                        "knowledge_gained": self.outcome.knowledge_gained,
                        "details": self.outcome.details},
            "reward": self.reward,
        }
        if self.teacher_model:
            record["model"] = self.teacher_model
        if self.teacher_revision:
            record["revision"] = self.teacher_revision
        return record

    @property
    def label(self) -> int:
        return ACTION_NAMES.index(self.action)


def parse_record(record: Any) -> Example:
    """Check one decoded record; ``ValueError`` names what is wrong."""
    if not isinstance(record, dict):
        raise ValueError(f"record is a {type(record).__name__}, not a map")
    version = record.get("v")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ValueError("record has no format version")
    if version > FORMAT_VERSION:
        raise ExampleLogError(
            f"a record has format version {version}, newer than this aegis-tui reads "
            f"({FORMAT_VERSION}); upgrade aegis-tui or use another --data-dir"
        )
    if record.get("kind", "example") != "example":
        raise ValueError(f"record kind {record.get('kind')!r} is not an example")
    action = record.get("action")
    if action not in ACTION_NAMES:
        raise ValueError(f"unknown action {action!r}")
    probs = record.get("probs")
    if (not isinstance(probs, list) or len(probs) != len(ACTION_NAMES)
            or not all(isinstance(p, int | float) and not isinstance(p, bool)
                       and math.isfinite(p) and p >= 0 for p in probs)):
        raise ValueError("probs must be four non-negative numbers")
    outcome = record.get("outcome")
    if not isinstance(outcome, dict):
        raise ValueError("outcome must be a map")
    reward = record.get("reward")
    if isinstance(reward, bool) or not isinstance(reward, int | float) or not math.isfinite(reward):
        raise ValueError("reward must be a finite number")
    iteration = record.get("iteration")
    if isinstance(iteration, bool) or not isinstance(iteration, int):
        raise ValueError("iteration must be an integer")
    t = record.get("t", 0.0)
    gained = outcome.get("knowledge_gained", 0)
    if isinstance(gained, bool) or not isinstance(gained, int):
        raise ValueError("outcome.knowledge_gained must be an integer")
    return Example(
        iteration=iteration,
        time=float(t) if isinstance(t, int | float) and not isinstance(t, bool) else 0.0,
        state=StateSnapshot.from_dict(record.get("state")),
        action=action,
        probs=as_probs(probs),
        policy=str(record.get("policy", "")),
        outcome=Outcome(success=bool(outcome.get("success", False)), knowledge_gained=gained,
                        details=str(outcome.get("details", ""))),
        reward=float(reward),
        teacher_model=_short_text(record.get("model")),
        teacher_revision=_short_text(record.get("revision")),
    )


def _short_text(value: Any) -> str:
    return value[:500] if isinstance(value, str) else ""


@dataclass(slots=True)
class ScanResult:
    """What a scan of the log found."""

    examples: list[Example] = field(default_factory=list)
    count: int = 0
    good_ranges: list[tuple[int, int]] = field(default_factory=list)  # decodable byte ranges
    torn_at: int | None = None  # offset where a truncated last record starts
    corrupt_spans: list[tuple[int, int]] = field(default_factory=list)  # undecodable bytes
    skipped: int = 0  # decodable records of the wrong shape
    skip_reasons: list[str] = field(default_factory=list)
    size: int = 0

    @property
    def warnings(self) -> list[str]:
        out = []
        if self.skipped:
            reasons = "; ".join(sorted(set(self.skip_reasons))[:3])
            out.append(f"skipped {self.skipped} record(s) of the wrong shape ({reasons})")
        return out


def _unpacker(size: int) -> msgpack.Unpacker:
    return msgpack.Unpacker(raw=False, strict_map_key=True, max_buffer_size=max(size, 1),
                            **_LIMITS)


def _resync(data: bytes, start: int) -> int | None:
    """Find the next offset where a whole record decodes (after damage)."""
    pos = start
    while True:
        pos = data.find(b"\xa1v", pos)
        if pos < 1:
            return None
        head = pos - 1
        if 0x80 <= data[head] <= 0x8F:
            u = _unpacker(min(len(data) - head, MAX_RECORD_BYTES))
            u.feed(data[head:head + MAX_RECORD_BYTES])
            with contextlib.suppress(*_DECODE_ERRORS, msgpack.OutOfData):
                obj = u.unpack()
                if isinstance(obj, dict) and "v" in obj:
                    return head
        pos += 2


def scan_bytes(data: bytes, keep_examples: bool = True) -> ScanResult:
    result = ScanResult(size=len(data))
    offset = 0
    while offset < len(data):
        u = _unpacker(len(data) - offset)
        u.feed(data[offset:] if offset else data)
        start = offset
        try:
            while True:
                obj = u.unpack()
                end = offset + u.tell()
                if end - start > MAX_RECORD_BYTES:
                    raise ValueError("record too large")
                result.good_ranges.append((start, end))
                try:
                    example = parse_record(obj)
                except ValueError as exc:
                    result.skipped += 1
                    result.skip_reasons.append(str(exc))
                else:
                    result.count += 1
                    if keep_examples:
                        result.examples.append(example)
                start = end
        except msgpack.OutOfData:
            if start >= len(data):
                break
            # Whole records after it mean damage in the middle (e.g. a length header that
            # claims more bytes than the file holds), not a torn last record: cutting there
            # would drop every good record behind it.
            nxt = _resync(data, start + 1)
            if nxt is None:
                result.torn_at = start
                break
        except _DECODE_ERRORS:
            nxt = _resync(data, start + 1)
        # Only damage gets here (the loop above ends by an exception).
        result.corrupt_spans.append((start, nxt if nxt is not None else len(data)))
        if nxt is None:
            break
        offset = nxt
    return result


def _read_all(path: Path, limit: int | None = None) -> bytes:
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise ExampleLogError(f"{path} is {size} bytes, over the {MAX_FILE_BYTES} byte limit")
    with path.open("rb") as handle:
        return handle.read(limit if limit is not None else size)


def read_examples(path: Path, end_offset: int | None = None) -> ScanResult:
    """Read every valid example (up to ``end_offset`` bytes) without changing the file."""
    if not path.exists():
        return ScanResult()
    return scan_bytes(_read_all(path, end_offset))


class ExampleLog:
    """The append side of the log, owned by the running agent (one per data directory)."""

    def __init__(self, path: Path, quarantine_dir: Path, fsync_every: int = 100) -> None:
        self.path = path
        self.quarantine_dir = quarantine_dir
        self.fsync_every = max(1, fsync_every)
        self.count = 0
        self.label_counts = [0] * len(ACTION_NAMES)
        self.knowledge_total = 0
        self.notices: list[str] = []
        self._handle: BinaryIO | None = None
        self._since_sync = 0
        self._packer = msgpack.Packer()

    def open(self) -> ExampleLog:
        """Scan, repair what needs repair (with notices), and open for appending."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            data = _read_all(self.path)
            result = scan_bytes(data, keep_examples=True)
            self._repair(data, result)
            self.count = result.count
            for ex in result.examples:
                self.label_counts[ex.label] += 1
                self.knowledge_total += ex.outcome.knowledge_gained
            self.notices.extend(result.warnings)
        self._handle = open(self.path, "ab")  # noqa: SIM115 - held open for appends
        return self

    def _repair(self, data: bytes, result: ScanResult) -> None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        self.quarantine_dir.mkdir(parents=True, exist_ok=True)
        if result.corrupt_spans:
            copy = self.quarantine_dir / f"{self.path.name}.{stamp}.corrupt"
            shutil.copy2(self.path, copy)
            bad = sum(b - a for a, b in result.corrupt_spans)

            def write(handle: BinaryIO) -> None:
                for a, b in result.good_ranges:
                    handle.write(data[a:b])

            atomic_write_with(self.path, write)
            self.notices.append(
                f"{self.path.name} was damaged ({bad} unreadable bytes in "
                f"{len(result.corrupt_spans)} place(s)); kept {result.count} readable "
                f"examples, original copied to {copy}"
            )
        elif result.torn_at is not None:
            tail = data[result.torn_at:]
            (self.quarantine_dir / f"{self.path.name}.{stamp}.torn-tail").write_bytes(tail)
            with open(self.path, "r+b") as handle:
                handle.truncate(result.torn_at)
                handle.flush()
                os.fsync(handle.fileno())
            self.notices.append(
                f"{self.path.name}: cut a torn last record ({len(tail)} bytes, left by a crash "
                f"mid-write); {result.count} examples kept"
            )

    def append(self, example: Example) -> int:
        """Append one example, flushed to the OS; returns the new count."""
        if self._handle is None:
            raise ExampleLogError("example log is not open")
        record = self._packer.pack(example.to_record())
        self._handle.write(record)
        self._handle.flush()
        self.count += 1
        self.label_counts[example.label] += 1
        self.knowledge_total += example.outcome.knowledge_gained
        self._since_sync += 1
        if self._since_sync >= self.fsync_every:
            self.sync()
        return self.count

    def sync(self) -> None:
        if self._handle is not None:
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._since_sync = 0

    @property
    def offset(self) -> int:
        """Bytes written so far: a consistent end for a reader that must not see a torn write."""
        if self._handle is None:
            return self.path.stat().st_size if self.path.exists() else 0
        self._handle.flush()
        return self._handle.tell()

    def close(self) -> None:
        if self._handle is not None:
            self.sync()
            self._handle.close()
            self._handle = None
            fsync_dir(self.path.parent)

    def __enter__(self) -> ExampleLog:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()
