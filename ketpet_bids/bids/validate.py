"""Checks on the whole input before any processing: BIDS validity, the output and work
directories, and the files of each PET run.

Output inside the BIDS dataset
------------------------------
Nothing is ever written into the raw BIDS dataset, with one conventional exception: the
output directory may be a sub-folder of the dataset's own ``derivatives/`` folder (e.g.
``BIDS_DIR/derivatives/ketpet``), as BIDS-Apps have done since the BIDS-Apps paper. The
specification reserves ``derivatives/`` for derived datasets, the validator and our discovery
skip it, so outputs there never mix with raw data or get re-read as input. ``derivatives/``
itself is refused (the outputs of several pipelines would mix at its top level), and so is
every other place inside the dataset. The work directory (scratch space, not a BIDS dataset)
may never be inside the dataset.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

from ketpet_bids.bids.layout import PetRun
from ketpet_bids.bids.metadata import (
    PetMetadata,
    check_image,
    check_pet_values,
    read_pet_metadata,
)
from ketpet_bids.core.units import activity_concentration_factor
from ketpet_bids.errors import InputError

VALIDATOR = "bids-validator-deno"
#: Seconds the validator may take (it needs < 1 s on small datasets).
VALIDATOR_TIMEOUT_S = 600


def find_validator() -> Path | None:
    """The ``bids-validator-deno`` executable next to ``sys.executable``, else on PATH."""
    beside = Path(sys.executable).parent / VALIDATOR
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which(VALIDATOR)
    return Path(found) if found else None


def validate_bids(bids_dir: Path) -> list[str]:
    """Run the BIDS validator on ``bids_dir``.

    The validator's cache (``DENO_DIR``) is a temporary directory under ``TMPDIR``, deleted
    afterwards, so that nothing is written to the user's home directory.

    Parameters
    ----------
    bids_dir
        Root of the BIDS dataset.

    Returns
    -------
    list of str
        Warnings, one line per validator warning code (with its count and first file); a
        single warning saying validation was skipped when the validator is not installed or
        its output cannot be read.

    Raises
    ------
    InputError
        When the validator reports errors: names the first offending file and problem, and
        how many errors there are in all.
    """
    bids_dir = Path(bids_dir)
    if not bids_dir.is_dir():
        raise InputError(bids_dir, "BIDS directory does not exist")
    exe = find_validator()
    if exe is None:
        return [f"BIDS validation skipped: {VALIDATOR} not found next to {sys.executable} or "
                "on PATH (install the bids-validator-deno package)"]
    try:
        with tempfile.TemporaryDirectory(prefix="ketpet_validator_") as cache:
            proc = subprocess.run([str(exe), "--format", "json", str(bids_dir)],
                                  capture_output=True, text=True, timeout=VALIDATOR_TIMEOUT_S,
                                  check=False, env={**os.environ, "DENO_DIR": cache})
        report = json.loads(proc.stdout)
        issues = report["issues"]["issues"]
        messages = report["issues"].get("codeMessages", {})
    except (OSError, subprocess.TimeoutExpired, json.JSONDecodeError, KeyError,
            TypeError) as exc:
        return [f"BIDS validation skipped: {VALIDATOR} failed ({type(exc).__name__}: "
                f"{str(exc)[:200]})"]
    errors = [i for i in issues if i.get("severity") == "error"]
    if errors:
        first = errors[0]
        more = f" (and {len(errors) - 1} more errors)" if len(errors) > 1 else ""
        raise InputError(bids_dir / _location(first).lstrip("/"),
                         f"BIDS validator: {_describe(first, messages)}{more}",
                         f"fix the dataset (run {VALIDATOR} {bids_dir} for the full report) or "
                         "skip this check with --skip-bids-validation")
    warnings = [i for i in issues if i.get("severity") == "warning"]
    counts = Counter(i.get("code", "?") for i in warnings)
    firsts = {}
    for issue in warnings:
        firsts.setdefault(issue.get("code", "?"), issue)
    return [f"BIDS validator warning {code} ({counts[code]}x, e.g. "
            f"{_location(firsts[code]) or 'dataset'}): {_describe(firsts[code], messages)}"
            for code in sorted(counts)]


def _location(issue: dict) -> str:
    affects = issue.get("affects") or [""]
    return str(issue.get("location") or affects[0])


def _describe(issue: dict, messages: dict) -> str:
    code = issue.get("code", "?")
    sub = f" {issue['subCode']}" if issue.get("subCode") else ""
    text = messages.get(code) or issue.get("issueMessage") or ""
    return " ".join(f"{code}{sub}: {text}".split())


def check_output_dir(bids_dir: Path, output_dir: Path, work_dir: Path) -> None:
    """Refuse output/work directories that would write into the BIDS dataset or cannot be
    written (see the module docstring for the ``derivatives/`` rule).

    Parameters
    ----------
    bids_dir, output_dir, work_dir
        As given on the command line; need not exist yet (except ``bids_dir``).

    Raises
    ------
    InputError
        Naming ``OUTPUT_DIR`` or ``--work-dir``, the path, and the problem.
    """
    bids = Path(bids_dir).resolve()
    derivatives = bids / "derivatives"
    for option, path in (("OUTPUT_DIR", output_dir), ("--work-dir", work_dir)):
        resolved = Path(path).resolve()
        inside = resolved == bids or bids in resolved.parents
        allowed = option == "OUTPUT_DIR" and derivatives in resolved.parents
        if inside and not allowed:
            hint = ("use a folder outside the dataset, or BIDS_DIR/derivatives/<name>"
                    if option == "OUTPUT_DIR" else "use a folder outside the dataset")
            raise InputError(option, f"{path} is inside the BIDS dataset {bids_dir}; nothing "
                             "may be written there", hint)
        _check_writable(option, path, resolved)


def _check_writable(option: str, given: Path, resolved: Path) -> None:
    """The directory, or the nearest existing parent it would be created in, is writable."""
    existing = next(p for p in (resolved, *resolved.parents) if p.exists())
    if not existing.is_dir():
        raise InputError(option, f"{given}: {existing} is a file, not a directory",
                         "choose a directory path")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(option, f"{given}: {existing} is not writable",
                         "choose a directory you can write to, or fix its permissions")


def check_pet_run(run: PetRun) -> PetMetadata:
    """Check the files of one run before processing: sidecar fields, PET image (readable,
    complete, frames matching the sidecar, voxel values as :func:`check_pet_values` requires),
    T1w image (readable, complete, 3D), the two fields of view
    (:func:`check_fields_of_view`) and blood recordings (:func:`check_blood`).

    Returns
    -------
    PetMetadata
        The run's typed sidecar.

    Raises
    ------
    InputError
        The first problem found, naming the file and the field.
    """
    meta = read_pet_metadata(run.sidecar, image_path=run.pet)
    check_pet_values(run.pet)
    for blood in run.blood:
        check_blood(blood)
    if run.t1w is not None:
        shape = check_image(run.t1w, what="T1w image")
        if len(shape) == 4 and shape[3] > 1:
            raise InputError(run.t1w, f"T1w image is 4D ({'x'.join(map(str, shape))}); a 3D "
                             "image is needed", "give a single T1w volume")
        import nibabel as nb

        pet, t1w = nb.load(run.pet), nb.load(run.t1w)
        check_fields_of_view(run.pet, pet.shape, pet.affine, run.t1w, t1w.shape, t1w.affine)
    return meta


#: The PET's smallest extent must be at least this fraction of the T1w's largest extent.
MIN_PET_FOV_FRACTION = 0.25
#: The PET's extent along the body axis may be at most this multiple of the T1w's largest.
MAX_PET_AXIAL_FOV_RATIO = 4.0


def field_of_view_mm(shape: tuple[int, ...], affine: npt.ArrayLike) -> np.ndarray:
    """Physical extent of an image along each of its first three voxel axes.

    Parameters
    ----------
    shape
        Image shape (3D or 4D; only the first three entries are used).
    affine
        Shape ``(4, 4)``, voxel → RAS mm.

    Returns
    -------
    numpy.ndarray
        Shape ``(3,)``, mm: number of voxels × voxel size (independent of orientation and
        origin, so oblique, LPS or far-off images measure the same as their RAS twin).

    Examples
    --------
    >>> field_of_view_mm((48, 56, 40, 14), np.diag([-4.0, 4.0, 4.0, 1.0])).tolist()
    [192.0, 224.0, 160.0]
    """
    voxel = np.linalg.norm(np.asarray(affine, dtype=float)[:3, :3], axis=0)
    return np.asarray(shape[:3], dtype=float) * voxel


def check_fields_of_view(pet: Path, pet_shape: tuple[int, ...], pet_affine: npt.ArrayLike,
                         t1w: Path, t1w_shape: tuple[int, ...],
                         t1w_affine: npt.ArrayLike) -> None:
    """Refuse a PET and a T1w whose fields of view cannot show the same head.

    The T1w's largest extent ``H`` (mm) is the head scale (a T1w of the head is ~220–260 mm
    along its longest axis). The PET is refused when

    * its extent along any voxel axis is below ``H / 4`` (:data:`MIN_PET_FOV_FRACTION`;
      ~55–65 mm): a slab through part of the head, which the co-registration cannot place
      (it starts by aligning the centres of mass, and the ±20° starts do not correct the
      tens of mm a partial slab's centre is off), and whose regions outside the slab would
      get no values; or voxel sizes written in the wrong unit (cm as mm make a 200 mm head
      20 mm);
    * its extent along the body axis (the voxel axis closest to world superior–inferior)
      exceeds ``4 H`` (:data:`MAX_PET_AXIAL_FOV_RATIO`; ~0.9–1 m): a whole-body scan, whose
      centre of mass lies in the trunk, far beyond the registration's capture range. Brain
      PET axial fields of view are 150–300 mm on clinical and brain scanners (495 mm on the
      longest brain-dedicated one), below ``4 H`` for any T1w with ``H`` ≥ 124 mm;
      whole-body scans of 5 or more bed positions are ≥ 1 m. The transaxial extent is not
      limited: brain PET is often reconstructed over the whole bore (~700–820 mm).

    Where the images lie is not checked: co-registration starts from the alignment of the
    centres of mass (:mod:`ketpet_bids.core.coreg`) and head-motion correction works in the
    PET's own space, so offset origins, LPS and oblique affines are handled.

    Parameters
    ----------
    pet, t1w
        The files (for the message).
    pet_shape, t1w_shape
        Image shapes (3D or 4D).
    pet_affine, t1w_affine
        Shape ``(4, 4)``, voxel → RAS mm.

    Raises
    ------
    InputError
        Naming the PET, the T1w, both extents (mm) and the voxel axis.
    """
    pet_fov = field_of_view_mm(pet_shape, pet_affine)
    head = float(field_of_view_mm(t1w_shape, t1w_affine).max())
    zooms = np.linalg.norm(np.asarray(pet_affine, dtype=float)[:3, :3], axis=0)
    smallest = int(np.argmin(pet_fov))
    if pet_fov[smallest] < MIN_PET_FOV_FRACTION * head:
        raise InputError(pet, f"PET field of view is only {pet_fov[smallest]:.0f} mm along "
                         f"voxel axis {smallest + 1} ({pet_shape[smallest]} voxels of "
                         f"{zooms[smallest]:.3g} mm), less than {MIN_PET_FOV_FRACTION:g} of the "
                         f"{head:.0f} mm of the T1w {Path(t1w).name}: a PET covering part of the "
                         "head cannot be co-registered",
                         "give a PET that covers the whole brain, or correct the voxel sizes in "
                         "the NIfTI header if they are not in mm")
    directions = np.abs(np.asarray(pet_affine, dtype=float)[2, :3]) / zooms
    axial = int(np.argmax(directions))
    if pet_fov[axial] > MAX_PET_AXIAL_FOV_RATIO * head:
        raise InputError(pet, f"PET field of view along the body axis (voxel axis {axial + 1}) "
                         f"is {pet_fov[axial]:.0f} mm, more than {MAX_PET_AXIAL_FOV_RATIO:g}x "
                         f"the {head:.0f} mm of the T1w {Path(t1w).name}: a whole-body PET "
                         "cannot be co-registered to a head T1w",
                         "crop the PET to the head, keeping the slices that contain the brain")


def check_blood(tsv: Path) -> None:
    """Check a ``_blood.tsv`` recording and its same-named JSON sidecar.

    Required: the sidecar (a JSON object); a readable table with at least one sample; a
    finite number or ``n/a`` in every cell; a ``time`` column without ``n/a``, strictly
    increasing, in seconds (its ``Units``, when given, must be ``s``); for every
    ``*_radioactivity`` column, ``Units`` that
    :func:`~ketpet_bids.core.units.activity_concentration_factor` knows; and a
    ``metabolite_parent_fraction`` within [0, 1].

    Raises
    ------
    InputError
        The first problem found, naming the file, the column and the sample (1 = first).
    """
    tsv = Path(tsv)
    sidecar = tsv.with_suffix(".json")
    if not sidecar.is_file():
        raise InputError(tsv, f"blood sidecar {sidecar.name} is missing",
                         "add it beside the table, with the Units of every column")
    try:
        meta = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(sidecar, f"not valid JSON ({exc})", "fix the JSON syntax") from None
    if not isinstance(meta, dict):
        raise InputError(sidecar, "the sidecar must hold a JSON object {...}")
    try:
        table = pd.read_csv(tsv, sep="\t", dtype=str, keep_default_na=False)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(tsv, f"blood table cannot be read ({type(exc).__name__}: {exc})",
                         "write a tab-separated table with a header row") from None
    if "time" not in table.columns:
        raise InputError(tsv, "blood table has no 'time' column (columns: "
                         f"{', '.join(map(str, table.columns))})",
                         "name the sample-time column 'time' (seconds)")
    if table.empty:
        raise InputError(tsv, "blood table has no samples")
    numbers = {column: _blood_column(table[column], tsv, column) for column in table.columns}
    _check_blood_time(numbers["time"], _column_units(meta, "time") or "s", tsv, sidecar)
    for column in (c for c in table.columns if str(c).endswith("_radioactivity")):
        units = _column_units(meta, column)
        if units is None:
            raise InputError(sidecar, f"the Units of blood column {column} are not given",
                             f'add "{column}": {{"Units": "Bq/mL", ...}}')
        try:
            activity_concentration_factor(units)
        except ValueError as exc:
            raise InputError(sidecar, f"{column}: {exc}") from None
    if "metabolite_parent_fraction" in numbers:
        _check_fraction(numbers["metabolite_parent_fraction"], tsv)


def _check_fraction(values: np.ndarray, tsv: Path) -> None:
    """Parent fractions lie in [0, 1] (percentages are a common mistake)."""
    bad = np.flatnonzero((values < 0) | (values > 1))
    if bad.size:
        raise InputError(tsv, f"metabolite_parent_fraction of sample {bad[0] + 1} is "
                         f"{values[bad[0]]:g}, outside [0, 1]",
                         "give fractions, not percentages (divide by 100)")


def _column_units(meta: dict, column: str) -> str | None:
    """``meta[column]["Units"]`` of a BIDS tabular sidecar, or None."""
    described = meta.get(column)
    return described.get("Units") if isinstance(described, dict) else None


def _blood_column(cells: pd.Series, tsv: Path, column: str) -> np.ndarray:
    """A column as float64 (``n/a`` → NaN); anything else but a finite number is refused."""
    text = cells.str.strip()
    numbers = pd.to_numeric(text.replace("n/a", "nan"), errors="coerce").to_numpy(dtype=float)
    bad = np.flatnonzero(np.isinf(numbers) | (np.isnan(numbers) & (text != "n/a").to_numpy()))
    if bad.size:
        raise InputError(tsv, f"column {column}, sample {bad[0] + 1}: {cells.iloc[bad[0]]!r} "
                         "is not a number", "use finite numbers, and n/a for a missing value")
    return numbers


def _check_blood_time(time: np.ndarray, units: str, tsv: Path, sidecar: Path) -> None:
    if units != "s":
        raise InputError(sidecar, f"blood time Units are {units!r}; BIDS blood times are "
                         "seconds", "convert the time column to seconds")
    if np.isnan(time).any():
        sample = int(np.flatnonzero(np.isnan(time))[0]) + 1
        raise InputError(tsv, f"column time, sample {sample}: every sample needs a time")
    steps = np.flatnonzero(np.diff(time) <= 0)
    if steps.size:
        i = int(steps[0])
        raise InputError(tsv, f"column time is not increasing: sample {i + 2} at {time[i + 1]:g} "
                         f"s follows sample {i + 1} at {time[i]:g} s",
                         "sort the samples by time, one row per sample time")
