"""Arterial input function and compartment-model tissue curves (seconds, Bq/mL).

Everything is evaluated on a uniform fine grid ``t = 0, dt, 2 dt, …`` (default 1 s) starting at
the injection. Curves are decay corrected to the injection time.

* Total plasma activity: the Feng model
  ``Cp(τ) = (A1 τ − A2 − A3) e^{λ1 τ} + A2 e^{λ2 τ} + A3 e^{λ3 τ}`` with τ the time in minutes
  after the arrival delay (0 before it), A/λ from FACTS.md, multiplied by a scale (Bq/mL).
* Parent fraction (Hill type): ``f(t) = f∞ + (1 − f∞) / (1 + (t/t50)^h)``.
* Whole blood: ``Cwb(t) = Cp(t) · r(t)`` with ``r(t) = r∞ + (r0 − r∞) e^{−t/τr}``.
* Tissue: reversible two-tissue compartment model (K1, k2, k3, k4) driven by the metabolite-
  corrected plasma ``Cp·f``; the PET signal is ``(1 − vB)·C_T + vB·Cwb``.

The convolution of the input with each exponential of the impulse response is exact for the
piecewise-linear interpolant of the input on the grid (a first-order recursive filter, see
:func:`exp_convolve`). Rate constants are tabulated per minute (``RegionParams``) as in the
truth files and converted to per second in one place, :func:`impulse_response`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.signal import lfilter

C11_HALF_LIFE_S = 20.39 * 60.0
C11_DECAY_PER_S = np.log(2.0) / C11_HALF_LIFE_S
FENG_A = (851.1225, 21.8798, 20.8113)  # amplitudes (per Feng unit; A1 per minute)
FENG_LAMBDA_PER_MIN = (-4.1339, -0.0104, -0.1191)


@dataclass(frozen=True)
class InputParams:
    """Parameters of the blood curves of one scan.

    Attributes
    ----------
    scale
        Bq/mL per Feng unit (the Feng amplitudes are multiplied by it).
    delay_s
        Arrival delay of the bolus at the sampling site (s).
    parent_t50_s, parent_hill, parent_inf
        Parent fraction: half-time (s), Hill exponent, final fraction.
    wb_ratio_0, wb_ratio_inf, wb_ratio_tau_s
        Whole-blood to plasma ratio at 0, at infinity, and its time constant (s).
    """

    scale: float
    delay_s: float
    parent_t50_s: float = 600.0
    parent_hill: float = 1.8
    parent_inf: float = 0.15
    wb_ratio_0: float = 0.80
    wb_ratio_inf: float = 0.95
    wb_ratio_tau_s: float = 300.0

    def to_dict(self) -> dict[str, float]:
        """Plain dictionary (for the truth JSON)."""
        return asdict(self)


@dataclass(frozen=True)
class RegionParams:
    """Two-tissue compartment parameters of one region.

    Attributes
    ----------
    K1
        mL/cm³/min.
    k2, k3, k4
        1/min (``k3 = k4 = 0`` gives a one-tissue model).
    vB
        Blood volume fraction (unitless).
    """

    K1: float
    k2: float
    k3: float
    k4: float
    vB: float

    @property
    def VT(self) -> float:
        """Total distribution volume ``K1/k2 · (1 + k3/k4)`` (``K1/k2`` without binding)."""
        bp = self.k3 / self.k4 if self.k4 > 0 else 0.0
        return self.K1 / self.k2 * (1.0 + bp)

    @property
    def BPND(self) -> float:
        """``k3/k4`` (0 without binding)."""
        return self.k3 / self.k4 if self.k4 > 0 else 0.0


def time_grid(end_s: float, dt: float = 1.0) -> np.ndarray:
    """Uniform grid ``0, dt, …, end_s`` (s)."""
    return np.arange(0.0, end_s + dt / 2, dt)


def feng_plasma(t: np.ndarray, scale: float, delay_s: float) -> np.ndarray:
    """Total plasma activity (Bq/mL) of the Feng model at times ``t`` (s); 0 before the delay."""
    tau = np.clip((np.asarray(t, dtype=float) - delay_s) / 60.0, 0.0, None)
    a1, a2, a3 = FENG_A
    l1, l2, l3 = FENG_LAMBDA_PER_MIN
    cp = (a1 * tau - a2 - a3) * np.exp(l1 * tau) + a2 * np.exp(l2 * tau) + a3 * np.exp(l3 * tau)
    return scale * cp


def parent_fraction(t: np.ndarray, p: InputParams) -> np.ndarray:
    """Fraction of unmetabolised tracer in plasma (Hill-type decay) at times ``t`` (s)."""
    ratio = (np.clip(np.asarray(t, dtype=float), 0.0, None) / p.parent_t50_s) ** p.parent_hill
    return p.parent_inf + (1.0 - p.parent_inf) / (1.0 + ratio)


def blood_curves(t: np.ndarray, p: InputParams) -> dict[str, np.ndarray]:
    """Blood curves at times ``t`` (s).

    Returns
    -------
    dict
        ``plasma`` (total, Bq/mL), ``parent_fraction``, ``parent_plasma`` (Bq/mL) and
        ``whole_blood`` (Bq/mL), each shaped like ``t``.
    """
    plasma = feng_plasma(t, p.scale, p.delay_s)
    parent = parent_fraction(t, p)
    ratio = p.wb_ratio_inf + (p.wb_ratio_0 - p.wb_ratio_inf) * np.exp(-np.asarray(t) /
                                                                         p.wb_ratio_tau_s)
    return {"plasma": plasma, "parent_fraction": parent, "parent_plasma": plasma * parent,
            "whole_blood": plasma * ratio}


def impulse_response(params: RegionParams) -> tuple[np.ndarray, np.ndarray]:
    """Impulse response of the 2TCM as ``sum(coef * exp(-rate * t))``.

    Returns
    -------
    coef : numpy.ndarray
        Shape (2,), 1/s (K1 converted from per minute).
    rate : numpy.ndarray
        Shape (2,), 1/s, ``rate[0] <= rate[1]``.
    """
    k1, k2, k3, k4 = (v / 60.0 for v in (params.K1, params.k2, params.k3, params.k4))
    s = k2 + k3 + k4
    root = np.sqrt(max(s * s - 4.0 * k2 * k4, 0.0))
    a1, a2 = (s - root) / 2.0, (s + root) / 2.0
    if a2 - a1 < 1e-12:
        raise ValueError(f"degenerate 2TCM eigenvalues for {params}")
    coef = k1 / (a2 - a1) * np.array([k3 + k4 - a1, a2 - k3 - k4])
    return coef, np.array([a1, a2])


def exp_convolve(x: np.ndarray, rate: float, dt: float) -> np.ndarray:
    """``∫_0^t x(s) e^{-rate (t-s)} ds`` for the piecewise-linear ``x`` on a uniform grid.

    Exact for linear interpolation between samples: with ``a = e^{-rate dt}``,
    ``y[n+1] = a y[n] + (I0 − I1) x[n] + I1 x[n+1]``, where ``I0 = ∫_0^dt e^{-rate v} dv`` and
    ``I1 = ∫_0^dt e^{-rate (dt-u)} u/dt du``. ``x[0]`` must be 0 (the grid starts before the
    tracer arrives).

    Parameters
    ----------
    x
        Samples on the grid, shape (n,).
    rate
        Decay rate (1/s, ≥ 0).
    dt
        Grid step (s).
    """
    bdt = rate * dt
    if bdt < 1e-8:
        i0, i1 = dt, dt / 2.0
    else:
        i0 = -np.expm1(-bdt) / rate
        i1 = i0 - (1.0 - np.exp(-bdt) * (1.0 + bdt)) / (rate * bdt)
    return lfilter([i1, i0 - i1], [1.0, -np.exp(-bdt)], x)


def tissue_curve(params: RegionParams, parent_plasma: np.ndarray, whole_blood: np.ndarray,
                 dt: float) -> np.ndarray:
    """PET signal of one region on the grid: ``(1 − vB)·C_T + vB·Cwb`` (Bq/mL)."""
    coef, rate = impulse_response(params)
    ct = sum(c * exp_convolve(parent_plasma, r, dt) for c, r in zip(coef, rate, strict=True))
    return (1.0 - params.vB) * ct + params.vB * whole_blood


def interval_means(curve: np.ndarray, dt: float, starts: np.ndarray, ends: np.ndarray
                   ) -> np.ndarray:
    """Mean of the piecewise-linear ``curve`` (last axis on the grid) over ``[start, end)``.

    ``starts``/``ends`` (s) must lie on the grid. Returns shape ``curve.shape[:-1] + (n,)``.
    """
    cum = np.concatenate([np.zeros(curve.shape[:-1] + (1,)),
                          np.cumsum((curve[..., 1:] + curve[..., :-1]) * dt / 2, axis=-1)],
                         axis=-1)
    i0 = np.rint(np.asarray(starts) / dt).astype(int)
    i1 = np.rint(np.asarray(ends) / dt).astype(int)
    return (cum[..., i1] - cum[..., i0]) / (np.asarray(ends) - np.asarray(starts))
