"""MA1: Ichise's multilinear analysis, total distribution volume from plasma input.

The Logan relation ``∫_0^T C_T = VT ∫_0^T C_p + b C_T(T)`` (T ≥ t*), solved for ``C_T``, is
linear in two regressors (Ichise et al. 2002)::

    C_T(T) = γ1 ∫_0^T C_p + γ2 ∫_0^T C_T,   γ1 = −VT/b,  γ2 = 1/b,   so  VT = −γ1/γ2.

Unlike the Logan plot, the noisy ``C_T`` is the dependent variable only and never divides a
regressor, so the noise-induced negative bias of Logan's slope largely goes away. The
regressors are frame means of the plasma running integral and of the tissue running integral
(spline reconstruction, :class:`~ketpet_bids.core.kinetics.timecourse.FineGrid`) — the same
quantities as Logan's plot coordinates — fitted without intercept by batched weighted least
squares over the frames from t* on, with the frame weights chosen. t* is given or found by
Logan's rule on the Logan plot of the mean regional curve (the two relations are the same
equation, so they become valid at the same time). Like Logan, the whole-blood term is not
modelled (exact when the tissue follows one-tissue kinetics and vB = 0; for two-tissue
kinetics exact only asymptotically). Output ``VT`` (mL/cm³).
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
from ketpet_bids.core.kinetics.graphical import TSTAR_CRITERION
from ketpet_bids.core.kinetics.logan import Logan
from ketpet_bids.core.kinetics.timecourse import grid_for


class MA1(CurveModel):
    """Multilinear analysis MA1 (plasma input; parameter ``VT``)."""

    name: ClassVar[str] = "ma1"
    parameters: ClassVar[tuple[str, ...]] = ("VT",)
    voxelwise: ClassVar[bool] = True
    input_kinds: ClassVar[tuple[str, ...]] = ("plasma",)

    def prepare(self, tacs: np.ndarray, frames: FrameTiming, inputs: ModelInputs
                ) -> ModelInputs:
        """t* as given, or found on the Logan plot of the mean curve (Logan's rule)."""
        return Logan("plasma").prepare(tacs, frames, inputs)

    def fit_curves(self, tacs: np.ndarray, frames: FrameTiming, inputs: ModelInputs
                   ) -> CurveFit:
        """Batched two-regressor least squares (no intercept) over the frames from t* on.

        Parameters
        ----------
        tacs : np.ndarray, shape (n_curves, n_frames)
            Tissue curves, Bq/mL.
        frames : FrameTiming
            Frame timing (s).
        inputs : ModelInputs
            Prepared inputs (plasma input, t*, weighting).

        Returns
        -------
        CurveFit
            ``VT`` per curve (NaN for a degenerate design); fitted variable ``C_T`` (Bq/mL).
        """
        weights, used = weights_and_selection(frames, inputs, first_frame(frames, inputs.tstar))
        _, plasma_integral = input_at_frames(frames, inputs, "plasma", self.name)
        tissue_integral = tacs @ grid_for(frames).integral_operator.T
        shape = tissue_integral[:, used].shape
        design = np.stack([np.broadcast_to(plasma_integral[used], shape),
                           tissue_integral[:, used]], axis=-1)
        coef, predicted = lstsq_batched(design, tacs[:, used], weights[used])
        with np.errstate(divide="ignore", invalid="ignore"):
            vt = -coef[:, 0] / coef[:, 1]
        return CurveFit(params={"VT": vt}, observed=tacs[:, used], predicted=predicted,
                        weights=weights[used], n_params=2)

    def settings(self, frames: FrameTiming, inputs: ModelInputs) -> dict[str, Any]:
        """Input, weighting, t* (and how it was chosen)."""
        return {**self.common_settings(frames, inputs), "TStar": inputs.tstar, "TStarUnits": "s",
                "TStarCriterion": f"{TSTAR_CRITERION}, on the Logan plot" if inputs.tstar_found
                else "given"}
