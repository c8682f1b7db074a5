"""Reinforcement learning: a REINFORCE controller in the manner of Zoph & Le (2017).

The policy is one softmax per decision of the space, sampled in decision order, so a conditional decision is
drawn only when its parent's value makes it active (and contributes to the log-probability only then). Each
told result updates the logits by the policy gradient of its reward (the objective, higher is better) against
a moving-average baseline, plus an entropy bonus that keeps the policy from collapsing early:

    logits[d] += lr * ((reward - baseline) * (onehot(choice) - p) + entropy * dH/dlogits)

Failed candidates teach nothing and are skipped. The logits, the baseline and its count live in the JSON
state. Zoph & Le's controller is an RNN over the decisions; a factorised policy is the common simplification
(as in ENAS's analyses and NNI's PolicyBasedRL on small spaces) and keeps the state a few numbers per choice.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kubenas.core import is_number
from kubenas.strategies.base import Strategy

_SAMPLE_TRIES = 50


class Policy:
    """One softmax per decision of ``space``, with the REINFORCE update above; shared by the ``reinforce``
    strategy and ENAS's controller (:mod:`kubenas.oneshot.enas`)."""

    def __init__(self, space, *, lr: float = 0.1, baseline_decay: float = 0.9, entropy: float = 0.01):
        for label, value, low, high in (
            ("lr", lr, 0.0, 100.0),
            ("baseline_decay", baseline_decay, 0.0, 1.0),
            ("entropy", entropy, 0.0, 10.0),
        ):
            if not is_number(value) or not low <= value <= high:
                raise ValueError(f"reinforce: {label} must be a number in [{low}, {high}], got {value!r}")
        self.space = space
        self.lr, self.baseline_decay, self.entropy_weight = float(lr), float(baseline_decay), float(entropy)
        self.logits = {d.name: [0.0] * len(d.choices) for d in space.decisions}
        self.baseline: float | None = None

    def probabilities(self) -> dict[str, list[float]]:
        return {name: _softmax(np.asarray(z)).tolist() for name, z in self.logits.items()}

    def sample(self, rng: np.random.Generator) -> dict[str, Any]:
        """An architecture drawn from the policy, decision by decision (conditional ones only when active)."""
        for _ in range(_SAMPLE_TRIES):
            arch: dict[str, Any] = {}
            for d in self.space.decisions:
                if d.is_active(arch):
                    p = _softmax(np.asarray(self.logits[d.name]))
                    arch[d.name] = d.choices[int(rng.choice(len(p), p=p))]
            if self.space.violation(arch) is None:  # constraints beyond the decisions (cell connectivity)
                return arch
        return self.space.sample(rng)

    def log_prob(self, arch: dict[str, Any]) -> float:
        return float(
            sum(
                np.log(_softmax(np.asarray(self.logits[name]))[self.space.index(name, value)])
                for name, value in arch.items()
            )
        )

    def entropy(self) -> float:
        """The policy's entropy, summed over the decisions."""
        return float(sum(_entropy(_softmax(np.asarray(z))) for z in self.logits.values()))

    def update(self, arch: dict[str, Any], reward: float) -> None:
        """One REINFORCE step for ``arch`` with ``reward`` (higher is better)."""
        baseline = reward if self.baseline is None else self.baseline
        advantage = reward - baseline
        for d in self.space.decisions:
            if d.name not in arch:
                continue
            z = np.asarray(self.logits[d.name])
            p = _softmax(z)
            grad = -p
            grad[self.space.index(d.name, arch[d.name])] += 1.0
            entropy_grad = -p * (np.log(p + 1e-12) + _entropy(p))
            self.logits[d.name] = (z + self.lr * (advantage * grad + self.entropy_weight * entropy_grad)).tolist()
        self.baseline = (
            reward
            if self.baseline is None
            else (self.baseline_decay * self.baseline + (1 - self.baseline_decay) * reward)
        )

    def state_dict(self) -> dict[str, Any]:
        return {
            "lr": self.lr,
            "baseline_decay": self.baseline_decay,
            "entropy": self.entropy_weight,
            "logits": self.logits,
            "baseline": self.baseline,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.lr, self.baseline_decay, self.entropy_weight = state["lr"], state["baseline_decay"], state["entropy"]
        self.logits = {k: [float(x) for x in v] for k, v in state["logits"].items()}
        self.baseline = state["baseline"]


class Reinforce(Strategy):
    name = "reinforce"

    def __init__(self, space, *, lr: float = 0.1, baseline_decay: float = 0.9, entropy: float = 0.01, **kwargs: Any):
        super().__init__(space, **kwargs)
        self.policy = Policy(space, lr=lr, baseline_decay=baseline_decay, entropy=entropy)

    def probabilities(self) -> dict[str, list[float]]:
        """The policy's current choice probabilities, per decision."""
        return self.policy.probabilities()

    def _propose(self):
        arch = self._unique(lambda: self.policy.sample(self.rng))
        return None if arch is None else (arch, "policy", None)

    def _observe(self, record, tag):
        if record["value"] is not None:  # failed candidates teach nothing
            self.policy.update(record["arch"], self.utility(record["value"]))

    def _extra_state(self):
        return self.policy.state_dict()

    def _load_extra_state(self, state):
        self.policy.load_state_dict(state)


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max())
    return e / e.sum()


def _entropy(p: np.ndarray) -> float:
    return float(-(p * np.log(p + 1e-12)).sum())
