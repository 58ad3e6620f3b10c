"""Realistic agent states labelled by the rules teacher, for tests and ``aegis-tui bench``.

``synthetic_examples`` runs a small, seeded simulation of the agent's bookkeeping (searches
that gain 0-5 items or fail, questions answered after a while or never, proposals approved
or rejected after review, a curiosity queue that grows and shrinks) with the
``RulesTeacher`` deciding, and logs every decision as an ``Example``. Now and then it
perturbs the state (jumps a counter, clears the queue) so the data also covers states a
short run would rarely reach. It needs no world, database or torch, so it is fast.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from aegis_tui.actions import Action
from aegis_tui.config import DEFAULT_GOALS, RewardTable
from aegis_tui.policy.rules_teacher import RulesTeacher
from aegis_tui.snapshot import MAX_RECENT_ACTIONS, GoalView, StateSnapshot, TopicView
from aegis_tui.training.example_log import Example, Outcome

_TOPIC_WORDS = (
    "garbage collection", "reference counting", "event loop", "coroutines", "asyncio tasks",
    "regular expressions", "lookahead assertions", "json encoding", "pickle protocol",
    "memory arenas", "weak references", "generators", "context managers", "descriptors",
    "metaclasses", "threading locks", "multiprocessing pools", "unicode normalization",
    "dataclasses", "type hints", "import system", "bytecode", "frame objects", "sockets",
)


@dataclass
class _Sim:
    rng: random.Random
    rewards: RewardTable
    iteration: int = 0
    goals: list[list] = field(default_factory=list)  # [text, keywords, progress, completed]
    topics: list[list] = field(default_factory=list)  # [topic, priority, times_searched]
    knowledge: int = 0
    recent: list[str] = field(default_factory=list)
    questions: list[list] = field(default_factory=list)  # [resolve_at, answered]
    proposals: list[list] = field(default_factory=list)  # [resolve_at, approved]
    asked: int = 0
    answered: int = 0
    searches: int = 0
    failed: int = 0
    proposed: int = 0
    approved: int = 0
    completed: int = 0
    knowledge_since_proposal: int = 0
    since_proposal: int = 0
    since_question: int = 0
    last_gain: int = 0

    def snapshot(self) -> StateSnapshot:
        return StateSnapshot(
            iteration=self.iteration,
            goals=tuple(GoalView(g[0], tuple(g[1]), g[2], g[3]) for g in self.goals),
            curiosity=tuple(TopicView(t[0], t[1], t[2], "search") for t in self.topics[:10]),
            curiosity_size=len(self.topics),
            knowledge_count=self.knowledge,
            recent_actions=tuple(self.recent[-MAX_RECENT_ACTIONS:]),
            pending_questions=len(self.questions),
            pending_proposals=len(self.proposals),
            questions_asked=self.asked,
            questions_answered=self.answered,
            web_searches=self.searches,
            failed_searches=self.failed,
            improvements_proposed=self.proposed,
            improvements_approved=self.approved,
            goals_completed=self.completed,
            knowledge_since_proposal=self.knowledge_since_proposal,
            iterations_since_proposal=self.since_proposal,
            iterations_since_question=self.since_question,
            last_search_gain=self.last_gain,
        )

    def perturb(self) -> None:
        rng = self.rng
        choice = rng.randrange(6)
        if choice == 0:
            self.since_proposal = rng.choice((rng.randrange(40), rng.randrange(300)))
        elif choice == 1:
            self.knowledge_since_proposal = rng.randrange(12)
        elif choice == 2:
            self.since_question = rng.randrange(40)
        elif choice == 3:
            self.topics.clear()
        elif choice == 4:
            for goal in self.goals:
                goal[3] = rng.random() < 0.7
        else:
            self.questions.clear()
            self.proposals.clear()

    def step(self, action: Action) -> tuple[Outcome, float]:
        rng, rw = self.rng, self.rewards
        self.iteration += 1
        self.since_proposal += 1
        self.since_question += 1
        reward = 0.0
        gained = 0
        success = True
        if action is Action.WEB_SEARCH:
            self.searches += 1
            if rng.random() < 0.12:
                self.failed += 1
                self.last_gain = -1
                success = False
                reward = rw.search_failed
            else:
                gained = rng.choice((0, 0, 1, 1, 2, 2, 3, 4, 5))
                self.last_gain = gained
                self.knowledge += gained
                self.knowledge_since_proposal += gained
                reward = rw.knowledge_per_item * gained
                if self.topics:
                    topic = self.topics.pop(0)
                    topic[2] += 1
                    if rng.random() < 0.3:
                        self.topics.append(topic)
                for _ in range(rng.choice((0, 1, 1, 2, 3))):
                    if len(self.topics) < 50:
                        self.topics.append([rng.choice(_TOPIC_WORDS), round(rng.random(), 2), 0])
                self.topics.sort(key=lambda t: -t[1])
                active = [g for g in self.goals if not g[3]]
                if active and gained:
                    goal = rng.choice(active)
                    goal[2] = min(1.0, goal[2] + 0.03 * gained)
                    if goal[2] >= 1.0:
                        goal[3] = True
                        self.completed += 1
        elif action is Action.ASK_HUMAN:
            self.asked += 1
            self.since_question = 0
            answered = rng.random() < 0.6
            self.questions.append([self.iteration + rng.randint(1, 25), answered])
        elif action is Action.PROPOSE_IMPROVEMENT:
            self.proposed += 1
            duplicate = rng.random() < 0.1
            reward = rw.duplicate_proposal if duplicate else rw.proposal_pending
            if not duplicate:
                self.proposals.append([self.iteration + rng.randint(2, 15), rng.random() < 0.4])
            self.since_proposal = 0
            self.knowledge_since_proposal = 0
        else:
            reward = rw.idle
        for q in list(self.questions):
            if self.iteration >= q[0]:
                self.questions.remove(q)
                self.answered += int(q[1])
                if q[1] and len(self.topics) < 50:  # an answer suggests something to look up
                    self.topics.append([rng.choice(_TOPIC_WORDS), 0.9, 0])
        for p in list(self.proposals):
            if self.iteration >= p[0]:
                self.proposals.remove(p)
                self.approved += int(p[1])
        self.recent.append(action.value)
        del self.recent[:-MAX_RECENT_ACTIONS]
        return Outcome(success=success, knowledge_gained=gained, details=action.value), reward


def synthetic_examples(n: int, seed: int = 0, *, perturb: float = 0.03,
                       episode: int = 250, epsilon: float = 0.05) -> list[Example]:
    """``n`` examples from seeded simulated runs (a fresh run every ``episode`` steps)."""
    rng = random.Random(f"aegis-synthetic:{seed}")
    teacher = RulesTeacher(seed=seed, epsilon=epsilon)
    out: list[Example] = []
    sim: _Sim | None = None
    while len(out) < n:
        if sim is None or sim.iteration >= episode:
            sim = _Sim(rng=rng, rewards=RewardTable())
            sim.goals = [[g, [w.lower() for w in g.split()[1:4]], 0.0, False]
                         for g in DEFAULT_GOALS]
            sim.topics = [[rng.choice(_TOPIC_WORDS), 0.5, 0] for _ in range(rng.randrange(4))]
        if rng.random() < perturb:
            sim.perturb()
        state = sim.snapshot()
        decision = teacher.decide(state)
        outcome, reward = sim.step(decision.action)
        out.append(Example(
            iteration=state.iteration, time=1_700_000_000.0 + len(out), state=state,
            action=decision.action.value, probs=decision.probs, policy="teacher",
            outcome=outcome, reward=reward,
        ))
    return out
