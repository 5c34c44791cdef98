"""SRTM2: SRTM with the reference efflux rate k2′ fixed for every curve (Wu & Carson 2002).

With ``k2′ = k2 / R1`` common to all curves, the operational equation becomes::

    C_T(t) = R1 · [C_R(t) + (k2′ − θ3) (C_R ⊗ e^{−θ3 t})(t)],    θ3 = k2 / (1 + BPND)

one linear coefficient per θ3. θ3 is searched on the SRTM basis grid and refined as in
:mod:`~ketpet_bids.core.kinetics.srtm`. ``k2′`` (1/min) is ``ModelInputs.k2prime`` when given;
otherwise :meth:`SRTM2.prepare` fits SRTM to the curves it is given (the regional TACs) and
takes the median of ``k2/R1`` over the curves whose BPND is at least the median BPND
(high-binding curves determine k2′ best). Outputs ``BPND``, ``R1``, ``k2 = R1 k2′`` and the
``k2prime`` used.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np

from ketpet_bids.core.kinetics.base import FrameTiming, ModelInputs
from ketpet_bids.core.kinetics.fitting import (
    CurveFit,
    CurveModel,
    reference_curve,
    weights_and_selection,
)
from ketpet_bids.core.kinetics.srtm import SRTM, basis_functions, basis_search, interpolate_rows
from ketpet_bids.core.kinetics.timecourse import PER_MIN
from ketpet_bids.errors import InputError

K2PRIME_RULE = ("median of k2/R1 (SRTM) over the regional curves whose BPND is at least "
                "their median BPND")


def high_binding_median(values: np.ndarray, bpnd: np.ndarray, what: str) -> float:
    """Median of ``values`` over curves with finite, positive values and BPND ≥ median BPND."""
    ok = np.isfinite(values) & np.isfinite(bpnd) & (values > 0)
    if not ok.any():
        raise InputError(what, "k2' could not be estimated: no curve gave a valid value",
                         "give k2' explicitly")
    high = ok & (bpnd >= np.median(bpnd[ok]))
    return float(np.median(values[high]))


class SRTM2(CurveModel):
    """SRTM with common k2′ (parameters ``BPND``, ``R1``, ``k2``, ``k2prime``)."""

    name: ClassVar[str] = "srtm2"
    parameters: ClassVar[tuple[str, ...]] = ("BPND", "R1", "k2", "k2prime")
    voxelwise: ClassVar[bool] = True

    def prepare(self, tacs: np.ndarray, frames: FrameTiming, inputs: ModelInputs
                ) -> ModelInputs:
        """Estimate k2′ from an SRTM fit of ``tacs`` when it is not given."""
        if inputs.k2prime is not None:
            return inputs
        params = SRTM().fit_curves(np.atleast_2d(np.asarray(tacs, float)), frames,
                                   inputs).params
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = params["k2"] / params["R1"]
        return dataclasses.replace(inputs, k2prime=high_binding_median(
            ratio, params["BPND"], "srtm2"), k2prime_found=True)

    def fit_curves(self, tacs: np.ndarray, frames: FrameTiming, inputs: ModelInputs
                   ) -> CurveFit:
        """One regressor per θ3; grid search, parabolic refinement, linear R1."""
        if inputs.k2prime is None:
            inputs = self.prepare(tacs, frames, inputs)
        reference = reference_curve(frames, inputs, self.name)
        weights, _ = weights_and_selection(frames, inputs)
        thetas, basis = basis_functions(frames, inputs, reference)
        k2prime = inputs.k2prime / PER_MIN
        regressors = reference + (k2prime - thetas)[:, None] * basis
        root = np.sqrt(weights)
        index, offset = basis_search(tacs * root, regressors * root, None)
        step = np.log(thetas[1] / thetas[0]) if thetas.size > 1 else 0.0
        theta = thetas[index] * np.exp(offset * step)
        z = reference + (k2prime - theta)[:, None] * interpolate_rows(basis, index, offset)
        with np.errstate(divide="ignore", invalid="ignore"):
            r1 = ((z * tacs) @ weights) / ((z * z) @ weights)
            params = {"BPND": r1 * k2prime / theta - 1.0, "R1": r1,
                      "k2": r1 * k2prime * PER_MIN,
                      "k2prime": np.full(tacs.shape[0], inputs.k2prime)}
        return CurveFit(params=params, observed=tacs, predicted=r1[:, None] * z,
                        weights=weights, n_params=2)

    def settings(self, frames: FrameTiming, inputs: ModelInputs) -> dict[str, Any]:
        """Basis grid, weighting and the k2′ used (and how it was chosen)."""
        return {**SRTM().settings(frames, inputs), **self.common_settings(frames, inputs),
                "k2prime": inputs.k2prime, "k2primeUnits": "1/min",
                "k2primeMethod": K2PRIME_RULE if inputs.k2prime_found else "given"}
