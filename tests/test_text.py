"""Untrusted text: control characters and escapes neutralised, length bounded."""

from __future__ import annotations

from aegis_tui.text import ELLIPSIS, clean, normalize


def test_ansi_and_controls_are_removed():
    assert clean("a\x1b[31mred\x1b[0m\x07\x00b") == "aredb"
    assert clean("osc\x1b]0;title\x07 end") == "osc end"
    assert clean("bidi \u202eevil") == "bidi evil"


def test_whitespace_collapses_and_newlines_optional():
    assert clean("a\n\tb   c") == "a b c"
    assert clean("a\n\n b", keep_newlines=True) == "a\n\nb"


def test_markup_is_left_as_plain_characters():
    # Markup safety is the renderer's job (Text objects); the characters survive intact.
    assert clean("[b]x[/b] [@click=app.quit]q[/]") == "[b]x[/b] [@click=app.quit]q[/]"


def test_truncation_with_ellipsis():
    out = clean("x" * 500, 20)
    assert len(out) == 20 and out.endswith(ELLIPSIS)
    assert clean("short", 20) == "short"


def test_bytes_are_decoded_safely():
    assert clean(b"caf\xc3\xa9 \xff") == "café \ufffd"


def test_normalize_ignores_case_punctuation_and_spacing():
    assert normalize("Add goal:  Learn  ABOUT  asyncio!") == normalize(
        "add goal learn about asyncio")
