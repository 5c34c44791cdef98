"""Fixtures of the reliability tests: one tiny simulated study for the whole session."""

from __future__ import annotations

from pathlib import Path

import pytest
from reliability_data import simulate_base


@pytest.fixture(scope="session")
def reliability_study(tmp_path_factory) -> Path:
    """The tiny simulated study (1 patient, 2 sessions) every case is copied from; read only."""
    return simulate_base(tmp_path_factory.mktemp("reliability_study") / "bids")
