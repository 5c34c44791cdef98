"""Tiny fake derivatives written under their contract names (DESIGN.md §5)."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from ketpet_bids.bids import naming

SUBJECT = "01"
SESSION = "baseline"
SRC = "sub-01_ses-baseline_trc-K2"
SHAPE = (20, 24, 18)
# LAS storage order: the report must reorient to RAS itself.
AFFINE = np.array([[-2.0, 0, 0, 20], [0, 2.0, 0, -24], [0, 0, 2.0, -18], [0, 0, 0, 1]])


def _save(root: Path, rel: Path, data: np.ndarray) -> None:
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, AFFINE), root / rel)


def _tsv(root: Path, rel: Path, table: pd.DataFrame) -> None:
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(root / rel, sep="\t", index=False, na_rep="n/a")


@pytest.fixture
def derivatives(tmp_path: Path) -> dict:
    """Write a complete small participant output; return the run description."""
    ids = {"subject": SUBJECT, "session": SESSION, "src": SRC}
    grid = np.indices(SHAPE).astype(np.float32)
    radius = np.sqrt(((grid - np.array(SHAPE)[:, None, None, None] / 2) ** 2).sum(axis=0))
    brain = radius < 7
    t1w = np.where(brain, 100.0 - 5 * radius, 0).astype(np.float32)
    dseg = (brain.astype(np.int16) + (radius < 4) + (grid[0] > 10) * brain).astype(np.int16)
    _save(tmp_path, naming.output_path("t1w_preproc", subject=SUBJECT), t1w)
    _save(tmp_path, naming.output_path("brain_mask", subject=SUBJECT), brain.astype(np.uint8))
    for tissue, sel in (("GM", radius >= 4), ("WM", radius < 4), ("CSF", np.zeros(SHAPE, bool))):
        _save(tmp_path, naming.output_path("probseg", subject=SUBJECT, ref=tissue),
              (sel & brain).astype(np.float32))
    _save(tmp_path, naming.output_path("dseg", subject=SUBJECT, atlas="sim"), dseg)
    names = pd.DataFrame({"index": [1, 2, 3], "name": ["cortexL", "cortexR", "core"]})
    _tsv(tmp_path, naming.output_path("dseg_tsv", subject=SUBJECT, atlas="sim"), names)
    _tsv(tmp_path, naming.output_path("morph", subject=SUBJECT, atlas="sim"),
         names.assign(volume_mm3=[800.0, 810.0, 2144.0]))
    _save(tmp_path, naming.output_path("petref", space="T1w", **ids),
          np.where(brain, 5000.0, 0).astype(np.float32))
    (tmp_path / naming.sidecar_path(naming.output_path("pet_to_t1w_xfm", **ids))).write_text(
        json.dumps({"SimilarityMetric": "MattesMI", "SimilarityValue": -0.42}))
    starts = np.array([0.0, 60, 120, 300, 600, 1200])
    durations = np.array([60.0, 60, 180, 300, 600, 600])
    (tmp_path / naming.sidecar_path(naming.output_path("preproc_pet", **ids))).write_text(
        json.dumps({"FrameTimesStart": starts.tolist(), "FrameDuration": durations.tolist()}))
    confounds = pd.DataFrame({f"trans_{a}": np.linspace(0, 1, 6) for a in "xyz"}
                             | {f"rot_{a}": np.linspace(0, 0.01, 6) for a in "xyz"})
    confounds["framewise_displacement"] = [np.nan, 0.2, 0.3, 0.2, 0.1, 0.4]
    _tsv(tmp_path, naming.output_path("confounds", **ids), confounds)
    tacs = pd.DataFrame({"frame_start": starts, "frame_end": starts + durations,
                         "cortexL": np.linspace(1e3, 8e3, 6), "cortexR": np.linspace(1e3, 7e3, 6),
                         "core": np.linspace(2e3, 5e3, 6)})
    for pvc in (None, "gtm"):
        _tsv(tmp_path, naming.output_path("tacs", atlas="sim", pvc=pvc, **ids), tacs)
    _tsv(tmp_path, naming.output_path("kinpar", atlas="sim", model="logan", **ids),
         pd.DataFrame({"region": names["name"], "VT": [5.1, 4.9, 3.2], "r2": [0.99] * 3,
                       "aic": [-10.0] * 3, "n_frames_used": [4] * 3}))
    _save(tmp_path, naming.output_path("mimap", space="T1w", model="logan", param="VT", **ids),
          np.where(brain, 4.0 + radius / 7, 0).astype(np.float32))
    run = {"src": SRC, "session": SESSION, "atlases": ["sim"], "models": ["logan", "suvr"],
           "pvc": ["gtm"], "metadata": {"TracerName": "K-2", "TracerRadionuclide": "C11",
                                        "InjectedRadioactivity (MBq)": 400, "frames": 6}}
    return {"root": tmp_path, "run": run, **ids}
