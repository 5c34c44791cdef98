"""T1w → template SyN (antspyx) on a synthetic template with a known smooth warp.

Template: 36³ at 2 mm, smooth blobs of different intensity, and a label image (the blobs
thresholded), written as NIfTI. Subject: the template sampled through a known warp
φ(x) = x + t + u(x) (2 mm shift, sinusoidal displacement up to 3 mm), i.e. the subject's
tissue at x is the template's at φ(x); its true labels are the template labels at φ(x).
The template labels brought into subject space with the returned ``to_t1w`` transforms must
overlap the true labels (Dice ≥ 0.85 per label; the issue asks ≥ 0.80 for atlas regions;
measured 0.92–0.95, against 0.50–0.80 without registration).
"""

from __future__ import annotations

import nibabel as nib
import numpy as np
from scipy import ndimage

from ketpet_bids.core.anat import register_to_template

SHAPE = (36, 36, 36)
AFFINE = np.array([[2.0, 0, 0, -35], [0, 2, 0, -35], [0, 0, 2, -35], [0, 0, 0, 1]])
BLOBS = [((-12, -8, 0), 9, 1.0), ((12, 6, -4), 8, 0.6), ((0, 14, 10), 7, 0.8),
         ((-2, -14, -12), 6, 0.4)]


def _world() -> np.ndarray:
    ijk = np.indices(SHAPE).reshape(3, -1).T
    return ijk @ AFFINE[:3, :3].T + AFFINE[:3, 3]


def _template() -> tuple[np.ndarray, np.ndarray]:
    xyz = _world()
    image = np.zeros(len(xyz))
    labels = np.zeros(len(xyz), np.int16)
    for k, (centre, radius, value) in enumerate(BLOBS, start=1):
        r = np.linalg.norm(xyz - centre, axis=1)
        image += value / (1 + np.exp((r - radius) / 1.0))
        labels[r <= radius] = k
    head = np.linalg.norm(xyz / [28, 30, 26], axis=1) <= 1
    image += 0.2 * head
    return image.reshape(SHAPE).astype(np.float32), labels.reshape(SHAPE)


def _warp(data: np.ndarray, order: int) -> np.ndarray:
    xyz = _world()
    u = 3.0 * np.sin(2 * np.pi * xyz[:, [1, 2, 0]] / 60.0) + np.array([2.0, -1.0, 0.5])
    vox = (xyz + u - AFFINE[:3, 3]) / 2.0
    return ndimage.map_coordinates(data, vox.T, order=order, mode="constant"
                                   ).reshape(SHAPE).astype(data.dtype)


def test_syn_recovers_known_warp(tmp_path):
    import ants

    template, labels = _template()
    subject, truth = _warp(template, 1), _warp(labels, 0)
    files = {}
    for name, data in (("template", template), ("labels", labels), ("subject", subject)):
        files[name] = tmp_path / f"{name}.nii.gz"
        nib.save(nib.Nifti1Image(data, AFFINE), files[name])
    xfm = register_to_template(files["subject"], None, files["template"], None,
                               tmp_path / "t1w_to_tpl_", seed=1)
    assert all(p.is_file() for p in (*xfm.to_template, *xfm.to_t1w))
    moved = ants.apply_transforms(
        fixed=ants.image_read(str(files["subject"])),
        moving=ants.image_read(str(files["labels"])), transformlist=[str(p) for p in xfm.to_t1w],
        whichtoinvert=[True, False], interpolator="nearestNeighbor").numpy()
    for k in range(1, len(BLOBS) + 1):
        a, b = moved == k, truth == k
        dice = 2 * (a & b).sum() / (a.sum() + b.sum())
        unregistered = 2 * ((labels == k) & b).sum() / ((labels == k).sum() + b.sum())
        assert dice >= 0.85 and dice > unregistered, (k, dice, unregistered)
