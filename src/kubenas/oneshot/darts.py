"""DARTS: differentiable architecture search (Liu, Simonyan and Yang, 2019), first order.

Every edge of the supernet mixes all its operations with the softmax of its architecture weights (alpha).
Training alternates, minibatch by minibatch, an Adam step on alpha against a validation minibatch and a step
on the supernet's weights against a training minibatch (first-order bilevel optimisation: the weights'
response to alpha is ignored). ``propose`` returns the discretised architecture: the strongest operation per
edge, and in ``cell`` the two strongest inputs per node (:func:`kubenas.oneshot.supernet.derive`); it is
then retrained from scratch by the export.

DARTS is known to collapse to parameter-free operations, skip connections above all, on NAS-Bench-201 (Dong
and Yang, 2020; Zela et al., 2020). Two published remedies, chosen by ``remedy``:

- ``auxiliary_skip`` (DARTS-, Chu et al., 2021): every stride-1 edge also adds ``beta * input``, with beta
  decaying linearly from 1 to 0 over the search. The skip connection's advantage in training (it eases
  gradient flow) is given to every architecture, so alpha no longer rewards it for that.
- ``early_stop`` (after DARTS+, Liang et al., 2019): the search stops, alpha frozen, as soon as the derived
  architecture's share of parameter-free operations (skip connections, pooling, 'none') exceeds
  ``max_param_free_share`` (0.4: in nb201, three of six edges); the architecture derived before is kept.
  DARTS+ stops at two skip connections in a cell; it counts skips only, but the collapse need not go to
  skips: on MNIST-1D it goes to average pooling.

``remedy: none`` is plain DARTS. Each epoch's record has the derived architecture and its shares of skip
connections and of parameter-free operations, so the collapse, or its absence, can be watched.
"""

from __future__ import annotations

from typing import Any

import torch

from kubenas.core import is_number
from kubenas.oneshot.base import OneShot, cross_entropy
from kubenas.oneshot.supernet import derive

REMEDIES = ("none", "auxiliary_skip", "early_stop")
PARAMETER_FREE = ("skip_connect", "max_pool_3x3", "avg_pool_3x3", "none")


class DARTS(OneShot):
    name = "darts"

    def __init__(
        self,
        space,
        *,
        remedy: str = "auxiliary_skip",
        arch_lr: float = 3e-4,
        arch_weight_decay: float = 1e-3,
        max_param_free_share: float = 0.4,
        **kwargs: Any,
    ):
        super().__init__(space, **kwargs)
        recipe = self.recipe
        if recipe is not None:  # the recipe's architecture optimiser (the darts preset: DARTS's own)
            arch_lr, arch_weight_decay = recipe.arch_lr, recipe.arch_weight_decay
        self.arch_betas = recipe.arch_betas if recipe is not None else (0.5, 0.999)
        if remedy not in REMEDIES:
            raise ValueError(f"darts: remedy must be one of {', '.join(REMEDIES)}, got {remedy!r}")
        for label, value in (("arch_lr", arch_lr), ("arch_weight_decay", arch_weight_decay)):
            if not is_number(value) or value < 0:
                raise ValueError(f"darts: {label} must be a number >= 0, got {value!r}")
        if not is_number(max_param_free_share) or not 0 < max_param_free_share <= 1:
            raise ValueError(f"darts: max_param_free_share must be in (0, 1], got {max_param_free_share!r}")
        self.remedy, self.arch_lr, self.arch_weight_decay = remedy, float(arch_lr), float(arch_weight_decay)
        self.max_param_free_share = float(max_param_free_share)
        self.stopped_at: int | None = None  # the epoch at which early_stop froze alpha
        self.derived: dict[str, Any] | None = None

    def _build_extra(self) -> None:
        # small random alpha as in DARTS, drawn from the method's seed
        gen = torch.Generator().manual_seed(self.seed)
        self.alpha = {
            key: (1e-3 * torch.randn(len(self.net.edges[key]), generator=gen)).to(self.device).requires_grad_()
            for key in sorted(self.net.edges)
        }
        self.arch_optimizer = torch.optim.Adam(
            list(self.alpha.values()), lr=self.arch_lr, betas=self.arch_betas, weight_decay=self.arch_weight_decay
        )

    def weights(self) -> dict[str, torch.Tensor]:
        """The mixing weights: softmax(alpha) per edge."""
        return {key: torch.softmax(a, dim=0) for key, a in self.alpha.items()}

    def _beta(self, progress: float) -> float:
        return max(0.0, 1.0 - progress) if self.remedy == "auxiliary_skip" else 0.0

    def _train_batch(self, x, y, val, progress):
        beta = self._beta(progress)
        if self.stopped_at is None:  # the architecture step, on the validation batch; gradients for alpha only
            loss = cross_entropy(self.net, *val, weights=self.weights(), aux_skip=beta)
            alphas = list(self.alpha.values())
            for a, g in zip(alphas, torch.autograd.grad(loss, alphas)):
                a.grad = g
            self.arch_optimizer.step()
        with torch.no_grad():
            mix = {k: w.detach() for k, w in self.weights().items()}
        return self._step(cross_entropy(self.net, x, y, weights=mix, aux_skip=beta))

    def _end_epoch(self, data):
        arch = self._derive()
        ops = [v for v in arch.values() if isinstance(v, str)]  # (a cell's inputs are lists)
        free = sum(op in PARAMETER_FREE for op in ops) / len(ops)
        if (
            self.remedy == "early_stop"
            and self.stopped_at is None
            and free > self.max_param_free_share
            and self.derived is not None
        ):
            self.stopped_at = self.epochs_done  # keep the architecture derived before the collapse
        elif self.stopped_at is None:
            self.derived = arch
        return {
            "skip_share": sum(op == "skip_connect" for op in ops) / len(ops),
            "param_free_share": free,
            "derived": self.space.genotype(arch),
            "alpha_frozen": self.stopped_at is not None,
        }

    score_kind = "mixture"

    @torch.no_grad()
    def score(self, archs, data, recalibration_batches=4):
        """The validation accuracy of the mixed supernet, the quantity DARTS optimises alpha on: the derived
        architecture's own path was never trained alone, so its shared-weight accuracy would say little."""
        self.net.eval()
        x, y = data.x_val.to(self.device), data.y_val.to(self.device)
        beta = self._beta(self.epochs_done / self.total_epochs)  # the network as trained so far
        with self.autocast():
            logits = torch.cat(
                [self.net(x[i : i + 1024], weights=self.weights(), aux_skip=beta) for i in range(0, len(x), 1024)]
            )
        self.net.train()
        return [float((logits.argmax(1) == y).float().mean())] * len(archs)

    def propose(self, n):
        if self.derived is None:
            self.derived = self._derive()
        return [self.derived]

    @torch.no_grad()
    def _derive(self):
        return derive(self.space, {k: w.float().cpu().tolist() for k, w in self.weights().items()})

    def _extra_state(self):
        return {
            "remedy": self.remedy,
            "arch_lr": self.arch_lr,
            "arch_weight_decay": self.arch_weight_decay,
            "max_param_free_share": self.max_param_free_share,
            "stopped_at": self.stopped_at,
            "derived": self.derived,
        }

    def _load_extra_state(self, state):
        self.remedy, self.arch_lr, self.arch_weight_decay = (
            state["remedy"],
            state["arch_lr"],
            state["arch_weight_decay"],
        )
        self.max_param_free_share, self.stopped_at = state["max_param_free_share"], state["stopped_at"]
        self.derived = state["derived"]

    def _extra_tensors(self):
        return {
            "alpha": {k: a.detach().clone() for k, a in self.alpha.items()},
            "arch_optimizer": self.arch_optimizer.state_dict(),
        }

    def _load_extra_tensors(self, tensors):
        with torch.no_grad():
            for k, a in tensors["alpha"].items():
                self.alpha[k].copy_(a)
        self.arch_optimizer.load_state_dict(tensors["arch_optimizer"])
