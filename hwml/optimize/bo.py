"""Bayesian optimization: a GPy Gaussian-process surrogate, EI and HW-IECI.

The surrogate is a GP with a Matérn-5/2 ARD kernel on unit-cube inputs and standardized
outputs; its hyper-parameters (signal variance, one length-scale per dimension, noise
variance) are fitted by maximum marginal likelihood from a fixed start plus a few random
restarts drawn from the caller's generator, so a fit depends only on the data and the seed.

Acquisitions (minimization throughout):

* expected improvement ``EI(x) = E[max(y+ - f(x), 0)]``, closed form under the GP;
* HW-IECI (HyperPower): ``EI(x) * 1[P(z) <= PB] * 1[M(z) <= MB]`` with the power and memory
  models' predictions of the structural hyper-parameters ``z``; a point any model rejects
  is never proposed;
* its probabilistic variant: the indicators replaced by ``P(constraint holds)`` under the
  models' Gaussian predictive distributions.

The acquisition is maximized over a large candidate set: uniform random points (only
feasible ones for HW-IECI) plus local perturbations of the best points so far, or the
not-yet-evaluated rows of a finite pool.
"""

from __future__ import annotations

import logging
import warnings
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

from hwml.optimize.candidates import (
    FeasibilityFn,
    Observations,
    local_candidates,
    random_candidates,
)
from hwml.optimize.space import Space

__all__ = [
    "BOSettings",
    "GPSurrogate",
    "Proposal",
    "expected_improvement",
    "hw_ieci",
    "hw_ieci_prob",
    "propose_bo",
]

logger = logging.getLogger(__name__)

BO_KINDS = ("ei", "hw-ieci", "hw-ieci-prob")


def _blas_threads(n: int | None) -> AbstractContextManager[object]:
    """Limit BLAS threads for a block (no-op if ``n`` is None or threadpoolctl is absent)."""
    if n is None:
        return nullcontext()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        return nullcontext()
    return threadpool_limits(limits=n, user_api="blas")


def expected_improvement(
    mean: np.ndarray, std: np.ndarray, best: float, xi: float = 0.0
) -> np.ndarray:
    """Expected improvement below ``best`` of a Gaussian prediction (minimization).

    ``EI = (best - xi - mean) * Phi(u) + std * phi(u)`` with
    ``u = (best - xi - mean) / std``; where ``std == 0`` it is ``max(best - xi - mean, 0)``.

    Args:
        mean: predictive means, shape ``(n,)``.
        std: predictive standard deviations, shape ``(n,)``, same unit as ``mean``.
        best: incumbent value ``y+`` (the best observed objective).
        xi: optional margin that favours exploration (same unit as ``mean``).

    Returns:
        Non-negative array of shape ``(n,)`` in the unit of the objective.
    """
    mean = np.asarray(mean, dtype=float)
    std = np.asarray(std, dtype=float)
    gain = best - xi - mean
    safe = np.where(std > 0, std, 1.0)
    u = gain / safe
    ei = gain * norm.cdf(u) + safe * norm.pdf(u)
    ei = np.where(std > 0, ei, np.maximum(gain, 0.0))
    return np.maximum(ei, 0.0)


def hw_ieci(ei: np.ndarray, feasible: np.ndarray) -> np.ndarray:
    """HW-IECI: expected improvement times the product of constraint indicators.

    Args:
        ei: expected improvement, shape ``(n,)``.
        feasible: shape ``(n,)``, True where every model's prediction meets its budget.

    Returns:
        Shape ``(n,)``; zero wherever a constraint model predicts a violation.
    """
    return np.where(np.asarray(feasible, dtype=bool), ei, 0.0)


def hw_ieci_prob(ei: np.ndarray, prob_feasible: np.ndarray) -> np.ndarray:
    """Probabilistic HW-IECI: expected improvement times the probability of feasibility.

    Args:
        ei: expected improvement, shape ``(n,)``.
        prob_feasible: shape ``(n,)``, product over constraints of ``P(value <= budget)``.

    Returns:
        Shape ``(n,)``.
    """
    return ei * np.asarray(prob_feasible, dtype=float)


class GPSurrogate:
    """Gaussian-process regression with a Matérn-5/2 ARD kernel (GPy).

    Args:
        n_restarts: number of likelihood optimizations (the fixed start counts as one).
        max_iters: L-BFGS-B iterations per optimization.
        lengthscale_bounds: bounds of each length-scale, in unit-cube coordinates.
        variance_bounds: bounds of the signal variance, in standardized output units.
        noise_bounds: bounds of the noise variance, in standardized output units.
        blas_threads: BLAS threads during fit and predict. The GP's matrices are small,
            so one thread is fastest, and several threads on a busy CPU can be many times
            slower; ``None`` leaves the process setting alone.
    """

    def __init__(
        self,
        n_restarts: int = 3,
        max_iters: int = 200,
        lengthscale_bounds: tuple[float, float] = (1e-2, 1e1),
        variance_bounds: tuple[float, float] = (1e-2, 1e2),
        noise_bounds: tuple[float, float] = (1e-6, 1.0),
        blas_threads: int | None = 1,
    ) -> None:
        if n_restarts < 1:
            raise ValueError(f"n_restarts must be >= 1, got {n_restarts}")
        self.n_restarts = int(n_restarts)
        self.max_iters = int(max_iters)
        self.lengthscale_bounds = lengthscale_bounds
        self.variance_bounds = variance_bounds
        self.noise_bounds = noise_bounds
        self.blas_threads = blas_threads
        self._model = None
        self._y_mean = 0.0
        self._y_std = 1.0

    def fit(
        self, points: np.ndarray, values: np.ndarray, seed: int | np.random.Generator
    ) -> GPSurrogate:
        """Fit the GP and its hyper-parameters.

        Args:
            points: unit-cube inputs, shape ``(n, d)``.
            values: finite outputs, shape ``(n,)``.
            seed: int seed or generator for the random restarts.

        Returns:
            ``self``.
        """
        with _blas_threads(self.blas_threads):
            return self._fit(points, values, seed)

    def _fit(
        self, points: np.ndarray, values: np.ndarray, seed: int | np.random.Generator
    ) -> GPSurrogate:
        import GPy  # deferred: importing GPy costs about a second

        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        x = np.asarray(points, dtype=float)
        y = np.asarray(values, dtype=float).reshape(-1)
        if x.ndim != 2 or len(x) != len(y) or len(y) == 0:
            raise ValueError(f"points {x.shape} and values {y.shape} do not match")
        if not np.all(np.isfinite(y)):
            raise ValueError("values must be finite")
        self._y_mean = float(y.mean())
        spread = float(y.std())
        self._y_std = spread if spread > 1e-12 else 1.0
        ys = ((y - self._y_mean) / self._y_std)[:, None]
        d = x.shape[1]
        kernel = GPy.kern.Matern52(input_dim=d, ARD=True)
        model = GPy.models.GPRegression(x, ys, kernel)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.kern.lengthscale.constrain_bounded(*self.lengthscale_bounds, warning=False)
            model.kern.variance.constrain_bounded(*self.variance_bounds, warning=False)
            model.Gaussian_noise.variance.constrain_bounded(*self.noise_bounds, warning=False)
        lo_l, hi_l = self.lengthscale_bounds
        starts = [(np.full(d, min(max(0.3, lo_l), hi_l)), 1.0, 1e-3)]
        for _ in range(self.n_restarts - 1):
            starts.append(
                (
                    np.exp(rng.uniform(np.log(0.05), np.log(2.0), size=d)).clip(lo_l, hi_l),
                    float(np.exp(rng.uniform(np.log(0.3), np.log(3.0)))),
                    float(np.exp(rng.uniform(np.log(1e-5), np.log(1e-1)))),
                )
            )
        best_params, best_ll = None, -np.inf
        for lengthscale, variance, noise in starts:
            model.kern.lengthscale[:] = lengthscale
            model.kern.variance[:] = variance
            model.Gaussian_noise.variance[:] = max(noise, self.noise_bounds[0] * 1.01)
            try:
                with warnings.catch_warnings(), np.errstate(all="ignore"):
                    warnings.simplefilter("ignore")
                    model.optimize(optimizer="lbfgsb", max_iters=self.max_iters, messages=False)
                ll = float(model.log_likelihood())
            except (np.linalg.LinAlgError, ValueError, FloatingPointError) as err:
                logger.debug("GP restart failed: %s", err)
                continue
            if np.isfinite(ll) and ll > best_ll:
                best_ll, best_params = ll, model.param_array.copy()
        if best_params is None:
            raise np.linalg.LinAlgError("every GP hyper-parameter optimization failed")
        model[:] = best_params
        self._model = model
        self.log_likelihood = best_ll
        return self

    @property
    def hyperparameters(self) -> dict[str, np.ndarray | float]:
        """Fitted hyper-parameters: ``variance``, ``lengthscale`` (``(d,)``), ``noise``.

        Variances are in standardized output units, length-scales in unit-cube units.
        """
        if self._model is None:
            raise RuntimeError("fit the surrogate first")
        m = self._model
        return {
            "variance": m.kern.variance.values.item(),
            "lengthscale": m.kern.lengthscale.values.copy(),
            "noise": m.Gaussian_noise.variance.values.item(),
        }

    def predict(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and standard deviation of the latent function.

        Args:
            points: unit-cube inputs, shape ``(m, d)``.

        Returns:
            ``(mean, std)``, each of shape ``(m,)``, in the unit of the fitted values.
        """
        if self._model is None:
            raise RuntimeError("fit the surrogate first")
        with _blas_threads(self.blas_threads):
            mean, var = self._model.predict_noiseless(np.asarray(points, dtype=float))
        std = np.sqrt(np.maximum(var[:, 0], 1e-18))
        return mean[:, 0] * self._y_std + self._y_mean, std * self._y_std


@dataclass(frozen=True)
class BOSettings:
    """Knobs of the model-based proposers.

    Attributes:
        n_restarts: GP likelihood optimizations per iteration (fixed start + random).
        max_iters: L-BFGS-B iterations per optimization.
        n_random: uniform random candidates per iteration.
        n_centers: best points around which local candidates are drawn.
        n_local: local candidates per centre.
        local_scales: perturbation sizes of the local candidates, unit-cube units.
        xi: EI exploration margin, in the objective's unit (in its logarithm with
            ``log_objective``).
        log_objective: model the logarithm of the objective (when every successful value
            is positive), for objectives such as an error rate whose interesting values
            are small beside a long tail of bad ones; EI is then computed in log units.
    """

    n_restarts: int = 3
    max_iters: int = 200
    n_random: int = 2000
    n_centers: int = 5
    n_local: int = 200
    local_scales: tuple[float, ...] = (0.02, 0.1)
    xi: float = 0.0
    log_objective: bool = False


@dataclass(frozen=True)
class Proposal:
    """The point a proposer chose.

    Attributes:
        point: unit-cube coordinates, shape ``(d,)``.
        acquisition: the acquisition value there (NaN for non-model-based choices).
        n_candidates: how many candidates were scored.
    """

    point: np.ndarray
    acquisition: float = float("nan")
    n_candidates: int = 0


def _impute(obs: Observations) -> np.ndarray:
    """Failed evaluations get the worst successful value, so the GP steers away from them."""
    y = obs.values.copy()
    ok = obs.ok
    y[~ok] = np.max(y[ok])
    return y


def propose_bo(
    space: Space,
    obs: Observations,
    rng: np.random.Generator,
    kind: str = "hw-ieci",
    feasibility: FeasibilityFn | None = None,
    pool: np.ndarray | None = None,
    settings: BOSettings | None = None,
) -> Proposal | None:
    """Choose the next point by maximizing an acquisition over a candidate set.

    Args:
        space: the search space.
        obs: observations so far; at least one must have succeeded.
        rng: random generator (GP restarts, candidates, tie-breaks).
        kind: ``"ei"`` (hardware-unaware), ``"hw-ieci"`` (indicators) or
            ``"hw-ieci-prob"`` (probabilities of feasibility).
        feasibility: constraint models; required for the HW-IECI kinds.
        pool: optional finite set of allowed points, shape ``(m, d)``.
        settings: proposer knobs.

    Returns:
        The proposal, or ``None`` when no unevaluated (feasible) candidate exists.
    """
    if kind not in BO_KINDS:
        raise ValueError(f"kind must be one of {BO_KINDS}, got {kind!r}")
    settings = settings or BOSettings()
    aware = kind != "ei" and feasibility is not None
    ok = obs.ok
    if not ok.any():
        raise ValueError("propose_bo needs at least one successful observation")
    log = settings.log_objective and bool(np.all(obs.values[ok] > 0))
    y = _impute(obs)
    gp = GPSurrogate(n_restarts=settings.n_restarts, max_iters=settings.max_iters)
    gp.fit(obs.points, np.log(y) if log else y, rng)

    good = ok & obs.feasible if aware and (ok & obs.feasible).any() else ok
    best = float(np.min(obs.values[good]))
    best = float(np.log(best)) if log else best
    order = np.flatnonzero(good)[np.argsort(obs.values[good], kind="stable")]
    centers = obs.points[order[: settings.n_centers]]

    filter_random = feasibility if kind == "hw-ieci" else None
    cands = [
        random_candidates(space, obs, rng, settings.n_random, filter_random, pool),
        local_candidates(space, obs, rng, centers, settings.n_local, settings.local_scales, pool),
    ]
    points = np.concatenate(cands, axis=0)
    if pool is None and len(points):
        _, first = np.unique(np.round(points, 12), axis=0, return_index=True)
        points = points[np.sort(first)]
    if len(points) == 0:
        return None

    mean, std = gp.predict(points)
    acq = expected_improvement(mean, std, best, settings.xi)
    if aware:
        pred = feasibility(points)
        if kind == "hw-ieci":
            acq = hw_ieci(acq, pred.feasible)
            acq[~pred.feasible] = -np.inf
        else:
            acq = hw_ieci_prob(acq, pred.prob_feasible)
    top = np.max(acq)
    if not np.isfinite(top):
        return None
    ties = np.flatnonzero(acq == top)
    pick = int(ties[0] if len(ties) == 1 else rng.choice(ties))
    return Proposal(points[pick], float(acq[pick]), len(points))
