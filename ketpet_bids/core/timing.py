"""Frame timing: mid-frame times, reference-frame selection and time-weighted means.

Times are seconds (relative to the PET ``TimeZero``, as in the BIDS sidecar); images are
indexed ``(x, y, z, frame)``.

Examples
--------
>>> frame_mid_times([0.0, 60.0, 180.0], [60.0, 120.0, 300.0]).tolist()
[30.0, 120.0, 330.0]
>>> sel = select_reference_frames([0.0, 60.0, 180.0], [60.0, 120.0, 300.0], start_time=120.0)
>>> sel.indices.tolist(), sel.start_time_used, sel.fallback
([2], 180.0, False)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt


def frame_mid_times(frame_start: npt.ArrayLike, frame_duration: npt.ArrayLike) -> np.ndarray:
    """Mid-frame times.

    Parameters
    ----------
    frame_start, frame_duration
        Shape ``(T,)``, seconds.

    Returns
    -------
    numpy.ndarray
        Shape ``(T,)``, float64 seconds: ``start + duration / 2``.
    """
    start, duration = _as_timing(frame_start, frame_duration)
    return start + 0.5 * duration


@dataclass(frozen=True)
class ReferenceFrames:
    """Which frames build the reference and are registered to it.

    Attributes
    ----------
    indices
        Shape ``(K,)``, sorted frame indices (``K >= 1``).
    start_time_used
        Start of the first selected frame (s).
    fallback
        True when no frame starts at or after the requested start time, so that the last
        frame was used instead.
    """

    indices: np.ndarray
    start_time_used: float
    fallback: bool


def select_reference_frames(frame_start: npt.ArrayLike, frame_duration: npt.ArrayLike,
                            start_time: float) -> ReferenceFrames:
    """Frames that start at or after ``start_time``; the last frame when there are none.

    Parameters
    ----------
    frame_start, frame_duration
        Shape ``(T,)``, seconds, ``T >= 1``.
    start_time
        Requested start time (s).

    Returns
    -------
    ReferenceFrames
    """
    start, _ = _as_timing(frame_start, frame_duration)
    indices = np.flatnonzero(start >= start_time)
    fallback = indices.size == 0
    if fallback:
        indices = np.array([start.size - 1])
    return ReferenceFrames(indices=indices, start_time_used=float(start[indices[0]]),
                           fallback=bool(fallback))


def time_weighted_mean(frames: Any, frame_duration: npt.ArrayLike,
                       indices: npt.ArrayLike | None = None) -> np.ndarray:
    """Duration-weighted mean of selected frames, read one frame at a time.

    Parameters
    ----------
    frames
        4D array-like ``(X, Y, Z, T)`` supporting ``frames[..., t]`` (a numpy array or a
        nibabel ``dataobj``, so that only one frame is in memory at a time), or a 3D array
        (one frame).
    frame_duration
        Shape ``(T,)``, seconds (weights).
    indices
        Frames to average; all frames when None.

    Returns
    -------
    numpy.ndarray
        Shape ``(X, Y, Z)``, float32: ``sum_t d_t f_t / sum_t d_t`` (accumulated in a 3D
        float64 array).
    """
    if len(frames.shape) == 3:
        return np.asarray(frames, dtype=np.float32)
    duration = np.asarray(frame_duration, dtype=float)
    if duration.shape != (frames.shape[3],):
        raise ValueError(f"{duration.size} frame durations for {frames.shape[3]} frames")
    chosen = np.arange(duration.size) if indices is None else np.asarray(indices, dtype=int)
    weights = duration[chosen]
    if chosen.size == 0 or np.sum(weights) <= 0:
        raise ValueError("time-weighted mean needs at least one frame of positive duration")
    total = np.zeros(frames.shape[:3], dtype=np.float64)
    for t, w in zip(chosen, weights, strict=True):
        total += w * np.asarray(frames[..., int(t)], dtype=np.float64)
    return (total / np.sum(weights)).astype(np.float32)


def _as_timing(frame_start: npt.ArrayLike,
               frame_duration: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Validate and return ``(start, duration)`` as float64 arrays of equal length >= 1."""
    start = np.atleast_1d(np.asarray(frame_start, dtype=float))
    duration = np.atleast_1d(np.asarray(frame_duration, dtype=float))
    if start.ndim != 1 or start.shape != duration.shape or start.size == 0:
        raise ValueError(f"frame_start {start.shape} and frame_duration {duration.shape} must be "
                         "non-empty 1D arrays of equal length")
    if np.any(duration <= 0):
        raise ValueError("frame durations must be positive")
    return start, duration
