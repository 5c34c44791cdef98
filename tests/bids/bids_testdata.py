"""Writers of tiny BIDS-PET datasets for the tests (imported by name; not a conftest, so that
it cannot clash with other conftest modules)."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nb
import numpy as np

EXAMPLES = Path(__file__).resolve().parents[3] / "shared" / "data" / "bids-examples-pet"

#: 3 frames: 0–60 s, 60–180 s, 180–480 s.
FRAME_START = [0.0, 60.0, 180.0]
FRAME_DURATION = [60.0, 120.0, 300.0]


def pet_sidecar(**overrides) -> dict:
    """A complete BIDS-PET sidecar (all REQUIRED fields); ``None`` values delete a field."""
    meta = {
        "Manufacturer": "Siemens", "ManufacturersModelName": "HRRT",
        "Units": "Bq/mL", "TracerName": "K2", "TracerRadionuclide": "C11",
        "InjectedRadioactivity": 400.0, "InjectedRadioactivityUnits": "MBq",
        "InjectedMass": 5.0, "InjectedMassUnits": "ug",
        "SpecificRadioactivity": 80.0, "SpecificRadioactivityUnits": "MBq/ug",
        "ModeOfAdministration": "bolus", "TimeZero": "12:00:00", "ScanStart": 0,
        "InjectionStart": 0, "FrameTimesStart": FRAME_START, "FrameDuration": FRAME_DURATION,
        "AcquisitionMode": "list mode", "ImageDecayCorrected": True,
        "ImageDecayCorrectionTime": 0, "ReconMethodName": "OSEM",
        "ReconMethodParameterLabels": ["subsets", "iterations"],
        "ReconMethodParameterUnits": ["none", "none"], "ReconMethodParameterValues": [16, 4],
        "ReconFilterType": "none", "ReconFilterSize": 0, "AttenuationCorrection": "CT-based",
    }
    meta.update(overrides)
    return {k: v for k, v in meta.items() if v is not None}


def write_image(path: Path, shape: tuple[int, ...], value: float = 1.0,
                zooms: float = 2.0) -> Path:
    """A small float32 NIfTI filled with ``value``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    img = nb.Nifti1Image(np.full(shape, value, dtype=np.float32), np.diag([zooms] * 3 + [1.0]))
    img.header.set_xyzt_units("mm", "sec")
    img.to_filename(path)
    return path


def write_pet(directory: Path, stem: str, n_frames: int = 3, **sidecar) -> Path:
    """``<stem>_pet.nii.gz`` (4×4×4×n_frames) + its sidecar; returns the image path."""
    pet = write_image(directory / f"{stem}_pet.nii.gz", (4, 4, 4, n_frames))
    (directory / f"{stem}_pet.json").write_text(json.dumps(pet_sidecar(**sidecar)))
    return pet


def write_t1w(directory: Path, stem: str) -> Path:
    t1w = write_image(directory / f"{stem}_T1w.nii.gz", (6, 6, 6), 100.0, zooms=1.0)
    (directory / f"{stem}_T1w.json").write_text(json.dumps({"Manufacturer": "Siemens"}))
    return t1w


def write_blood(directory: Path, stem: str) -> Path:
    tsv = directory / f"{stem}_blood.tsv"
    tsv.write_text("time\tplasma_radioactivity\n0\t0\n60\t1000\n")
    (directory / f"{stem}_blood.json").write_text(json.dumps({
        "SampleOrigin": "arterial", "PlasmaAvail": True, "MetaboliteAvail": False,
        "WholeBloodAvail": False, "DispersionCorrected": False,
        "time": {"Description": "time", "Units": "s"},
        "plasma_radioactivity": {"Description": "plasma", "Units": "Bq/mL"}}))
    return tsv


def write_description(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "dataset_description.json").write_text(json.dumps(
        {"Name": "tiny", "BIDSVersion": "1.9.0", "DatasetType": "raw", "License": "CC0",
         "Authors": ["test"]}))
    (root / "README").write_text("A tiny generated BIDS-PET dataset for tests.\n")
