"""Write the phantom as files (labels, table, mask, pose, 4D PET rendered by the simulator).

The PET frames are rendered by ``ketpet_bids.sim.acquisition.FrameRenderer`` (labels blurred
on the 1 mm grid, 2 mm voxel averages), which the interfaces' spread functions reproduce:
GTM and RBV are then exact. The simulator gives unlabelled space (label 0) no activity.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from pvc_phantom import PET_AFFINE, T1W_AFFINE, TABLE, TRUTH, phantom

from ketpet_bids.sim.acquisition import FrameRenderer

SCALES = (1.0, 0.5, 2.0)  # frame f has activities TRUTH × SCALES[f]


def write_inputs(base: Path) -> dict:
    """Files for ``PreparePVC``/``init_pet_pvc_wf`` and the truth (4D PET of 3 frames)."""
    ph = phantom()
    base.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(ph.labels, T1W_AFFINE), base / "dseg.nii.gz")
    pd.DataFrame({"index": list(TABLE), "name": list(TABLE.values())}).to_csv(
        base / "dseg.tsv", sep="\t", index=False)
    nib.save(nib.Nifti1Image(np.ones(ph.labels.shape, np.uint8), T1W_AFFINE),
             base / "mask.nii.gz")
    np.savetxt(base / "pose.txt", ph.pose)
    renderer = FrameRenderer(ph.labels, T1W_AFFINE, ph.pose, PET_AFFINE, (32, 32, 32), 6.0)
    values = np.append(0.0, TRUTH[:-1])                    # by label; label 0 renders as 0
    frames = np.stack([renderer.render(values * s, np.eye(4)) for s in SCALES], axis=-1)
    nib.save(nib.Nifti1Image(frames, PET_AFFINE), base / "pet.nii.gz")
    return {"files": dict(pet_file=str(base / "pet.nii.gz"), frame_start=[0.0, 60.0, 120.0],
                          frame_duration=[60.0, 60.0, 60.0],
                          pet_to_t1w_matrix=str(base / "pose.txt"),
                          dseg=str(base / "dseg.nii.gz"), dseg_tsv=str(base / "dseg.tsv"),
                          brain_mask=str(base / "mask.nii.gz")),
            "phantom": ph, "frames": frames}


def expected_reference(ph) -> np.ndarray:
    """Whole-brain (all but CSF) truth: T1w-volume-weighted mean of the true values."""
    counts = np.bincount(ph.labels.ravel(), minlength=9)[1:].astype(float)
    counts[list(TABLE.values()).index("csf")] = 0.0
    return np.array([(counts * TRUTH[:-1]).sum() / counts.sum() * s for s in SCALES])
