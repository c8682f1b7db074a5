"""Learning-curve extrapolation with early termination, after Domhan, Springenberg and Hutter (2015).

While a candidate trains, its partial validation-accuracy curve is extrapolated to the last epoch by a small
ensemble of parametric curve families, each fitted by bounded least squares:

- ``pow3``:     y = c - a * t^(-alpha)
- ``exp3``:     y = c - a * exp(-b * t)
- ``logpower``: y = c / (1 + (t / e^b)^(-a))
- ``ilog2``:    y = c - a / log(t + 1)

The prediction is the mean of the families' values at the last epoch. It is calibrated on the search's own
completed curves: each is cut at the same epoch and extrapolated the same way, a line maps those predictions
to the finals they became (a few epochs extrapolate with a bias that a line corrects; Baker et al. 2018
regress finals on partial curves in the same spirit), and its residuals give the spread, taken as Gaussian.
Until ``min_calibration`` completed curves exist, nothing is stopped. Training stops once the probability that the final
accuracy beats the ``k``-th best completed result falls below ``threshold`` times the same probability for a
candidate nothing is known about. Domhan et al. compare with a fixed probability instead; but once many results
are in, any new candidate's chance to reach the top k is small, and a fixed bar then stops nearly every
candidate on the strength of a few uninformative epochs, the future winners with them. Relative to the prior,
a curve is stopped only when it is evidence against the candidate. The result then reports the
predicted final accuracy as its ``val_acc`` (the observed last value is kept as ``val_acc_observed``), and
the epochs it saved.

Domhan et al. weight the families by MCMC; the calibrated-error model here is cheaper (a few milliseconds a
check) and needs no sampler, and on short curves (a few epochs) it is the calibration that matters.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kubenas.arch import Arch
from kubenas.core import Result, is_int


def _pow3(t, c, a, alpha):
    return c - a * t ** (-alpha)


def _exp3(t, c, a, b):
    return c - a * np.exp(-b * t)


def _logpower(t, c, a, b):
    return c / (1.0 + (t / np.exp(b)) ** (-a))


def _ilog2(t, c, a):
    return c - a / np.log(t + 1.0)


# name: (function, initial parameters, lower bounds, upper bounds)
FAMILIES: dict[str, tuple[Callable[..., np.ndarray], tuple, tuple, tuple]] = {
    "pow3": (_pow3, (0.9, 0.5, 1.0), (0.0, 0.0, 0.01), (1.0, 5.0, 5.0)),
    "exp3": (_exp3, (0.9, 0.5, 0.5), (0.0, 0.0, 0.01), (1.0, 5.0, 5.0)),
    "logpower": (_logpower, (0.9, 1.0, 0.0), (0.0, 0.01, -5.0), (1.0, 10.0, 5.0)),
    "ilog2": (_ilog2, (0.9, 0.3), (0.0, 0.0), (1.0, 5.0)),
}
# Weight of a weak pull of each parameter towards its initial value, relative to one point's residual: it keeps
# a fit with as many parameters as points well posed without bending fits to longer curves.
_PRIOR = 1e-3


def extrapolate(curve: Sequence[float], total: int, families: Sequence[str] = tuple(FAMILIES)) -> dict[str, float]:
    """The families' mean prediction of ``curve`` at epoch ``total`` (clipped to [0, 1]) and their spread."""
    from scipy.optimize import least_squares

    y = np.asarray(curve, dtype=float)
    t = np.arange(1, len(y) + 1, dtype=float)
    preds = []
    for name in families:
        fn, p0, lo, hi = FAMILIES[name]
        if len(p0) > len(y):
            continue  # more parameters than points: the fit would say nothing
        p0 = np.asarray(p0, dtype=float)
        p0[0] = min(max(float(y.max()), lo[0]), hi[0])  # the asymptote starts at the best value seen

        def residuals(theta, fn=fn, p0=p0):
            return np.concatenate([fn(t, *theta) - y, _PRIOR * (theta - p0)])

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            try:
                fit = least_squares(residuals, p0, bounds=(lo, hi), max_nfev=200)
            except ValueError:  # a non-finite residual at the start
                continue
            value = float(fn(float(total), *fit.x))
        if math.isfinite(value):
            preds.append(min(1.0, max(0.0, value)))
    if not preds:  # too few points, or nothing fitted: the last value is the best guess
        return {"mean": float(y[-1]), "spread": 0.0}
    return {"mean": float(np.mean(preds)), "spread": float(np.std(preds))}


@dataclass
class EarlyTermination:
    """The stopping rule, fed with the search's completed curves.

    Args:
        k: a candidate is stopped when it is unlikely to beat the k-th best completed result.
        threshold: stop when P(final > k-th best | curve so far) falls below this share of the same probability
            for a candidate nothing is known about (the share of completed results that reach the k-th best).
        min_epochs: never stop before this many epochs.
        min_calibration: completed curves needed to calibrate the prediction's error; no candidate is stopped
            before.
        calibration_window: the most recent completed curves used for calibration.
    """

    k: int = 5
    threshold: float = 0.1
    min_epochs: int = 2
    min_calibration: int = 10
    calibration_window: int = 50
    _curves: list[list[float]] = field(default_factory=list, repr=False)
    _cache: dict[tuple[int, int], float] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for label, value, low in (
            ("k", self.k, 1),
            ("min_epochs", self.min_epochs, 1),
            ("min_calibration", self.min_calibration, 2),
            ("calibration_window", self.calibration_window, 2),
        ):
            if not is_int(value) or value < low:
                raise ValueError(f"early termination: {label} must be an integer >= {low}, got {value!r}")
        if not 0 < self.threshold < 1:
            raise ValueError(f"early termination: threshold must be in (0, 1), got {self.threshold!r}")

    def add(self, curve: Sequence[float]) -> None:
        """A completed curve (trained to the last epoch) of the same search."""
        self._curves.append([float(v) for v in curve])

    def kth_best(self, total: int) -> float | None:
        finals = sorted((c[-1] for c in self._curves if len(c) == total), reverse=True)
        return finals[self.k - 1] if len(finals) >= self.k else None

    def _pairs(self, cut: int, total: int) -> tuple[np.ndarray, np.ndarray]:
        """(predicted, final) for the recent completed curves cut at ``cut`` epochs."""
        full = [(i, c) for i, c in enumerate(self._curves) if len(c) == total][-self.calibration_window :]
        for i, c in full:
            if (i, cut) not in self._cache:
                self._cache[(i, cut)] = extrapolate(c[:cut], total)["mean"]
        return np.array([self._cache[(i, cut)] for i, _ in full]), np.array([c[-1] for _, c in full])

    def check(self, curve: Sequence[float], total: int) -> dict[str, Any] | None:
        """The prediction for a partial curve and whether to stop; None while the rule cannot judge yet (too
        few epochs, fewer than ``k`` or ``min_calibration`` completed results, or the curve is complete)."""
        cut = len(curve)
        if cut < self.min_epochs or cut >= total:
            return None
        kth = self.kth_best(total)
        if kth is None:
            return None
        preds, finals = self._pairs(cut, total)
        if len(preds) < self.min_calibration:
            return None
        # affine calibration: final ~ a + b * predicted on the completed curves, and the residuals' spread
        if np.ptp(preds) > 1e-9:
            b, a = np.polyfit(preds, finals, 1)
        else:
            b, a = 0.0, float(np.mean(finals))
        residuals = finals - (a + b * preds)
        sigma = max(float(np.sqrt(np.sum(residuals**2) / max(1, len(preds) - 2))), 0.005)
        mean = float(a + b * extrapolate(curve, total)["mean"])
        prior = float(np.mean(finals >= kth))  # the chance of a candidate about which nothing is known yet
        p_beat = 0.5 * math.erfc((kth - mean) / (sigma * math.sqrt(2)))
        return {
            "predicted": min(1.0, max(0.0, mean)),
            "p_beat": p_beat,
            "kth_best": kth,
            "sigma": sigma,
            "prior": prior,
            "stop": p_beat < self.threshold * prior,
        }


class EarlyTerminationEstimator:
    """Wraps an estimator that reports per-epoch validation curves (:class:`TrainingEstimator`,
    :class:`TabularEstimator`) and stops its candidates early by :class:`EarlyTermination`.

    Every completed result feeds the rule; ``add_history`` feeds it completed results from elsewhere (the
    pipeline's committed rounds). Results carry ``lc_predicted_val_acc`` (the last prediction made, when
    any), ``epochs_trained`` and ``lc_epochs_saved``; a stopped one reports the prediction as ``val_acc``.
    """

    def __init__(self, inner, rule: EarlyTermination | None = None):
        self.inner = inner
        self.rule = rule or EarlyTermination()
        self.inherits = getattr(inner, "inherits", False)

    @classmethod
    def from_config(cls, section: dict[str, Any], inner: Any = None, store: Any = None) -> EarlyTerminationEstimator:
        return cls(inner, EarlyTermination(**section["early_stop"]))

    def add_history(self, curves: Sequence[Sequence[float]]) -> None:
        for curve in curves:
            self.rule.add(curve)

    def evaluate(
        self, arch: Arch, space, dataset, fidelity, seed: int = 0, candidate_id: str = "", **context: Any
    ) -> Result:
        total = fidelity.epochs
        last: dict[str, Any] = {}

        def on_epoch(curve: list[float]) -> bool:
            info = self.rule.check(curve, total)
            if info is not None:
                last.update(info, epoch=len(curve))
            return bool(info and info["stop"])

        res = self.inner.evaluate(
            arch, space, dataset, fidelity, seed=seed, candidate_id=candidate_id, on_epoch=on_epoch, **context
        )
        if not res.ok:
            return res
        curve = res.metrics["val_acc_curve"]
        metrics = {**res.metrics, "epochs_trained": len(curve), "lc_epochs_saved": total - len(curve)}
        if last:
            metrics["lc_predicted_val_acc"] = last["predicted"]
            metrics["lc_p_beat"] = last["p_beat"]
        if len(curve) < total:
            metrics["val_acc_observed"] = curve[-1]
            metrics["val_acc"] = last["predicted"]
            metrics["lc_stopped_at"] = len(curve)
        else:
            self.rule.add(curve)
        return Result(res.candidate_id, "ok", metrics, res.cost, res.error)
