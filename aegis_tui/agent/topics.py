"""Goal keywords, goal matching and new curiosity topics from search results (pure functions).

- ``keywords`` gives the content words of a goal or topic: what the dashboard shows and
  what ``matches_goal`` compares against.
- ``matches_goal`` decides whether a knowledge item counts toward a goal. A goal with
  several keywords needs two of them in the item (one for a one-keyword goal), and at least
  one hit must be a specific word: "search" and "text" alone do not make a page about
  regular expressions. Words compare by a crude stem ("collector" ~ "collection").
- ``extract_topics`` proposes new curiosity topics: the world's own topic hints when the
  results carry any (offline, sim), else 1-3 word phrases that recur across the results or
  appear in a title (live web), skipping the query itself and everything already known.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from aegis_tui.text import clean, normalize
from aegis_tui.world.base import SearchResult
from aegis_tui.world.words import (
    WEAK_WORDS,
    content_words,
    is_content,
    singular,
    stem,
    stems,
    word_set,
    words,
)

MAX_TOPIC_CHARS = 40
MAX_PHRASE_WORDS = 3
MIN_PRIORITY = 0.05
# The score of a topic every result names (hint weights are 1-1.75 per result; phrase
# weights 1-2.15), so priority ~ the share of results that point at the topic.
_FULL_SCORE = 1.25

# Site chrome and web boilerplate: frequent in result titles, never a topic.
_NOISE: frozenset[str] = word_set("""
documentation docs doc tutorial tutorials guide guides wikipedia wiki reddit stack
overflow stackoverflow medium blog post posts article articles real geeksforgeeks w3schools
www http https com org net html htm page pages site website read click free online official
version release course courses video videos youtube library libraries question questions
answer answers complete beginner beginners ultimate quick step tip tips trick tricks
""")

# Where a phrase cannot continue: sentence punctuation, brackets, dashes between words.
_BREAK = re.compile(r"[^\w\s'’-]+|\s[-–—]+\s|--+")


def keywords(text: str) -> tuple[str, ...]:
    """The content words of a goal or topic: casefolded, singular, stopwords removed, in order.

    Goal boilerplate ("understand", "learn", "how", "works") and "python" (every offline
    document mentions it) are stopwords, so "Understand how Python manages memory and garbage
    collection" gives ``("memory", "garbage", "collection")``.
    """
    return tuple(content_words(text))


def _keyword_stems(goal_keywords: Sequence[str]) -> list[tuple[str, bool]]:
    """``(stem, is_weak)`` per distinct keyword; multi-word entries are split into words."""
    out: list[tuple[str, bool]] = []
    seen: set[str] = set()
    for entry in goal_keywords:
        for word in words(entry):
            key = stem(word)
            if key not in seen:
                seen.add(key)
                out.append((key, singular(word) in WEAK_WORDS))
    return out


def matches_goal(goal_keywords: Sequence[str], text: str | set[str]) -> bool:
    """Whether ``text`` (a knowledge item's title and body) counts toward the goal.

    ``text`` may also be its ``stems`` already (to check one item against many goals).
    Needs ``min(2, len(keywords))`` distinct keyword hits, and when the goal has any
    specific (non-weak) keyword, at least one of the hits must be specific.
    """
    keys = _keyword_stems(goal_keywords)
    if not keys or not text:
        return False
    present = stems(text) if isinstance(text, str) else text
    hits = [(key, weak) for key, weak in keys if key in present]
    if len(hits) < min(2, len(keys)):
        return False
    has_strong = any(not weak for _, weak in keys)
    return not has_strong or any(not weak for _, weak in hits)


@dataclass(slots=True)
class _Candidate:
    display: str
    words: tuple[str, ...]
    score: float
    order: int
    docs: int = 0


def _tidy(topic: str) -> str:
    """A hint as a readable one-line topic, or "" when it is empty or too long."""
    text = clean(topic, None)
    if not text or len(text) > MAX_TOPIC_CHARS or not normalize(text):
        return ""
    return text


def _covered_by_query(phrase_words: Sequence[str], query_stems: set[str]) -> bool:
    """A phrase made only of the query's own words adds nothing the query did not cover."""
    content = [w for w in phrase_words if is_content(w)]
    return bool(content) and all(stem(w) in query_stems for w in content)


def _from_hints(results: Sequence[SearchResult]) -> list[_Candidate]:
    found: dict[str, _Candidate] = {}
    order = 0
    for rank, result in enumerate(results):
        for position, hint in enumerate(result.topics):
            display = _tidy(hint)
            key = normalize(display)
            if not key:
                continue
            # Named by more results, by better-ranked results, and earlier in a result: first.
            weight = 1.0 + 0.5 / (1 + rank) + 0.25 / (1 + position)
            if key in found:
                found[key].score += weight
            else:
                found[key] = _Candidate(display, tuple(words(display)), weight, order)
                order += 1
    return list(found.values())


def _chunks(text: str) -> list[list[str]]:
    """Runs of consecutive content words (singular), split at punctuation and stopwords."""
    runs: list[list[str]] = []
    for segment in _BREAK.split(text):
        run: list[str] = []
        for word in words(segment):
            if is_content(word) and word not in _NOISE and not word[0].isdigit():
                run.append(singular(word))
            else:
                if run:
                    runs.append(run)
                run = []
        if run:
            runs.append(run)
    return runs


def _ngrams(runs: list[list[str]]) -> set[tuple[str, ...]]:
    grams: set[tuple[str, ...]] = set()
    for run in runs:
        for n in range(1, MAX_PHRASE_WORDS + 1):
            for i in range(len(run) - n + 1):
                grams.add(tuple(run[i:i + n]))
    return grams


def _usable_phrase(gram: tuple[str, ...]) -> bool:
    if all(w in WEAK_WORDS for w in gram):
        return False
    if len(gram) == 1 and len(gram[0]) < 3:
        return False
    return len(set(gram)) == len(gram)  # "loop loop" is an artefact, not a phrase


def _from_phrases(results: Sequence[SearchResult]) -> list[_Candidate]:
    found: dict[tuple[str, ...], _Candidate] = {}
    order = 0
    for result in results:
        in_title = _ngrams(_chunks(result.title))
        in_doc = in_title | _ngrams(_chunks(result.body))
        for gram in sorted(in_doc, key=lambda g: (-len(g), g)):
            if not _usable_phrase(gram):
                continue
            cand = found.get(gram)
            if cand is None:
                cand = found[gram] = _Candidate(" ".join(gram), gram, 0.0, order)
                order += 1
            cand.docs += 1
            cand.score += 1.0 + (0.75 if gram in in_title else 0.0) + 0.2 * (len(gram) - 1)
    # A phrase nobody repeats and no title names is noise from one snippet.
    kept = [c for c in found.values() if c.docs >= 2 or c.score >= 1.75]
    # Prefer the phrase to its parts: drop a word or sub-phrase when a longer candidate
    # containing it is nearly as frequent ("garbage collector" over "garbage").
    longer = sorted((c for c in kept if len(c.words) > 1), key=lambda c: -len(c.words))
    out = []
    for cand in kept:
        nested = any(
            len(big.words) > len(cand.words) and _contains(big.words, cand.words)
            and big.docs * 5 >= cand.docs * 3
            for big in longer
        )
        if not nested:
            out.append(cand)
    return out


def _contains(big: tuple[str, ...], small: tuple[str, ...]) -> bool:
    n = len(small)
    return any(big[i:i + n] == small for i in range(len(big) - n + 1))


def extract_topics(results: Sequence[SearchResult], query: str, known: Collection[str],
                   limit: int = 5) -> list[tuple[str, float]]:
    """New curiosity topics from ``results`` as ``(topic, priority)``, best first.

    Priority is in [0.05, 1]: roughly the share of the results that name the topic (a
    title mention or an early rank counts extra), so it is comparable across searches.
    ``known`` holds normalised forms (``aegis_tui.text.normalize``) of topics and goals the
    agent already has; those, the query itself and phrases made only of the query's words
    are skipped. Topics are 1-3 words (hints may be longer) and at most 40 characters.
    """
    if limit <= 0 or not results:
        return []
    exclude = {normalize(k) for k in known}
    exclude.add(normalize(query))
    query_stems = {stem(w) for w in content_words(query)}
    hinted = any(r.topics for r in results)
    candidates = _from_hints(results) if hinted else _from_phrases(results)
    ranked = sorted(candidates, key=lambda c: (-c.score, c.order))
    chosen: list[_Candidate] = []
    for cand in ranked:
        key = normalize(cand.display)
        if (not key or key in exclude or len(cand.display) > MAX_TOPIC_CHARS
                or _covered_by_query(cand.words, query_stems)):
            continue
        exclude.add(key)
        chosen.append(cand)
        if len(chosen) >= limit:
            break
    # Absolute, not relative to this search's best: a topic every result names is worth
    # more than the best of a scatter of one-off mentions.
    full = _FULL_SCORE * len(results)
    return [(c.display, round(min(1.0, max(MIN_PRIORITY, c.score / full)), 3)) for c in chosen]
