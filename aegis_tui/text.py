"""Making untrusted text safe to show: no control characters, bounded length.

Search results, answers, proposals and model output come from outside. Before any of it
reaches a screen or a log line it goes through ``clean``: ANSI escape sequences and other
control characters are removed or replaced, whitespace runs collapse, and long text ends
in an ellipsis. Markup safety is the display layer's job (it renders ``rich.text.Text``,
never markup strings); this module makes the characters themselves harmless.
"""

from __future__ import annotations

import re
import unicodedata

ELLIPSIS = "…"

# CSI / OSC / other ESC sequences, then any remaining C0/C1 control or bidi override.
_ANSI = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)?|[@-Z\\-_])")
_BIDI = dict.fromkeys(map(ord, "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"), None)
_WS = re.compile(r"\s+")


# Every character the loop below may change (a superset: private-use planes whole). Most
# text has none, and one regex scan is far cheaper than a category lookup per character.
_SUSPECT = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\ue000-\uf8ff\ufffe"
                      "\U000f0000-\U0010ffff]")


def _strip_controls(text: str, keep_newlines: bool) -> str:
    if _SUSPECT.search(text) is None:
        return text
    out = []
    for ch in text:
        if ch == "\n" and keep_newlines:
            out.append(ch)
        elif ch in "\t\r\n\f\v":
            out.append(" ")
        elif unicodedata.category(ch) in ("Cc", "Cs", "Co") or ch == "\ufffe":
            out.append("\ufffd" if unicodedata.category(ch) == "Cs" else "")
        else:
            out.append(ch)
    return "".join(out)


def clean(text: object, limit: int | None = 200, *, keep_newlines: bool = False) -> str:
    """Return ``text`` as a single safe line (or lines), truncated to ``limit`` characters."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    s = str(text)
    s = _ANSI.sub("", s).translate(_BIDI)
    s = _strip_controls(s, keep_newlines)
    if keep_newlines:
        s = "\n".join(_WS.sub(" ", line).strip() for line in s.split("\n")).strip()
    else:
        s = _WS.sub(" ", s).strip()
    return truncate(s, limit)


def truncate(s: str, limit: int | None) -> str:
    if limit is not None and len(s) > limit:
        return s[: max(0, limit - 1)].rstrip() + ELLIPSIS
    return s


_NON_WORD = re.compile(r"[^\w]+")


def normalize(text: str) -> str:
    """Case-, punctuation- and spacing-insensitive form used to detect duplicates."""
    return _NON_WORD.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()
