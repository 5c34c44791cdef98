"""Compartment-model curves against closed forms."""

from __future__ import annotations

import numpy as np

from ketpet_bids.sim.kinetics import (
    RegionParams,
    exp_convolve,
    interval_means,
    time_grid,
    tissue_curve,
)


def test_one_tissue_model_matches_closed_form_convolution():
    """1TCM with a bi-exponential input: C(t) = K1·A·Σ ±(e^{-a t} − e^{-k2 t})/(k2 − a).

    The simulator convolves the linear interpolant on a 1 s grid; the input's curvature
    (b = 0.05/s) limits the agreement to ~1e-5 of the peak, so 1e-4 is asserted.
    """
    t = time_grid(3600.0, 1.0)
    amp, a, b = 5.0e4, 0.002, 0.05
    cp = amp * (np.exp(-a * t) - np.exp(-b * t))
    params = RegionParams(K1=0.3, k2=0.2, k3=0.0, k4=0.0, vB=0.0)
    k1, k2 = params.K1 / 60, params.k2 / 60
    exact = k1 * amp * ((np.exp(-a * t) - np.exp(-k2 * t)) / (k2 - a)
                        - (np.exp(-b * t) - np.exp(-k2 * t)) / (k2 - b))
    numeric = tissue_curve(params, cp, np.zeros_like(t), 1.0)
    np.testing.assert_allclose(numeric, exact, rtol=0, atol=1e-4 * exact.max())


def test_two_tissue_model_reaches_vt_under_constant_input():
    """Step input held for 20 h: C_T/Cp → VT = K1/k2·(1 + k3/k4) (rtol 1e-6), and with vB the
    signal is (1 − vB)·VT·Cp + vB·Cwb."""
    t = time_grid(72000.0, 5.0)
    cp = np.where(t > 0, 1000.0, 0.0)
    params = RegionParams(K1=0.12, k2=0.08, k3=0.05, k4=0.06, vB=0.05)
    assert np.isclose(params.VT, 0.12 / 0.08 * (1 + 0.05 / 0.06))
    curve = tissue_curve(params, cp, 2 * cp, 5.0)
    expected = (1 - 0.05) * params.VT * 1000.0 + 0.05 * 2000.0
    np.testing.assert_allclose(curve[-1], expected, rtol=1e-6)


def test_exp_convolve_exact_for_piecewise_linear_input():
    """A ramp x(t) = t: ∫_0^t s e^{-r(t-s)} ds = t/r − (1 − e^{-r t})/r² exactly (rtol 1e-9),
    even on a coarse 30 s grid; and the r → 0 limit gives t²/2."""
    t = time_grid(600.0, 30.0)
    r = 0.01
    np.testing.assert_allclose(exp_convolve(t, r, 30.0), t / r - (1 - np.exp(-r * t)) / r**2,
                               rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(exp_convolve(t, 0.0, 30.0), t**2 / 2, rtol=1e-12)


def test_interval_means_of_linear_curve():
    """The mean of c(t) = 2t over [s, e) is s + e (exact for the trapezoid rule)."""
    t = time_grid(100.0, 1.0)
    starts, ends = np.array([0.0, 10.0, 40.0]), np.array([10.0, 40.0, 100.0])
    np.testing.assert_allclose(interval_means(2 * t, 1.0, starts, ends), starts + ends)
