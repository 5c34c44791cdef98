"""Shared machinery of the fitted models: batched weighted least squares and diagnostics.

A fitted model implements :meth:`CurveModel.fit_curves` for a batch of curves; this module
turns it into the two entry points of :class:`~ketpet_bids.core.kinetics.base.KineticModel`:

- ``fit_regional`` → table of parameters + ``r2`` (weighted coefficient of determination of
  the fitted variable), ``aic`` (``n ln(WRSS/n) + 2p``, ``p`` fitted parameters) and
  ``n_frames_used``;
- ``fit_voxelwise`` → float32 maps, computed in chunks of :data:`CHUNK_VOXELS` curves to
  bound memory (every step inside a chunk is vectorised over its curves).
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ketpet_bids.core.kinetics.base import (
    FrameTiming,
    KineticModel,
    ModelInputs,
    _check_frames,
)
from ketpet_bids.core.kinetics.timecourse import frame_weights, grid_for
from ketpet_bids.errors import InputError

CHUNK_VOXELS = 20_000
"""Curves fitted at once by :meth:`CurveModel.fit_voxelwise` (memory ∝ chunk × frames)."""


@dataclass(frozen=True)
class CurveFit:
    """Result of fitting a batch of curves.

    Attributes
    ----------
    params : dict of str to np.ndarray
        Each of shape (n_curves,), reported units.
    observed, predicted : np.ndarray, shape (n_curves, n_used)
        The fitted variable and the model's prediction of it.
    weights : np.ndarray, shape (n_used,)
        Least-squares weights of the used points.
    n_params : int
        Number of fitted parameters (for the AIC).
    """

    params: dict[str, np.ndarray]
    observed: np.ndarray
    predicted: np.ndarray
    weights: np.ndarray
    n_params: int

    def diagnostics(self) -> dict[str, np.ndarray]:
        """``r2``, ``aic`` and ``n_frames_used`` per curve (see the module docstring)."""
        w, n = self.weights, self.weights.size
        with np.errstate(divide="ignore", invalid="ignore"):  # empty or non-finite curves
            resid = self.observed - self.predicted
            wrss = (w * resid**2).sum(axis=-1)
            mean = (w * self.observed).sum(axis=-1, keepdims=True) / w.sum()
            wtss = (w * (self.observed - mean) ** 2).sum(axis=-1)
            r2 = 1.0 - wrss / wtss
            aic = n * np.log(wrss / n) + 2 * self.n_params
        return {"r2": r2, "aic": aic,
                "n_frames_used": np.full(self.observed.shape[0], n, dtype=int)}


class CurveModel(KineticModel):
    """A model fitted curve by curve, vectorised over curves (see the module docstring)."""

    @abstractmethod
    def fit_curves(self, tacs: np.ndarray, frames: FrameTiming, inputs: ModelInputs
                   ) -> CurveFit:
        """Fit a batch of curves, shape (n_curves, n_frames), Bq/mL; ``inputs`` prepared."""

    def fit_regional(self, tacs: np.ndarray, frames: FrameTiming,
                     inputs: ModelInputs) -> pd.DataFrame:
        """Parameters and diagnostics per region (see :class:`KineticModel`)."""
        tacs = np.atleast_2d(np.asarray(tacs, dtype=float))
        _check_frames(tacs.shape[1], np.size(frames.start), "regional TACs")
        fit = self.fit_curves(tacs, frames, self.prepare(tacs, frames, inputs))
        return pd.DataFrame({**{p: fit.params[p] for p in self.parameters},
                             **fit.diagnostics()})

    def fit_voxelwise(self, data: np.ndarray, frames: FrameTiming,
                      inputs: ModelInputs) -> dict[str, np.ndarray]:
        """Float32 parameter maps, fitted in chunks (see :class:`KineticModel`)."""
        if not self.voxelwise:
            raise NotImplementedError(f"model '{self.name}' has no voxelwise form")
        data = np.asarray(data)
        _check_frames(data.shape[1], np.size(frames.start), "voxel data")
        inputs = self.prepare(data, frames, inputs)
        maps = {p: np.empty(data.shape[0], dtype=np.float32) for p in self.parameters}
        for first in range(0, data.shape[0], CHUNK_VOXELS):
            chunk = slice(first, first + CHUNK_VOXELS)
            fit = self.fit_curves(data[chunk].astype(float), frames, inputs)
            for p in self.parameters:
                maps[p][chunk] = fit.params[p]
        return maps

    def common_settings(self, frames: FrameTiming, inputs: ModelInputs) -> dict[str, Any]:
        """Sidecar keys shared by fitted models (input, weighting, t*)."""
        out: dict[str, Any] = {"Model": self.name, "Input": self.input_kind,
                               "Weighting": inputs.weighting,
                               "ParameterUnits": parameter_units(self.parameters),
                               "DiagnosticsNote": "r2: weighted R² of the fitted variable; "
                               "aic: n ln(WRSS/n) + 2p"}
        if self.input_kind == "reference":
            out["ReferenceRegion"] = inputs.reference_name
        if inputs.weighting == "duration_decay":
            out["HalfLife"] = inputs.half_life_s
        return out


UNITS = {"K1": "mL/cm3/min", "k2": "1/min", "k3": "1/min", "k4": "1/min",
         "k2prime": "1/min", "Ki": "1/min", "VT": "mL/cm3", "VS": "mL/cm3", "vB": "unitless",
         "BPND": "unitless", "DVR": "unitless", "R1": "unitless", "intercept": "unitless"}


def parameter_units(parameters: tuple[str, ...]) -> dict[str, str]:
    """Units of each reported parameter (rates per minute)."""
    return {p: UNITS.get(p, "unitless") for p in parameters}


def weights_and_selection(frames: FrameTiming, inputs: ModelInputs,
                          first: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Frame weights and the boolean mask of frames from index ``first`` on."""
    weights = frame_weights(frames, inputs.weighting, inputs.half_life_s)
    used = np.arange(weights.size) >= first
    return weights, used


def first_frame(frames: FrameTiming, tstar: float | None) -> int:
    """Index of the first frame starting at or after ``tstar`` (s; 0 when None)."""
    if tstar is None:
        return 0
    start = np.asarray(frames.start, dtype=float)
    index = int(np.searchsorted(start, float(tstar) - 1e-6))
    if index > start.size - 3:
        raise InputError("--tstar", f"t* = {tstar:g} s leaves fewer than 3 frames "
                         f"(last frame starts at {start[-1]:g} s)", "choose an earlier t*")
    return index


def lstsq_batched(design: np.ndarray, y: np.ndarray, weights: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Weighted least squares with one design matrix per curve (batched, no Python loop).

    Columns are scaled to unit weighted norm before a batched pseudo-inverse, so regressors
    of very different magnitude (integrals vs activities) stay well conditioned; curves with
    a degenerate design get NaN.

    Parameters
    ----------
    design : np.ndarray, shape (m, n, p)
    y : np.ndarray, shape (m, n)
    weights : np.ndarray, shape (n,)

    Returns
    -------
    coef : np.ndarray, shape (m, p)
    predicted : np.ndarray, shape (m, n)
    """
    root = np.sqrt(weights)
    xw = design * root[None, :, None]
    scale = np.sqrt((xw**2).sum(axis=1, keepdims=True))
    bad = ~np.all(np.isfinite(xw), axis=(1, 2)) | np.any(scale[:, 0, :] == 0, axis=1)
    scale[scale == 0] = 1.0
    xs = np.where(bad[:, None, None], 0.0, xw / scale)
    coef = np.einsum("mpn,mn->mp", np.linalg.pinv(xs), np.where(bad[:, None], 0.0, y * root))
    coef = coef / scale[:, 0, :]
    coef[bad] = np.nan
    return coef, np.einsum("mnp,mp->mn", design, coef)


def simple_regression(x: np.ndarray, y: np.ndarray, weights: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Weighted straight-line fit ``y = slope x + intercept`` per curve (closed form).

    Parameters
    ----------
    x, y : np.ndarray, shape (m, n)
    weights : np.ndarray, shape (n,)

    Returns
    -------
    slope, intercept : np.ndarray, shape (m,)
    """
    w = weights / weights.sum()
    mx, my = x @ w, y @ w
    dx = x - mx[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = ((dx * (y - my[:, None])) @ w) / ((dx**2) @ w)
    return slope, my - slope * mx


def reference_curve(frames: FrameTiming, inputs: ModelInputs, model: str) -> np.ndarray:
    """The reference TAC (Bq/mL, shape (n_frames,)), checked; InputError when missing."""
    if inputs.reference_tac is None:
        raise InputError("--ref-region", f"model '{model}' needs a reference-region TAC",
                         "give a reference region (e.g. --ref-region cerebellum)")
    reference = np.asarray(inputs.reference_tac, dtype=float).ravel()
    _check_frames(reference.size, np.size(frames.start), f"reference TAC "
                  f"'{inputs.reference_name}'")
    return reference


def plasma_on_grid(frames: FrameTiming, inputs: ModelInputs, model: str
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Metabolite-corrected plasma and whole blood (Bq/mL) on the fine grid of ``frames``.

    Whole blood is zeros when the input has none. InputError when there is no plasma input or
    it ends before the scan.
    """
    plasma = inputs.plasma
    if plasma is None:
        raise InputError("blood data", f"model '{model}' needs an arterial plasma input",
                         "add a _blood.tsv recording to the PET run, or choose a "
                         "reference-tissue model")
    grid = grid_for(frames)
    if plasma.time[-1] < grid.t[-1] - grid.dt:
        raise InputError("blood data", f"the plasma input ends at {plasma.time[-1]:g} s, before "
                         f"the scan ({grid.t[-1]:g} s)", "provide samples up to the scan end")
    cp = grid.from_samples(plasma.time, plasma.parent_plasma)
    wb = (np.zeros_like(cp) if plasma.whole_blood is None
          else grid.from_samples(plasma.time, plasma.whole_blood))
    return cp, wb


def input_at_frames(frames: FrameTiming, inputs: ModelInputs, kind: str, model: str
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Input curve and its running integral as frame means, shape (n_frames,) each.

    ``kind`` "plasma": metabolite-corrected plasma (exact frame means on the fine grid);
    "reference": the reference TAC and the frame means of its spline-reconstructed integral.
    """
    grid = grid_for(frames)
    if kind == "plasma":
        cp, _ = plasma_on_grid(frames, inputs, model)
        return grid.frame_means(cp), grid.frame_means(grid.running_integral(cp))
    reference = reference_curve(frames, inputs, model)
    return reference, grid.integral_operator @ reference
