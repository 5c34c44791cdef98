"""Unit conversion and decay correction (ketpet_bids.core.units) against exact values and
numerical integration."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import quad

from ketpet_bids.core import units

C11 = 20.39 * 60.0


@pytest.mark.parametrize(("text", "factor"), [
    ("Bq/mL", 1.0), ("Bq/ml", 1.0), ("BQML", 1.0), ("Bq/cc", 1.0), ("bq / cm3", 1.0),
    ("kBq/mL", 1000.0), ("KBq/cc", 1000.0), ("MBq/mL", 1e6), ("MBq/L", 1000.0),
    ("nCi/mL", 37.0), ("nCi/cc", 37.0), ("uCi/mL", 37000.0), ("µCi/mL", 37000.0),
    ("mCi/mL", 3.7e7), ("pCi/mL", 0.037), ("Bq/L", 0.001),
])
def test_activity_concentration_factor(text, factor):
    # Exact: 1 Ci = 3.7e10 Bq by definition, so 1 nCi is 37 Bq with no rounding.
    assert units.activity_concentration_factor(text) == factor


@pytest.mark.parametrize("text", ["mBq/mL", "counts", "g/mL", "SUV", "Bq", "kBq/kg", ""])
def test_unknown_concentration_units(text):
    with pytest.raises(ValueError, match="unknown activity-concentration unit"):
        units.activity_concentration_factor(text)


@pytest.mark.parametrize(("text", "factor"), [
    ("MBq", 1e6), ("mCi", 3.7e7), ("Bq", 1.0), ("kBq", 1e3), ("GBq", 1e9), ("uCi", 3.7e4),
    ("mci", 3.7e7),
])
def test_activity_factor(text, factor):
    assert units.activity_factor(text) == factor


def test_activity_factor_rejects_ambiguous_milli_becquerel():
    with pytest.raises(ValueError, match="unknown activity unit 'mBq'"):
        units.activity_factor("mBq")


@pytest.mark.parametrize(("name", "canonical"), [
    ("C11", "C11"), ("11C", "C11"), ("[11C]", "C11"), ("C-11", "C11"), ("^18F", "F18"),
    ("F18", "F18"), ("ga68", "Ga68"), ("89Zr", "Zr89"), ("Rb-82", "Rb82"), ("O15", "O15"),
])
def test_radionuclide_spellings(name, canonical):
    assert units.canonical_radionuclide(name) == canonical


def test_half_lives():
    assert units.half_life_seconds("C11") == C11
    assert units.half_life_seconds("18F") == 109.77 * 60
    with pytest.raises(ValueError, match="unknown radionuclide 'Tc99m'; known: C11, F18"):
        units.half_life_seconds("Tc99m")


def test_point_factor_at_one_half_life_is_two():
    # A 1 µs frame starting one half-life after the reference: e^{λ T½} = 2 (error ~ λΔ/2).
    factor = units.frame_decay_factors([C11], [1e-6], C11)
    np.testing.assert_allclose(factor, 2.0, rtol=1e-9)


def test_frame_factors_match_numerical_integration():
    """A constant decay-corrected activity A is measured as the frame mean of A e^{-λt};
    the factor must turn that mean back into A. quad's error is ~1e-14 relative."""
    start = np.array([0.0, 15.0, 60.0, 600.0, 1800.0, 3300.0])
    duration = np.array([15.0, 45.0, 300.0, 600.0, 600.0, 300.0])
    lam = np.log(2) / C11
    measured = np.array([quad(lambda t: np.exp(-lam * t), s, s + d)[0] / d
                         for s, d in zip(start, duration, strict=True)])
    factors = units.frame_decay_factors(start, duration, C11)
    np.testing.assert_allclose(factors * measured, 1.0, rtol=1e-12)
    # Between the point factors at frame start and mid-frame: the frame mean of the convex
    # e^{-λt} exceeds its mid-frame value, so its inverse is below e^{λ t_mid}.
    assert np.all((np.exp(lam * start) < factors)
                  & (factors < np.exp(lam * (start + duration / 2))))


def test_frame_factors_with_reference_time():
    # Shifting the reference by one half-life halves every factor.
    start, duration = np.array([100.0, 400.0]), np.array([50.0, 200.0])
    np.testing.assert_allclose(units.frame_decay_factors(start, duration, C11, C11),
                               units.frame_decay_factors(start, duration, C11) / 2, rtol=1e-12)


def test_decay_correction_factors_dispatch():
    start, duration = np.array([0.0, 60.0]), np.array([60.0, 60.0])
    uncorrected = units.decay_correction_factors(start, duration, C11, decay_corrected=False,
                                                 decay_correction_time=np.nan)
    np.testing.assert_array_equal(uncorrected, units.frame_decay_factors(start, duration, C11))
    same = units.decay_correction_factors(start, duration, C11, decay_corrected=True,
                                          decay_correction_time=0.0)
    np.testing.assert_array_equal(same, [1.0, 1.0])
    # Corrected to one half-life after the injection: values there are half the activity
    # corrected to the injection, so the factor is 2.
    moved = units.decay_correction_factors(start, duration, C11, decay_corrected=True,
                                           decay_correction_time=C11)
    np.testing.assert_allclose(moved, [2.0, 2.0], rtol=1e-12)
