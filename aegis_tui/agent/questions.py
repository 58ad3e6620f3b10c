"""Questions for a human: composing one from the state, and checking an answer.

``check_answer`` is the single gate every answer passes (dashboard modal, ``aegis-tui
answer``, the sim's human): empty, oversized or binary answers are refused with a reason;
control characters are neutralised before anything is stored.
"""

from __future__ import annotations

from aegis_tui.snapshot import StateSnapshot
from aegis_tui.text import clean

MAX_ANSWER_CHARS = 4000
MAX_ANSWER_BYTES = 64 * 1024

_TEMPLATES = (
    "What is the most important thing to understand about {topic}?",
    "Can you recommend a good way to learn about {topic}?",
    "What is a common mistake people make with {topic}?",
    "How does {topic} relate to what I am trying to learn?",
)


class AnswerRefused(ValueError):
    """The answer cannot be accepted; the message says why (shown in place to the user)."""


def compose_question(snapshot: StateSnapshot) -> tuple[str, str]:
    """Return ``(question, topic)``: about the top curiosity topic, else an active goal."""
    if snapshot.curiosity:
        topic = snapshot.curiosity[0].topic
    elif snapshot.active_goals:
        goal = snapshot.active_goals[0]
        topic = " ".join(goal.keywords[:3]) or goal.text
    else:
        topic = "what I should explore next"
    topic = clean(topic, 80)
    template = _TEMPLATES[snapshot.questions_asked % len(_TEMPLATES)]
    return template.format(topic=topic), topic


def check_answer(raw: str | bytes) -> str:
    """Return the answer as it will be stored, or raise ``AnswerRefused``."""
    if isinstance(raw, bytes):
        if len(raw) > MAX_ANSWER_BYTES:
            raise AnswerRefused(_too_long(len(raw), "bytes"))
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise AnswerRefused("answer is not UTF-8 text") from None
    if not isinstance(raw, str):
        raise AnswerRefused("answer must be text")
    if len(raw) > MAX_ANSWER_BYTES:
        raise AnswerRefused(_too_long(len(raw), "characters"))
    if "\x00" in raw:
        raise AnswerRefused("answer contains binary data (NUL bytes)")
    text = clean(raw, None, keep_newlines=True)
    if not text:
        raise AnswerRefused("answer is empty")
    if len(text) > MAX_ANSWER_CHARS:
        raise AnswerRefused(_too_long(len(text), "characters"))
    return text


def _too_long(size: int, unit: str) -> str:
    return f"answer is {size:,} {unit}; the limit is {MAX_ANSWER_CHARS:,} characters"
