"""The ``sim`` world: seeded, deterministic search results, a part-time human and a reviewer.

It is what tests and benchmarks run on, so its dynamics reward reading the state well:

- **Topic graph.** A fixed list of topics in five themes (memory, asyncio, regular
  expressions, serialization, general computer science). From the seed, every topic gets
  a pool of result items (``pool_min``..``pool_max``) and 3-5 related topics, mostly from its
  own theme. A query that names a topic searches it; any other query (a goal's full text, a
  question topic) maps to the topic sharing the most content words, with a third of the
  draws from the runner-up; a query sharing no word with the graph becomes an ad-hoc topic
  of its own, derived from the seed and its words.
- **Searches.** A search draws ``max_results`` distinct items of its topic's pool, so the
  pool is sampled with replacement *across* searches: the first search of a topic pays in
  full and each repeat brings fewer new items (the agent deduplicates by the stable URL
  ``sim://<topic>/<item>``). Items name the topic in their title, often mention their
  theme's goal words in the body, and carry 1-2 related topics as hints.
- **Subtopics.** Besides the graph's topics there are narrower ones, a graph topic plus
  one or two aspects ("event loop internals", "json performance testing"), generated from
  the seed on demand and named in results like any related topic.
- **New material.** Every topic publishes a new item every ``publish_every`` iterations
  (drawn per topic from ``publish_every_min..max``) and its oldest item drops out of the
  pool: a topic revisited after a while pays again.
- **Emerging subtopics.** Every ``emerge_every``-th item a topic publishes names a subtopic
  none of its earlier items named (``emerging``), so the topics a search can lead to keep
  growing through a run, as on the web, and the ideas for proposals (goals to add, topics
  to drop) renew instead of running out after ~10,000 iterations. The world is therefore
  *not* strictly stationary: for a fixed policy the reward per iteration drifts by a few
  percent over 20,000 iterations (the bench's ``long_run`` section measures it), which is
  why the fall-back compares the HRM with the teacher measured on the same stretch.
- **Failures.** A small base failure rate, plus a rate limit: when more than
  ``rate_limit`` searches (failed ones included) fall in the last ``rate_window``
  iterations, the search fails with probability ``rate_limited_failure``. Bursts fail;
  spaced searches rarely do.
- **Human.** Available in cycles of ``human_cycle`` virtual seconds, for
  ``human_available_fraction`` of each (the phase comes from the seed). A question asked
  while the human is there is answered after ``answer_delay_min..max`` iterations with
  probability ``answer_prob_available``; one asked while away is answered early in the next
  window with probability ``answer_prob_away``; the rest are never answered (the agent
  expires them). Answers name the question's topic and a related one.
- **Reviewer.** Reviews each proposal after ``review_delay_min..max`` iterations and approves
  with probability ``approve_prob_fresh`` when at least ``fresh_knowledge_for_approval``
  knowledge items were gained since the previous proposal, else ``approve_prob_stale``.

All randomness comes from ``random.Random`` instances seeded from ``(seed, purpose)``:
searches and failures from one stream each (so they depend on the call sequence), each
question and proposal from its own id. The same seed and the same calls give identical
outputs. The clock is virtual: ``advance(i)`` sets ``now()`` to ``SIM_EPOCH + i``.
"""

from __future__ import annotations

import functools
import heapq
import random
from collections import deque
from dataclasses import dataclass

from aegis_tui.config import Config
from aegis_tui.text import clean, normalize
from aegis_tui.world.base import (
    HumanAnswer,
    Resolutions,
    ReviewDecision,
    SearchResponse,
    SearchResult,
    World,
)
from aegis_tui.world.words import content_words, stem

SIM_EPOCH = 1_700_000_000.0  # 2023-11-14: any fixed instant makes expiry times reproducible
MAX_RESULTS_CAP = 50


@dataclass(frozen=True, slots=True)
class SimParams:
    """The sim's tunable numbers (see the module docstring for what each one drives)."""

    pool_min: int = 6
    pool_max: int = 24
    publish_every_min: int = 25  # iterations between new items of one topic (0: never)
    publish_every_max: int = 80
    related_min: int = 3
    related_max: int = 5
    cross_theme_links: int = 1  # of the related topics, how many come from another theme
    subtopic_links: int = 2  # related subtopics each topic names (0: the graph only)
    max_subtopic_depth: int = 2  # aspects a subtopic may add to its graph topic
    emerge_every: int = 3  # every n-th published item names a newly emerging subtopic (0: none)
    runner_up_share: float = 1 / 3  # draws a mapped query takes from its second-best topic
    theme_mention_prob: float = 0.6  # items whose body names their theme's goal words
    base_failure_rate: float = 0.03
    rate_window: int = 6
    rate_limit: int = 4
    rate_limited_failure: float = 0.9
    human_cycle: int = 80
    human_available_fraction: float = 0.4
    answer_prob_available: float = 0.9
    answer_prob_away: float = 0.3
    answer_delay_min: int = 2
    answer_delay_max: int = 10
    review_delay_min: int = 3
    review_delay_max: int = 15
    fresh_knowledge_for_approval: int = 6
    approve_prob_fresh: float = 0.85
    approve_prob_stale: float = 0.02

    def __post_init__(self) -> None:
        if not 1 <= self.pool_min <= self.pool_max:
            raise ValueError("SimParams: need 1 <= pool_min <= pool_max")
        if not 0 <= self.publish_every_min <= self.publish_every_max:
            raise ValueError("SimParams: need 0 <= publish_every_min <= publish_every_max")
        if self.emerge_every < 0 or self.max_subtopic_depth < 1:
            raise ValueError("SimParams: need emerge_every >= 0 and max_subtopic_depth >= 1")
        if not 1 <= self.related_min <= self.related_max:
            raise ValueError("SimParams: need 1 <= related_min <= related_max")
        if self.rate_window < 1 or self.rate_limit < 0 or self.human_cycle < 1:
            raise ValueError("SimParams: rate_window and human_cycle must be >= 1")
        if not 0 <= self.answer_delay_min <= self.answer_delay_max:
            raise ValueError("SimParams: need 0 <= answer_delay_min <= answer_delay_max")
        if not 0 <= self.review_delay_min <= self.review_delay_max:
            raise ValueError("SimParams: need 0 <= review_delay_min <= review_delay_max")
        for name in ("runner_up_share", "theme_mention_prob", "base_failure_rate",
                     "rate_limited_failure", "human_available_fraction",
                     "answer_prob_available", "answer_prob_away", "approve_prob_fresh",
                     "approve_prob_stale"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"SimParams: {name} must be in [0, 1]")


# theme -> (goal words its items mention, topics)
THEMES: dict[str, tuple[str, tuple[str, ...]]] = {
    "memory": (
        "how Python manages memory and garbage collection",
        ("memory management", "garbage collection", "reference counting", "weak references",
         "memory allocation", "reference cycles", "object lifetime", "memory leaks",
         "tracemalloc"),
    ),
    "async": (
        "asynchronous programming with asyncio event loops",
        ("asyncio", "event loop", "coroutines", "async await", "futures", "tasks",
         "concurrency", "threads", "non-blocking io", "callbacks"),
    ),
    "regex": (
        "regular expressions that match and search text",
        ("regular expressions", "pattern matching", "regex groups", "backtracking",
         "finite automata", "lookahead assertions", "unicode text", "string search"),
    ),
    "serialization": (
        "serializing data with json and pickle",
        ("json", "pickle", "serialization", "data formats", "schema validation",
         "binary encoding", "marshalling", "object persistence"),
    ),
    "cs": (
        "",
        ("hash tables", "data structures", "algorithms", "compilers", "interpreters",
         "bytecode", "type systems", "caching", "operating systems", "networking", "parsing",
         "complexity"),
    ),
}

ASPECTS: tuple[str, ...] = (
    "internals", "performance", "testing", "debugging", "security", "tooling", "patterns",
    "errors", "history", "api design", "best practices", "edge cases", "profiling",
    "benchmarks", "migration", "packaging", "limits", "tradeoffs", "recipes", "idioms",
    "monitoring", "tuning", "portability", "alternatives",
)

_FACETS: tuple[str, ...] = (
    "an overview", "a worked example", "common pitfalls", "performance notes", "internals",
    "history and design", "best practices", "debugging notes", "a comparison of approaches",
    "edge cases", "a cheat sheet", "frequently asked questions", "a deep dive",
    "testing strategies", "real-world use", "an API walkthrough",
)
_ANSWER_TEMPLATES: tuple[str, ...] = (
    "{topic} is closely tied to {related}; once you see how one works, the other follows.",
    "In my experience {topic} matters most when you also think about {related}.",
    "Start with the basics of {topic}, then read about {related}: that is where it clicks.",
    "{topic} and {related} come up together all the time; learn them side by side.",
)


@dataclass(frozen=True, slots=True)
class SimTopic:
    name: str
    theme: str | None  # None for an ad-hoc topic made up for an unknown query
    pool: int
    related: tuple[str, ...]
    publish_every: int = 0  # iterations between new items; 0 = a fixed pool
    base: str = ""  # the graph topic a subtopic narrows ("" for ad-hoc topics)
    aspects: tuple[str, ...] = ()  # what a subtopic adds to its base, in order

    def window(self, iteration: int) -> range:
        """The item indices findable at ``iteration``: the newest ``pool`` published."""
        start = iteration // self.publish_every if self.publish_every > 0 else 0
        return range(start, start + self.pool)


@functools.lru_cache(maxsize=512)
def _emerging_order(seed: int, name: str, base: str, aspects: tuple[str, ...],
                    depth: int) -> tuple[str, ...]:
    """The seeded order in which ``name``'s narrower subtopics emerge. A pure function of its
    arguments, so a bounded cache serves it: a long run searches thousands of topics, and
    keeping every order (hundreds of names each) grew memory ~0.5 MB per 1000 iterations."""
    parent = aspects[:-1] if len(aspects) >= depth else aspects
    names: list[str] = []
    tails: list[tuple[str, ...]] = [()]
    for _ in range(depth - len(parent)):
        tails = [(*t, a) for t in tails for a in ASPECTS if a not in t and a not in aspects]
        names.extend(" ".join((base, *parent, *t)) for t in tails)
    names = [n for n in names if n != name]
    return tuple(_rng(seed, "emerging", name).sample(names, len(names)))


def _rng(seed: int, *purpose: object) -> random.Random:
    # A str seed is hashed with SHA-512, so it does not depend on PYTHONHASHSEED.
    return random.Random(":".join(["aegis-sim", str(seed), *map(str, purpose)]))


def build_topic_graph(seed: int, params: SimParams) -> dict[str, SimTopic]:
    """The seed's topic graph: pool sizes and related topics for every topic in THEMES."""
    rng = _rng(seed, "graph")
    every = [(theme, name) for theme, (_, names) in THEMES.items() for name in names]
    graph: dict[str, SimTopic] = {}
    for theme, name in every:
        same = [n for t, n in every if t == theme and n != name]
        other = [n for t, n in every if t != theme]
        count = rng.randint(params.related_min, params.related_max)
        cross = min(params.cross_theme_links, count)
        related = rng.sample(same, min(count - cross, len(same))) + rng.sample(other, cross)
        related += [f"{name} {aspect}" for aspect in
                    rng.sample(ASPECTS, min(params.subtopic_links, len(ASPECTS)))]
        graph[name] = SimTopic(name, theme, rng.randint(params.pool_min, params.pool_max),
                               tuple(related), _publish_every(rng, params), base=name)
    return graph


def _publish_every(rng: random.Random, params: SimParams) -> int:
    if params.publish_every_max <= 0:
        return 0
    return rng.randint(max(1, params.publish_every_min), params.publish_every_max)


def _slug(text: str) -> str:
    return normalize(text).replace(" ", "-") or "topic"


class SimWorld(World):
    name = "sim"
    simulates_humans = True

    def __init__(self, config: Config, seed: int, params: SimParams | None = None) -> None:
        self.config = config
        self.seed = seed
        self.params = params or SimParams()
        self.graph = build_topic_graph(seed, self.params)
        self._adhoc: dict[str, SimTopic] = {}
        self._by_norm = {normalize(name): topic for name, topic in self.graph.items()}
        self._topic_stems = {name: {stem(w) for w in content_words(name)} for name in self.graph}
        self._search_rng = _rng(seed, "search")
        self._failure_rng = _rng(seed, "failure")
        self._human_phase = _rng(seed, "human-phase").randrange(self.params.human_cycle)
        self._iteration = 0
        self._recent_searches: deque[int] = deque()
        self._knowledge_at_last_proposal = 0
        # (due iteration, kind order, id, sequence, resolution); answers sort before reviews,
        # and the sequence number keeps the heap from ever comparing two resolutions.
        self._due: list[tuple[int, int, int, int, HumanAnswer | ReviewDecision]] = []
        self._sequence = 0

    @property
    def description(self) -> str:
        return f"sim (seed {self.seed})"

    # -- clock -------------------------------------------------------------------------------
    def now(self) -> float:
        return SIM_EPOCH + self._iteration

    def advance(self, iteration: int) -> None:
        self._iteration = iteration

    # -- topics ------------------------------------------------------------------------------
    def topic_for(self, query: str) -> list[tuple[SimTopic, float]]:
        """The topics a query searches, with the share of draws each gets (empty: no words)."""
        norm = normalize(query)
        exact = self._by_norm.get(norm) or self._subtopic(norm)
        if exact is not None:
            return [(exact, 1.0)]
        query_words = content_words(query)
        query_stems = {stem(w) for w in query_words}
        if not query_stems:
            return []
        scored = []
        for index, (name, topic_stems) in enumerate(self._topic_stems.items()):
            shared = len(query_stems & topic_stems)
            if shared:
                # Most shared words first, then the topic the query covers best, then order.
                scored.append((-shared, -shared / len(topic_stems), index, name))
        if not scored:
            return [(self._adhoc_topic(query_words), 1.0)]
        scored.sort()
        best = self.graph[scored[0][3]]
        if len(scored) == 1 or self.params.runner_up_share <= 0:
            return [(best, 1.0)]
        share = self.params.runner_up_share
        return [(best, 1.0 - share), (self.graph[scored[1][3]], share)]

    def _subtopic(self, norm: str) -> SimTopic | None:
        """The generated subtopic named ``norm`` ("<graph topic> <aspect> [<aspect>]"), if any."""
        cached = self._adhoc.get(norm)
        if cached is not None:
            return cached if cached.theme is not None else None
        for base_norm, base in self._by_norm.items():
            if not norm.startswith(base_norm + " "):
                continue
            rest = norm[len(base_norm) + 1:]
            aspects = self._split_aspects(rest)
            if aspects is None or len(aspects) > self.params.max_subtopic_depth:
                continue
            rng = _rng(self.seed, "subtopic", norm)
            name = f"{base.name} {' '.join(aspects)}"
            related = [base.name, *rng.sample(base.related[:3], min(2, len(base.related)))]
            if len(aspects) < self.params.max_subtopic_depth:
                fresh = [a for a in ASPECTS if a not in aspects]
                related += [f"{name} {a}" for a in
                            rng.sample(fresh, min(self.params.subtopic_links, len(fresh)))]
            topic = SimTopic(name, base.theme, rng.randint(self.params.pool_min,
                                                           self.params.pool_max),
                             tuple(dict.fromkeys(related)), _publish_every(rng, self.params),
                             base=base.name, aspects=tuple(aspects))
            self._adhoc[norm] = topic
            return topic
        return None

    @staticmethod
    def _split_aspects(rest: str) -> list[str] | None:
        """``"api design testing"`` -> ``["api design", "testing"]``; None if not aspects."""
        out: list[str] = []
        while rest:
            for aspect in sorted(ASPECTS, key=len, reverse=True):
                if rest == aspect or rest.startswith(aspect + " "):
                    if aspect in out:
                        return None
                    out.append(aspect)
                    rest = rest[len(aspect):].strip()
                    break
            else:
                return None
        return out or None

    def _adhoc_topic(self, query_words: list[str]) -> SimTopic:
        name = " ".join(query_words[:3])
        topic = self._adhoc.get(name)
        if topic is None:
            rng = _rng(self.seed, "adhoc", name)
            related = tuple(rng.sample(sorted(self.graph), self.params.related_min))
            topic = SimTopic(name, None, rng.randint(self.params.pool_min, self.params.pool_max),
                             related, _publish_every(rng, self.params))
            self._adhoc[name] = topic
        return topic

    def emerging(self, topic: SimTopic, index: int) -> str | None:
        """The newly emerging subtopic item ``index`` of ``topic`` names, if it names one.

        Every ``emerge_every``-th item (in publishing order) is about something new: the
        next subtopic in a seeded order of everything narrower than the topic (its
        siblings, for a subtopic as narrow as it gets). So a topic's later material points
        at topics its earlier material never named, and the topic space keeps renewing as
        time passes, the way new pages bring up new subjects on the web: a graph topic has
        hundreds of subtopics to bring up before it repeats one.
        """
        every = self.params.emerge_every
        if every <= 0 or index % every or not topic.base:
            return None
        order = _emerging_order(self.seed, topic.name, topic.base, topic.aspects,
                                self.params.max_subtopic_depth)
        return order[(index // every) % len(order)] if order else None

    def _item(self, topic: SimTopic, index: int) -> SearchResult:
        rng = _rng(self.seed, "item", topic.name, index)
        facet = _FACETS[(index + rng.randrange(len(_FACETS))) % len(_FACETS)]
        hints = tuple(rng.sample(topic.related, min(len(topic.related), rng.randint(1, 2))))
        emerging = self.emerging(topic, index)
        if emerging is not None:
            hints = (emerging, *hints[:1])
        body = (f"{facet[0].upper()}{facet[1:]} on {topic.name}, with notes on how it relates "
                f"to {hints[0]}.")
        if topic.theme and THEMES[topic.theme][0] and rng.random() < self.params.theme_mention_prob:
            body += f" Part of understanding {THEMES[topic.theme][0]}."
        return SearchResult(
            title=f"{topic.name}: {facet} (#{index + 1})",
            body=body,
            url=f"sim://{_slug(topic.name)}/{index + 1}",
            topics=hints,
        )

    # -- search ------------------------------------------------------------------------------
    def _rate_limited(self) -> bool:
        window_start = self._iteration - self.params.rate_window
        while self._recent_searches and self._recent_searches[0] <= window_start:
            self._recent_searches.popleft()
        self._recent_searches.append(self._iteration)
        return len(self._recent_searches) > self.params.rate_limit

    def search(self, query: str, max_results: int) -> SearchResponse:
        try:
            return self._search(query, max_results)
        except Exception as exc:  # a sim bug must still not crash the agent
            return SearchResponse(ok=False, error=clean(f"sim search failed: {exc!r}", 200))

    def _search(self, query: str, max_results: int) -> SearchResponse:
        if not isinstance(query, str) or not query.strip():
            return SearchResponse(ok=False, error="empty query")
        wanted = max(1, min(int(max_results), MAX_RESULTS_CAP))
        limited = self._rate_limited()
        roll = self._failure_rng.random()
        if limited and roll < self.params.rate_limited_failure:
            return SearchResponse(ok=False, error="rate limited: too many searches in a row")
        if roll < self.params.base_failure_rate:
            return SearchResponse(ok=False, error="simulated network error")
        targets = self.topic_for(query)
        if not targets:
            return SearchResponse(ok=False, error="no results")
        counts = [0] * len(targets)
        for _ in range(wanted):
            pick = 0 if len(targets) == 1 or self._search_rng.random() >= targets[1][1] else 1
            counts[pick] += 1
        results: list[SearchResult] = []
        for (topic, _share), count in zip(targets, counts, strict=True):
            if count:
                picks = self._search_rng.sample(topic.window(self._iteration),
                                                min(count, topic.pool))
                results.extend(self._item(topic, i) for i in picks)
        return SearchResponse(ok=True, results=tuple(results))

    # -- human -------------------------------------------------------------------------------
    def human_available(self, iteration: int) -> bool:
        cycle = self.params.human_cycle
        window = cycle * self.params.human_available_fraction
        return (iteration + self._human_phase) % cycle < window

    def next_window_start(self, iteration: int) -> int:
        """The first iteration after ``iteration`` at which the human is available."""
        t = iteration + 1
        for _ in range(self.params.human_cycle + 1):
            if self.human_available(t):
                return t
            t += 1
        return t  # the human is never available (fraction 0): the answer never comes due

    def question_asked(self, question_id: int, text: str, topic: str, iteration: int) -> None:
        p = self.params
        rng = _rng(self.seed, "question", question_id)
        if self.human_available(iteration):
            if rng.random() >= p.answer_prob_available:
                return
            due = iteration + rng.randint(p.answer_delay_min, p.answer_delay_max)
        else:
            if p.human_available_fraction <= 0 or rng.random() >= p.answer_prob_away:
                return
            due = self.next_window_start(iteration) + rng.randint(p.answer_delay_min,
                                                                   p.answer_delay_max)
        subject = clean(topic, 60) or clean(text, 60) or "that"
        targets = self.topic_for(subject) or self.topic_for(text)
        related_pool = targets[0][0].related if targets else tuple(sorted(self.graph))
        related = related_pool[rng.randrange(len(related_pool))]
        template = _ANSWER_TEMPLATES[rng.randrange(len(_ANSWER_TEMPLATES))]
        answer = template.format(topic=subject, related=related)
        answer = answer[0].upper() + answer[1:]
        self._schedule(due, 0, question_id, HumanAnswer(question_id, answer))

    # -- reviewer ----------------------------------------------------------------------------
    def proposal_made(self, proposal_id: int, kind: str, text: str, iteration: int,
                      knowledge_count: int) -> None:
        p = self.params
        fresh = knowledge_count - self._knowledge_at_last_proposal
        self._knowledge_at_last_proposal = knowledge_count
        rng = _rng(self.seed, "proposal", proposal_id)
        due = iteration + rng.randint(p.review_delay_min, p.review_delay_max)
        backed = fresh >= p.fresh_knowledge_for_approval
        approved = rng.random() < (p.approve_prob_fresh if backed else p.approve_prob_stale)
        if backed:
            note = f"{fresh} new findings since the last proposal"
        else:
            note = (f"only {max(fresh, 0)} new findings since the last proposal "
                    f"(looking for {p.fresh_knowledge_for_approval})")
        review = ReviewDecision(proposal_id, approved, note=note)
        self._schedule(due, 1, proposal_id, review)

    def _schedule(self, due: int, kind: int, item_id: int,
                  item: HumanAnswer | ReviewDecision) -> None:
        self._sequence += 1
        heapq.heappush(self._due, (due, kind, item_id, self._sequence, item))

    def pending(self) -> int:
        """How many answers and reviews are scheduled but not yet due (for tests and stats)."""
        return len(self._due)

    def poll(self, iteration: int) -> Resolutions:
        out = Resolutions()
        while self._due and self._due[0][0] <= iteration:
            item = heapq.heappop(self._due)[-1]
            if isinstance(item, HumanAnswer):
                out.answers.append(item)
            else:
                out.reviews.append(item)
        return out
