"""Comparing two stretches of rewards fairly: who decided, over which iterations, how sure.

The fall-back and the reward trial after a failed gate both ask "is the HRM worse than the
teacher?". Per-iteration rewards are lumpy (an approval is +10 among values near 1), so a
difference of means over a few hundred decisions can be noise. ``Stretch`` summarises the
rewards of one policy over a span of iterations; ``measurably_worse`` says a stretch is
worse than another only when the gap exceeds the margin *and* two standard errors of the
difference, so neither a lucky nor an unlucky window switches the policy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

Z = 2.5  # standard errors a difference must exceed to count (about 1 in 160 by chance)


@dataclass(frozen=True, slots=True)
class Stretch:
    """Rewards of one policy: their mean, spread and count, and the iterations they span."""

    policy: str
    mean: float
    sd: float
    n: int
    first: int
    last: int

    @classmethod
    def of(cls, policy: str, rows: Sequence[tuple[int, float]]) -> Stretch | None:
        """From ``(iteration, total reward)`` rows; None when there are none."""
        if not rows:
            return None
        values = [r for _, r in rows]
        mean = math.fsum(values) / len(values)
        var = math.fsum((v - mean) ** 2 for v in values) / max(1, len(values) - 1)
        iterations = [i for i, _ in rows]
        return cls(policy, mean, math.sqrt(var), len(values), min(iterations), max(iterations))

    @property
    def standard_error(self) -> float:
        return self.sd / math.sqrt(self.n) if self.n else math.inf

    def describe(self) -> str:
        """E.g. ``teacher +2.61 over 200 decisions (iterations 801-1000)``."""
        return (f"{self.policy} {self.mean:+.2f} over {self.n} decisions "
                f"(iterations {self.first}-{self.last})")

    def to_meta(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_meta(cls, raw: Any) -> Stretch | None:
        if not isinstance(raw, dict):
            return None
        try:
            out = cls(policy=str(raw["policy"]), mean=float(raw["mean"]), sd=float(raw["sd"]),
                      n=int(raw["n"]), first=int(raw["first"]), last=int(raw["last"]))
        except (KeyError, TypeError, ValueError):
            return None
        return out if math.isfinite(out.mean) and math.isfinite(out.sd) and out.n > 0 else None


def margin_for(reference: Stretch, margin: float) -> float:
    """The allowed shortfall: ``margin`` of the reference's size (at least of 1.0)."""
    return margin * max(abs(reference.mean), 1.0)


def measurably_worse(candidate: Stretch, reference: Stretch, margin: float) -> bool:
    """Is ``candidate`` worse than ``reference`` by more than the margin and the noise?"""
    gap = reference.mean - candidate.mean
    noise = Z * math.hypot(candidate.standard_error, reference.standard_error)
    return gap > margin_for(reference, margin) and gap > noise


