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

from kubenas.spaces.base import _key
from kubenas.strategies.base import Strategy

_SAMPLE_TRIES = 50


class Reinforce(Strategy):
    name = "reinforce"

    def __init__(self, space, *, lr: float = 0.1, baseline_decay: float = 0.9, entropy: float = 0.01, **kwargs: Any):
        super().__init__(space, **kwargs)
        for label, value, low, high in (("lr", lr, 0.0, 100.0), ("baseline_decay", baseline_decay, 0.0, 1.0),
                                        ("entropy", entropy, 0.0, 10.0)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
                raise ValueError(f"reinforce: {label} must be a number in [{low}, {high}], got {value!r}")
        self.lr, self.baseline_decay, self.entropy = float(lr), float(baseline_decay), float(entropy)
        self._logits = {d.name: [0.0] * len(d.choices) for d in space.decisions}
        self._baseline: float | None = None

    def probabilities(self) -> dict[str, list[float]]:
        """The policy's current choice probabilities, per decision."""
        return {name: _softmax(np.asarray(z)).tolist() for name, z in self._logits.items()}

    def _sample(self) -> dict[str, Any]:
        for _ in range(_SAMPLE_TRIES):
            arch: dict[str, Any] = {}
            for d in self.space.decisions:
                if d.is_active(arch):
                    p = _softmax(np.asarray(self._logits[d.name]))
                    arch[d.name] = d.choices[int(self.rng.choice(len(p), p=p))]
            if self.space._check(arch) is None:  # constraints beyond the decisions (cell connectivity)
                return arch
        return self.space.sample(self.rng)

    def _propose(self):
        arch = self._unique(self._sample)
        return None if arch is None else (arch, "policy", None)

    def _observe(self, record, tag):
        if record["value"] is None:
            return
        reward = self.utility(record["value"])
        baseline = reward if self._baseline is None else self._baseline
        advantage = reward - baseline
        for d in self.space.decisions:
            if d.name not in record["arch"]:
                continue
            z = np.asarray(self._logits[d.name])
            p = _softmax(z)
            grad = -p
            grad[self.space._index[d.name][_key(record["arch"][d.name])]] += 1.0
            entropy_grad = -p * (np.log(p + 1e-12) + _entropy(p))
            self._logits[d.name] = (z + self.lr * (advantage * grad + self.entropy * entropy_grad)).tolist()
        self._baseline = reward if self._baseline is None else (
            self.baseline_decay * self._baseline + (1 - self.baseline_decay) * reward)

    def _extra_state(self):
        return {"lr": self.lr, "baseline_decay": self.baseline_decay, "entropy": self.entropy,
                "logits": self._logits, "baseline": self._baseline}

    def _load_extra_state(self, state):
        self.lr, self.baseline_decay, self.entropy = state["lr"], state["baseline_decay"], state["entropy"]
        self._logits = {k: [float(x) for x in v] for k, v in state["logits"].items()}
        self._baseline = state["baseline"]


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max())
    return e / e.sum()


def _entropy(p: np.ndarray) -> float:
    return float(-(p * np.log(p + 1e-12)).sum())
