"""Two-tissue compartment models with blood volume (plasma input).

``2tcm`` (reversible): ``dC_1/dt = K1 C_p − (k2 + k3) C_1 + k4 C_2``, ``dC_2/dt = k3 C_1 − k4 C_2``.
The impulse response is ``c1 e^{−α1 t} + c2 e^{−α2 t}`` with ``α1 + α2 = k2 + k3 + k4``,
``α1 α2 = k2 k4``; from the fitted ``(α, c)``: ``K1 = c1 + c2``, ``k2 = (c1 α1 + c2 α2)/K1``,
``k4 = α1 α2 / k2``, ``k3 = α1 + α2 − k2 − k4``. Outputs ``K1``, ``k2``, ``k3``, ``k4``,
``VT = K1/k2 (1 + k3/k4)``, ``VS = K1 k3/(k2 k4)``, ``BPND = k3/k4`` and ``vB``.

``2tcmirr`` (irreversible, ``k4 = 0``): impulse response ``c1 + c2 e^{−α t}`` with
``α = k2 + k3``: ``Ki = c1 = K1 k3/(k2 + k3)``, ``K1 = c1 + c2``, ``k2 = c2 α / K1``,
``k3 = α − k2``. Outputs ``K1``, ``k2``, ``k3``, ``Ki`` and ``vB``.

Both are fitted by variable projection (:mod:`~ketpet_bids.core.kinetics.compartment`); rates
are reported per minute.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from ketpet_bids.core.kinetics.compartment import CompartmentModel
from ketpet_bids.core.kinetics.timecourse import PER_MIN


class TwoTCM(CompartmentModel):
    """Reversible 2TCM (``K1 k2 k3 k4 VT VS BPND vB``)."""

    name: ClassVar[str] = "2tcm"
    parameters: ClassVar[tuple[str, ...]] = ("K1", "k2", "k3", "k4", "VT", "VS", "BPND", "vB")
    n_rates = 2

    def to_params(self, rates: np.ndarray, coefs: np.ndarray, vb: float) -> dict[str, float]:
        """Micro-parameters from the two exponentials (module docstring)."""
        (a1, a2), (c1, c2) = rates, coefs
        k1 = c1 + c2
        with np.errstate(divide="ignore", invalid="ignore"):
            k2 = (c1 * a1 + c2 * a2) / k1
            k4 = a1 * a2 / k2
            k3 = a1 + a2 - k2 - k4
            return {"K1": k1 * PER_MIN, "k2": k2 * PER_MIN, "k3": k3 * PER_MIN,
                    "k4": k4 * PER_MIN, "VT": k1 / k2 * (1 + k3 / k4),
                    "VS": k1 * k3 / (k2 * k4), "BPND": k3 / k4, "vB": float(vb)}


class TwoTCMIrreversible(CompartmentModel):
    """Irreversible 2TCM, k4 = 0 (``K1 k2 k3 Ki vB``)."""

    name: ClassVar[str] = "2tcmirr"
    parameters: ClassVar[tuple[str, ...]] = ("K1", "k2", "k3", "Ki", "vB")
    n_rates = 1
    integral_column = True

    def to_params(self, rates: np.ndarray, coefs: np.ndarray, vb: float) -> dict[str, float]:
        """Micro-parameters from the trapping term and one exponential (module docstring)."""
        alpha = float(rates[0])
        c1, c2 = coefs
        k1 = c1 + c2
        with np.errstate(divide="ignore", invalid="ignore"):
            k2 = c2 * alpha / k1
        return {"K1": k1 * PER_MIN, "k2": k2 * PER_MIN, "k3": (alpha - k2) * PER_MIN,
                "Ki": c1 * PER_MIN, "vB": float(vb)}
