"""Bayesian optimisation with neural predictors, BANANAS-style (White et al., 2021).

- **Surrogate**: an ensemble of small MLPs over the space's encoding (the path encoding for cell spaces, else
  one-hot), trained together as one batched network on the standardised objective. Each member starts from
  its own seeded initialisation and sees its own bootstrap of the data, so their spread is the uncertainty.
- **Acquisition**: independent Thompson sampling (``its``: a normal draw per candidate from the ensemble's
  mean and spread) or ``ucb`` (mean + kappa * spread).
- **Candidates**: mutations of the best architectures found so far (BANANAS's local acquisition
  optimiser), plus a few random samples.
- **Batches**: ``thompson`` gives every slot of a batch its own draw; ``constant_liar`` adds each chosen
  candidate to the data with the worst value seen so far and refits briefly before the next slot, which
  pushes the batch apart.

Until ``n_init`` successes exist, proposals are random. The surrogate is refitted from the history at each
ask, so the JSON state is the base class's history plus the options.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kubenas.arch import arch_id
from kubenas.core import is_int, is_number
from kubenas.strategies.base import Strategy


class Bananas(Strategy):
    name = "bananas"

    def __init__(
        self,
        space,
        *,
        n_init: int = 10,
        ensemble: int = 5,
        hidden: int = 32,
        epochs: int = 40,
        acquisition: str = "its",
        kappa: float = 1.0,
        batch: str = "thompson",
        parents: int = 10,
        mutations: int = 10,
        encoding: str = "auto",
        **kwargs: Any,
    ):
        super().__init__(space, **kwargs)
        ints = {
            "n_init": (n_init, 2),
            "ensemble": (ensemble, 2),
            "hidden": (hidden, 1),
            "epochs": (epochs, 1),
            "parents": (parents, 1),
            "mutations": (mutations, 1),
        }
        for label, (value, low) in ints.items():
            if not is_int(value) or value < low:
                raise ValueError(f"bananas: {label} must be an integer >= {low}, got {value!r}")
        if acquisition not in ("its", "ucb"):
            raise ValueError(f"bananas: acquisition must be 'its' or 'ucb', got {acquisition!r}")
        if batch not in ("thompson", "constant_liar"):
            raise ValueError(f"bananas: batch must be 'thompson' or 'constant_liar', got {batch!r}")
        if encoding == "auto":
            try:
                space.encoding_size("path")
                encoding = "path"
            except ValueError:
                encoding = "onehot"
        if encoding not in ("onehot", "path"):
            raise ValueError(f"bananas: encoding must be 'auto', 'onehot' or 'path', got {encoding!r}")
        space.encoding_size(encoding)  # raises with the reason when the space has no such encoding
        if not is_number(kappa) or kappa < 0:
            raise ValueError(f"bananas: kappa must be a number >= 0, got {kappa!r}")
        self.n_init, self.ensemble, self.hidden, self.epochs = n_init, ensemble, hidden, epochs
        self.acquisition, self.kappa, self.batch, self.encoding = acquisition, float(kappa), batch, encoding
        self.parents, self.mutations = parents, mutations
        self._model: _Ensemble | None = None
        self._fitted_on = -1  # history length (plus lies) the model was fitted on
        self._codes: dict[str, np.ndarray] = {}  # encodings by arch id: derived, so not part of the state

    def _encode(self, archs: list[dict]) -> np.ndarray:
        ids = [arch_id(a) for a in archs]
        new = {aid: a for aid, a in zip(ids, archs) if aid not in self._codes}
        if new:
            self._codes.update(zip(new, self.space.encode_many(list(new.values()), self.encoding)))
        return np.stack([self._codes[aid] for aid in ids])

    # ----------------------------------------------------------------- proposals
    def _propose(self):
        ok = [h for h in self._history if h["value"] is not None]
        if len(ok) < self.n_init:
            arch = self._unique(lambda: self.space.sample(self.rng))
            return None if arch is None else (arch, "random", None)
        pool, parent_ids = self._pool(ok)
        if not pool:
            arch = self._random_unseen()
            return None if arch is None else (arch, "random", None)
        model = self._surrogate(ok)
        mean, std = model.predict(self._encode(pool))
        if self.acquisition == "ucb":
            score = mean + self.kappa * std
            if self.batch == "thompson":  # a batch under UCB still needs diversity between its slots
                score = score + 1e-9 * self.rng.standard_normal(len(score))
        else:
            score = self.rng.normal(mean, std + 1e-9)
        pick = int(np.argmax(score))
        return pool[pick], "model", parent_ids[pick]

    def _pool(self, ok: list[dict[str, Any]]) -> tuple[list[dict], list[str | None]]:
        """Unseen mutations of the best architectures, and a few random samples."""
        top = sorted(ok, key=lambda h: self.utility(h["value"]), reverse=True)[: self.parents]
        pool: dict[str, tuple[dict, str | None]] = {}
        for parent in top:
            for _ in range(self.mutations):
                child = self.space.mutate(parent["arch"], self.rng)
                aid = arch_id(child)
                if aid not in self._seen and aid not in pool:
                    pool[aid] = (child, parent["id"])
        for _ in range(self.mutations):
            arch = self.space.sample(self.rng)
            aid = arch_id(arch)
            if aid not in self._seen and aid not in pool:
                pool[aid] = (arch, None)
        return [a for a, _ in pool.values()], [p for _, p in pool.values()]

    def _surrogate(self, ok: list[dict[str, Any]]) -> _Ensemble:
        lies = [p["arch"] for p in self._pending.values()] if self.batch == "constant_liar" else []
        size = len(ok) + len(lies)
        if self._model is not None and self._fitted_on == size:
            return self._model
        x = self._encode([h["arch"] for h in ok] + lies)
        y = np.asarray([self.utility(h["value"]) for h in ok] + [min(self.utility(h["value"]) for h in ok)] * len(lies))
        warm = self._model if lies and self._model is not None and self._fitted_on >= len(ok) else None
        seed = self.seed * 1_000_003 + size  # not from self.rng: a refit after a reload gives the same model
        self._model = _Ensemble.fit(x, y, self.ensemble, self.hidden, self.epochs if warm is None else 20, seed, warm)
        self._fitted_on = size
        return self._model

    def _observe(self, record, tag):
        self._fitted_on = -1  # new data: refit at the next ask

    def _extra_state(self):
        return {
            k: getattr(self, k)
            for k in (
                "n_init",
                "ensemble",
                "hidden",
                "epochs",
                "acquisition",
                "kappa",
                "batch",
                "parents",
                "mutations",
                "encoding",
            )
        }

    def _load_extra_state(self, state):
        for key, value in state.items():
            setattr(self, key, value)
        self._model, self._fitted_on = None, -1


def _flat_views(arrays: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
    """One contiguous float32 buffer holding ``arrays``, and a view of it shaped like each of them."""
    flat = np.concatenate([a.ravel() for a in arrays]).astype(np.float32)
    views, start = [], 0
    for a in arrays:
        views.append(flat[start : start + a.size].reshape(a.shape))
        start += a.size
    return flat, views


class _Ensemble:
    """E two-layer MLPs trained as one batched network (weights shaped (E, in, out)) with full-batch Adam.

    Written in numpy with its two-line backward pass: for networks this small, a framework's per-operation
    overhead would cost more than the arithmetic (an ask at 400 results, refit included, takes about
    35 ms on one CPU core)."""

    def __init__(self, params: list[np.ndarray], x_mean, x_std, y_mean, y_std):
        self.params, self.x_mean, self.x_std, self.y_mean, self.y_std = params, x_mean, x_std, y_mean, y_std

    @staticmethod
    def _forward(params, x):  # x: (N, D) -> predictions (E, N) and the activations for the backward pass
        w1, b1, w2, b2, w3, b3 = params  # w1 is (D, E*H): the first layer of all members is one GEMM
        members = w2.shape[0]
        h1 = np.ascontiguousarray(np.maximum(x @ w1 + b1, 0.0).reshape(len(x), members, -1).transpose(1, 0, 2))
        h2 = np.maximum(h1 @ w2 + b2, 0.0)  # (E, N, H)
        return (h2 @ w3 + b3)[..., 0], (h1, h2)

    @classmethod
    def fit(
        cls,
        x: np.ndarray,
        y: np.ndarray,
        members: int,
        hidden: int,
        epochs: int,
        seed: int,
        warm: _Ensemble | None = None,
        lr: float = 0.02,
        weight_decay: float = 1e-4,
    ) -> _Ensemble:
        rng = np.random.default_rng(seed)
        x, y = np.asarray(x, dtype=np.float32), np.asarray(y, dtype=np.float32)
        y_mean, y_std = float(y.mean()), max(float(y.std()), 1e-6)
        x_mean = x.mean(0)
        x_std = np.maximum(x.std(0), 1e-3) if len(x) > 1 else np.ones(x.shape[1], dtype=np.float32)
        xn, yn = (x - x_mean) / x_std, (y - y_mean) / y_std
        d = x.shape[1]
        if warm is not None:
            params = [p.copy() for p in warm.params]
        else:

            def init(*shape):
                return (rng.standard_normal(shape) * np.sqrt(2.0 / shape[1])).astype(np.float32)

            params = [
                init(members, d, hidden).transpose(1, 0, 2).reshape(d, members * hidden),
                np.zeros(members * hidden, np.float32),
                init(members, hidden, hidden),
                np.zeros((members, 1, hidden), np.float32),
                init(members, hidden, 1),
                np.zeros((members, 1, 1), np.float32),
            ]
        # each member trains on its own bootstrap sample (weights = multiplicities)
        boot = np.stack(
            [np.bincount(rng.integers(len(xn), size=len(xn)), minlength=len(xn)) for _ in range(members)]
        ).astype(np.float32)
        boot /= boot.sum(1, keepdims=True)
        # Parameters and gradients are views into two flat buffers, so Adam is a handful of array operations
        # per step instead of a handful per tensor: at this size the call overhead is most of the cost.
        flat, params = _flat_views(params)
        grad, grads = _flat_views([np.zeros_like(p) for p in params])
        m, v = np.zeros_like(flat), np.zeros_like(flat)
        b1_, b2_ = 0.9, 0.999
        for step in range(1, epochs + 1):
            w1, _, w2, _, w3, _ = params
            pred, (h1, h2) = cls._forward(params, xn)
            g_out = (2.0 * (pred - yn) * boot)[..., None]  # (E, N, 1): d loss / d output
            np.matmul(h2.transpose(0, 2, 1), g_out, out=grads[4])
            g_out.sum(1, keepdims=True, out=grads[5])
            g_h2 = g_out * w3.transpose(0, 2, 1) * (h2 > 0)  # (E, N, 1) * (E, 1, H)
            np.matmul(h1.transpose(0, 2, 1), g_h2, out=grads[2])
            g_h2.sum(1, keepdims=True, out=grads[3])
            g_h1 = (g_h2 @ w2.transpose(0, 2, 1)) * (h1 > 0)
            g_h1 = g_h1.transpose(1, 0, 2).reshape(len(xn), -1)  # back to (N, E*H)
            np.matmul(xn.T, g_h1, out=grads[0])
            g_h1.sum(0, out=grads[1])
            grad += weight_decay * flat
            m *= b1_
            m += (1 - b1_) * grad
            v *= b2_
            v += (1 - b2_) * grad * grad
            flat -= (lr / (1 - b1_**step)) * m / (np.sqrt(v / (1 - b2_**step)) + 1e-8)
        return cls(params, x_mean, x_std, y_mean, y_std)

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        xn = (np.asarray(x, dtype=np.float32) - self.x_mean) / self.x_std
        pred = self._forward(self.params, xn)[0] * self.y_std + self.y_mean
        return pred.mean(0), pred.std(0)
