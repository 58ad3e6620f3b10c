"""Test doubles: a scripted world whose search results and people the tests control."""

from __future__ import annotations

from aegis_tui.world.base import (
    HumanAnswer,
    Resolutions,
    ReviewDecision,
    SearchResponse,
    SearchResult,
    World,
)


class ScriptedWorld(World):
    """Search returns ``results_per_query`` items per distinct query (stable URLs), or fails
    when the query is in ``failing``; answers and reviews are queued by the test."""

    name = "scripted"

    def __init__(self, results_per_query: int = 3, failing: set[str] | None = None) -> None:
        self.results_per_query = results_per_query
        self.failing = failing or set()
        self.queries: list[str] = []
        self.asked: list[tuple[int, str, str, int]] = []
        self.proposed: list[tuple[int, str, str, int, int]] = []
        self.pending = Resolutions()
        self.clock = 1_000.0
        self.closed = False

    @property
    def description(self) -> str:
        return "scripted (tests)"

    def now(self) -> float:
        return self.clock

    def advance(self, iteration: int) -> None:
        self.clock = 1_000.0 + iteration

    def search(self, query: str, max_results: int) -> SearchResponse:
        self.queries.append(query)
        if query in self.failing or "*" in self.failing:
            return SearchResponse(ok=False, error="scripted failure")
        n = min(max_results, self.results_per_query)
        slug = query.lower().replace(" ", "-")
        return SearchResponse(ok=True, results=tuple(
            SearchResult(title=f"{query} part {k}", body=f"All about {query}, part {k}.",
                         url=f"https://example.org/{slug}/{k}",
                         topics=(f"area {len(self.queries)}{chr(97 + k)}",))
            for k in range(n)))

    def question_asked(self, question_id: int, text: str, topic: str, iteration: int) -> None:
        self.asked.append((question_id, text, topic, iteration))

    def proposal_made(self, proposal_id: int, kind: str, text: str, iteration: int,
                      knowledge_count: int) -> None:
        self.proposed.append((proposal_id, kind, text, iteration, knowledge_count))

    def answer_next(self, question_id: int, text: str) -> None:
        self.pending.answers.append(HumanAnswer(question_id, text))

    def review_next(self, proposal_id: int, approved: bool) -> None:
        self.pending.reviews.append(ReviewDecision(proposal_id, approved))

    def poll(self, iteration: int) -> Resolutions:
        out, self.pending = self.pending, Resolutions()
        return out

    def close(self) -> None:
        self.closed = True


def make_runtime(data_dir, world=None, teacher=None, **overrides):  # type: ignore[no-untyped-def]
    """An AgentRuntime on ``data_dir`` with a scripted world and the rules teacher."""
    from aegis_tui.agent.runtime import AgentRuntime
    from aegis_tui.config import Config, apply_overrides
    from aegis_tui.paths import DataPaths
    from aegis_tui.policy.rules_teacher import RulesTeacher

    settings = {"think_interval": 0, "world": "sim", "teacher": "rules"}
    settings.update(overrides)
    config = apply_overrides(Config(), settings)
    return AgentRuntime.open(config, DataPaths.resolve(data_dir),
                             world=world if world is not None else ScriptedWorld(),
                             teacher=teacher if teacher is not None else RulesTeacher(0))
