"""MRTM2: MRTM with the reference efflux rate k2′ fixed (Ichise et al. 2003)::

    C_T(T) = γ1 (∫_0^T C_R + C_R(T)/k2′) + γ2 ∫_0^T C_T,    γ1 = k2, γ2 = −k2/(1 + BPND)

Two regressors per curve, batched least squares over the frames from t* on (all when not
given). ``k2′`` (1/min) is ``ModelInputs.k2prime`` when given; otherwise :meth:`MRTM2.prepare`
fits MRTM to the curves it is given (the regional TACs) and takes the median of its ``k2prime``
over the curves whose BPND is at least the median BPND. Outputs ``BPND = −γ1/γ2 − 1``,
``R1 = k2/k2′`` and ``k2`` (1/min).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np

from ketpet_bids.core.kinetics.base import FrameTiming, ModelInputs
from ketpet_bids.core.kinetics.fitting import (
    CurveFit,
    CurveModel,
    first_frame,
    input_at_frames,
    lstsq_batched,
    weights_and_selection,
)
from ketpet_bids.core.kinetics.mrtm import MRTM
from ketpet_bids.core.kinetics.srtm2 import high_binding_median
from ketpet_bids.core.kinetics.timecourse import PER_MIN, grid_for

K2PRIME_RULE = ("median of k2prime (MRTM) over the regional curves whose BPND is at least "
                "their median BPND")


class MRTM2(CurveModel):
    """MRTM with common k2′ (parameters ``BPND``, ``R1``, ``k2``)."""

    name: ClassVar[str] = "mrtm2"
    parameters: ClassVar[tuple[str, ...]] = ("BPND", "R1", "k2")
    voxelwise: ClassVar[bool] = True

    def prepare(self, tacs: np.ndarray, frames: FrameTiming, inputs: ModelInputs
                ) -> ModelInputs:
        """Estimate k2′ from an MRTM fit of ``tacs`` when it is not given."""
        if inputs.k2prime is not None:
            return inputs
        params = MRTM().fit_curves(np.atleast_2d(np.asarray(tacs, float)), frames,
                                   inputs).params
        return dataclasses.replace(inputs, k2prime=high_binding_median(
            params["k2prime"], params["BPND"], "mrtm2"), k2prime_found=True)

    def fit_curves(self, tacs: np.ndarray, frames: FrameTiming, inputs: ModelInputs
                   ) -> CurveFit:
        """Batched two-regressor least squares over the frames from t* on."""
        if inputs.k2prime is None:
            inputs = self.prepare(tacs, frames, inputs)
        weights, used = weights_and_selection(frames, inputs, first_frame(frames, inputs.tstar))
        reference, ref_integral = input_at_frames(frames, inputs, "reference", self.name)
        k2prime = inputs.k2prime / PER_MIN
        tissue_integral = tacs @ grid_for(frames).integral_operator.T
        shape = tissue_integral[:, used].shape
        combined = ref_integral + reference / k2prime
        design = np.stack([np.broadcast_to(combined[used], shape), tissue_integral[:, used]],
                          axis=-1)
        coef, predicted = lstsq_batched(design, tacs[:, used], weights[used])
        g1, g2 = coef.T
        with np.errstate(divide="ignore", invalid="ignore"):
            params = {"BPND": -g1 / g2 - 1.0, "R1": g1 / k2prime, "k2": g1 * PER_MIN}
        return CurveFit(params=params, observed=tacs[:, used], predicted=predicted,
                        weights=weights[used], n_params=2)

    def settings(self, frames: FrameTiming, inputs: ModelInputs) -> dict[str, Any]:
        """MRTM settings plus the k2′ used (and how it was chosen)."""
        return {**MRTM().settings(frames, inputs), **self.common_settings(frames, inputs),
                "k2prime": inputs.k2prime, "k2primeUnits": "1/min",
                "k2primeMethod": K2PRIME_RULE if inputs.k2prime_found else "given"}
