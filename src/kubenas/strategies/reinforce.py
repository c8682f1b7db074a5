"""Reinforcement learning: a REINFORCE controller in the manner of Zoph & Le (2017).

The policy is one softmax per decision of the space, sampled in decision order, so a conditional decision is
drawn only when its parent's value makes it active (and contributes to the log-probability only then). Each
told result updates the logits by the policy gradient of its reward (the objective, higher is better) against
a moving-average baseline, plus an entropy bonus that keeps the policy from collapsing early:

    logits[d] += lr * ((reward - baseline) * (onehot(choice) - p) + entropy * dH/dlogits)

ENAS's controller shapes its logits, and kubenas's policy can too: ``temperature`` divides them and ``tanh_const``
bounds them (``p = softmax(tanh_const * tanh(logits / temperature))``, which keeps the policy from growing sure of
one choice too soon), and ``skip_weight`` pulls every yes/no decision (a skip connection) towards a probability
``skip_target`` of yes, by descending ``skip_weight`` times the KL divergence between the two. All are off by
default.

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

    def __init__(
        self,
        space,
        *,
        lr: float = 0.1,
        baseline_decay: float = 0.9,
        entropy: float = 0.01,
        temperature: float | None = None,
        tanh_const: float | None = None,
        skip_target: float = 0.4,
        skip_weight: float = 0.0,
    ):
        for label, value, low, high in (
            ("lr", lr, 0.0, 100.0),
            ("baseline_decay", baseline_decay, 0.0, 1.0),
            ("entropy", entropy, 0.0, 10.0),
            ("skip_target", skip_target, 0.0, 1.0),
            ("skip_weight", skip_weight, 0.0, 100.0),
        ):
            if not is_number(value) or not low <= value <= high:
                raise ValueError(f"reinforce: {label} must be a number in [{low}, {high}], got {value!r}")
        for label, value in (("temperature", temperature), ("tanh_const", tanh_const)):
            if value is not None and (not is_number(value) or not 0 < value < float("inf")):
                raise ValueError(f"reinforce: {label} must be a number > 0, or null for none, got {value!r}")
        self.space = space
        self.lr, self.baseline_decay, self.entropy_weight = float(lr), float(baseline_decay), float(entropy)
        self.temperature = None if temperature is None else float(temperature)
        self.tanh_const = None if tanh_const is None else float(tanh_const)
        self.skip_target, self.skip_weight = float(skip_target), float(skip_weight)
        self.logits = {d.name: [0.0] * len(d.choices) for d in space.decisions}
        self.baseline: float | None = None
        self._yes_no = {d.name for d in space.decisions if tuple(d.choices) == (False, True)}

    def _shaped(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The logits the softmax sees, and their derivative by the stored logits (elementwise)."""
        scale = 1.0 if self.temperature is None else 1.0 / self.temperature
        if self.tanh_const is None:
            return z * scale, np.full_like(z, scale)
        t = np.tanh(z * scale)
        return self.tanh_const * t, self.tanh_const * (1.0 - t * t) * scale

    def _p(self, name: str) -> np.ndarray:
        return _softmax(self._shaped(np.asarray(self.logits[name]))[0])

    def probabilities(self) -> dict[str, list[float]]:
        return {name: self._p(name).tolist() for name in self.logits}

    def sample(self, rng: np.random.Generator) -> dict[str, Any]:
        """An architecture drawn from the policy, decision by decision (conditional ones only when active)."""
        for _ in range(_SAMPLE_TRIES):
            arch: dict[str, Any] = {}
            for d in self.space.decisions:
                if d.is_active(arch):
                    p = self._p(d.name)
                    arch[d.name] = d.choices[int(rng.choice(len(p), p=p))]
            if self.space.violation(arch) is None:  # constraints beyond the decisions (cell connectivity)
                return arch
        return self.space.sample(rng)

    def log_prob(self, arch: dict[str, Any]) -> float:
        return float(sum(np.log(self._p(name)[self.space.index(name, value)]) for name, value in arch.items()))

    def entropy(self) -> float:
        """The policy's entropy, summed over the decisions."""
        return float(sum(_entropy(self._p(name)) for name in self.logits))

    def update(self, arch: dict[str, Any], reward: float) -> None:
        """One REINFORCE step for ``arch`` with ``reward`` (higher is better)."""
        baseline = reward if self.baseline is None else self.baseline
        advantage = reward - baseline
        for d in self.space.decisions:
            if d.name not in arch:
                continue
            z = np.asarray(self.logits[d.name])
            shaped, slope = self._shaped(z)
            p = _softmax(shaped)
            grad = -p
            grad[self.space.index(d.name, arch[d.name])] += 1.0
            step = advantage * grad - self.entropy_weight * p * (np.log(p + 1e-12) + _entropy(p))
            if self.skip_weight and d.name in self._yes_no:  # down the KL divergence from the skip target
                target = np.clip([1.0 - self.skip_target, self.skip_target], 1e-6, 1.0)
                ratio = np.log(p + 1e-12) - np.log(target)
                step -= self.skip_weight * p * (ratio - float((p * ratio).sum()))
            self.logits[d.name] = (z + self.lr * slope * step).tolist()
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
            "temperature": self.temperature,
            "tanh_const": self.tanh_const,
            "skip_target": self.skip_target,
            "skip_weight": self.skip_weight,
            "logits": self.logits,
            "baseline": self.baseline,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.lr, self.baseline_decay, self.entropy_weight = state["lr"], state["baseline_decay"], state["entropy"]
        # a state saved before the logits could be shaped has none of these: the defaults (off)
        self.temperature, self.tanh_const = state.get("temperature"), state.get("tanh_const")
        self.skip_target, self.skip_weight = state.get("skip_target", 0.4), state.get("skip_weight", 0.0)
        self.logits = {k: [float(x) for x in v] for k, v in state["logits"].items()}
        self.baseline = state["baseline"]


class Reinforce(Strategy):
    name = "reinforce"

    def __init__(
        self,
        space,
        *,
        lr: float = 0.1,
        baseline_decay: float = 0.9,
        entropy: float = 0.01,
        temperature: float | None = None,
        tanh_const: float | None = None,
        skip_target: float = 0.4,
        skip_weight: float = 0.0,
        **kwargs: Any,
    ):
        super().__init__(space, **kwargs)
        self.policy = Policy(
            space,
            lr=lr,
            baseline_decay=baseline_decay,
            entropy=entropy,
            temperature=temperature,
            tanh_const=tanh_const,
            skip_target=skip_target,
            skip_weight=skip_weight,
        )

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
