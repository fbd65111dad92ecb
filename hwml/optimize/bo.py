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
import math
import warnings
from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.stats import norm

from hwml.optimize.candidates import (
    FeasibilityFn,
    Observations,
    local_candidates,
    random_candidates,
)
from hwml.optimize.feasible import FeasibleRegion
from hwml.optimize.space import Space

__all__ = [
    "BO_KINDS",
    "BOSettings",
    "GPSurrogate",
    "GPWarmStart",
    "Proposal",
    "expected_improvement",
    "fit_surrogate",
    "hw_ieci",
    "hw_ieci_prob",
    "propose_bo",
    "surrogate_values",
]

logger = logging.getLogger(__name__)

BO_KINDS = ("ei", "hw-ieci", "hw-ieci-prob")
"""The acquisitions :func:`propose_bo` maximizes: EI (:func:`expected_improvement`),
HW-IECI (EI times :func:`hw_ieci`'s indicators) and its probabilistic variant (EI times
:func:`hw_ieci_prob`'s probabilities of feasibility)."""


_CONTROLLER: Any = None


def _blas_threads(n: int | None) -> AbstractContextManager[object]:
    """Limit BLAS threads for a block (no-op if ``n`` is None or threadpoolctl is absent).

    One :class:`threadpoolctl.ThreadpoolController` is kept for the process: building
    one scans the loaded libraries, which costs milliseconds per call on a busy CPU
    (numpy's and scipy's BLAS are loaded when this module is imported).
    """
    global _CONTROLLER
    if n is None:
        return nullcontext()
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        return nullcontext()
    if _CONTROLLER is None:
        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER.limit(limits=n, user_api="blas")


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
        max_iters: L-BFGS-B iterations per optimization; 0 keeps the starting
            hyper-parameters (useful with ``warm_start`` in :meth:`fit`).
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
        if max_iters < 0:
            raise ValueError(f"max_iters must be >= 0, got {max_iters}")
        self.n_restarts = int(n_restarts)
        self.max_iters = int(max_iters)
        self.lengthscale_bounds = lengthscale_bounds
        self.variance_bounds = variance_bounds
        self.noise_bounds = noise_bounds
        self.blas_threads = blas_threads
        self._model = None
        self._y_mean = 0.0
        self._y_std = 1.0
        self.log_likelihood = float("nan")
        self.n_optimizations = 0

    def fit(
        self,
        points: np.ndarray,
        values: np.ndarray,
        seed: int | np.random.Generator,
        warm_start: Mapping[str, Any] | None = None,
    ) -> GPSurrogate:
        """Fit the GP and its hyper-parameters.

        Args:
            points: unit-cube inputs, shape ``(n, d)``.
            values: finite outputs, shape ``(n,)``.
            seed: int seed or generator for the random restarts.
            warm_start: hyper-parameters to start from (a mapping like
                :attr:`hyperparameters`: ``variance``, ``lengthscale`` of shape ``(d,)``,
                ``noise``); the fit is then one optimization from there, without the
                fixed start and the random restarts, and draws nothing from ``seed``.

        Returns:
            ``self``; :attr:`log_likelihood` holds the fitted log marginal likelihood
            (of the standardized values) and :attr:`n_optimizations` the number of
            likelihood optimizations run.
        """
        with _blas_threads(self.blas_threads):
            return self._fit(points, values, seed, warm_start)

    def _starts(
        self, d: int, rng: np.random.Generator | None, warm_start: Mapping[str, Any] | None
    ) -> list[tuple[np.ndarray, float, float]]:
        """Starting hyper-parameters ``(lengthscale (d,), variance, noise)`` of the
        optimizations: ``warm_start`` alone, or the fixed start and ``n_restarts - 1``
        random ones drawn from ``rng``."""
        lo_l, hi_l = self.lengthscale_bounds
        if warm_start is not None:
            lengthscale = np.asarray(warm_start["lengthscale"], dtype=float).reshape(-1)
            if lengthscale.shape != (d,):
                raise ValueError(
                    f"warm_start lengthscale has shape {lengthscale.shape}, expected ({d},)"
                )
            return [
                (
                    lengthscale.clip(lo_l, hi_l),
                    float(np.clip(warm_start["variance"], *self.variance_bounds)),
                    float(np.clip(warm_start["noise"], *self.noise_bounds)),
                )
            ]
        if rng is None:
            raise ValueError("a fit without warm_start needs a generator for its restarts")
        starts = [(np.full(d, min(max(0.3, lo_l), hi_l)), 1.0, 1e-3)]
        for _ in range(self.n_restarts - 1):
            starts.append(
                (
                    np.exp(rng.uniform(np.log(0.05), np.log(2.0), size=d)).clip(lo_l, hi_l),
                    float(np.exp(rng.uniform(np.log(0.3), np.log(3.0)))),
                    float(np.exp(rng.uniform(np.log(1e-5), np.log(1e-1)))),
                )
            )
        return starts

    def _fit(
        self,
        points: np.ndarray,
        values: np.ndarray,
        seed: int | np.random.Generator,
        warm_start: Mapping[str, Any] | None = None,
    ) -> GPSurrogate:
        import GPy  # deferred: importing GPy costs about a second

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
        rng = None
        if warm_start is None:
            rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        starts = self._starts(d, rng, warm_start)
        best_params, best_ll = None, -np.inf
        for lengthscale, variance, noise in starts:
            model.kern.lengthscale[:] = lengthscale
            model.kern.variance[:] = variance
            model.Gaussian_noise.variance[:] = max(noise, self.noise_bounds[0] * 1.01)
            try:
                with warnings.catch_warnings(), np.errstate(all="ignore"):
                    warnings.simplefilter("ignore")
                    if self.max_iters > 0:
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
        self.n_optimizations = len(starts)
        return self

    def fantasize(self, points: np.ndarray, values: np.ndarray) -> GPSurrogate:
        """This GP conditioned on extra observations, its hyper-parameters unchanged.

        The *kriging believer* of a batch search: points still being evaluated are added
        with values believed for them (their posterior mean), which leaves the mean
        where it was and shrinks the uncertainty around them, so the next proposal of
        the batch goes elsewhere.

        Args:
            points: unit-cube inputs, shape ``(m, d)``.
            values: their believed values, shape ``(m,)``, in the unit of the fitted
                values.

        Returns:
            A new surrogate; this one is unchanged.
        """
        import GPy

        if self._model is None:
            raise RuntimeError("fit the surrogate first")
        m = self._model
        x = np.vstack([m.X, np.asarray(points, dtype=float)])
        ys = np.vstack(
            [m.Y, ((np.asarray(values, dtype=float) - self._y_mean) / self._y_std)[:, None]]
        )
        out = GPSurrogate(
            self.n_restarts,
            self.max_iters,
            self.lengthscale_bounds,
            self.variance_bounds,
            self.noise_bounds,
            self.blas_threads,
        )
        with _blas_threads(self.blas_threads), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out._model = GPy.models.GPRegression(
                x, ys, m.kern.copy(), noise_var=float(m.Gaussian_noise.variance.values.item())
            )
        out._y_mean, out._y_std = self._y_mean, self._y_std
        out.log_likelihood = self.log_likelihood
        out.n_optimizations = 0
        return out

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
        n_restarts: GP likelihood optimizations of a full fit (fixed start + random).
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
        refit_every: within one search (:func:`~hwml.optimize.search.minimize`), a full
            GP fit with ``n_restarts`` optimizations happens on the first proposal and
            then every ``refit_every`` proposals; the proposals between start one
            optimization from the previous fit's hyper-parameters (:class:`GPWarmStart`).
            1 fits fully every time.
        refit_ll_drop: a warm-started fit whose log marginal likelihood per observation
            is more than this below the previous fit's (nats per observation, of the
            standardized values) is replaced by a full fit.
        warm_max_iters: L-BFGS-B iterations of a warm-started fit; 0 keeps the previous
            hyper-parameters and only conditions the GP on the new data.
    """

    n_restarts: int = 3
    max_iters: int = 200
    n_random: int = 2000
    n_centers: int = 5
    n_local: int = 200
    local_scales: tuple[float, ...] = (0.02, 0.1)
    xi: float = 0.0
    log_objective: bool = False
    refit_every: int = 10
    refit_ll_drop: float = 0.1
    warm_max_iters: int = 10

    def __post_init__(self) -> None:
        if isinstance(self.refit_every, bool) or not isinstance(self.refit_every, int):
            raise TypeError(f"refit_every must be an int, got {self.refit_every!r}")
        if self.refit_every < 1:
            raise ValueError(f"refit_every must be >= 1, got {self.refit_every}")
        if not self.refit_ll_drop >= 0:
            raise ValueError(f"refit_ll_drop must be >= 0, got {self.refit_ll_drop}")
        if self.warm_max_iters < 0:
            raise ValueError(f"warm_max_iters must be >= 0, got {self.warm_max_iters}")


@dataclass
class GPWarmStart:
    """The GP hyper-parameters one search carries from a proposal to the next.

    :func:`~hwml.optimize.search.minimize` keeps one per search and hands it to every
    :func:`propose_bo` call; :func:`fit_surrogate` reads and updates it. A fit is *full*
    (the fixed start plus random restarts, ``settings.n_restarts`` optimizations) on the
    first proposal, every ``settings.refit_every`` proposals after it, when the modelled
    values change between the objective and its logarithm, and when a warm fit's log
    marginal likelihood per observation falls more than ``settings.refit_ll_drop`` below
    the previous fit's; every other fit is one optimization from the previous fit's
    hyper-parameters (:meth:`GPSurrogate.fit` with ``warm_start``).

    Attributes:
        hyperparameters: the last fit's (:attr:`GPSurrogate.hyperparameters`); None
            before the first fit.
        log_objective: whether the last fit modelled the logarithm of the objective.
        ll_per_obs: the last fit's log marginal likelihood per observation (nats).
        since_full: fits since the last full fit.
        n_full: full fits so far (those forced by a likelihood drop included).
        n_warm: warm fits kept so far.
        n_refit: warm fits replaced by a full fit (the likelihood dropped, or the warm
            optimization failed).
        fits: the kind of every fit so far, in order: ``"full"``, ``"warm"`` or
            ``"refit"`` (a full fit that replaced a warm one).
    """

    hyperparameters: dict[str, Any] | None = None
    log_objective: bool = False
    ll_per_obs: float = math.nan
    since_full: int = 0
    n_full: int = 0
    n_warm: int = 0
    n_refit: int = 0
    fits: list[str] = field(default_factory=list)

    def needs_full_fit(self, settings: BOSettings, log_objective: bool, d: int) -> bool:
        """Whether the next fit must be full (before trying a warm one).

        Args:
            settings: the proposer settings (``refit_every``).
            log_objective: whether the next fit models the logarithm of the objective.
            d: the number of input dimensions of the next fit.
        """
        hp = self.hyperparameters
        return (
            hp is None
            or self.since_full + 1 >= settings.refit_every
            or log_objective != self.log_objective
            or np.shape(hp["lengthscale"]) != (d,)
        )

    def record(self, gp: GPSurrogate, n_obs: int, log_objective: bool, kind: str) -> None:
        """Keep a fit's hyper-parameters; ``kind`` is ``"full"``, ``"warm"`` or ``"refit"``."""
        self.hyperparameters = gp.hyperparameters
        self.log_objective = log_objective
        self.ll_per_obs = gp.log_likelihood / n_obs
        self.since_full = self.since_full + 1 if kind == "warm" else 0
        self.n_full += kind != "warm"
        self.n_warm += kind == "warm"
        self.n_refit += kind == "refit"
        self.fits.append(kind)


def fit_surrogate(
    points: np.ndarray,
    values: np.ndarray,
    rng: np.random.Generator,
    settings: BOSettings | None = None,
    warm: GPWarmStart | None = None,
    log_objective: bool = False,
) -> GPSurrogate:
    """Fit the GP of one proposal, warm-started from the previous one when ``warm`` says so.

    Without ``warm`` every fit is full (``settings.n_restarts`` optimizations). With it,
    the rules of :class:`GPWarmStart` decide; a full fit draws its random restarts from
    ``rng``, a warm one draws nothing.

    Args:
        points: unit-cube inputs, shape ``(n, d)``.
        values: the modelled values (already logged if ``log_objective``), shape ``(n,)``.
        rng: generator of the restarts.
        settings: proposer settings (``n_restarts``, ``max_iters``, ``refit_every``,
            ``refit_ll_drop``).
        warm: the search's warm-start state, updated here.
        log_objective: whether ``values`` are the logarithm of the objective.

    Returns:
        The fitted surrogate.
    """
    settings = settings or BOSettings()

    def make() -> GPSurrogate:
        return GPSurrogate(n_restarts=settings.n_restarts, max_iters=settings.max_iters)

    if warm is None:
        return make().fit(points, values, rng)
    n, d = np.shape(points)
    if not warm.needs_full_fit(settings, log_objective, d):
        previous = warm.ll_per_obs
        try:
            gp = GPSurrogate(n_restarts=1, max_iters=settings.warm_max_iters)
            gp.fit(points, values, rng, warm_start=warm.hyperparameters)
        except np.linalg.LinAlgError as err:
            logger.debug("warm-started GP fit failed (%s); fitting fully", err)
        else:
            if gp.log_likelihood / n >= previous - settings.refit_ll_drop:
                warm.record(gp, n, log_objective, "warm")
                return gp
        gp = make().fit(points, values, rng)
        warm.record(gp, n, log_objective, "refit")
        return gp
    gp = make().fit(points, values, rng)
    warm.record(gp, n, log_objective, "full")
    return gp


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


def surrogate_values(obs: Observations, settings: BOSettings) -> tuple[np.ndarray, bool]:
    """The values the GP of a proposal models, and whether they are logarithms.

    Failed evaluations get the worst successful value; with ``settings.log_objective``
    and every successful value positive, the logarithm is modelled.

    Args:
        obs: observations; at least one must have succeeded.
        settings: proposer settings.

    Returns:
        ``(values, log)``: shape ``(n,)`` and whether they are ``log(objective)``.
    """
    ok = obs.ok
    log = settings.log_objective and bool(np.all(obs.values[ok] > 0))
    y = _impute(obs)
    return (np.log(y) if log else y), log


def propose_bo(
    space: Space,
    obs: Observations,
    rng: np.random.Generator,
    kind: str = "hw-ieci",
    feasibility: FeasibilityFn | None = None,
    pool: np.ndarray | None = None,
    settings: BOSettings | None = None,
    *,
    warm: GPWarmStart | None = None,
    region: FeasibleRegion | None = None,
    pending: np.ndarray | None = None,
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
        warm: the search's GP warm-start state (:class:`GPWarmStart`); None fits the GP
            fully.
        region: feasible configurations found before the search
            (:func:`~hwml.optimize.feasible.find_feasible`); with ``"hw-ieci"`` they top up
            the random candidates when rejection sampling finds too few.
        pending: points being evaluated (a batch search), shape ``(m, d)``: never
            proposed again, and believed at the GP's posterior mean (kriging believer,
            :meth:`GPSurrogate.fantasize`) so that the acquisition falls around them;
            None or empty for a sequential search.

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
    y, log = surrogate_values(obs, settings)
    gp = fit_surrogate(obs.points, y, rng, settings, warm, log)
    seen = obs  # what candidates must differ from: the evaluated and the pending points
    if pending is not None and len(pending):
        pending = np.asarray(pending, dtype=float).reshape(-1, obs.points.shape[1])
        gp = gp.fantasize(pending, gp.predict(pending)[0])
        seen = Observations(
            np.vstack([obs.points, pending]),
            np.concatenate([obs.values, np.full(len(pending), np.nan)]),
            np.concatenate([obs.feasible, np.ones(len(pending), dtype=bool)]),
        )

    good = ok & obs.feasible if aware and (ok & obs.feasible).any() else ok
    best = float(np.min(obs.values[good]))
    best = float(np.log(best)) if log else best
    order = np.flatnonzero(good)[np.argsort(obs.values[good], kind="stable")]
    centers = obs.points[order[: settings.n_centers]]

    filter_random = feasibility if kind == "hw-ieci" else None
    cands = [
        random_candidates(
            space,
            seen,
            rng,
            settings.n_random,
            filter_random,
            pool,
            region=region if kind == "hw-ieci" else None,
        ),
        local_candidates(space, seen, rng, centers, settings.n_local, settings.local_scales, pool),
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
