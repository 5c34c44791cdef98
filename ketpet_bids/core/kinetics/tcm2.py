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

Identifiability of the reversible fit. ``VT = c1/α1 + c2/α2`` diverges as the slow rate α1
goes to 0 while the rates themselves stay bounded: a slow exponential that hardly decays
during the scan cannot be told from irreversible trapping, and noisy curves (≈ 10 % of fits at
voxel-like noise) land there with ``k4`` at its bound and VT tens of times the truth. As
kinfitr/PMOD users do by hand (excluding fits with k4 at its bound), such fits are reported as
non-identifiable: ``k3``, ``k4``, ``VT``, ``VS`` and ``BPND`` are NaN (``n/a`` in the table;
``K1``, ``k2`` and ``vB`` stay) when the slow exponential's time constant ``1/α1`` exceeds
:data:`MAX_SLOW_TIME_CONSTANT_SCANS` scan durations (it then decays by less than 18 % over
the scan). The rule is recorded in the sidecar; fit ``2tcmirr`` to such regions instead.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np

from ketpet_bids.core.kinetics.base import FrameTiming, ModelInputs
from ketpet_bids.core.kinetics.compartment import CompartmentModel
from ketpet_bids.core.kinetics.fitting import CurveFit
from ketpet_bids.core.kinetics.timecourse import PER_MIN

MAX_SLOW_TIME_CONSTANT_SCANS = 5.0
"""Largest identifiable ``1/α1`` of the reversible 2TCM, in scan durations (module docstring)."""
BINDING_PARAMETERS = ("k3", "k4", "VT", "VS", "BPND")
"""Parameters set to NaN for non-identifiable reversible fits."""


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

    def fit_curves(self, tacs: np.ndarray, frames: FrameTiming, inputs: ModelInputs
                   ) -> CurveFit:
        """Variable-projection fit; binding parameters NaN where not identifiable."""
        fit = super().fit_curves(tacs, frames, inputs)
        scan_min = float(np.max(np.asarray(frames.start) + np.asarray(frames.duration))) / 60.0
        k2, k3, k4 = (np.asarray(fit.params[k], dtype=float) for k in ("k2", "k3", "k4"))
        total = k2 + k3 + k4  # slow rate α1 (1/min): smaller root of α² − total α + k2 k4
        with np.errstate(invalid="ignore"):
            slow = 2 * k2 * k4 / (total + np.sqrt(np.clip(total**2 - 4 * k2 * k4, 0.0, None)))
        unidentifiable = ~(slow * scan_min * MAX_SLOW_TIME_CONSTANT_SCANS >= 1.0)
        params = {p: np.where(unidentifiable, np.nan, v) if p in BINDING_PARAMETERS else v
                  for p, v in fit.params.items()}
        return dataclasses.replace(fit, params=params)

    def settings(self, frames: FrameTiming, inputs: ModelInputs) -> dict[str, Any]:
        """Compartment-model settings plus the identifiability rule (module docstring)."""
        return {**super().settings(frames, inputs),
                "NonIdentifiable": f"{', '.join(BINDING_PARAMETERS)} = n/a when the slow "
                f"exponential's time constant exceeds {MAX_SLOW_TIME_CONSTANT_SCANS:g} scan "
                "durations (reversible binding indistinguishable from trapping; VT unbounded)"}


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
