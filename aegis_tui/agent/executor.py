"""Carrying out the four actions against the world, and settling delayed outcomes.

``execute`` performs one action and returns an ``ActionResult`` with its immediate reward;
the slow part (a web search) happens before the database transaction so another process is
never kept waiting on the network. ``settle`` runs at the start of every iteration: it
collects what the world resolved (the sim's human and reviewer), expires what is overdue,
and credits every newly resolved question or proposal, however it was resolved, to the
decision that earned it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from aegis_tui.actions import Action
from aegis_tui.agent.proposals import InvalidProposal, draft_proposal, validate_payload
from aegis_tui.agent.questions import AnswerRefused, compose_question
from aegis_tui.agent.resolutions import (
    ResolutionError,
    answer_question,
    expire_overdue,
    held_questions,
    review_proposal,
)
from aegis_tui.agent.state import CURIOSITY_RECOVERY, AgentState
from aegis_tui.agent.topics import extract_topics
from aegis_tui.config import Config
from aegis_tui.events import (
    Event,
    KnowledgeAdded,
    Notice,
    ProposalMade,
    ProposalResolved,
    QuestionAsked,
    QuestionResolved,
)
from aegis_tui.snapshot import StateSnapshot
from aegis_tui.storage.records import (
    ANSWERED,
    APPROVED,
    DUPLICATE,
    LATE,
    PENDING,
    KnowledgeItem,
    Question,
)
from aegis_tui.text import clean, normalize
from aegis_tui.world.base import SearchResult, World

MAX_NEW_TOPICS_PER_SEARCH = 5


@dataclass(slots=True)
class ActionResult:
    action: Action
    success: bool
    reward: float
    knowledge_gained: int = 0
    detail: str = ""
    pending: bool = False  # a delayed reward may still arrive for this decision
    events: list[Event] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Credit:
    """A delayed reward for the decision made at ``iteration``; nothing more will come."""

    iteration: int
    reward: float


class ActionExecutor:
    def __init__(self, state: AgentState, world: World, config: Config) -> None:
        self.state = state
        self.world = world
        self.config = config
        self.rewards = config.rewards
        self.db = state.db

    # -- acting ----------------------------------------------------------------------------
    def execute(self, action: Action, snapshot: StateSnapshot, iteration: int) -> ActionResult:
        handler: Callable[[StateSnapshot, int], ActionResult] = {
            Action.WEB_SEARCH: self._search,
            Action.ASK_HUMAN: self._ask,
            Action.PROPOSE_IMPROVEMENT: self._propose,
            Action.IDLE: self._idle,
        }[action]
        return handler(snapshot, iteration)

    def _search_query(self, snapshot: StateSnapshot) -> tuple[str, str | None]:
        """The top curiosity topic, else an active goal, else any goal (rotating);
        ``(query, topic norm)``.

        With nothing queued and every goal completed (an agent that only ever asked can get
        there: answers complete goals but name no topics), a completed goal is searched
        again: there may be new material, and its results refill the curiosity queue.
        """
        if snapshot.curiosity:
            topic = snapshot.curiosity[0].topic
            return topic, normalize(topic)
        goals = snapshot.active_goals or snapshot.goals
        if goals:
            return goals[snapshot.web_searches % len(goals)].text, None
        return "", None

    def _search(self, snapshot: StateSnapshot, iteration: int) -> ActionResult:
        query, topic_norm = self._search_query(snapshot)
        counters = self.state.counters
        notice = ""
        results: tuple[SearchResult, ...] = ()
        if not query:
            response_ok, error = False, "nothing to search for"
        else:
            response = self.world.search(query, self.state.settings["results_per_search"])
            response_ok, results, error = response.ok, response.results, response.error
            notice = response.notice
        now = self.world.now()
        with self.db.transaction():
            counters.web_searches += 1
            if topic_norm:
                self.db.mark_searched(topic_norm, iteration)
            if not response_ok:
                counters.failed_searches += 1
                self.state.record_search_gain(-1)
                return ActionResult(Action.WEB_SEARCH, False, self.rewards.search_failed,
                                    detail=f"search for '{clean(query, 60)}' failed: "
                                           f"{clean(error, 120)}",
                                    events=[Notice(clean(notice, 300), "warning")]
                                    if notice else [])
            items = [
                KnowledgeItem(topic=clean(query, 120), title=clean(r.title, 200) or "(untitled)",
                              text=clean(r.body, 1000), source=clean(r.url, 500),
                              created_at=now, iteration=iteration)
                for r in results
            ]
            new, completed = self.state.learn(items)
            self.state.record_search_gain(len(new))
            known = {normalize(t.topic) for t in self.db.topics()}  # the active queue
            known.update(normalize(g.text) for g in snapshot.goals)
            known.add(normalize(query))
            added = 0
            for topic, score in extract_topics(results, query, known,
                                               limit=MAX_NEW_TOPICS_PER_SEARCH):
                added += self.db.upsert_topic(clean(topic, 60), normalize(topic), float(score),
                                              f"search: {clean(query, 60)}", now)
            self.db.trim_topics(self.state.settings["max_curiosity"], iteration=iteration,
                                recovery=CURIOSITY_RECOVERY)
        events: list[Event] = []
        if new:
            events.append(KnowledgeAdded(items=tuple((i.title, i.source, i.topic) for i in new)))
        events.extend(Notice(f"goal completed: {g.text}") for g in completed)
        detail = (f"'{clean(query, 60)}': {len(new)} new of {len(items)} results"
                  + (f", {added} new topics" if added else ""))
        return ActionResult(Action.WEB_SEARCH, True, self.rewards.knowledge_per_item * len(new),
                            knowledge_gained=len(new), detail=detail, events=events)

    def _ask(self, snapshot: StateSnapshot, iteration: int) -> ActionResult:
        question, topic = compose_question(snapshot)
        counters = self.state.counters
        with self.db.transaction():
            qid = self.db.add_question(question, topic, iteration, self.world.now())
            counters.questions_asked += 1
            counters.last_question_iteration = iteration
        self.world.question_asked(qid, question, topic, iteration)
        return ActionResult(Action.ASK_HUMAN, True, 0.0, detail=f"asked #{qid}: {question}",
                            pending=True, events=[QuestionAsked(question_id=qid, text=question)])

    def _propose(self, snapshot: StateSnapshot, iteration: int) -> ActionResult:
        draft = draft_proposal(snapshot, self.state.settings,
                               self.state.counters.recent_search_gains,
                               proposed_before=self.db.proposal_exists)
        counters = self.state.counters
        with self.db.transaction():
            duplicate = self.db.proposal_exists(draft.norm)
            pid = self.db.add_proposal(draft.kind, draft.payload, draft.text, draft.norm,
                                       DUPLICATE if duplicate else PENDING, iteration,
                                       self.world.now())
            counters.improvements_proposed += 1
            if duplicate:
                counters.duplicate_proposals += 1
            else:
                counters.last_proposal_iteration = iteration
                counters.knowledge_since_proposal = 0
        event = ProposalMade(proposal_id=pid, kind=draft.kind, text=draft.text,
                             duplicate=duplicate)
        if duplicate:
            return ActionResult(Action.PROPOSE_IMPROVEMENT, False,
                                self.rewards.duplicate_proposal,
                                detail=f"duplicate proposal #{pid}: {draft.text}", events=[event])
        self.world.proposal_made(pid, draft.kind, draft.text, iteration,
                                 snapshot.knowledge_count)
        return ActionResult(Action.PROPOSE_IMPROVEMENT, True, self.rewards.proposal_pending,
                            detail=f"proposed #{pid}: {draft.text}", pending=True,
                            events=[event])

    def _idle(self, snapshot: StateSnapshot, iteration: int) -> ActionResult:
        return ActionResult(Action.IDLE, True, self.rewards.idle, detail="idle")

    # -- settling delayed outcomes ---------------------------------------------------------
    def settle(self, iteration: int) -> tuple[list[Credit], list[Event]]:
        """Apply everything resolved since the last iteration; return credits and events."""
        events: list[Event] = []
        now = self.world.now()
        resolved = self.world.poll(iteration)
        for answer in resolved.answers:
            try:
                answer_question(self.db, answer.question_id, answer.text, now=now)
            except (AnswerRefused, ResolutionError) as exc:
                events.append(Notice(f"{answer.responder}'s answer ignored: {exc}", "warning"))
        for review in resolved.reviews:
            try:
                review_proposal(self.db, review.proposal_id, review.approved,
                                reviewer=review.reviewer, now=now)
            except ResolutionError as exc:
                events.append(Notice(f"review ignored: {exc}", "warning"))
        expire_overdue(self.db, now, self.config.question_expiry_s,
                       self.config.proposal_expiry_s, held=held_questions(self.db))
        credits: list[Credit] = []
        for listed in self.db.uncredited_questions():
            with self.db.transaction():
                # Read again under the write lock: a late answer may have just arrived.
                question = self.db.question(listed.id)
                if question is None or question.credited:
                    continue
                # ``late``: answered after its expiry was credited; knowledge, no credit.
                late = question.status == LATE
                reward = 0.0
                if question.status == ANSWERED and question.answer:
                    reward = self.rewards.question_answered
                    self.state.counters.questions_answered += 1
                    self._learn_answer(question, now, iteration, events)
                elif question.answer:
                    self._learn_answer(question, now, iteration, events)
                    events.append(Notice(f"the answer to question #{question.id} came after "
                                         "it expired: kept as knowledge, no reward"))
                if not late:
                    self.db.add_delayed_reward(question.iteration, reward)
                self.db.mark_question_credited(question.id, reward)
            if not late:
                credits.append(Credit(question.iteration, reward))
                events.append(QuestionResolved(question_id=question.id,
                                               status=question.status, reward=reward))
        for proposal in self.db.uncredited_proposals():
            with self.db.transaction():
                reward, applied = 0.0, ""
                if proposal.status == APPROVED:
                    try:
                        applied = self._apply(proposal.kind, proposal.payload)
                    except InvalidProposal as exc:
                        applied = f"not applied: {exc}"
                        events.append(Notice(f"approved proposal #{proposal.id} could not be "
                                             f"applied: {exc}", "warning"))
                    else:
                        reward = self.rewards.improvement_approved
                        self.state.counters.improvements_approved += 1
                self.db.add_delayed_reward(proposal.iteration, reward)
                self.db.mark_proposal_credited(proposal.id, reward, applied)
            credits.append(Credit(proposal.iteration, reward))
            events.append(ProposalResolved(proposal_id=proposal.id, status=proposal.status,
                                           reward=reward, applied=applied))
        return credits, events

    def _learn_answer(self, question: Question, now: float, iteration: int,
                      events: list[Event]) -> None:
        new, completed = self.state.learn([KnowledgeItem(
            topic=question.topic, title=f"Answer: {clean(question.text, 150)}",
            text=clean(question.answer or "", 1000),
            source=f"human://question/{question.id}", created_at=now, iteration=iteration)])
        if new:
            events.append(KnowledgeAdded(items=tuple((i.title, i.source, i.topic) for i in new)))
        events.extend(Notice(f"goal completed: {g.text}") for g in completed)

    def _apply(self, kind: str, payload: object) -> str:
        checked = validate_payload(kind, payload)
        if kind == "add_goal":
            goal_id = self.state.add_goal(checked["text"], source="proposal")
            return f"added goal #{goal_id}" if goal_id else "goal already existed"
        if kind == "drop_topic":
            gone = self.db.remove_topic(normalize(checked["topic"]))
            return f"dropped topic '{checked['topic']}'" if gone else "topic was already gone"
        try:
            self.state.set_setting(checked["key"], checked["value"])
        except ValueError as exc:
            raise InvalidProposal(str(exc)) from None
        return f"{checked['key']} = {checked['value']}"
