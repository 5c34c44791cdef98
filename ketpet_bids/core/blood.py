"""Arterial input from BIDS-PET blood recordings (``_recording-<label>_blood.tsv`` + JSON).

Reading (:func:`read_blood`): columns ``time`` and any of ``plasma_radioactivity``,
``whole_blood_radioactivity``, ``metabolite_parent_fraction`` (``n/a`` allowed); units from
the JSON sidecar per column (``time``: s or min; radioactivity: any concentration unit of
:func:`ketpet_bids.core.units.activity_concentration_factor`, converted to Bq/mL; parent
fraction: unitless/arbitrary/fraction, or %). Small negative radioactivities (counting
noise) are set to 0. InputError (file, column, fix) for a missing ``time`` column, unsorted
times, missing or unknown units, or a parent fraction outside [0, 1].

Building the input (:func:`plasma_input`):

1. Merge recordings: plasma samples of every recording; a recording with whole blood but no
   plasma (an autosampler) gives plasma as whole blood × the plasma/whole-blood ratio of the
   recordings that measured both (linear in time, constant outside their samples). Samples
   are pooled and sorted; equal times are averaged.
2. Decay: blood radioactivity is taken to share the PET's decay state (its sidecar's
   ``ImageDecayCorrected`` / ``ImageDecayCorrectionTime``) and is brought, like the image, to
   decay correction at ``InjectionStart``: × ``e^{λ(t − t_inj)}`` when not corrected,
   × ``e^{λ(t_dc − t_inj)}`` when corrected to ``t_dc``.
3. Parent fraction: a Hill-type model ``f(t) = f∞ + (1 − f∞)/(1 + (t/t50)^h)`` fitted by least
   squares (``"hill"``, needs ≥ 4 samples, else interpolation is used and recorded), or linear
   interpolation through ``(0, 1)`` and the samples, constant after the last (``"interp"``).
   Without a parent-fraction column the plasma is taken as metabolite corrected already.
4. Fine grid: plasma and whole blood interpolated linearly on ``0, dt, …, scan end`` (plasma 0
   at time 0 when the first sample is later); past the last sample a mono-exponential fitted
   to the last 3 samples continues the curve (constant if it does not decay).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import least_squares

from ketpet_bids.core import units
from ketpet_bids.core.kinetics.base import PlasmaInput
from ketpet_bids.errors import InputError

RADIOACTIVITY = ("plasma_radioactivity", "whole_blood_radioactivity")
PARENT = "metabolite_parent_fraction"
_FRACTION_UNITS = {"": 1.0, "unitless": 1.0, "arbitrary": 1.0, "fraction": 1.0, "none": 1.0,
                   "1": 1.0, "%": 0.01, "percent": 0.01}
_TIME_UNITS = {"s": 1.0, "sec": 1.0, "second": 1.0, "seconds": 1.0, "min": 60.0,
               "minute": 60.0, "minutes": 60.0}
PARENT_MODELS = ("hill", "interp")


@dataclass(frozen=True)
class BloodRecording:
    """One blood recording in the program's units.

    Attributes
    ----------
    path : Path
        The TSV file.
    time : np.ndarray, shape (n,)
        Seconds from ``TimeZero``, non-decreasing.
    plasma, whole_blood : np.ndarray or None, shape (n,)
        Bq/mL as recorded (decay state unchanged), NaN where ``n/a``; None if absent.
    parent_fraction : np.ndarray or None, shape (n,)
        In [0, 1], NaN where ``n/a``; None if absent.
    """

    path: Path
    time: np.ndarray
    plasma: np.ndarray | None
    whole_blood: np.ndarray | None
    parent_fraction: np.ndarray | None


def read_blood(path: str | Path) -> BloodRecording:
    """Read and check one ``_blood.tsv`` and its JSON sidecar (see the module docstring)."""
    path = Path(path)
    try:
        table = pd.read_csv(path, sep="\t", na_values=["n/a", "N/A", "NaN", "nan"])
    except (OSError, ValueError, pd.errors.ParserError) as err:
        raise InputError(path, f"cannot be read as a TSV table ({err})") from None
    sidecar_path = path.with_name(path.name.removesuffix(".tsv") + ".json")
    sidecar = _read_sidecar(sidecar_path)
    if "time" not in table.columns:
        raise InputError(path, f"column 'time' is missing (found {list(table.columns)})",
                         "add a 'time' column with the sampling times")
    time = table["time"].to_numpy(dtype=float) * _unit(
        _TIME_UNITS, sidecar, "time", sidecar_path, default="s")
    order = np.diff(time)
    if np.any(~np.isfinite(time)) or np.any(order < 0):
        row = int(np.argmax(order < 0)) + 2 if np.any(order < 0) else 1
        raise InputError(path, f"column 'time' is not sorted or has missing values "
                         f"(at data row {row})", "sort the rows by sampling time")
    values: dict[str, np.ndarray | None] = {}
    for column in RADIOACTIVITY:
        if column not in table.columns:
            values[column] = None
            continue
        units_text = _units_text(sidecar, column, sidecar_path)
        try:
            factor = units.activity_concentration_factor(units_text)
        except ValueError as err:
            raise InputError(sidecar_path, f"{column}: {err}",
                             "give Units such as kBq/mL, Bq/mL or nCi/mL") from None
        values[column] = np.clip(table[column].to_numpy(dtype=float) * factor, 0.0, None)
    parent = None
    if PARENT in table.columns:
        parent = table[PARENT].to_numpy(dtype=float) * _unit(
            _FRACTION_UNITS, sidecar, PARENT, sidecar_path, default="unitless")
        bad = np.flatnonzero((parent > 1.0 + 1e-6) | (parent < 0.0))
        if bad.size:
            raise InputError(path, f"{PARENT} is {parent[bad[0]]:g} at time {time[bad[0]]:g} s, "
                             "outside [0, 1]", "give the parent fraction as a fraction of 1 "
                             "(or declare Units '%' in the JSON)")
    if values["plasma_radioactivity"] is None and values["whole_blood_radioactivity"] is None:
        raise InputError(path, "neither plasma_radioactivity nor whole_blood_radioactivity "
                         "is present", "add the measured radioactivity columns")
    return BloodRecording(path=path, time=time, plasma=values["plasma_radioactivity"],
                          whole_blood=values["whole_blood_radioactivity"],
                          parent_fraction=parent)


def _read_sidecar(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise InputError(path, "the blood recording's JSON sidecar is missing",
                         "add it with the Units of every column")
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise InputError(path, f"cannot be read as JSON ({err})") from None


def _units_text(sidecar: dict[str, Any], column: str, where: Path) -> str:
    entry = sidecar.get(column)
    if not isinstance(entry, dict) or "Units" not in entry:
        raise InputError(where, f"no Units for column '{column}'",
                         f'add "{column}": {{"Units": "kBq/mL"}} (or the unit used)')
    return str(entry["Units"])


def _unit(table: dict[str, float], sidecar: dict[str, Any], column: str, where: Path,
          default: str | None) -> float:
    entry = sidecar.get(column)
    text = entry.get("Units") if isinstance(entry, dict) else None
    text = default if text is None else text
    if text is None:
        raise InputError(where, f"no Units for column '{column}'",
                         f'add "{column}": {{"Units": "s"}}')
    key = str(text).strip().lower()
    if key not in table:
        raise InputError(where, f"unknown Units '{text}' for column '{column}'",
                         f"use one of: {', '.join(k for k in table if k)}")
    return table[key]


def hill(t: np.ndarray, t50: float, h: float, f_inf: float) -> np.ndarray:
    """Hill-type parent fraction ``f∞ + (1 − f∞)/(1 + (t/t50)^h)`` at times ``t`` (s)."""
    ratio = (np.clip(np.asarray(t, dtype=float), 0.0, None) / t50) ** h
    return f_inf + (1.0 - f_inf) / (1.0 + ratio)


@dataclass(frozen=True)
class ParentFraction:
    """Parent-fraction curve: the method used, its parameters and the samples it came from.

    Call it with times (s) to evaluate.
    """

    method: str
    params: dict[str, float]
    time: np.ndarray
    fraction: np.ndarray

    def __call__(self, t: np.ndarray) -> np.ndarray:
        """Parent fraction at times ``t`` (s), in [0, 1]."""
        if self.method == "hill":
            return hill(t, **self.params)
        if self.method == "none":
            return np.ones_like(np.asarray(t, dtype=float))
        return np.interp(t, self.time, self.fraction)


def fit_parent_fraction(time: np.ndarray, fraction: np.ndarray, method: str = "hill"
                        ) -> ParentFraction:
    """Parent-fraction curve from samples (NaNs dropped; see the module docstring).

    Parameters
    ----------
    time, fraction : np.ndarray, shape (n,)
        Seconds and fractions in [0, 1].
    method : {"hill", "interp"}

    Returns
    -------
    ParentFraction
    """
    if method not in PARENT_MODELS:
        raise InputError("parent fraction", f"unknown parent-fraction model '{method}'",
                         f"choose from: {', '.join(PARENT_MODELS)}")
    ok = np.isfinite(time) & np.isfinite(fraction)
    t, f = np.asarray(time, float)[ok], np.asarray(fraction, float)[ok]
    if t.size == 0:
        return ParentFraction("none", {}, t, f)
    if t[0] > 0:
        t, f = np.concatenate([[0.0], t]), np.concatenate([[1.0], f])
    if method == "interp" or np.count_nonzero(t > 0) < 4:
        return ParentFraction("interp", {}, t, f)
    below = t[f <= (1 + f.min()) / 2]
    start = [float(below[0]) if below.size else float(t[-1]), 1.5, float(f.min()) / 2]
    fit = least_squares(lambda p: hill(t, *p) - f, start,
                        bounds=([1.0, 0.2, 0.0], [1e5, 10.0, 0.999]), xtol=1e-12, ftol=1e-12)
    return ParentFraction("hill", dict(zip(("t50", "h", "f_inf"), map(float, fit.x),
                                           strict=True)), t, f)


def decay_factors(time: np.ndarray, half_life_s: float, *, decay_corrected: bool,
                  decay_correction_time: float, injection_start: float = 0.0) -> np.ndarray:
    """Factors bringing point samples to decay correction at ``injection_start`` (s).

    Examples
    --------
    >>> decay_factors(np.array([0.0, 1223.4]), 1223.4, decay_corrected=False,
    ...               decay_correction_time=0.0).tolist()
    [1.0, 2.0]
    """
    lam = np.log(2.0) / float(half_life_s)
    time = np.asarray(time, dtype=float)
    if decay_corrected:
        return np.full(time.shape, np.exp(lam * (float(decay_correction_time) - injection_start)))
    return np.exp(lam * (time - injection_start))


def merge_recordings(recordings: list[BloodRecording]
                     ) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray] | None,
                                tuple[np.ndarray, np.ndarray] | None]:
    """Pooled ``(time, value)`` samples of plasma, whole blood and parent fraction.

    Whole blood and parent fraction are None when no recording has them. InputError when no
    plasma can be had (see the module docstring for autosampler plasma).
    """
    both = [r for r in recordings if r.plasma is not None and r.whole_blood is not None]
    ratio_t = np.concatenate([r.time for r in both]) if both else np.empty(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio_v = (np.concatenate([r.plasma / r.whole_blood for r in both]) if both
                   else np.empty(0))
    keep = np.isfinite(ratio_v) & (ratio_v > 0)
    ratio_t, ratio_v = ratio_t[keep], ratio_v[keep]
    order = np.argsort(ratio_t, kind="stable")
    ratio_t, ratio_v = ratio_t[order], ratio_v[order]
    plasma, blood, parent = [], [], []
    for rec in recordings:
        if rec.plasma is not None:
            plasma.append((rec.time, rec.plasma))
        elif ratio_t.size:
            plasma.append((rec.time, rec.whole_blood * np.interp(rec.time, ratio_t, ratio_v)))
        if rec.whole_blood is not None:
            blood.append((rec.time, rec.whole_blood))
        if rec.parent_fraction is not None:
            parent.append((rec.time, rec.parent_fraction))
    if not plasma:
        raise InputError(recordings[0].path if recordings else "blood data",
                         "no plasma_radioactivity in any recording (and no recording with both "
                         "plasma and whole blood to convert whole blood)",
                         "add plasma samples (manual recording)")
    return _pool(plasma), _pool(blood) if blood else None, _pool(parent) if parent else None


def _pool(pairs: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Sorted samples without NaNs; values at equal times averaged."""
    t = np.concatenate([p[0] for p in pairs])
    v = np.concatenate([p[1] for p in pairs])
    ok = np.isfinite(t) & np.isfinite(v)
    times, inverse = np.unique(t[ok], return_inverse=True)
    sums = np.bincount(inverse, weights=v[ok])
    return times, sums / np.bincount(inverse)


def on_grid(time: np.ndarray, values: np.ndarray, grid: np.ndarray) -> tuple[np.ndarray, str]:
    """Samples linearly interpolated on ``grid`` with the tail rule of the module docstring.

    Returns the curve and a description of the tail handling.
    """
    t, v = np.asarray(time, float), np.asarray(values, float)
    if t[0] > 0:
        t, v = np.concatenate([[0.0], t]), np.concatenate([[0.0], v])
    curve = np.interp(grid, t, v)
    after = grid > t[-1]
    if not after.any():
        return curve, "none needed"
    tail_t, tail_v = t[-3:], v[-3:]
    rate = 0.0
    if tail_t.size >= 2 and np.all(tail_v > 0):
        rate = -np.polyfit(tail_t, np.log(tail_v), 1)[0]
    rate = max(rate, 0.0)
    curve[after] = v[-1] * np.exp(-rate * (grid[after] - t[-1]))
    return curve, f"mono-exponential from the last 3 samples (rate {rate * 60:.4g}/min)"


def plasma_input(paths: list[str | Path], *, scan_end_s: float, half_life_s: float,
                 decay_corrected: bool = True, decay_correction_time: float = 0.0,
                 injection_start: float = 0.0, parent_model: str = "hill", dt: float = 1.0
                 ) -> tuple[PlasmaInput, dict[str, Any]]:
    """Metabolite-corrected plasma input (and whole blood) on a fine grid from blood files.

    Parameters
    ----------
    paths
        ``_blood.tsv`` files of one PET run (autosampler and/or manual).
    scan_end_s
        End of the last frame (s); the grid runs from 0 to it.
    half_life_s
        Radionuclide half-life (s).
    decay_corrected, decay_correction_time, injection_start
        The PET sidecar's ``ImageDecayCorrected``, ``ImageDecayCorrectionTime`` (s) and
        ``InjectionStart`` (s), which the blood data are taken to share.
    parent_model
        ``"hill"`` or ``"interp"``.
    dt
        Grid step (s).

    Returns
    -------
    PlasmaInput
        On the grid: parent plasma and whole blood (None without whole-blood samples), Bq/mL,
        decay corrected to ``injection_start``.
    dict
        Settings for the sidecars (files, parent-fraction model and parameters, tail, decay).
    """
    if not paths:
        raise InputError("blood data", "no _blood.tsv recording was given")
    recordings = [read_blood(p) for p in paths]
    (pt, pv), blood, parent = merge_recordings(recordings)
    factors = dict(half_life_s=half_life_s, decay_corrected=decay_corrected,
                   decay_correction_time=decay_correction_time, injection_start=injection_start)
    grid = np.arange(0.0, float(scan_end_s) + dt, dt)
    plasma_curve, tail = on_grid(pt, pv * decay_factors(pt, **factors), grid)
    fraction = (fit_parent_fraction(*parent, method=parent_model) if parent is not None
                else ParentFraction("none", {}, np.empty(0), np.empty(0)))
    whole_blood = None
    if blood is not None:
        whole_blood, _ = on_grid(blood[0], blood[1] * decay_factors(blood[0], **factors), grid)
    settings = {
        "BloodFiles": [str(p) for p in paths],
        "ParentFractionModel": fraction.method,
        "ParentFractionParameters": fraction.params,
        "PlasmaTail": tail,
        "BloodDecayHandling": ("taken to share the PET decay state; corrected to "
                               f"InjectionStart ({injection_start:g} s)"),
        "WholeBlood": whole_blood is not None,
    }
    return PlasmaInput(time=grid, parent_plasma=plasma_curve * fraction(grid),
                       whole_blood=whole_blood), settings
