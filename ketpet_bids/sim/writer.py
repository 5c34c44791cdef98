"""File names and writers of the simulated BIDS dataset, its anatomy derivatives and its truth.

Layout under the output directory ``out``::

    dataset_description.json, README, participants.tsv/.json, sessions.json,
    phenotype/madrs.tsv/.json (one row per participant: madrs_baseline, madrs_post)
    sub-<s>/sub-<s>_sessions.tsv
    sub-<s>/ses-baseline/anat/sub-<s>_ses-baseline_T1w.nii.gz/.json
    sub-<s>/ses-<ss>/pet/sub-<s>_ses-<ss>_trc-<t>_pet.nii.gz/.json
    sub-<s>/ses-<ss>/pet/sub-<s>_ses-<ss>_trc-<t>_recording-manual_blood.tsv/.json
    derivatives/sim-anat/sub-<s>/anat/  (sMRIPrep-style T1w-space anatomy, names from
                                         ketpet_bids.bids.naming)
    sourcedata/truth/cohort.json, cohort.tsv
    sourcedata/truth/sub-<s>/anat/sub-<s>_desc-phantom_dseg.nii.gz/.tsv
    sourcedata/truth/sub-<s>/ses-<ss>/<src>_desc-true_tacs.tsv, _label-wholebrain_desc-true_tacs.tsv,
        _desc-true_kinpar.tsv/.json, _desc-true_pet.json, _recording-manual_desc-true_blood.tsv

All files are written atomically (``ketpet_bids.bids.sink``); gzip streams carry no time stamp
or file name, so equal inputs give byte-identical files.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pandas as pd

from ketpet_bids import __version__
from ketpet_bids.bids.naming import output_path
from ketpet_bids.bids.sink import write_json, write_with

GENERATED_BY = {"Name": "ketpet-bids-sim", "Version": __version__,
                "Description": "ketpet_bids ground-truth simulator"}
ANAT_DERIVATIVES = Path("derivatives") / "sim-anat"
TRUTH = Path("sourcedata") / "truth"
ATLAS = "sim"

_TRUTH_SUFFIX = {
    "tacs": "desc-true_tacs.tsv",
    "ref_tacs": "label-wholebrain_desc-true_tacs.tsv",
    "kinpar": "desc-true_kinpar.tsv",
    "kinpar_json": "desc-true_kinpar.json",
    "pet": "desc-true_pet.json",
    "blood": "recording-manual_desc-true_blood.tsv",
}


def source_prefix(subject: str, session: str, tracer: str) -> str:
    """BIDS entities of a PET run, e.g. ``sub-01_ses-baseline_trc-K2``."""
    return f"sub-{subject}_ses-{session}_trc-{tracer}"


def raw_path(kind: str, subject: str, session: str = "baseline", tracer: str = "K2") -> Path:
    """Relative path of a raw file: ``t1w``, ``t1w_json``, ``pet``, ``pet_json``, ``blood``,
    ``blood_json`` or ``sessions``."""
    if kind == "sessions":
        return Path(f"sub-{subject}") / f"sub-{subject}_sessions.tsv"
    ses_dir = Path(f"sub-{subject}") / f"ses-{session}"
    if kind.startswith("t1w"):
        stem = ses_dir / "anat" / f"sub-{subject}_ses-{session}_T1w"
        return stem.with_name(stem.name + (".json" if kind == "t1w_json" else ".nii.gz"))
    prefix = source_prefix(subject, session, tracer)
    names = {"pet": "_pet.nii.gz", "pet_json": "_pet.json", "blood": "_recording-manual_blood.tsv",
             "blood_json": "_recording-manual_blood.json"}
    return ses_dir / "pet" / f"{prefix}{names[kind]}"


def truth_path(kind: str, subject: str | None = None, session: str | None = None,
               tracer: str = "K2") -> Path:
    """Relative path of a truth file.

    Parameters
    ----------
    kind
        ``cohort_json``, ``cohort_tsv``, ``phantom_dseg``, ``phantom_dseg_tsv``, or per scan
        ``tacs``, ``ref_tacs``, ``kinpar``, ``kinpar_json``, ``pet``, ``blood``.
    subject, session, tracer
        Labels (without ``sub-``/``ses-``/``trc-``).
    """
    if kind in ("cohort_json", "cohort_tsv"):
        return TRUTH / ("cohort.json" if kind == "cohort_json" else "cohort.tsv")
    if kind in ("phantom_dseg", "phantom_dseg_tsv"):
        ext = ".nii.gz" if kind == "phantom_dseg" else ".tsv"
        return TRUTH / f"sub-{subject}" / "anat" / f"sub-{subject}_desc-phantom_dseg{ext}"
    prefix = source_prefix(subject, session, tracer)
    return TRUTH / f"sub-{subject}" / f"ses-{session}" / f"{prefix}_{_TRUTH_SUFFIX[kind]}"


def anat_derivative_path(key: str, subject: str, **entities: str) -> Path:
    """Relative path of an anatomy derivative (``t1w_preproc``, ``brain_mask``, ``probseg``
    with ``ref=``, ``dseg``, ``dseg_tsv``), named by :func:`ketpet_bids.bids.naming.output_path`."""
    if key in ("dseg", "dseg_tsv"):
        entities = {"atlas": ATLAS, **entities}
    return ANAT_DERIVATIVES / output_path(key, subject=subject, **entities)


def write_nifti(target: Path, data: np.ndarray, affine: np.ndarray) -> Path:
    """Write a 3D image (units mm) atomically; keeps ``data``'s dtype."""
    image = nib.Nifti1Image(data, affine)
    image.header.set_xyzt_units("mm", "sec")
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    return write_with(target, lambda tmp: nib.save(image, tmp))


def write_nifti_frames(target: Path, frames: Iterable[np.ndarray], shape: tuple[int, int, int],
                       n_frames: int, affine: np.ndarray) -> Path:
    """Stream a 4D ``float32`` NIfTI-1 (gzip) frame by frame, holding one frame in memory.

    Parameters
    ----------
    target
        ``.nii.gz`` path.
    frames
        Iterable of ``n_frames`` arrays of ``shape`` (converted to little-endian float32).
    shape, n_frames
        Spatial shape and number of frames.
    affine
        4×4 voxel-to-world matrix (mm).
    """
    header = nib.Nifti1Header()
    header.set_data_dtype(np.float32)
    header.set_data_shape((*shape, n_frames))
    header.set_qform(affine, code=1)
    header.set_sform(affine, code=1)
    header.set_xyzt_units("mm", "sec")
    header.set_zooms((*np.linalg.norm(affine[:3, :3], axis=0), 1.0))
    header.set_data_offset(352)
    header.set_slope_inter(1.0, 0.0)

    def _write(tmp: Path) -> None:
        written = 0
        with open(tmp, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw,
                                                   compresslevel=1, mtime=0) as gz:
            header.write_to(gz)
            for frame in frames:
                if frame.shape != tuple(shape):
                    raise ValueError(f"frame shape {frame.shape} != {shape}")
                gz.write(np.asarray(frame, dtype="<f4").tobytes(order="F"))
                written += 1
        if written != n_frames:
            raise ValueError(f"{target}: got {written} frames, expected {n_frames}")

    return write_with(target, _write)


def write_table(target: Path, table: pd.DataFrame) -> Path:
    """Write a TSV atomically (``n/a`` for missing values, 9 significant digits)."""
    return write_with(target, lambda tmp: table.to_csv(tmp, sep="\t", index=False, na_rep="n/a",
                                                       float_format="%.9g"))


def write_sidecar(target: Path, data: dict[str, Any]) -> Path:
    """Write a JSON file."""
    return write_json(target, data)


def dataset_description(name: str, dataset_type: str = "raw") -> dict[str, Any]:
    """``dataset_description.json`` content (BIDS 1.9.0)."""
    desc: dict[str, Any] = {
        "Name": name, "BIDSVersion": "1.9.0", "DatasetType": dataset_type, "License": "CC0",
        "Authors": ["ketpet_bids developers", "ketpet_bids simulator"], "GeneratedBy": [GENERATED_BY],
    }
    if dataset_type == "derivative":
        desc["SourceDatasets"] = [{"URL": "file://../.."}]
    return desc


def pet_sidecar(*, tracer: str, dose_mbq: float, mass_ug: float, starts: np.ndarray,
                durations: np.ndarray, time_zero: str) -> dict[str, Any]:
    """Complete BIDS-PET sidecar (all REQUIRED fields and the usual RECOMMENDED ones)."""
    return {
        "Manufacturer": "ketpet_bids simulator",
        "ManufacturersModelName": "analytic phantom scanner",
        "Modality": "PT",
        "BodyPart": "Brain",
        "Units": "Bq/mL",
        "TracerName": "K-2" if tracer == "K2" else tracer,
        "TracerRadionuclide": "C11",
        "TracerMolecularWeight": 377.4,
        "TracerMolecularWeightUnits": "g/mol",
        "InjectedRadioactivity": round(dose_mbq, 2),
        "InjectedRadioactivityUnits": "MBq",
        "InjectedMass": round(mass_ug, 3),
        "InjectedMassUnits": "ug",
        "SpecificRadioactivity": round(dose_mbq / mass_ug, 3),
        "SpecificRadioactivityUnits": "MBq/ug",
        "ModeOfAdministration": "bolus",
        "TimeZero": time_zero,
        "ScanStart": 0,
        "InjectionStart": 0,
        "FrameTimesStart": [float(s) for s in starts],
        "FrameDuration": [float(d) for d in durations],
        "AcquisitionMode": "list mode",
        "ImageDecayCorrected": True,
        "ImageDecayCorrectionTime": 0,
        "ReconMethodName": "simulated (analytic activity, Gaussian PSF, Gaussian noise)",
        "ReconMethodParameterLabels": ["none"],
        "ReconMethodParameterUnits": ["none"],
        "ReconMethodParameterValues": [0],
        "ReconFilterType": "none",
        "ReconFilterSize": 0,
        "AttenuationCorrection": "simulated (exact)",
        "ScatterCorrectionMethod": "simulated (none needed)",
    }


def blood_sidecar() -> dict[str, Any]:
    """BIDS sidecar of the manual arterial blood recording."""
    bq = "Bq/mL"
    return {
        "Description": "Manual arterial samples, decay corrected to the injection time.",
        "PlasmaAvail": True, "WholeBloodAvail": True, "MetaboliteAvail": True,
        "MetaboliteMethod": "simulated HPLC (Hill-type parent fraction)",
        "MetaboliteRecoveryCorrectionApplied": False, "DispersionCorrected": False,
        "time": {"Description": "Sampling time after injection", "Units": "s"},
        "plasma_radioactivity": {"Description": "Total radioactivity in plasma", "Units": bq},
        "whole_blood_radioactivity": {"Description": "Radioactivity in whole blood",
                                      "Units": bq},
        "metabolite_parent_fraction": {"Description": "Parent fraction of plasma radioactivity",
                                       "Units": "arbitrary"},
    }


PREPROC_T1W_SIDECAR: dict[str, Any] = {
    "SkullStripped": False, "Description": "Simulated T1w (identical to the raw T1w)",
}

T1W_SIDECAR: dict[str, Any] = {
    "Manufacturer": "ketpet_bids simulator", "ManufacturersModelName": "analytic phantom scanner",
    "MagneticFieldStrength": 3, "RepetitionTime": 2.3, "EchoTime": 0.003, "InversionTime": 0.9,
    "FlipAngle": 9,
}

PARTICIPANTS_SIDECAR: dict[str, Any] = {
    "participant_id": {"Description": "Participant label"},
    "group": {"Description": "Diagnostic group",
              "Levels": {"patient": "treatment-resistant depression", "control": "healthy"}},
    "arm": {"Description": "Treatment arm (patients)",
            "Levels": {"ketamine": "intravenous ketamine", "placebo": "placebo",
                       "n/a": "not treated"}},
    "age": {"Description": "Age at baseline", "Units": "year"},
    "sex": {"Description": "Sex", "Levels": {"M": "male", "F": "female"}},
    "body_weight": {"Description": "Body weight", "Units": "kg"},
}

MADRS_COLUMN = {"Description": "Montgomery-Asberg Depression Rating Scale total score (0-60)",
                "Units": "arbitrary"}
SESSIONS_SIDECAR: dict[str, Any] = {
    "session_id": {"Description": "Session label"}, "madrs": MADRS_COLUMN,
}
MADRS_SIDECAR: dict[str, Any] = {
    "MeasurementToolMetadata": {"Description": "Montgomery-Asberg Depression Rating Scale"},
    "participant_id": {"Description": "Participant label"},
    "madrs_baseline": {**MADRS_COLUMN, "Description": MADRS_COLUMN["Description"]
                       + ", session baseline"},
    "madrs_post": {**MADRS_COLUMN, "Description": MADRS_COLUMN["Description"]
                   + ", session post (n/a: not scanned)"},
}

KINPAR_SIDECAR: dict[str, Any] = {
    "Description": "True parameters of the reversible 2TCM per region (1TCM where k3 = k4 = 0). "
                   "SUVR = mean of the region's true TAC over 1800-3000 s divided by that of "
                   "the whole-brain reference (volume-weighted mean of all atlas regions "
                   "except csf).",
    "K1": {"Units": "mL/cm3/min"}, "k2": {"Units": "1/min"}, "k3": {"Units": "1/min"},
    "k4": {"Units": "1/min"}, "vB": {"Units": "unitless"}, "VT": {"Units": "mL/cm3"},
    "BPND": {"Units": "unitless"}, "SUVR": {"Units": "unitless"},
    "volume_mm3": {"Units": "mm3"},
}

README = """# Simulated [11C]K-2 PET study (ketpet_bids)

Synthetic BIDS-PET dataset written by `ketpet-bids-sim` (ketpet_bids {version}).
Preset: {preset}; {n_patients} patients (sessions baseline and post, ketamine or placebo)
and {n_controls} controls (baseline only); size {size}; seed {seed}.

Everything is simulated with known truth: a labelled head phantom, arterial input (Feng
model, Hill-type parent fraction), two-tissue compartment kinetics, a Gaussian scanner PSF,
frame-wise rigid head motion, a PET pose unlike the T1w's, and count-dependent noise.
The truth (regional TACs and parameters, transforms, motion, planted cohort effects) is in
`sourcedata/truth/`; the T1w-space anatomy in sMRIPrep layout is in `derivatives/sim-anat/`.
"""
