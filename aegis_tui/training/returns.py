"""Returns and advantages: the one place both learning phases compute what a decision earned.

- RL (``training/rl.py``) credits a decision with a generalised advantage estimate over the
  consecutive decisions after it, bootstrapped from the value head's estimates (``gae``).
- Imitation (``training/imitation.py``) warms the value head up on the *teacher's*
  discounted return over the next ``imitation.value_n_step`` (10) consecutive decisions
  (``discounted_return``). It cannot bootstrap: there is no trained value head yet, and the
  point is to give RL's critic a sensible start, not RL's exact target. Both use the same
  discount (``rl.gamma``) and stop at a gap in the iterations (a restart, or the other
  policy deciding in between).
"""

from __future__ import annotations

from collections.abc import Sequence


def gae(rewards: Sequence[float], values: Sequence[float], bootstrap: float, gamma: float,
        lam: float) -> float:
    """The generalised advantage estimate of the first of a chain of consecutive decisions.

    ``rewards[k]``/``values[k]`` belong to decision ``k``; ``bootstrap`` is the value of the
    state after the last one.
    """
    advantage = 0.0
    next_value = bootstrap
    for reward, value in zip(reversed(rewards), reversed(values), strict=True):
        delta = reward + gamma * next_value - value
        advantage = delta + gamma * lam * advantage
        next_value = value
    return advantage


def discounted_return(rewards: Sequence[float], gamma: float) -> float:
    """``sum(gamma**k * rewards[k])``: GAE with no critic (all values 0) and lambda 1."""
    return gae(rewards, [0.0] * len(rewards), 0.0, gamma, 1.0)


def consecutive_chain(iterations: Sequence[int], start: int, limit: int) -> int:
    """How many entries from ``start`` (at most ``limit``) have consecutive iterations."""
    n = 1
    while (n < limit and start + n < len(iterations)
           and iterations[start + n] == iterations[start + n - 1] + 1):
        n += 1
    return n
