"""Words: tokenising, stopwords and a light stemmer shared by the worlds and topic extraction.

Goal texts, curiosity topics and search results are natural language. The offline world
turns them into full-text queries, the sim maps them onto its topic graph, and
``agent.topics`` derives goal keywords and new topics from them; all of them need the same
idea of which words carry content. It lives here, under ``world/``, because the agent may
import the worlds but the worlds may not import the agent.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable


def word_set(text: str) -> frozenset[str]:
    """A set of words written as one whitespace-separated block (easier to read and edit)."""
    return frozenset(text.split())


# Function words, plus the boilerplate of goal texts ("understand how ... works") and words
# so common in every source (the offline corpus is all Python) that they carry no topic.
STOPWORDS: frozenset[str] = word_set("""
a about above after again against all almost also although always am among an and another
any are aren around as at be became because been before being below between both but by
can cannot could did do does doing done down during each either else enough etc even ever
every few for from further get gets got had has have having he her here hers him his how
however i if in into is isn it its itself just least less let like made make makes many
may me might more most much must my near need needs neither never new no nor not now of
off often on once one only onto or other others otherwise our ours out over own per
perhaps put rather really same see seen several shall she should since so some something
such than that the their theirs them then there therefore these they thing things this
those though through thus to too toward under until up upon us use used uses using very
via was way ways we well were what whatever when where whether which while who whom whose
why will with within without would yet you your yours
understand understanding learn learning learned know knowing knowledge explore study
studying figure find out works work working happen happens explain explained explains
basic basics intro introduction overview concept concepts idea ideas thing topic topics
manage manages managed managing
python python3 pythons programming program programs language languages
default defaults return returns returned value values true false none object objects
argument arguments arg args kwargs keyword optional given call called calls
""")

# Content words too generic to make a document relevant on their own (see
# ``agent.topics.matches_goal``): a hit on one of these only counts next to a specific word.
WEAK_WORDS: frozenset[str] = word_set("""
data text match search list string file files function functions method methods class type
types module modules code system handle handles set sets add create
read write run runs time number numbers name names test tests line lines result results
example examples simple easy way part parts level first last good best
""")

_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)?", re.UNICODE)
_MAX_WORD = 40


def words(text: str) -> list[str]:
    """Casefolded words of ``text`` (letters and digits; ``_`` and ``.`` separate words)."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return [w.replace("’", "'") for w in _WORD.findall(folded) if len(w) <= _MAX_WORD]


def singular(word: str) -> str:
    """Strip an English plural the cheap way: ``loops`` → ``loop``, ``queries`` → ``query``."""
    if len(word) <= 3 or not word.isalpha():
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("sses", "xes", "ches", "shes", "zzes")):
        return word[:-2]
    if word.endswith(("ss", "us", "is", "ys", "os", "'s")):
        return word[:-2] if word.endswith("'s") else word
    if word.endswith("s"):
        return word[:-1]
    return word


def stem(word: str) -> str:
    """A crude comparison key: singular, ``-ing``/``-ed``/``-e`` dropped, first 7 letters.

    Enough to make "collection"/"collector", "serialized"/"serialization",
    "pickle"/"pickled" and "match"/"matching" compare equal without a real stemmer; it is
    only ever compared with other ``stem`` outputs, never shown.
    """
    w = singular(word)
    for suffix in ("ing", "ed", "e"):
        if w.endswith(suffix) and len(w) - len(suffix) >= 4:
            w = w[: -len(suffix)]
            break
    return w[:7]


def is_content(word: str) -> bool:
    """Whether a (casefolded) word can carry a topic: not a stopword, not a bare number."""
    return (len(word) >= 2 and word not in STOPWORDS and not word.isdigit()
            and singular(word) not in STOPWORDS)


def content_words(text: str, *, singularize: bool = True) -> list[str]:
    """The content words of ``text`` in order, deduplicated (singular unless told not to)."""
    seen: set[str] = set()
    out: list[str] = []
    for word in words(text):
        if not is_content(word):
            continue
        w = singular(word) if singularize else word
        if w not in seen:
            seen.add(w)
            out.append(w)
    return out


def stems(text_or_words: str | Iterable[str]) -> set[str]:
    """The set of ``stem`` keys of a text (or of already-split words)."""
    items = words(text_or_words) if isinstance(text_or_words, str) else text_or_words
    return {stem(w) for w in items}
