"""The example log: appends, torn tails, damage in the middle, foreign and newer records."""

from __future__ import annotations

import time

import msgpack
import pytest

from aegis_tui.snapshot import StateSnapshot
from aegis_tui.training.example_log import (
    Example,
    ExampleLog,
    ExampleLogError,
    Outcome,
    read_examples,
)


def example(i: int, action: str = "web_search") -> Example:
    return Example(iteration=i, time=time.time(),
                   state=StateSnapshot(iteration=i, recent_actions=("idle",) * (i % 11),
                                       knowledge_count=i),
                   action=action, probs=(0.7, 0.1, 0.1, 0.1), policy="rules",
                   outcome=Outcome(True, i % 3, "details"), reward=float(i % 3))


def write(path, n: int) -> None:  # type: ignore[no-untyped-def]
    with ExampleLog(path, path.parent / "quarantine") as log:
        for i in range(1, n + 1):
            log.append(example(i))


def test_round_trip_and_counts(data_dir):
    path = data_dir / "log.msgpack"
    write(path, 30)
    result = read_examples(path)
    assert result.count == 30 and not result.corrupt_spans and result.torn_at is None
    assert [e.iteration for e in result.examples] == list(range(1, 31))
    assert result.examples[4].state.knowledge_count == 5
    with ExampleLog(path, data_dir / "q") as log:
        assert log.count == 30 and log.label_counts[0] == 30


def test_fsync_every_n_records(data_dir, monkeypatch):
    import os

    synced = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real(fd)))
    log = ExampleLog(data_dir / "log.msgpack", data_dir / "q", fsync_every=10).open()
    for i in range(25):
        log.append(example(i))
    assert len(synced) == 2
    log.close()


def test_torn_tail_is_cut_with_a_warning_and_kept_aside(data_dir):
    path = data_dir / "log.msgpack"
    write(path, 20)
    data = path.read_bytes()
    path.write_bytes(data[:-9])  # the process died mid-write
    log = ExampleLog(path, data_dir / "quarantine").open()
    assert log.count == 19
    assert any("torn last record" in n for n in log.notices)
    assert list((data_dir / "quarantine").glob("*.torn-tail"))
    log.append(example(99))
    log.close()
    assert read_examples(path).count == 20


def test_damage_in_the_middle_keeps_everything_readable(data_dir):
    path = data_dir / "log.msgpack"
    write(path, 40)
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    data[mid:mid + 40] = b"\xc1" * 40  # 0xc1 is never valid msgpack
    path.write_bytes(bytes(data))
    log = ExampleLog(path, data_dir / "quarantine").open()
    assert 36 <= log.count < 40, "only the damaged records are lost"
    assert any("was damaged" in n for n in log.notices)
    assert list((data_dir / "quarantine").glob("*.corrupt"))
    log.close()
    assert read_examples(path).count == log.count
    assert not read_examples(path).corrupt_spans


def test_garbage_file(data_dir):
    path = data_dir / "log.msgpack"
    path.write_bytes(b"\xc1" * 1000)
    log = ExampleLog(path, data_dir / "quarantine").open()
    assert log.count == 0 and log.notices
    log.append(example(1))
    log.close()
    assert read_examples(path).count == 1


def test_wrong_shape_records_are_skipped_not_deleted(data_dir):
    path = data_dir / "log.msgpack"
    write(path, 3)
    with path.open("ab") as handle:
        handle.write(msgpack.packb({"v": 1, "kind": "example", "action": "fly"}))
        handle.write(msgpack.packb([1, 2, 3]))
    size = path.stat().st_size
    log = ExampleLog(path, data_dir / "q").open()
    assert log.count == 3
    assert any("wrong shape" in n for n in log.notices)
    log.close()
    assert path.stat().st_size == size, "foreign records are left in place"


def test_newer_format_refuses_to_append(data_dir):
    path = data_dir / "log.msgpack"
    write(path, 2)
    with path.open("ab") as handle:
        handle.write(msgpack.packb({"v": 99, "kind": "example"}))
    with pytest.raises(ExampleLogError, match="newer"):
        ExampleLog(path, data_dir / "q").open()


def test_oversized_record_is_not_loaded(data_dir):
    path = data_dir / "log.msgpack"
    write(path, 2)
    with path.open("ab") as handle:
        handle.write(msgpack.packb({"v": 1, "blob": "x" * 200_000}))
    result = read_examples(path)
    assert result.count == 2


def test_the_teacher_model_and_revision_are_kept_and_old_records_still_read(data_dir):
    from dataclasses import replace

    path = data_dir / "log.msgpack"
    sha = "0123456789abcdef0123456789abcdef01234567"
    old = example(1).to_record()
    assert "model" not in old and "revision" not in old  # the rules teacher: neither key
    with path.open("wb") as handle:  # a file written before the keys existed
        handle.write(msgpack.packb(old))
    with ExampleLog(path, data_dir / "q") as log:
        log.append(replace(example(2), policy="gpt2", teacher_model="gpt2",
                           teacher_revision=sha))
        log.append(replace(example(3), policy="tiny", teacher_model="/models/tiny"))
    result = read_examples(path)
    assert result.count == 3 and not result.skipped
    assert [(e.teacher_model, e.teacher_revision) for e in result.examples] == [
        ("", ""), ("gpt2", sha), ("/models/tiny", "")]
    assert result.examples[1].to_record()["v"] == 1  # same format version: additive keys
