"""ENAS-style one-shot search (Pham et al., 2018): a REINFORCE controller and a shared-weight supernet trained
in alternation.

Each epoch first trains the supernet's weights, one architecture sampled from the controller per minibatch;
then ``controller_steps`` times the controller samples an architecture, its reward is that architecture's
accuracy with the shared weights on a validation minibatch, and the policy takes a REINFORCE step (moving-average
baseline, entropy bonus; :class:`kubenas.strategies.reinforce.Policy`). Pham et al.'s controller is an LSTM;
here it is the factorised softmax policy of the ``reinforce`` strategy, with its logits in the JSON state.
``propose`` samples distinct architectures from the trained policy, most probable first.
"""

from __future__ import annotations

from typing import Any

import torch

from kubenas.core import is_int
from kubenas.oneshot.base import OneShot, cross_entropy
from kubenas.strategies.reinforce import Policy


class ENAS(OneShot):
    name = "enas"

    def __init__(
        self,
        space,
        *,
        controller_steps: int = 50,
        controller_lr: float = 0.1,
        entropy: float = 0.01,
        baseline_decay: float = 0.9,
        **kwargs: Any,
    ):
        super().__init__(space, **kwargs)
        if not is_int(controller_steps) or controller_steps < 1:
            raise ValueError(f"enas: controller_steps must be a positive integer, got {controller_steps!r}")
        self.controller_steps = controller_steps
        self.policy = Policy(space, lr=controller_lr, baseline_decay=baseline_decay, entropy=entropy)

    def _train_batch(self, x, y, val, progress):
        return self._step(cross_entropy(self.net, x, y, arch=self.policy.sample(self.rng)))

    @torch.no_grad()
    def _end_epoch(self, data):
        gen = torch.Generator().manual_seed(self.seed * 100_003 + self.epochs_done)
        rewards = []
        self.net.train()  # batch statistics: a path's own, as when it was trained
        for _ in range(self.controller_steps):
            arch = self.policy.sample(self.rng)
            idx = torch.randint(0, len(data.x_val), (self.batch_size,), generator=gen)
            reward = float((self.net(data.x_val[idx], arch=arch).argmax(1) == data.y_val[idx]).float().mean())
            self.policy.update(arch, reward)
            rewards.append(reward)
        return {"controller_reward": sum(rewards) / len(rewards), "policy_entropy": self.policy.entropy()}

    def propose(self, n):
        samples = [self.policy.sample(self.rng) for _ in range(50 * n)]
        return sorted(self._unique(samples, n), key=lambda a: -self.policy.log_prob(a))

    def _extra_state(self):
        return {"controller_steps": self.controller_steps, "policy": self.policy.state_dict()}

    def _load_extra_state(self, state):
        self.controller_steps = state["controller_steps"]
        self.policy.load_state_dict(state["policy"])
