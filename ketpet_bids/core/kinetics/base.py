"""The kinetic-model contract shared by every model, and the window-average building block.

A model is a stateless object with a ``name``, its ``parameters`` (names as in DESIGN.md §6)
and two fitting entry points:

- :meth:`KineticModel.fit_regional` — TACs ``(n_regions, n_frames)`` → one table row per
  region with the parameters and the fit diagnostics ``r2``, ``aic``, ``n_frames_used``;
- :meth:`KineticModel.fit_voxelwise` — voxel curves ``(n_voxels, n_frames)`` float32 →
  ``{parameter: (n_voxels,) float32}``, vectorised over voxels.

Everything a model needs besides the curves and the frame timing (reference TAC, plasma
input, dose, body weight, time window) travels in one typed :class:`ModelInputs`.

Static "window" models (SUV, SUVR) are linear in the frames: each parameter is a frame-weighted
mean of the curve over a time window times a per-scan scale. :class:`WindowModel` implements
both entry points from two small methods, and :func:`window_weights` gives the weights.

Times are seconds and activity concentrations Bq/mL throughout.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import numpy as np
import pandas as pd

from ketpet_bids.core.kinetics.timecourse import C11_HALF_LIFE_S
from ketpet_bids.errors import InputError

DIAGNOSTICS: tuple[str, ...] = ("r2", "aic", "n_frames_used")
"""Fit-diagnostic columns that follow the parameters in every regional table."""


class FrameTiming(Protocol):
    """What a model needs to know about the frames (any object with these attributes).

    Attributes
    ----------
    start : np.ndarray, shape (n_frames,)
        Frame start times, seconds from injection.
    duration : np.ndarray, shape (n_frames,)
        Frame durations, seconds.
    """

    start: np.ndarray
    duration: np.ndarray


@dataclass(frozen=True)
class Frames:
    """A concrete :class:`FrameTiming` built from start times and durations (seconds).

    Examples
    --------
    >>> Frames.from_lists([0, 60], [60, 120]).end.tolist()
    [60.0, 180.0]
    """

    start: np.ndarray
    duration: np.ndarray

    @classmethod
    def from_lists(cls, start: Any, duration: Any) -> Frames:
        """Frames from two equally long sequences of seconds (checked: durations > 0)."""
        start_arr = np.asarray(start, dtype=float).ravel()
        duration_arr = np.asarray(duration, dtype=float).ravel()
        if start_arr.shape != duration_arr.shape or start_arr.size == 0:
            raise InputError("frame timing", f"{start_arr.size} frame starts but "
                             f"{duration_arr.size} frame durations",
                             "give one start and one duration per frame")
        if np.any(duration_arr <= 0) or not np.all(np.isfinite(start_arr)):
            raise InputError("frame timing", "frame durations must be positive and starts finite")
        return cls(start=start_arr, duration=duration_arr)

    @property
    def end(self) -> np.ndarray:
        """Frame end times (s), shape (n_frames,)."""
        return self.start + self.duration


@dataclass(frozen=True)
class PlasmaInput:
    """Arterial input for plasma-input models (filled by ``core/blood.py``).

    Attributes
    ----------
    time : np.ndarray, shape (n_samples,)
        Sample times, seconds from injection, increasing.
    parent_plasma : np.ndarray, shape (n_samples,)
        Metabolite-corrected plasma activity, Bq/mL, decay corrected like the PET.
    whole_blood : np.ndarray or None, shape (n_samples,)
        Whole-blood activity, Bq/mL, for the blood-volume term.
    """

    time: np.ndarray
    parent_plasma: np.ndarray
    whole_blood: np.ndarray | None = None


@dataclass(frozen=True)
class ModelInputs:
    """Everything a model may need besides the tissue curves and the frame timing.

    Attributes
    ----------
    reference_tac : np.ndarray or None, shape (n_frames,)
        Reference-region TAC (Bq/mL) on the same frames as the tissue curves.
    reference_name : str
        Name of the reference region (for sidecars), e.g. ``"wholebrain"``.
    plasma : PlasmaInput or None
        Arterial input function, for plasma-input models.
    injected_radioactivity_bq : float or None
        Injected radioactivity at injection time (Bq).
    body_weight_kg : float or None
        Body weight (kg).
    window : tuple of float
        ``(start, end)`` of the averaging window of static models, seconds from injection.
    tstar : float or None
        Start of the fitted time range (s) of graphical and multilinear models; None lets
        graphical models find it (:func:`~ketpet_bids.core.kinetics.timecourse.find_tstar`)
        and multilinear models use every frame.
    tstar_found : bool
        Whether ``tstar`` was found from the data (recorded in the sidecar).
    weighting : {"duration_decay", "uniform"}
        Frame weights of the fits (:func:`~ketpet_bids.core.kinetics.timecourse.frame_weights`).
    half_life_s : float
        Half-life of the radionuclide (s), for the decay weighting.
    k2prime : float or None
        Reference-region efflux rate k2′ (1/min) for Logan-reference, SRTM2 and MRTM2; None:
        Logan-reference leaves the k2′ term out, SRTM2/MRTM2 estimate it (see their modules).
    k2prime_found : bool
        Whether ``k2prime`` was estimated from the data (recorded in the sidecar).
    theta_bounds : tuple of float
        Range (1/min) of the basis-function rate θ3 = k2/(1 + BPND) of SRTM/SRTM2.
    n_basis : int
        Number of basis functions (log-spaced over ``theta_bounds``).
    """

    reference_tac: np.ndarray | None = None
    reference_name: str = "wholebrain"
    plasma: PlasmaInput | None = None
    injected_radioactivity_bq: float | None = None
    body_weight_kg: float | None = None
    window: tuple[float, float] = (1800.0, 3000.0)
    tstar: float | None = None
    tstar_found: bool = False
    weighting: str = "duration_decay"
    half_life_s: float = C11_HALF_LIFE_S
    k2prime: float | None = None
    k2prime_found: bool = False
    theta_bounds: tuple[float, float] = (0.006, 0.6)
    n_basis: int = 100


class KineticModel(ABC):
    """A kinetic model: its name, parameters and the two fitting entry points.

    Parameters
    ----------
    input_kind : str or None
        One of :attr:`input_kinds` (``"plasma"``, ``"reference"`` or ``"none"``); None takes
        the first.

    Attributes
    ----------
    name : str
        Registry name (lower case, BIDS label), e.g. ``"suvr"``.
    parameters : tuple of str
        Parameter names, in output column order (DESIGN.md §6).
    voxelwise : bool
        Whether :meth:`fit_voxelwise` is supported (linear or basis-function forms).
    input_kinds : tuple of str
        Inputs the model can use, preferred first.
    """

    name: ClassVar[str]
    parameters: ClassVar[tuple[str, ...]]
    voxelwise: ClassVar[bool] = False
    input_kinds: ClassVar[tuple[str, ...]] = ("reference",)

    def __init__(self, input_kind: str | None = None) -> None:
        kind = input_kind or self.input_kinds[0]
        if kind not in self.input_kinds:
            raise InputError("--models", f"model '{self.name}' cannot use {kind} input",
                             f"it takes: {', '.join(self.input_kinds)}")
        self.input_kind = kind

    def prepare(self, tacs: np.ndarray, frames: FrameTiming, inputs: ModelInputs
                ) -> ModelInputs:
        """Settle data-dependent settings (t*, k2′) from a set of curves; default: unchanged.

        Call it on the regional TACs and pass the result to both :meth:`fit_regional` and
        :meth:`fit_voxelwise` so that regional and voxelwise fits share their settings.
        """
        return inputs

    @abstractmethod
    def fit_regional(self, tacs: np.ndarray, frames: FrameTiming,
                     inputs: ModelInputs) -> pd.DataFrame:
        """Fit every regional curve.

        Parameters
        ----------
        tacs : np.ndarray, shape (n_regions, n_frames)
            Regional TACs, Bq/mL.
        frames : FrameTiming
            Frame timing (s).
        inputs : ModelInputs
            Reference/plasma input, dose, weight and settings.

        Returns
        -------
        pandas.DataFrame
            ``n_regions`` rows in input order; columns :attr:`parameters` then
            :data:`DIAGNOSTICS`.
        """

    def fit_voxelwise(self, data: np.ndarray, frames: FrameTiming,
                      inputs: ModelInputs) -> dict[str, np.ndarray]:
        """Fit every voxel curve, vectorised over voxels.

        Parameters
        ----------
        data : np.ndarray, shape (n_voxels, n_frames), float32
            Voxel TACs, Bq/mL.
        frames, inputs
            As for :meth:`fit_regional`.

        Returns
        -------
        dict
            ``{parameter: np.ndarray (n_voxels,) float32}`` for each of :attr:`parameters`.
        """
        raise NotImplementedError(f"model '{self.name}' has no voxelwise form")

    @abstractmethod
    def settings(self, frames: FrameTiming, inputs: ModelInputs) -> dict[str, Any]:
        """Model settings for the JSON sidecar of the outputs (BIDS-style keys)."""


def window_weights(frames: FrameTiming, window: tuple[float, float]) -> np.ndarray:
    """Weights of each frame in the time average over ``window``.

    A frame contributes in proportion to the time it overlaps the window, so frames that
    straddle a window edge count only for their part inside it; the weights sum to 1 (the
    average is over the measured time in the window; gaps between frames do not count).

    Parameters
    ----------
    frames : FrameTiming
        Frame starts and durations (s), ``n_frames`` of each.
    window : tuple of float
        ``(start, end)`` in seconds; must lie within the scan (first start to last end).

    Returns
    -------
    np.ndarray, shape (n_frames,)
        Non-negative weights summing to 1.

    Examples
    --------
    >>> window_weights(Frames.from_lists([0, 60, 120], [60, 60, 60]), (30.0, 120.0)).tolist()
    [0.3333333333333333, 0.6666666666666666, 0.0]
    """
    start = np.asarray(frames.start, dtype=float)
    end = start + np.asarray(frames.duration, dtype=float)
    w_start, w_end = float(window[0]), float(window[1])
    if not w_end > w_start:
        raise InputError("--suvr-window", f"window end {w_end:g} s is not after its start "
                         f"{w_start:g} s", "give START END in seconds with END > START")
    if w_start < start.min() - 1e-6 or w_end > end.max() + 1e-6:
        raise InputError("--suvr-window", f"window {w_start:g}-{w_end:g} s is outside the scan "
                         f"({start.min():g}-{end.max():g} s)",
                         "choose a window within the acquired frames")
    overlap = np.clip(np.minimum(end, w_end) - np.maximum(start, w_start), 0.0, None)
    total = overlap.sum()
    if total <= 0:
        raise InputError("--suvr-window", f"no frame overlaps the window {w_start:g}-{w_end:g} s")
    return overlap / total


def weighted_frame_mean(frame_images: Any, weights: np.ndarray) -> np.ndarray:
    """Weighted mean of 3D frames, streamed one frame at a time (bounded memory).

    Parameters
    ----------
    frame_images : iterable of (index, np.ndarray)
        ``(frame_index, volume)`` pairs, each volume of the same shape; only frames with a
        non-zero weight need to be supplied.
    weights : np.ndarray, shape (n_frames,)
        Frame weights (e.g. from :func:`window_weights`).

    Returns
    -------
    np.ndarray, float32
        ``sum_i weights[i] * volume_i`` with the volumes' shape (float64 accumulation).
    """
    total: np.ndarray | None = None
    for index, volume in frame_images:
        term = float(weights[index]) * np.asarray(volume, dtype=np.float64)
        total = term if total is None else total + term
    if total is None:
        raise ValueError("no frames were supplied")
    return total.astype(np.float32)


class WindowModel(KineticModel):
    """Static model: parameter = window mean of the curve × a per-scan scale.

    Subclasses give :meth:`scale` (e.g. 1 / reference mean for SUVR). ``r2`` and ``aic`` are
    NaN for these models: nothing is fitted, so there are no residuals to summarise;
    ``n_frames_used`` counts the frames that overlap the window.
    """

    voxelwise: ClassVar[bool] = True

    @abstractmethod
    def scale(self, frames: FrameTiming, inputs: ModelInputs) -> float:
        """Factor applied to the window mean of a curve to give the parameter."""

    def fit_regional(self, tacs: np.ndarray, frames: FrameTiming,
                     inputs: ModelInputs) -> pd.DataFrame:
        """Window mean × scale for each region (see :class:`KineticModel`)."""
        tacs = np.atleast_2d(np.asarray(tacs, dtype=float))
        weights = window_weights(frames, inputs.window)
        _check_frames(tacs.shape[1], weights.size, "regional TACs")
        values = tacs @ weights * self.scale(frames, inputs)
        n_regions = tacs.shape[0]
        return pd.DataFrame({
            self.parameters[0]: values,
            "r2": np.full(n_regions, np.nan),
            "aic": np.full(n_regions, np.nan),
            "n_frames_used": np.full(n_regions, int(np.count_nonzero(weights))),
        })

    def fit_voxelwise(self, data: np.ndarray, frames: FrameTiming,
                      inputs: ModelInputs) -> dict[str, np.ndarray]:
        """Window mean × scale for each voxel (see :class:`KineticModel`)."""
        weights = window_weights(frames, inputs.window)
        _check_frames(data.shape[1], weights.size, "voxel data")
        return self.map_from_mean(np.asarray(data, dtype=np.float32)
                                  @ weights.astype(np.float32), frames, inputs)

    def map_from_mean(self, window_mean: np.ndarray, frames: FrameTiming,
                      inputs: ModelInputs) -> dict[str, np.ndarray]:
        """Parameter map from a precomputed window-mean image (see :func:`weighted_frame_mean`).

        Parameters
        ----------
        window_mean : np.ndarray, any shape
            Window mean of the voxel curves (Bq/mL).

        Returns
        -------
        dict
            ``{parameter: float32 array of the same shape}``.
        """
        scale = np.float32(self.scale(frames, inputs))
        return {self.parameters[0]: np.asarray(window_mean, dtype=np.float32) * scale}

    def settings(self, frames: FrameTiming, inputs: ModelInputs) -> dict[str, Any]:
        """Window, weighting and frames used."""
        weights = window_weights(frames, inputs.window)
        return {
            "Model": self.name,
            "WindowStart": float(inputs.window[0]),
            "WindowEnd": float(inputs.window[1]),
            "Units": "s",
            "Weighting": "frame time overlapping the window (partial frames count partially)",
            "FramesUsed": int(np.count_nonzero(weights)),
            "DiagnosticsNote": "r2 and aic are n/a: the model is an average, not a fit",
        }


def _check_frames(n_data: int, n_frames: int, what: str) -> None:
    if n_data != n_frames:
        raise InputError(what, f"{n_data} frames in the data but {n_frames} in the frame timing",
                         "use the frame timing of the same PET run")
