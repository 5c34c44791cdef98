"""Time-course building blocks shared by the kinetic models (seconds, Bq/mL).

- :func:`frame_weights` — fit weights per frame (frame duration × decay, or uniform);
- :class:`FineGrid` — a uniform fine time grid spanning the scan, on which inputs are
  convolved with exponentials exactly (for piecewise-linear inputs) and averaged back over
  frames, and on which frame-averaged curves are reconstructed so that their frame means are
  preserved (cubic spline of the running integral);
- :func:`find_tstar` — the start of the linear phase of a graphical plot, by the maximum
  relative residual criterion.

Rate constants are per second inside the package's numerics; models report them per minute
(:data:`PER_MIN`).
"""

from __future__ import annotations

from functools import cached_property, lru_cache
from typing import Any

import numpy as np
from scipy.interpolate import CubicSpline
from scipy.signal import lfilter

from ketpet_bids.errors import InputError

C11_HALF_LIFE_S = 20.39 * 60.0
"""Default half-life (s) for decay weighting when the tracer's is not given."""

PER_MIN = 60.0
"""Seconds per minute: rate constants (1/s) × PER_MIN = per minute (reported units)."""

WEIGHTING_SCHEMES = ("duration_decay", "uniform")


def frame_weights(frames: Any, scheme: str = "duration_decay",
                  half_life_s: float = C11_HALF_LIFE_S) -> np.ndarray:
    """Least-squares weight of each frame, normalised to mean 1.

    ``duration_decay``: ``w_i = Δ_i · exp(−λ t_mid,i)`` — the inverse of the variance model
    ``var ∝ C · e^{λt} / Δ`` of decay-corrected counts with ``C`` left out (so that weights
    do not depend on the fitted curve). ``uniform``: all ones.

    Parameters
    ----------
    frames : FrameTiming
        ``start`` and ``duration`` (s), shape (n_frames,).
    scheme : {"duration_decay", "uniform"}
    half_life_s : float
        Half-life of the radionuclide (s).

    Returns
    -------
    np.ndarray, shape (n_frames,)

    Examples
    --------
    >>> from ketpet_bids.core.kinetics.base import Frames
    >>> frame_weights(Frames.from_lists([0, 60], [60, 60]), "uniform").tolist()
    [1.0, 1.0]
    """
    duration = np.asarray(frames.duration, dtype=float)
    if scheme == "uniform":
        weights = np.ones_like(duration)
    elif scheme == "duration_decay":
        mid = np.asarray(frames.start, dtype=float) + duration / 2
        weights = duration * np.exp(-np.log(2.0) / half_life_s * mid)
    else:
        raise InputError("weighting", f"unknown weighting scheme '{scheme}'",
                         f"choose from: {', '.join(WEIGHTING_SCHEMES)}")
    return weights / weights.mean()


class FineGrid:
    """A uniform time grid ``0, dt, …`` covering the scan, linked to its frames.

    Parameters
    ----------
    frames : FrameTiming
        Frame timing (s).
    dt : float
        Grid step (s).
    """

    def __init__(self, frames: Any, dt: float = 1.0) -> None:
        self.frames = frames
        self.dt = float(dt)
        start = np.asarray(frames.start, dtype=float)
        self.end = start + np.asarray(frames.duration, dtype=float)
        self.mid = start + np.asarray(frames.duration, dtype=float) / 2
        self.start = start
        self.t = np.arange(0.0, self.end.max() + self.dt, self.dt)

    def frame_means(self, curves: np.ndarray) -> np.ndarray:
        """Mean of piecewise-linear grid curves over each frame.

        Parameters
        ----------
        curves : np.ndarray, shape (..., n_grid)

        Returns
        -------
        np.ndarray, shape (..., n_frames)
        """
        curves = np.asarray(curves, dtype=float)
        cum = self.running_integral(curves)
        lead = cum.reshape(-1, cum.shape[-1])
        at_start = np.array([np.interp(self.start, self.t, row) for row in lead])
        at_end = np.array([np.interp(self.end, self.t, row) for row in lead])
        means = (at_end - at_start) / (self.end - self.start)
        return means.reshape(curves.shape[:-1] + (self.start.size,))

    def running_integral(self, curves: np.ndarray) -> np.ndarray:
        """Trapezoidal ``∫_0^t`` of grid curves (exact for piecewise-linear), same shape."""
        curves = np.asarray(curves, dtype=float)
        steps = (curves[..., 1:] + curves[..., :-1]) * (self.dt / 2)
        return np.concatenate([np.zeros(curves.shape[:-1] + (1,)), np.cumsum(steps, -1)], -1)

    @cached_property
    def _operators(self) -> tuple[np.ndarray, np.ndarray]:
        """Linear maps from frame averages to ``(I(t), C(t))`` on the grid, (n_grid, n_frames).

        The running integral ``I`` is known exactly at frame boundaries (sums of frame
        average × duration; before the first frame the curve rises linearly from 0, across a
        gap it is linear between the neighbouring averages). A cubic spline through these
        knots with ``I'(0) = 0`` gives ``I(t)``; its derivative is ``C(t)``, whose frame means
        equal the given averages.
        """
        n = self.start.size
        eye = np.eye(n)
        gap = np.concatenate([[self.start[0]], self.start[1:] - self.end[:-1]])
        has_gap = gap > 1e-9 * max(self.end.max(), 1.0)
        knots_t, knots_i = [0.0], [np.zeros(n)]
        for i in range(n):
            if has_gap[i]:
                left = eye[i - 1] if i else np.zeros(n)
                knots_i.append(knots_i[-1] + (left + eye[i]) / 2 * gap[i])
                knots_t.append(self.start[i])
            knots_i.append(knots_i[-1] + eye[i] * (self.end[i] - self.start[i]))
            knots_t.append(self.end[i])
        spline = CubicSpline(np.array(knots_t), np.array(knots_i), axis=0,
                             bc_type=((1, np.zeros(n)), "not-a-knot"))
        return spline(self.t), spline.derivative()(self.t)

    @cached_property
    def integral_operator(self) -> np.ndarray:
        """``(n_frames, n_frames)`` map from frame averages to the frame means of ``∫_0^t C``.

        ``tacs @ integral_operator.T`` gives, for curves of shape (..., n_frames), the
        regressors of graphical methods (Bq·s/mL).
        """
        return self.frame_means(self._operators[0].T).T

    def from_frames(self, tacs: np.ndarray) -> np.ndarray:
        """Frame-averaged curves on the grid (see :attr:`_operators`).

        Parameters
        ----------
        tacs : np.ndarray, shape (..., n_frames)

        Returns
        -------
        np.ndarray, shape (..., n_grid)
        """
        return np.asarray(tacs, dtype=float) @ self._operators[1].T

    def from_samples(self, time: np.ndarray, values: np.ndarray) -> np.ndarray:
        """Sampled curve (e.g. a plasma input) linearly interpolated onto the grid.

        Samples must cover the grid (the blood reader extrapolates the tail); before the first
        sample the curve is 0.
        """
        return np.interp(self.t, np.asarray(time, float), np.asarray(values, float),
                         left=0.0)

    def exp_convolve(self, x: np.ndarray, rates: np.ndarray) -> np.ndarray:
        """``∫_0^t x(s) e^{−r (t − s)} ds`` for each rate ``r``, exact for piecewise-linear ``x``.

        A first-order recursive filter per rate: with ``a = e^{−r dt}``,
        ``y[n+1] = a y[n] + (I0 − I1) x[n] + I1 x[n+1]``, ``I0 = ∫_0^dt e^{−r v} dv``,
        ``I1 = ∫_0^dt e^{−r (dt − u)} u/dt du``; ``y[0] = 0``.

        Parameters
        ----------
        x : np.ndarray, shape (n_grid,)
        rates : np.ndarray, shape (n_rates,)
            1/s, ≥ 0 (0 gives the running integral).

        Returns
        -------
        np.ndarray, shape (n_rates, n_grid)
        """
        x = np.asarray(x, dtype=float)
        out = np.empty((np.size(rates), x.size))
        dt = self.dt
        for index, rate in enumerate(np.atleast_1d(np.asarray(rates, dtype=float))):
            bdt = rate * dt
            if bdt < 1e-9:
                i0, i1 = dt, dt / 2.0
            else:
                i0 = -np.expm1(-bdt) / rate
                i1 = i0 - (1.0 - np.exp(-bdt) * (1.0 + bdt)) / (rate * bdt)
            b0, b1 = i1, i0 - i1
            # y[n] = a y[n-1] + b1 x[n-1] + b0 x[n] with y[0] = 0: filter x from n = 1.
            zi = np.array([b1 * x[0]])
            y, _ = lfilter([b0, b1], [1.0, -np.exp(-bdt)], x[1:], zi=zi)
            out[index, 0] = 0.0
            out[index, 1:] = y
        return out


def find_tstar(x: np.ndarray, y: np.ndarray, weights: np.ndarray,
               max_rel_error: float = 0.10, min_frames: int = 3) -> int:
    """First frame of the linear phase of a graphical plot (maximum relative residual rule).

    For each candidate first frame ``k`` (earliest first) a weighted straight line is fitted
    to points ``k…n−1``; ``k`` is accepted when every residual is within ``max_rel_error`` of
    its ``|y|``; windows with non-finite points are skipped. The latest candidate leaves
    ``min_frames`` points.

    Parameters
    ----------
    x, y : np.ndarray, shape (n_frames,)
        Plot coordinates (one curve).
    weights : np.ndarray, shape (n_frames,)
    max_rel_error, min_frames
        Criterion.

    Returns
    -------
    int
        Index of the first frame used.
    """
    n = y.size
    finite = np.isfinite(x) & np.isfinite(y)
    for k in range(0, n - min_frames + 1):
        sel = slice(k, n)
        if not finite[sel].all():
            continue
        w = weights[sel]
        design = np.column_stack([x[sel], np.ones(n - k)]) * np.sqrt(w)[:, None]
        coef, *_ = np.linalg.lstsq(design, y[sel] * np.sqrt(w), rcond=None)
        resid = y[sel] - (coef[0] * x[sel] + coef[1])
        if np.all(np.abs(resid) <= max_rel_error * np.abs(y[sel])):
            return k
    return n - min_frames


@lru_cache(maxsize=8)
def _grid(start: tuple[float, ...], duration: tuple[float, ...], dt: float) -> FineGrid:
    from ketpet_bids.core.kinetics.base import Frames

    return FineGrid(Frames.from_lists(start, duration), dt)


def grid_for(frames: Any, dt: float = 1.0) -> FineGrid:
    """The (cached) :class:`FineGrid` of a frame timing."""
    return _grid(tuple(np.asarray(frames.start, float).tolist()),
                 tuple(np.asarray(frames.duration, float).tolist()), float(dt))
