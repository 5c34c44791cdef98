"""One-tissue compartment model with blood volume (plasma input), registry name ``1tcm``.

``dC_T/dt = K1 C_p − k2 C_T``; PET signal ``(1 − vB) K1 (C_p ⊗ e^{−k2 t}) + vB C_wb``. Fitted
by variable projection (:mod:`~ketpet_bids.core.kinetics.compartment`). Outputs ``K1``
(mL/cm³/min), ``k2`` (1/min), ``VT = K1/k2`` (mL/cm³) and ``vB``.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from ketpet_bids.core.kinetics.compartment import CompartmentModel
from ketpet_bids.core.kinetics.timecourse import PER_MIN


class OneTCM(CompartmentModel):
    """1TCM (parameters ``K1``, ``k2``, ``VT``, ``vB``)."""

    name: ClassVar[str] = "1tcm"
    parameters: ClassVar[tuple[str, ...]] = ("K1", "k2", "VT", "vB")
    n_rates = 1

    def to_params(self, rates: np.ndarray, coefs: np.ndarray, vb: float) -> dict[str, float]:
        """``K1`` is the coefficient, ``k2`` the rate."""
        k1, k2 = float(coefs[0]), float(rates[0])
        return {"K1": k1 * PER_MIN, "k2": k2 * PER_MIN, "VT": k1 / k2, "vB": float(vb)}
