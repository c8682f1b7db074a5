"""Bayesian optimisation with a Bayesian quadratic model and Thompson sampling (in the spirit of BOCS,
Baptista & Poloczek 2018, with a Gaussian prior fitted by evidence maximisation instead of a horseshoe).

- **Model**: Bayesian linear regression on the one-hot encoding of the decisions, every pairwise product of two
  decisions' one-hot blocks (how two choices interact; by default when there are at most ``MAX_AUTO_PAIRS``
  such products), and, for cell spaces, the path encoding. The prior
  precision and the noise level are fitted to the data each time by maximising the evidence (MacKay's
  fixed-point updates on one eigendecomposition), so the model learns how much of the objective is structure
  and how much is noise, with no hand-set regularisation.
- **Acquisition**: Thompson sampling. One draw of the weights from the posterior scores every candidate, and the
  best unseen one is asked; each slot of a batch makes its own draw.
- **Candidates**: every architecture of a space small enough to enumerate (``enumerate_limit``); otherwise
  ``mutations`` mutations of each of the ``parents`` best architectures found so far, plus as many random
  samples (BANANAS's local acquisition optimiser).

Until ``n_init`` successes exist, proposals are random. The model is refitted from the history at each ask and
drawn from ``self.rng``, so the JSON state is the base class's history plus the options.

Options: ``n_init`` (random proposals first); ``interactions`` (``auto``, ``true`` or ``false``: model pairwise
interactions); ``interaction_scale`` (a pair feature's prior scale, relative to a single choice's: 0.5 lets
interactions matter half as much before the data says otherwise); ``path`` (``auto``, ``true`` or ``false``: add the
path encoding of cell spaces); ``enumerate_limit``, ``parents`` and ``mutations`` (the candidates, above).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kubenas.arch import arch_id
from kubenas.core import is_int, is_number
from kubenas.strategies.base import Strategy

# interactions="auto" models pairwise interactions when there are at most this many pair features: the fit's
# cost grows with the feature count, and an ask at 400 results stays within a few tens of milliseconds.
MAX_AUTO_PAIRS = 2_000


class BayesQuadratic(Strategy):
    name = "bayes_quadratic"

    def __init__(
        self,
        space,
        *,
        n_init: int = 10,
        interactions: str | bool = "auto",
        interaction_scale: float = 0.5,
        path: str | bool = "auto",
        enumerate_limit: int = 20_000,
        parents: int = 10,
        mutations: int = 10,
        **kwargs: Any,
    ):
        super().__init__(space, **kwargs)
        ints = {
            "n_init": (n_init, 2),
            "enumerate_limit": (enumerate_limit, 0),
            "parents": (parents, 1),
            "mutations": (mutations, 1),
        }
        for label, (value, low) in ints.items():
            if not is_int(value) or value < low:
                raise ValueError(f"bayes_quadratic: {label} must be an integer >= {low}, got {value!r}")
        if interactions == "auto":
            interactions = len(_block_pairs([len(d.choices) for d in space.decisions])[0]) <= MAX_AUTO_PAIRS
        if not isinstance(interactions, bool):
            raise ValueError(f"bayes_quadratic: interactions must be 'auto', true or false, got {interactions!r}")
        if not is_number(interaction_scale) or not interaction_scale > 0:
            raise ValueError(f"bayes_quadratic: interaction_scale must be a number > 0, got {interaction_scale!r}")
        if path == "auto":
            try:
                space.encoding_size("path")
                path = True
            except ValueError:
                path = False
        if not isinstance(path, bool):
            raise ValueError(f"bayes_quadratic: path must be 'auto', true or false, got {path!r}")
        if path:
            space.encoding_size("path")  # raises with the reason when the space has no path encoding
        self.n_init, self.interactions, self.interaction_scale, self.path = (
            n_init,
            interactions,
            float(interaction_scale),
            path,
        )
        self.enumerate_limit, self.parents, self.mutations = enumerate_limit, parents, mutations
        self._derived()

    def _derived(self) -> None:
        """Caches recomputed from the options: never part of the state."""
        self._codes: dict[str, np.ndarray] = {}
        self._pairs = _block_pairs([len(d.choices) for d in self.space.decisions]) if self.interactions else None
        # every architecture of an enumerable space, their ids, each id's row, and the feature matrix
        self._everything: tuple[list[dict], list[str], dict[str, int], np.ndarray] | None = None
        self._posterior: tuple[int, tuple] | None = None

    # ----------------------------------------------------------------- features
    def _features(self, archs: list[dict]) -> np.ndarray:
        """Feature rows of ``archs``, cached by id."""
        new = [a for a in archs if arch_id(a) not in self._codes]
        if new:
            rows = self._encode(new, validate=True)
            for arch, row in zip(new, rows):
                self._codes[arch_id(arch)] = row
        return np.stack([self._codes[arch_id(a)] for a in archs])

    def _encode(self, archs: list[dict], validate: bool = False) -> np.ndarray:
        """Feature rows of architectures (the space's encodings, in bulk; ``validate`` for ones not enumerated)."""
        onehot = self.space.encode_many(archs, "onehot", validate=validate).astype(np.float64)
        parts = [onehot]
        if self._pairs is not None:
            left, right = self._pairs
            parts.append(self.interaction_scale * onehot[:, left] * onehot[:, right])
        if self.path:
            parts.append(self.space.encode_many(archs, "path", validate=False).astype(np.float64))
        return np.hstack(parts)

    # ----------------------------------------------------------------- proposals
    def _propose(self):
        ok = [h for h in self._history if h["value"] is not None]
        if len(ok) < self.n_init:
            arch = self._unique(lambda: self.space.sample(self.rng))
            return None if arch is None else (arch, "random", None)
        weights = self._draw(ok)
        everything = self._all()
        if everything is not None:
            archs, ids, _, phi = everything
            score = phi @ weights
            for i in np.argsort(-score):
                if ids[i] not in self._seen:
                    return archs[i], "model", None
            return None
        pool, parent_ids = self._pool(ok)
        if not pool:
            arch = self._random_unseen()
            return None if arch is None else (arch, "random", None)
        pick = int(np.argmax(self._features(pool) @ weights))
        return pool[pick], "model", parent_ids[pick]

    def _all(self):
        """Every architecture with its features, for a space small enough to enumerate; else None."""
        if self._everything is None:
            size = self.space.size()
            if size is None or size > self.enumerate_limit:
                return None
            archs = list(self.space.enumerate())
            ids = [arch_id(a) for a in archs]
            self._everything = (archs, ids, {aid: i for i, aid in enumerate(ids)}, self._encode(archs))
        return self._everything

    def _pool(self, ok: list[dict[str, Any]]) -> tuple[list[dict], list[str | None]]:
        """Unseen mutations of the best architectures, and a few random samples."""
        top = sorted(ok, key=lambda h: self.utility(h["value"]), reverse=True)[: self.parents]
        starts = [(self.space.mutate(p["arch"], self.rng), p["id"]) for p in top for _ in range(self.mutations)]
        starts += [(self.space.sample(self.rng), None) for _ in range(self.mutations)]
        pool: dict[str, tuple[dict, str | None]] = {}
        for arch, parent in starts:
            aid = arch_id(arch)
            if aid not in self._seen and aid not in pool:
                pool[aid] = (arch, parent)
        return [a for a, _ in pool.values()], [p for _, p in pool.values()]

    def _draw(self, ok: list[dict[str, Any]]) -> np.ndarray:
        """One draw of the weights from the posterior (fitted on ``ok`` if it changed since the last draw)."""
        if self._posterior is None or self._posterior[0] != len(ok):
            phi = self._features_of([h["arch"] for h in ok])
            y = np.asarray([self.utility(h["value"]) for h in ok], dtype=np.float64)
            self._posterior = (len(ok), _fit(phi, (y - y.mean()) / max(y.std(), 1e-9)))
        mean, vecs, scale, prior = self._posterior[1]
        draw = mean + vecs @ (scale * self.rng.standard_normal(len(scale)))
        if vecs.shape[1] < len(mean):  # directions no result informs keep the prior's spread
            z = self.rng.standard_normal(len(mean))
            draw += prior * (z - vecs @ (vecs.T @ z))
        return draw

    def _features_of(self, archs: list[dict]) -> np.ndarray:
        everything = self._all()
        if everything is None:
            return self._features(archs)
        _, _, row, phi = everything
        return phi[[row[arch_id(a)] for a in archs]]

    def _extra_state(self):
        return {
            k: getattr(self, k)
            for k in ("n_init", "interactions", "interaction_scale", "path", "enumerate_limit", "parents", "mutations")
        }

    def _load_extra_state(self, state):
        for key, value in state.items():
            setattr(self, key, value)
        self._derived()


def _block_pairs(sizes: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Column pairs (i, j) of a one-hot encoding with blocks of ``sizes``, i and j in different blocks."""
    starts = np.concatenate([[0], np.cumsum(sizes)])
    left, right = [], []
    for a in range(len(sizes)):
        for b in range(a + 1, len(sizes)):
            i, j = np.meshgrid(np.arange(starts[a], starts[a + 1]), np.arange(starts[b], starts[b + 1]), indexing="ij")
            left.append(i.ravel())
            right.append(j.ravel())
    if not left:
        return np.zeros(0, int), np.zeros(0, int)
    return np.concatenate(left), np.concatenate(right)


def _fit(phi: np.ndarray, y: np.ndarray, iterations: int = 50) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Bayesian linear regression with an isotropic Gaussian prior, its precision alpha and the noise precision
    beta maximising the evidence (MacKay 1992).

    Works in the eigenbasis of phi^T phi, found from whichever of phi^T phi (d x d) and phi phi^T (n x n) is
    smaller, so the cost is bounded by the number of results however many features there are. Returns the
    posterior mean, the eigenvectors the data informs (d x r) with the posterior standard deviation along each,
    and the prior standard deviation that holds in every other direction."""
    n, d = phi.shape
    if d <= n:
        lam, vecs = np.linalg.eigh(phi.T @ phi)
    else:
        lam, u = np.linalg.eigh(phi @ phi.T)
        keep = lam > 1e-9 * max(float(lam.max()), 1e-12)
        lam, u = lam[keep], u[:, keep]
        vecs = phi.T @ (u / np.sqrt(lam))  # unit eigenvectors of phi^T phi with the same eigenvalues
    lam = np.maximum(lam, 0.0)
    proj = vecs.T @ (phi.T @ y)  # phi^T y in the eigenbasis
    fitted = phi @ vecs  # n x r
    alpha, beta = 1.0, 1.0 / max(float(np.var(y)) * 0.5, 1e-6)
    for _ in range(iterations):
        m = beta * proj / (beta * lam + alpha)  # posterior mean in the eigenbasis
        gamma = float(np.sum(beta * lam / (beta * lam + alpha)))
        new_alpha = gamma / max(float(m @ m), 1e-12)
        resid = float(np.sum((y - fitted @ m) ** 2))
        new_beta = max(n - gamma, 1e-6) / max(resid, 1e-12)
        converged = abs(new_alpha - alpha) <= 1e-4 * alpha and abs(new_beta - beta) <= 1e-4 * beta
        alpha, beta = new_alpha, new_beta
        if converged:
            break
    m = beta * proj / (beta * lam + alpha)
    return vecs @ m, vecs, 1.0 / np.sqrt(beta * lam + alpha), 1.0 / np.sqrt(alpha)
