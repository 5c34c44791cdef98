"""Graphical models: a straight line fitted to a transformed plot from t* on.

Subclasses (Patlak, Logan) give the plot coordinates ``(x, y)`` of every curve and turn the
line's slope and intercept into parameters. The line is a weighted least-squares fit over
the frames starting at or after t* (frame weights as chosen), vectorised over curves.

t*: given (``ModelInputs.tstar``, s) or found by :meth:`GraphicalModel.prepare` on the mean of
the curves it is given — the regional TACs, so that regional and voxelwise fits share it — as
the earliest frame start from which a line fits every later point of the plot within 10 %
of its value (:func:`~ketpet_bids.core.kinetics.timecourse.find_tstar`, the "maximum
relative error" rule of PMOD), keeping at least 3 frames.
"""

from __future__ import annotations

import dataclasses
from abc import abstractmethod
from typing import Any

import numpy as np

from ketpet_bids.core.kinetics.base import FrameTiming, ModelInputs
from ketpet_bids.core.kinetics.fitting import (
    CurveFit,
    CurveModel,
    first_frame,
    simple_regression,
    weights_and_selection,
)
from ketpet_bids.core.kinetics.timecourse import find_tstar, frame_weights

TSTAR_MAX_REL_ERROR = 0.10
TSTAR_CRITERION = ("earliest frame start from which a weighted line fits every later plot "
                   f"point within {TSTAR_MAX_REL_ERROR:.0%} of its value (at least 3 frames), "
                   "found on the mean of the regional curves")


class GraphicalModel(CurveModel):
    """Straight-line fit of a plot over the frames from t* on (see the module docstring)."""

    voxelwise = True

    @abstractmethod
    def plot(self, tacs: np.ndarray, frames: FrameTiming, inputs: ModelInputs
             ) -> tuple[np.ndarray, np.ndarray]:
        """Plot coordinates ``(x, y)``, each of shape (n_curves, n_frames)."""

    @abstractmethod
    def line_to_params(self, slope: np.ndarray, intercept: np.ndarray,
                       inputs: ModelInputs) -> dict[str, np.ndarray]:
        """Parameters (reported units) from the fitted line's slope and intercept."""

    def prepare(self, tacs: np.ndarray, frames: FrameTiming, inputs: ModelInputs
                ) -> ModelInputs:
        """Resolve t* on the mean curve when it is not given (see the module docstring)."""
        if inputs.tstar is not None:
            return inputs
        mean = np.asarray(tacs, dtype=float).mean(axis=0, keepdims=True)
        x, y = self.plot(mean, frames, inputs)
        weights = frame_weights(frames, inputs.weighting, inputs.half_life_s)
        index = find_tstar(x[0], y[0], weights, max_rel_error=TSTAR_MAX_REL_ERROR)
        return dataclasses.replace(inputs, tstar=float(np.asarray(frames.start)[index]),
                                   tstar_found=True)

    def fit_curves(self, tacs: np.ndarray, frames: FrameTiming, inputs: ModelInputs
                   ) -> CurveFit:
        """Line fit of each curve's plot over the frames from t* on."""
        weights, used = weights_and_selection(frames, inputs, first_frame(frames, inputs.tstar))
        x, y = self.plot(tacs, frames, inputs)
        with np.errstate(invalid="ignore"):
            slope, intercept = simple_regression(x[:, used], y[:, used], weights[used])
        predicted = slope[:, None] * x[:, used] + intercept[:, None]
        return CurveFit(params=self.line_to_params(slope, intercept, inputs),
                        observed=y[:, used], predicted=predicted, weights=weights[used],
                        n_params=2)

    def settings(self, frames: FrameTiming, inputs: ModelInputs) -> dict[str, Any]:
        """Input, weighting, t* (and how it was chosen)."""
        return {**self.common_settings(frames, inputs), "TStar": inputs.tstar, "TStarUnits": "s",
                "TStarCriterion": TSTAR_CRITERION if inputs.tstar_found else "given"}
