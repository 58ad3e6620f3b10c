"""Bad input from people and other processes: answers, proposals, CLI arguments, msgpack.

- Answers that are empty, huge (1 MB), binary, or full of markup and control characters
  are refused with a reason or stored cleaned, through ``answer_question`` and the CLI
  (arguments and the interactive prompt); markup is kept literally (the dashboard's own
  test checks that it is shown literally).
- Proposals written straight into the database by "another process" with foreign kinds,
  foreign or out-of-bounds payloads, are refused when approved and applied: nothing outside
  the allowed settings changes, no code runs, no file is touched.
- CLI arguments out of range are argparse errors (usage line, exit 2).
- A hostile example log cannot make the reader allocate what its headers claim.
"""

from __future__ import annotations

import json
import os
import tracemalloc
from pathlib import Path

import msgpack
import pytest

from aegis_tui import cli
from aegis_tui.agent.questions import MAX_ANSWER_CHARS, AnswerRefused
from aegis_tui.agent.resolutions import answer_question, review_proposal
from aegis_tui.config import TUNABLE_SETTINGS
from aegis_tui.storage.database import Database
from aegis_tui.storage.records import PENDING
from aegis_tui.training.example_log import ExampleLog, scan_bytes
from tests.fakes import make_runtime
from tests.headless import cli_in_process, one_line_error

MEGABYTE = "x" * (1024 * 1024)


@pytest.fixture
def asked(data_dir: Path) -> tuple[Path, list[int]]:
    """A data dir whose database holds five pending questions."""
    with make_runtime(data_dir) as rt:
        rt.agent.run(max_iterations=3)
        ids = [rt.agent.db.add_question(f"Question {k} about [b]markup[/b]?", "topic", 3, 0.0)
               for k in range(5)]
    return data_dir, ids


@pytest.mark.parametrize(("raw", "reason"), [
    ("", "answer is empty"),
    (" \n\t ", "answer is empty"),
    ("\x1b[31m\x07\x00", "binary data"),
    (MEGABYTE, "the limit is 4,000 characters"),
    ("y" * (MAX_ANSWER_CHARS + 1), "the limit is 4,000 characters"),
    (b"\xff\xfe\x00\x01", "not UTF-8"),
    (MEGABYTE.encode(), "the limit is 4,000 characters"),
    ("\x1b[2J\x1b]0;title\x07", "answer is empty"),
])
def test_bad_answers_are_refused_with_a_reason(asked, raw: str | bytes, reason: str) -> None:
    data_dir, ids = asked
    db = Database(data_dir / "agent.sqlite3")
    try:
        with pytest.raises(AnswerRefused, match=reason):
            answer_question(db, ids[0], raw)
        assert db.question(ids[0]).status == PENDING, "a refused answer changes nothing"
    finally:
        db.close()


def test_markup_and_control_characters_are_stored_cleaned_and_literal(asked) -> None:
    data_dir, ids = asked
    db = Database(data_dir / "agent.sqlite3")
    try:
        raw = ("[link=https://evil]click[/link] [@click=app.quit]q[/] \x1b[31mred\x1b[0m "
               "\u202eevil\u202c\r\nsecond line\x00"[:-1])
        stored = answer_question(db, ids[0], raw)
        assert stored == ("[link=https://evil]click[/link] [@click=app.quit]q[/] red evil\n"
                          "second line")
        assert db.question(ids[0]).answer == stored
    finally:
        db.close()
    with make_runtime(data_dir) as rt:  # the agent turns the answer into knowledge
        rt.agent.run(max_iterations=1)
        item = next(k for k in rt.agent.db.latest_knowledge(20)
                    if k.source == f"human://question/{ids[0]}")
    assert "[link=https://evil]click[/link]" in item.text and "\x1b" not in item.text


def test_cli_answers_refused_or_stored(asked, capsys: pytest.CaptureFixture[str]) -> None:
    data_dir, ids = asked
    d = ("--data-dir", str(data_dir))
    code, _, err = cli_in_process(capsys, "answer", str(ids[0]), MEGABYTE, *d)
    assert code == 2 and "1,048,576 characters; the limit is 4,000" in one_line_error(err)
    code, _, err = cli_in_process(capsys, "answer", str(ids[0]), "", *d)
    assert code == 2 and "answer is empty" in one_line_error(err)
    # Undecodable bytes on the command line arrive as surrogate escapes: stored replaced.
    binary = os.fsdecode(b"caf\xe9 \xff\xfe ok")
    code, out, _ = cli_in_process(capsys, "answer", str(ids[1]), binary, *d)
    assert code == 0
    code, _, err = cli_in_process(capsys, "answer", "999", "fine", *d)
    assert code == 2 and "there is no question #999" in one_line_error(err)
    code, out, _ = cli_in_process(capsys, "answer", "--list", *d)
    assert "Question 0 about [b]markup[/b]?" in out, "listed literally"
    db = Database(data_dir / "agent.sqlite3")
    try:
        assert db.question(ids[0]).status == PENDING
        assert db.question(ids[1]).answer == "caf\ufffd \ufffd\ufffd ok"
    finally:
        db.close()


def test_the_interactive_prompt_refuses_and_asks_again(asked, capsys,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    data_dir, ids = asked
    replies = iter([MEGABYTE, "\x00\x01\x02", "A real answer", ""])

    def reply(prompt: str = "") -> str:
        try:
            return next(replies)
        except StopIteration:
            raise EOFError from None  # the user pressed Ctrl-D

    monkeypatch.setattr(cli, "_interactive", lambda: True)
    monkeypatch.setattr("builtins.input", reply)
    code, out, _ = cli_in_process(capsys, "answer", "--data-dir", str(data_dir))
    assert code == 0
    assert out.count("refused: ") == 2 and "binary data (NUL bytes); try again" in out
    db = Database(data_dir / "agent.sqlite3")
    try:
        assert db.question(ids[0]).answer == "A real answer"
        assert db.question(ids[1]).status == PENDING
    finally:
        db.close()


# -- proposals from another process ----------------------------------------------------------
FOREIGN = [
    ("run_shell", {"cmd": "touch {marker}"}, "unknown proposal kind"),
    ("__import__", {"name": "os"}, "unknown proposal kind"),
    ("set_setting", {"key": "think_interval", "value": 0}, "cannot be changed"),
    ("set_setting", {"key": "data_dir", "value": "/"}, "cannot be changed"),
    ("set_setting", {"key": "__class__", "value": 1}, "cannot be changed"),
    ("set_setting", {"key": "results_per_search", "value": 10**9}, "within 1..10"),
    ("set_setting", {"key": "results_per_search", "value": -1}, "within 1..10"),
    ("set_setting", {"key": "results_per_search", "value": True}, "within 1..10"),
    ("set_setting", {"key": "results_per_search", "value": 5.5}, "within 1..10"),
    ("set_setting", {"key": "results_per_search", "value": "7"}, "within 1..10"),
    ("set_setting", {"key": "max_curiosity", "value": 201}, "within 10..200"),
    ("add_goal", {"text": ""}, "non-empty goal text"),
    ("add_goal", {"text": "\x1b[2J\x00\x07"}, "non-empty goal text"),
    ("add_goal", {"text": ["not", "text"]}, "non-empty goal text"),
    ("drop_topic", {"topic": None}, "needs a topic"),
    ("add_goal", "[1, 2]", "non-empty goal text"),
    ("add_goal", "{not json", "non-empty goal text"),
]


def test_foreign_and_out_of_bounds_proposals_are_refused_when_applied(
        data_dir: Path, tmp_path: Path, capsys) -> None:
    marker = tmp_path / "pwned"
    with make_runtime(data_dir) as rt:
        rt.agent.run(max_iterations=3)
        settings = dict(rt.agent.state.settings)
    db = Database(data_dir / "agent.sqlite3")  # "another process" writes rows directly
    ids = {}
    for n, (kind, payload, reason) in enumerate(FOREIGN):
        raw = payload if isinstance(payload, str) else json.dumps(payload).replace(
            "{marker}", str(marker))
        with db.transaction() as c:
            cur = c.execute("INSERT INTO proposals(kind, payload, text, norm, status, "
                            "created_at, iteration) VALUES(?,?,?,?,?,?,?)",
                            (kind, raw, f"\x1b[31m[b]foreign #{n}[/b] " + "z" * 2000,
                             f"foreign {n}", PENDING, 0.0, 3))
            ids[cur.lastrowid] = reason
    db.close()
    code, out, _ = cli_in_process(capsys, "review", "--list", "--data-dir", str(data_dir))
    listed = [line for line in out.splitlines() if "foreign #" in line]
    assert len(listed) == len(FOREIGN)
    assert all("\x1b" not in line and len(line) < 400 and "[b]foreign" in line
               for line in listed), "listed literally, cleaned and bounded"
    for pid in ids:
        code, out, _ = cli_in_process(capsys, "review", str(pid), "approve", "--data-dir",
                                      str(data_dir))
        assert code == 0
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")
                    if "quarantine" not in p.parts and not p.name.startswith("aegis."))
    with make_runtime(data_dir) as rt:
        summary = rt.agent.run(max_iterations=5)
        assert summary.stopped_by == "limit"
        assert rt.agent.state.settings == settings, "no setting moved"
        for pid, reason in ids.items():
            p = rt.agent.db.proposal(pid)
            assert p.credited and p.reward == 0.0, (p.kind, p.payload)
            assert p.applied.startswith("not applied: ") and reason in p.applied, p.applied
    assert not marker.exists(), "a proposal never runs anything"
    after = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")
                   if "quarantine" not in p.parts and not p.name.startswith("aegis."))
    assert [p for p in after if p not in before and p.parent.name != "data"] == []


def test_allowed_proposals_stay_inside_their_bounds(data_dir: Path, tmp_path: Path) -> None:
    with make_runtime(data_dir) as rt:
        rt.agent.run(max_iterations=3)
        db = rt.agent.db
        huge = db.add_proposal("add_goal", {"text": "learn " + "w" * 1_000_000}, "huge goal",
                               "huge goal", PENDING, 3, 0.0)
        escape = db.add_proposal("drop_topic", {"topic": "../../../etc/passwd"}, "drop path",
                                 "drop path", PENDING, 3, 0.0)
        top = db.add_proposal("set_setting", {"key": "max_curiosity",
                                              "value": TUNABLE_SETTINGS["max_curiosity"][1]},
                              "max curiosity", "max curiosity", PENDING, 3, 0.0)
        for pid in (huge, escape, top):
            review_proposal(db, pid, True)
        rt.agent.run(max_iterations=1)
        goals = [g.text for g in db.goals() if g.text.startswith("learn w")]
        assert goals and all(len(g) <= 200 for g in goals), "stored, but bounded"
        assert db.proposal(escape).applied == "topic was already gone"
        assert rt.agent.state.settings["max_curiosity"] == 200
    assert not (tmp_path / "etc").exists()


# -- command-line arguments --------------------------------------------------------------------
@pytest.mark.parametrize(("args", "needle"), [
    (["run", "--iterations", "0"], "argument --iterations: must be at least 1, got 0"),
    (["run", "--iterations", "-3"], "argument --iterations: must be at least 1, got -3"),
    (["run", "--iterations", "1e3"], "argument --iterations: expected a whole number"),
    (["run", "--collect-threshold", "0"], "argument --collect-threshold: must be between 1 and"),
    (["run", "--check-every", "0"], "argument --check-every: must be between 1 and"),
    (["run", "--epochs", "0"], "argument --epochs: must be between 1 and 1000, got 0"),
    (["run", "--seed", "-1"], "argument --seed: must be between 0 and"),
    (["run", "--world", "mars"], "argument --world: invalid choice: 'mars'"),
    (["run", "--teacher", "gpt5"], "argument --teacher: invalid choice: 'gpt5'"),
    (["run", "--think-interval", "-1"], "argument --think-interval: must be between 0 and"),
    (["run", "--think-interval", "nan"], "argument --think-interval: must be finite"),
    (["run", "--think-interval", "inf"], "argument --think-interval: must be finite"),
    (["run", "--accuracy-gate", "1.5"], "argument --accuracy-gate: must be between 0 and 1"),
    (["run", "--accuracy-gate", "nan"], "argument --accuracy-gate: must be finite"),
    (["--collect-threshold", "0"], "argument --collect-threshold: must be between 1 and"),
    (["run", "--epochs", "two"], "argument --epochs: expected a whole number, got 'two'"),
    (["run", "--epochs", "1001"], "argument --epochs: must be between 1 and 1000, got 1001"),
    (["answer", "0", "text"], "argument ID: must be at least 1"),
    (["review", "1", "maybe"], "argument verdict: invalid choice: 'maybe'"),
    (["export", "--format", "xml"], "argument --format: invalid choice: 'xml'"),
    (["launch"], "argument COMMAND: invalid choice: 'launch'"),
])
def test_out_of_range_arguments_are_argparse_errors(args: list[str], needle: str,
                                                    capsys) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(args)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: aegis-tui") and needle in err and "Traceback" not in err


def test_epochs_alone_works_and_an_old_flat_key_names_its_table(data_dir: Path,
                                                                 capsys) -> None:
    code, _, err = cli_in_process(capsys, "run", "--headless", "--quiet", "--world", "sim",
                                  "--teacher", "rules", "--think-interval", "0", "--epochs", "2",
                                  "--iterations", "2", "--data-dir", str(data_dir))
    assert code == 0, err
    (data_dir / "config.toml").write_text("epochs = 2\ncheckpoint_every = 5\n")
    code, _, err = cli_in_process(capsys, "status", "--data-dir", str(data_dir))
    assert code == 2 and ("epochs: moved to the [imitation] table (imitation.epochs)"
                          in one_line_error(err))


# -- msgpack limits ----------------------------------------------------------------------------
@pytest.mark.parametrize("header", [
    b"\xdb\xff\xff\xff\xff",  # str 32: a 4 GiB string
    b"\xc6\xff\xff\xff\xff",  # bin 32: 4 GiB of bytes
    b"\xdd\xff\xff\xff\xff",  # array 32: 4 billion items
    b"\xdf\xff\xff\xff\xff",  # map 32: 4 billion pairs
    b"\xc9\xff\xff\xff\xff\x01",  # ext 32
    b"\x91" * 100_000,  # arrays nested 100,000 deep
])
def test_hostile_msgpack_headers_allocate_nothing(data_dir: Path, header: bytes) -> None:
    from aegis_tui.bench.synthetic_states import synthetic_examples

    log = data_dir / "hrm_training_data.msgpack"
    good = [msgpack.packb(ex.to_record()) for ex in synthetic_examples(4, seed=1)]
    log.write_bytes(good[0] + good[1] + header + b"\x00" * 64 + good[2] + good[3])
    tracemalloc.start()
    try:
        result = scan_bytes(log.read_bytes())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 32 * 1024 * 1024, f"reading allocated {peak:,} bytes"
    assert result.count == 4 and result.corrupt_spans
    with ExampleLog(log, data_dir / "quarantine").open() as opened:
        assert opened.count == 4 and any("was damaged" in n for n in opened.notices)
