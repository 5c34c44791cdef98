"""Activity units and radioactive decay.

Inside the program activity concentration is Bq/mL, injected activity is Bq and times are
seconds. This module converts the unit strings found in BIDS sidecars once, at the boundary,
and computes the per-frame factors that decay-correct a dynamic PET image.

Examples
--------
>>> activity_concentration_factor("nCi/mL"), activity_concentration_factor("kBq/cc")
(37.0, 1000.0)
>>> activity_factor("mCi")
37000000.0
>>> round(half_life_seconds("[11C]") / 60, 2)
20.39
>>> float(frame_decay_factors([1223.4], [1e-6], 1223.4)[0])  # doctest: +ELLIPSIS
2.000...
"""

from __future__ import annotations

import re

import numpy as np
import numpy.typing as npt

#: Becquerel per unit of activity, by prefix and base unit. Values are exact literals (not
#: products) so that e.g. 1 nCi is exactly 37 Bq. "mBq" (milli) is deliberately absent: in
#: a PET sidecar it is always a mistyped "MBq", and guessing either way would be silent.
_BQ_PER_UNIT: dict[str, float] = {
    "Bq": 1.0, "kBq": 1e3, "KBq": 1e3, "MBq": 1e6, "GBq": 1e9,
    "pCi": 0.037, "nCi": 37.0, "uCi": 3.7e4, "µCi": 3.7e4, "μCi": 3.7e4,
    "mCi": 3.7e7, "Ci": 3.7e10,
}

#: Millilitres per unit of volume.
_ML_PER_UNIT: dict[str, float] = {"ml": 1.0, "cc": 1.0, "cm3": 1.0, "cm^3": 1.0, "l": 1000.0}

#: DICOM-style spellings that are not ``activity/volume``.
_ALIASES: dict[str, str] = {"BQML": "Bq/mL"}

#: Physical half-lives (s) of PET radionuclides (NNDC/DDEP values; C-11 as used by the
#: Turku PET Centre, 20.39 min). Keys are canonical "<element><mass>" spellings.
HALF_LIVES_S: dict[str, float] = {
    "C11": 20.39 * 60.0,
    "F18": 109.77 * 60.0,
    "O15": 122.24,
    "N13": 9.965 * 60.0,
    "Ga68": 67.71 * 60.0,
    "Cu62": 9.673 * 60.0,
    "Cu64": 12.701 * 3600.0,
    "Rb82": 1.2575 * 60.0,
    "Zr89": 78.41 * 3600.0,
    "Br76": 16.2 * 3600.0,
    "I124": 4.1760 * 86400.0,
    "Sc44": 4.042 * 3600.0,
}


def _activity_in_bq(prefix_unit: str) -> float | None:
    """Bq per ``prefix_unit`` (``"kBq"``, ``"nci"`` …); base unit case-insensitive."""
    match = re.fullmatch(r"([pnuµμmkKMG]?)(bq|ci)", prefix_unit, flags=re.IGNORECASE)
    if match is None:
        return None
    base = "Bq" if match.group(2).lower() == "bq" else "Ci"
    return _BQ_PER_UNIT.get(match.group(1) + base)


def activity_factor(units: str) -> float:
    """Factor converting an amount of activity in ``units`` to Bq.

    Parameters
    ----------
    units
        E.g. ``"MBq"``, ``"mCi"``, ``"Bq"``, ``"uCi"`` (prefix case-sensitive: ``M`` mega,
        ``m`` milli; base unit case-insensitive).

    Returns
    -------
    float
        Bq per one ``units``.

    Raises
    ------
    ValueError
        For an unknown unit string (the message lists the accepted ones).
    """
    factor = _activity_in_bq(str(units).strip())
    if factor is None:
        raise ValueError(f"unknown activity unit {units!r}; accepted: Bq, kBq, MBq, GBq, "
                         "nCi, uCi, mCi, Ci")
    return factor


def activity_concentration_factor(units: str) -> float:
    """Factor converting activity concentration in ``units`` to Bq/mL.

    Parameters
    ----------
    units
        ``<activity>/<volume>`` with activity as in :func:`activity_factor` and volume one of
        mL, cc, cm3, L (case-insensitive, spaces ignored), or DICOM ``BQML``.

    Returns
    -------
    float
        Bq/mL per one ``units`` (``"nCi/mL"`` → 37, ``"kBq/mL"`` → 1000).

    Raises
    ------
    ValueError
        For an unknown unit string, including non-concentration units used for derived images
        (``g/mL`` for SUV, ``unitless``).
    """
    text = re.sub(r"\s+", "", str(units))
    text = _ALIASES.get(text.upper(), text)
    activity, _, volume = text.partition("/")
    bq = _activity_in_bq(activity)
    ml = _ML_PER_UNIT.get(volume.lower())
    if bq is None or ml is None:
        raise ValueError(f"unknown activity-concentration unit {units!r}; accepted: Bq/mL, "
                         "kBq/mL, MBq/mL, nCi/mL, uCi/mL, mCi/mL (also per cc, cm3 or L), BQML")
    return bq / ml


def canonical_radionuclide(name: str) -> str:
    """Canonical spelling of a radionuclide: ``"11C"``, ``"[11C]"``, ``"C-11"`` → ``"C11"``.

    Raises
    ------
    ValueError
        If the name is not in :data:`HALF_LIVES_S` (the message lists the known ones).
    """
    text = re.sub(r"[\s\[\]\-^_]", "", str(name))
    match = re.fullmatch(r"(\d+)([A-Za-z]+)|([A-Za-z]+)(\d+)", text)
    if match is not None:
        mass = match.group(1) or match.group(4)
        element = (match.group(2) or match.group(3)).capitalize()
        key = f"{element}{mass}"
        if key in HALF_LIVES_S:
            return key
    raise ValueError(f"unknown radionuclide {name!r}; known: {', '.join(HALF_LIVES_S)}")


def half_life_seconds(radionuclide: str) -> float:
    """Physical half-life (s) of ``radionuclide`` (any spelling :func:`canonical_radionuclide`
    accepts)."""
    return HALF_LIVES_S[canonical_radionuclide(radionuclide)]


def frame_decay_factors(frame_start: npt.ArrayLike, frame_duration: npt.ArrayLike,
                        half_life: float, reference_time: float = 0.0) -> np.ndarray:
    """Decay-correction factors for frames that were not decay corrected.

    A frame ``[t0, t0 + Δ]`` records the mean of ``A e^{-λ(t - t_ref)}`` over the frame, where
    ``A`` is the activity decay-corrected to ``t_ref``. Assuming ``A`` constant within the
    frame, multiplying the frame by

    ``f = λΔ e^{λ(t0 - t_ref)} / (1 - e^{-λΔ})``

    recovers ``A``. For ``Δ → 0`` this tends to the point factor ``e^{λ(t0 - t_ref)}``.

    Parameters
    ----------
    frame_start, frame_duration
        Shape ``(T,)``, seconds; durations > 0.
    half_life
        Seconds.
    reference_time
        Time (s, same clock as ``frame_start``) to correct to, usually the injection start.

    Returns
    -------
    numpy.ndarray
        Shape ``(T,)``, float64 factors (> 0).
    """
    start = np.asarray(frame_start, dtype=float)
    duration = np.asarray(frame_duration, dtype=float)
    lam = np.log(2.0) / float(half_life)
    x = lam * duration
    return x * np.exp(lam * (start - reference_time)) / -np.expm1(-x)


def decay_correction_factors(frame_start: npt.ArrayLike, frame_duration: npt.ArrayLike,
                             half_life: float, *, decay_corrected: bool,
                             decay_correction_time: float,
                             reference_time: float = 0.0) -> np.ndarray:
    """Per-frame factors that make an image decay-corrected to ``reference_time``.

    Parameters
    ----------
    frame_start, frame_duration
        Shape ``(T,)``, seconds.
    half_life
        Seconds.
    decay_corrected
        Whether the image is already decay corrected (BIDS ``ImageDecayCorrected``).
    decay_correction_time
        Time (s) the image is decay-corrected to (BIDS ``ImageDecayCorrectionTime``); ignored
        when ``decay_corrected`` is False.
    reference_time
        Time (s) to correct to.

    Returns
    -------
    numpy.ndarray
        Shape ``(T,)``: the frame-integrated factors of :func:`frame_decay_factors` for
        uncorrected data; for corrected data the constant ``e^{λ(t_dc - t_ref)}`` that moves
        the correction time from ``t_dc`` to ``t_ref`` (1 when they agree).
    """
    start = np.asarray(frame_start, dtype=float)
    if not decay_corrected:
        return frame_decay_factors(start, frame_duration, half_life, reference_time)
    lam = np.log(2.0) / float(half_life)
    return np.full(start.shape, np.exp(lam * (float(decay_correction_time) - reference_time)))
