"""Tiny simulated studies shared by the simulator tests (built once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ketpet_bids.sim import simulate_study

# One patient (two sessions), full geometry (PSF + motion + PET pose), no noise.
CLEAN = {"n_patients": 1, "n_controls": 0, "seed": 3, "noise": 0.0}
# The k2-ketamine design at 2 + 2 subjects with noise: what the demo simulates.
PRESET = {"n_patients": 2, "n_controls": 2, "seed": 5, "preset": "k2-ketamine"}


@pytest.fixture(scope="session")
def clean_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return simulate_study(tmp_path_factory.mktemp("clean") / "bids", **CLEAN)


@pytest.fixture(scope="session")
def noisy_twin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Same as ``clean_study`` but with noise = 1 (noise has its own random stream)."""
    return simulate_study(tmp_path_factory.mktemp("noisy") / "bids", **{**CLEAN, "noise": 1.0})


@pytest.fixture(scope="session")
def static_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One control without noise, PSF or motion."""
    return simulate_study(tmp_path_factory.mktemp("static") / "bids", n_patients=0,
                          n_controls=1, seed=4, noise=0.0, psf_fwhm_mm=0.0, max_motion_mm=0.0)


@pytest.fixture(scope="session")
def preset_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return simulate_study(tmp_path_factory.mktemp("preset") / "bids", **PRESET)


@pytest.fixture(scope="session")
def preset_args() -> dict:
    """The keyword arguments of ``preset_study``."""
    return dict(PRESET)
