"""Benchmark: T1w → template SyN (``core.anat.register_to_template``) on a 1 mm T1w.

Template: the simulator's phantom at 1 mm (176×216×176, standard size) as a T1w-contrast
image with its brain mask; subject: the same anatomy through a known smooth warp (3 mm
sinusoidal displacement, 2 mm shift) with 2% noise. Reports wall time of ``SyN`` and
``SyNQuick`` and the Dice of the phantom's regions (≥ 1 cm³) brought back into subject space
against the truth. Goal (issue 4): SyN ≤ 3 min on 2 cores.

    ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS=2 nice -n 10 python benchmarks/anat_syn.py OUT_DIR
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from ketpet_bids.core.anat import register_to_template
from ketpet_bids.sim.phantom import REGIONS, atlas_labels, build_labels, t1w_image

SHAPE = (176, 216, 176)


def _warp(data: np.ndarray, affine: np.ndarray, order: int) -> np.ndarray:
    ijk = np.indices(data.shape, dtype=np.float32).reshape(3, -1)
    xyz = affine[:3, :3] @ ijk + affine[:3, 3:4]
    u = 3.0 * np.sin(2 * np.pi * xyz[[1, 2, 0]] / 80.0) + np.array([[2.0], [-1.0], [0.5]])
    vox = np.linalg.inv(affine[:3, :3]) @ (xyz + u - affine[:3, 3:4])
    return ndimage.map_coordinates(data, vox, order=order, mode="constant"
                                   ).reshape(data.shape).astype(data.dtype)


def main(out: Path) -> None:
    import ants

    out.mkdir(parents=True, exist_ok=True)
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    affine[:3, 3] = -(np.array(SHAPE) - 1) / 2
    labels = build_labels(SHAPE, 1.0)
    rng = np.random.default_rng(1)
    template = t1w_image(labels, rng, 0.0)
    atlas = atlas_labels(labels)
    subject = t1w_image(_warp(labels, affine, 0), rng, 0.02)
    truth = _warp(atlas, affine, 0)
    files = {}
    for name, data in (("template", template), ("template_mask", (atlas > 0).astype(np.uint8)),
                       ("atlas", atlas), ("subject", subject)):
        files[name] = out / f"{name}.nii.gz"
        nib.save(nib.Nifti1Image(data, affine), files[name])
    for quick in (False, True):
        start = time.perf_counter()
        xfm = register_to_template(files["subject"], None, files["template"],
                                   files["template_mask"], out / f"quick{quick}_", seed=1,
                                   quick=quick)
        seconds = time.perf_counter() - start
        moved = ants.apply_transforms(
            fixed=ants.image_read(str(files["subject"])),
            moving=ants.image_read(str(files["atlas"])),
            transformlist=[str(p) for p in xfm.to_t1w], whichtoinvert=[True, False],
            interpolator="nearestNeighbor").numpy()
        dice = {}
        for region in REGIONS:
            b = truth == region.index
            if region.in_atlas and b.sum() >= 1000:
                a = moved == region.index
                dice[region.name] = 2 * (a & b).sum() / (a.sum() + b.sum())
        print(f"{'SyNQuick' if quick else 'SyN'}: {seconds:.0f} s; Dice min "
              f"{min(dice.values()):.3f} ({min(dice, key=dice.get)}), median "
              f"{np.median(list(dice.values())):.3f}", flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
