"""MRTM: Ichise's multilinear reference tissue model (Ichise et al. 2003).

From the Logan reference relation, for curves from t* on (all frames when t* is not given)::

    C_T(T) = γ1 ∫_0^T C_R + γ2 ∫_0^T C_T + γ3 C_R(T)

with ``γ1 = k2``, ``γ2 = −k2/(1 + BPND)``, ``γ3 = R1`` (so ``k2′ = γ1/γ3``). The regressors are
frame means of the reference, and of the running integrals of reference and tissue (spline
reconstruction, :class:`~ketpet_bids.core.kinetics.timecourse.FineGrid`); the tissue integral
differs per curve, so the fits are a batched least-squares solve. Outputs ``BPND = −γ1/γ2 − 1``,
``R1``, ``k2`` and ``k2prime`` (1/min). Exact when target and reference follow one-tissue
kinetics.
"""

from __future__ import annotations

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
from ketpet_bids.core.kinetics.timecourse import PER_MIN, grid_for


class MRTM(CurveModel):
    """Multilinear reference tissue model (parameters ``BPND``, ``R1``, ``k2``, ``k2prime``)."""

    name: ClassVar[str] = "mrtm"
    parameters: ClassVar[tuple[str, ...]] = ("BPND", "R1", "k2", "k2prime")
    voxelwise: ClassVar[bool] = True

    def fit_curves(self, tacs: np.ndarray, frames: FrameTiming, inputs: ModelInputs
                   ) -> CurveFit:
        """Batched three-regressor least squares over the frames from t* on."""
        weights, used = weights_and_selection(frames, inputs, first_frame(frames, inputs.tstar))
        reference, ref_integral = input_at_frames(frames, inputs, "reference", self.name)
        tissue_integral = tacs @ grid_for(frames).integral_operator.T
        shape = tissue_integral[:, used].shape
        design = np.stack([np.broadcast_to(ref_integral[used], shape), tissue_integral[:, used],
                           np.broadcast_to(reference[used], shape)], axis=-1)
        coef, predicted = lstsq_batched(design, tacs[:, used], weights[used])
        g1, g2, g3 = coef.T
        with np.errstate(divide="ignore", invalid="ignore"):
            params = {"BPND": -g1 / g2 - 1.0, "R1": g3, "k2": g1 * PER_MIN,
                      "k2prime": g1 / g3 * PER_MIN}
        return CurveFit(params=params, observed=tacs[:, used], predicted=predicted,
                        weights=weights[used], n_params=3)

    def settings(self, frames: FrameTiming, inputs: ModelInputs) -> dict[str, Any]:
        """Weighting and t* (all frames when not given)."""
        return {**self.common_settings(frames, inputs),
                "TStar": inputs.tstar if inputs.tstar is not None else 0.0, "TStarUnits": "s",
                "TStarCriterion": "given" if inputs.tstar is not None else "all frames"}
