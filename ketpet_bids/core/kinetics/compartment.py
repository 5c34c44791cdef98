"""Plasma-input compartment models fitted by variable projection.

The PET signal of a compartment model is a sum of exponential convolutions of the
metabolite-corrected plasma ``C_p`` plus the blood term::

    C_PET(t) = (1 − vB) Σ_i c_i (C_p ⊗ e^{−α_i t})(t) + vB C_wb(t)

Given the rates ``α`` the coefficients ``(1 − vB) c_i`` and ``vB`` are linear: they are solved
by weighted non-negative least squares inside the objective, so only the rates are searched
(variable projection): a coarse grid of rates picks the start, then a bounded trust-region
least-squares fit in log-rates refines it. Convolutions are exact for the piecewise-linear
plasma on the fine grid, and the model is averaged over each frame like the data. Without
whole-blood data vB is fixed at 0. These fits run per region (not voxelwise).
"""

from __future__ import annotations

import itertools
from abc import abstractmethod
from typing import Any

import numpy as np
from scipy.optimize import least_squares, nnls

from ketpet_bids.core.kinetics.base import FrameTiming, ModelInputs
from ketpet_bids.core.kinetics.fitting import CurveFit, CurveModel, plasma_on_grid
from ketpet_bids.core.kinetics.timecourse import PER_MIN, frame_weights, grid_for

RATE_BOUNDS_PER_MIN = (1e-4, 10.0)
"""Range searched for every exponential rate (1/min)."""
GRID_PER_RATE = 16


class CompartmentModel(CurveModel):
    """Variable-projection fit of exponential-convolution models (module docstring)."""

    input_kinds = ("plasma",)
    n_rates: int
    """Number of searched rates."""
    integral_column: bool = False
    """Whether a zero rate (the running integral, irreversible trapping) is always present."""

    @abstractmethod
    def to_params(self, rates: np.ndarray, coefs: np.ndarray, vb: float) -> dict[str, float]:
        """Reported parameters from the rates (1/s, sorted), tissue coefficients (1/s) and vB."""

    def fit_curves(self, tacs: np.ndarray, frames: FrameTiming, inputs: ModelInputs
                   ) -> CurveFit:
        """Variable-projection fit of each curve (a loop over regions, not voxels)."""
        cp, wb = plasma_on_grid(frames, inputs, self.name)
        grid = grid_for(frames)
        weights = frame_weights(frames, inputs.weighting, inputs.half_life_s)
        blood = grid.frame_means(wb) if np.any(wb) else None
        start_rates = np.geomspace(*RATE_BOUNDS_PER_MIN, GRID_PER_RATE) / PER_MIN
        table = grid.frame_means(grid.exp_convolve(cp, start_rates))
        fixed = ([grid.frame_means(grid.running_integral(cp))] if self.integral_column else [])
        fixed += [blood] if blood is not None else []

        def design(rates: np.ndarray) -> np.ndarray:
            columns = grid.frame_means(grid.exp_convolve(cp, rates))
            return np.column_stack([*fixed[:int(self.integral_column)], *columns,
                                    *fixed[int(self.integral_column):]])

        rows, predicted = [], np.empty_like(tacs)
        for index, tac in enumerate(tacs):
            rates, coef = self._fit_one(tac, weights, design, start_rates, table, fixed)
            predicted[index] = design(rates) @ coef
            vb = coef[-1] if blood is not None else 0.0
            tissue = coef[:-1] if blood is not None else coef
            rows.append(self.to_params(rates, tissue / (1.0 - vb) if vb < 1 else tissue, vb))
        params = {p: np.array([row[p] for row in rows]) for p in self.parameters}
        n_params = self.n_rates + self.n_rates + int(self.integral_column) + (blood is not None)
        return CurveFit(params=params, observed=tacs, predicted=predicted, weights=weights,
                        n_params=n_params)

    def _fit_one(self, tac: np.ndarray, weights: np.ndarray, design: Any,
                 start_rates: np.ndarray, table: np.ndarray, fixed: list[np.ndarray]
                 ) -> tuple[np.ndarray, np.ndarray]:
        root = np.sqrt(weights)
        target = tac * root

        def solve(columns: np.ndarray) -> tuple[np.ndarray, float]:
            coef, norm = nnls(columns * root[:, None], target)
            return coef, norm

        lead, tail = fixed[:int(self.integral_column)], fixed[int(self.integral_column):]
        best = min(itertools.combinations(range(start_rates.size), self.n_rates),
                   key=lambda combo: solve(np.column_stack(
                       [*lead, *table[list(combo)], *tail]))[1])
        start = np.log(start_rates[list(best)])
        bounds = np.log(np.array(RATE_BOUNDS_PER_MIN) / PER_MIN)

        def residual(log_rates: np.ndarray) -> np.ndarray:
            columns = design(np.sort(np.exp(log_rates)))
            coef, _ = solve(columns)
            return columns @ coef * root - target

        fit = least_squares(residual, start, bounds=(np.full(self.n_rates, bounds[0]),
                                                     np.full(self.n_rates, bounds[1])),
                            x_scale=1.0, xtol=1e-12, ftol=1e-12, gtol=1e-12, max_nfev=400)
        rates = np.sort(np.exp(fit.x))
        coef, _ = solve(design(rates))
        return rates, coef

    def settings(self, frames: FrameTiming, inputs: ModelInputs) -> dict[str, Any]:
        """Weighting, rate bounds and the blood-volume handling."""
        has_blood = inputs.plasma is not None and inputs.plasma.whole_blood is not None
        return {**self.common_settings(frames, inputs),
                "RateBounds": list(RATE_BOUNDS_PER_MIN), "RateBoundsUnits": "1/min",
                "Method": "variable projection (NNLS coefficients, trust-region log-rates)",
                "BloodVolume": "fitted (whole blood)" if has_blood
                else "fixed at 0 (no whole-blood data)"}
