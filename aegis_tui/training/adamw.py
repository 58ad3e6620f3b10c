"""AdamW for the HRM, without ``torch.optim``.

Building any ``torch.optim`` optimizer imports ``torch._dynamo`` the first time (its
``add_param_group`` is wrapped to disable the compiler), which costs about a second on a
small CPU: 7% of the whole Phase 2 run, in a worker that is timed from spawn to finish.
This is the same update ``torch.optim.AdamW`` makes (decoupled weight decay, bias
correction, ``eps`` added after the square root; a test checks it against torch's), run
by the kernel ``torch.optim.AdamW(fused=True)`` calls (``torch._fused_adamw_``, one pass
over all tensors; about twice as fast as the multi-kernel path on a ten-decision RL
update), falling back to the ``torch._foreach_*`` kernels where a torch build lacks it
for the CPU. Its state is plain data and tensors, so it checkpoints under
``weights_only`` loading.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch

STATE_VERSION = 1


class AdamW:
    """``AdamW(groups_or_params, lr, betas, eps, weight_decay)``; groups are dicts with
    ``params`` and optionally ``lr`` and ``weight_decay``, like ``torch.optim``'s."""

    def __init__(self, params: Iterable[Any], *, lr: float,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0) -> None:
        items = list(params)
        if items and isinstance(items[0], dict):
            groups = [dict(g) for g in items]
        else:
            groups = [{"params": items}]
        self.param_groups: list[dict[str, Any]] = []
        for group in groups:
            group["params"] = [p for p in group["params"] if p.requires_grad]
            group.setdefault("lr", lr)
            group.setdefault("weight_decay", weight_decay)
            self.param_groups.append(group)
        self.betas = betas
        self.eps = eps
        self.steps = 0
        self.fused = hasattr(torch, "_fused_adamw_")
        self.exp_avg = [[torch.zeros_like(p) for p in g["params"]] for g in self.param_groups]
        self.exp_avg_sq = [[torch.zeros_like(p) for p in g["params"]]
                           for g in self.param_groups]

    def zero_grad(self) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        self.steps += 1
        for group, m, v in zip(self.param_groups, self.exp_avg, self.exp_avg_sq, strict=True):
            with_grad = [i for i, p in enumerate(group["params"]) if p.grad is not None]
            if not with_grad:
                continue
            params = [group["params"][i] for i in with_grad]
            grads = [group["params"][i].grad for i in with_grad]
            ms = [m[i] for i in with_grad]
            vs = [v[i] for i in with_grad]
            if self.fused:
                try:
                    self._fused_step(params, grads, ms, vs, group)
                    continue
                except (RuntimeError, NotImplementedError):
                    self.fused = False  # this torch build has no CPU kernel for it
            self._foreach_step(params, grads, ms, vs, group)

    def _fused_step(self, params: list[torch.Tensor], grads: list[torch.Tensor],
                    ms: list[torch.Tensor], vs: list[torch.Tensor],
                    group: dict[str, Any]) -> None:
        step = torch.tensor(float(self.steps))  # the kernel reads it, the caller counts
        torch._fused_adamw_(params, grads, ms, vs, [], [step] * len(params),
                            amsgrad=False, lr=float(group["lr"]), beta1=self.betas[0],
                            beta2=self.betas[1], weight_decay=float(group["weight_decay"]),
                            eps=self.eps, maximize=False, grad_scale=None, found_inf=None)

    def _foreach_step(self, params: list[torch.Tensor], grads: list[torch.Tensor],
                      ms: list[torch.Tensor], vs: list[torch.Tensor],
                      group: dict[str, Any]) -> None:
        beta1, beta2 = self.betas
        bias1 = 1 - beta1 ** self.steps
        bias2_sqrt = math.sqrt(1 - beta2 ** self.steps)
        lr = group["lr"]
        if group["weight_decay"]:
            torch._foreach_mul_(params, 1 - lr * group["weight_decay"])
        torch._foreach_lerp_(ms, grads, 1 - beta1)
        torch._foreach_mul_(vs, beta2)
        torch._foreach_addcmul_(vs, grads, grads, 1 - beta2)
        denom = torch._foreach_sqrt(vs)
        torch._foreach_div_(denom, bias2_sqrt)
        torch._foreach_add_(denom, self.eps)
        torch._foreach_addcdiv_(params, ms, denom, -lr / bias1)

    def state_dict(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "steps": self.steps,
            "betas": list(self.betas),
            "eps": self.eps,
            "groups": [{"lr": g["lr"], "weight_decay": g["weight_decay"]}
                       for g in self.param_groups],
            "exp_avg": [[t.clone() for t in group] for group in self.exp_avg],
            "exp_avg_sq": [[t.clone() for t in group] for group in self.exp_avg_sq],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore ``state_dict`` output; ``ValueError`` when it does not fit these params."""
        try:
            if state["version"] != STATE_VERSION:
                raise ValueError(f"optimizer state version {state['version']!r}")
            exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
            for saved, group in ((exp_avg, self.exp_avg), (exp_avg_sq, self.exp_avg_sq)):
                if len(saved) != len(group) or any(
                    len(a) != len(b) or any(x.shape != y.shape for x, y in zip(a, b,
                                                                                 strict=True))
                    for a, b in zip(saved, group, strict=True)
                ):
                    raise ValueError("optimizer state does not match the parameters")
            for g, saved in zip(self.param_groups, state["groups"], strict=True):
                g["lr"], g["weight_decay"] = float(saved["lr"]), float(saved["weight_decay"])
            self.steps = int(state["steps"])
            self.betas = (float(state["betas"][0]), float(state["betas"][1]))
            self.eps = float(state["eps"])
            self.exp_avg = [[t.clone() for t in group] for group in exp_avg]
            self.exp_avg_sq = [[t.clone() for t in group] for group in exp_avg_sq]
        except (KeyError, TypeError, IndexError, AttributeError) as exc:
            reason = f"{type(exc).__name__}: {exc}"
            raise ValueError(f"optimizer state is malformed ({reason})") from None
