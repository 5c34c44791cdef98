"""Partial-volume correction benchmarks: speed, peak memory, bias/CoV with realistic noise.

Usage (shared machine: always under ``nice``)::

    nice -n 10 /work/venv/bin/python benchmarks/pvc_bench.py speed      # ~100 regions, 2 mm
    nice -n 10 /work/venv/bin/python benchmarks/pvc_bench.py rss        # 4D RBV peak RSS
    nice -n 10 /work/venv/bin/python benchmarks/pvc_bench.py accuracy   # bias / CoV table

``speed`` and ``rss`` use the simulator's head phantom on a 128×128×96 grid of 2 mm voxels
(the PET grid, identity pose), with cortex, cerebellum and white matter cut into 48 mm cubes
to give ~100 regions. ``accuracy`` renders PET exactly as ``ketpet_bids.sim`` does (labels on
a 1 mm T1w grid, 6 mm FWHM Gaussian blur there, linear sampling at the 2 mm PET voxel
centres) and extracts regions from the 1 mm labels with ``core.tacs.fraction_weights``.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np

from ketpet_bids.core.pvc.psf import psf_from_fwhm
from ketpet_bids.core.pvc.regions import pvc_regions
from ketpet_bids.core.pvc.registry import correct, known_methods, prepare
from ketpet_bids.core.tacs import fraction_weights
from ketpet_bids.sim import phantom
from ketpet_bids.sim.acquisition import FrameRenderer, add_noise

STANDARD_SHAPE = (128, 128, 96)
FWHM = 6.0
UPTAKE = {"caudate": 1.1, "putamen": 1.2, "thalamus": 0.9, "habenula-left": 1.5,
          "habenula-right": 1.5, "cerebellum": 0.8, "brainstem": 0.5, "white-matter": 0.4,
          "csf": 0.05, "skull": 0.1, "scalp": 0.3}
"""Activity relative to cortex (10 kBq/mL) in the accuracy benchmark; cortex 1.0."""


def parcellated_labels(shape=STANDARD_SHAPE, voxel_mm=2.0, cube_mm=48.0) -> np.ndarray:
    """Sim atlas labels with large regions cut into cubes (consecutive labels from 1)."""
    labels = phantom.atlas_labels(phantom.build_labels(shape, voxel_mm)).astype(np.int64)
    cube = (np.indices(shape) * voxel_mm // cube_mm).astype(np.int64)
    cube_id = (cube[0] * 64 + cube[1]) * 64 + cube[2]
    big = np.isin(labels, [phantom.BY_NAME[n].index for n in
                           (*phantom.CORTICAL, "cerebellum", "white-matter")])
    key = np.where(big, labels * 1_000_000 + cube_id, labels * 1_000_000)
    key[labels == 0] = -1
    _, inverse = np.unique(key, return_inverse=True)
    return inverse.reshape(shape).astype(np.int32)  # key −1 (unlabelled) sorts first → 0


def speed() -> None:
    """Per-method time on one standard frame and on a 30-frame series."""
    labels = parcellated_labels()
    affine = phantom.grid_to_phantom(STANDARD_SHAPE, 2.0)
    indices = [int(i) for i in np.unique(labels) if i != 0]
    rng = np.random.default_rng(0)
    truth = np.concatenate([[0.0], rng.uniform(2e3, 2e4, len(indices))]).astype(np.float32)
    psf = psf_from_fwhm(FWHM, affine)
    series = [psf.blur(truth[labels] * s) for s in np.linspace(0.2, 1.5, 30)]
    print(f"grid {STANDARD_SHAPE} 2 mm, {len(indices)} regions, 30 frames, FWHM {FWHM} mm")
    t = time.perf_counter()
    weights = fraction_weights(labels, affine, indices, STANDARD_SHAPE, affine, np.eye(4))
    regions = pvc_regions(weights, [f"r{i}" for i in indices], psf.voxel_mm)
    print(f"fraction maps + background: {time.perf_counter() - t:.2f} s")
    t = time.perf_counter()
    setup = prepare(regions, psf, ["gtm"])
    t_gtm = time.perf_counter() - t
    print(f"transfer matrix (blur each region once): {t_gtm:.2f} s, cond {setup.gtm.condition:.1f}")
    t = time.perf_counter()
    setup = prepare(regions, psf, known_methods())
    print(f"full set-up for all methods: {time.perf_counter() - t:.2f} s")
    print("| method | 1 frame (s, incl. set-up) | 1 frame (s, set-up reused) "
          "| 30 frames (s, incl. set-up) | per frame (s) |")
    print("|---|---|---|---|---|")
    for label in known_methods():
        t = time.perf_counter()
        correct(label, series[:1], setup)
        one = time.perf_counter() - t
        t = time.perf_counter()
        correct(label, series, setup)
        many = time.perf_counter() - t
        shared = t_gtm if setup.gtm is not None and label in ("gtm", "rbv", "mg") else 0.0
        print(f"| {label} | {one + shared:.2f} | {one:.2f} | {many + shared:.1f} "
              f"| {many / 30:.2f} |", flush=True)


_CHILD = """
import os, resource, sys, time
from pathlib import Path
from ketpet_bids.interfaces.pvc import ApplyPVC, PreparePVC
base = Path(sys.argv[1]); os.chdir(base)
t = time.perf_counter()
setup = PreparePVC(pet_file=str(base / "pet.nii.gz"), pet_to_t1w_matrix=str(base / "pose.txt"),
                   dseg=str(base / "dseg.nii.gz"), dseg_tsv=str(base / "dseg.tsv"),
                   methods=["rbv"], psf_fwhm_mm=[6.0]).run().outputs.setup_file
t1 = time.perf_counter()
ApplyPVC(setup_file=setup, pet_file=str(base / "pet.nii.gz"), frame_start=[60.0 * i for i in range(30)],
         frame_duration=[60.0] * 30, method="rbv").run()
t2 = time.perf_counter()
print(f"prepare {t1 - t:.1f} s, rbv 30 frames (read, correct, write .nii.gz) {t2 - t1:.1f} s, "
      f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
"""


def rss() -> None:
    """Peak RSS and time of 4D RBV through the interfaces (child process)."""
    import pandas as pd
    labels = parcellated_labels()
    affine = phantom.grid_to_phantom(STANDARD_SHAPE, 2.0)
    indices = [int(i) for i in np.unique(labels) if i != 0]
    psf = psf_from_fwhm(FWHM, affine)
    truth = np.concatenate([[0.0], np.random.default_rng(0).uniform(2e3, 2e4, len(indices))])
    frame = psf.blur(truth[labels].astype(np.float32))
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        base = Path(tmp)
        nib.save(nib.Nifti1Image(labels.astype(np.int16), affine), base / "dseg.nii.gz")
        pd.DataFrame({"index": indices, "name": [f"r{i}" for i in indices]}).to_csv(
            base / "dseg.tsv", sep="\t", index=False)
        np.savetxt(base / "pose.txt", np.eye(4))
        series = np.stack([frame * s for s in np.linspace(0.2, 1.5, 30)], axis=-1)
        nib.save(nib.Nifti1Image(series.astype(np.float32), affine), base / "pet.nii.gz")
        del series
        print(f"grid {STANDARD_SHAPE} 2 mm, {len(indices)} regions, 30 frames "
              f"({np.prod(STANDARD_SHAPE) * 30 * 4 / 1e6:.0f} MB as float32)")
        out = subprocess.run([sys.executable, "-c", _CHILD, str(base)], capture_output=True,
                             text=True, check=True)
        print(out.stdout.strip())


def accuracy(n_noise: int = 20) -> None:
    """Bias and CoV per region and method: sim-like rendering, realistic noise."""
    t1w_shape, pet_shape = (176, 208, 176), (88, 104, 88)
    labels = phantom.build_labels(t1w_shape, 1.0)
    atlas = phantom.atlas_labels(labels)
    t1w_affine = phantom.grid_to_phantom(t1w_shape, 1.0)
    pet_affine = phantom.grid_to_phantom(pet_shape, 2.0)
    values = np.zeros(max(r.index for r in phantom.REGIONS) + 1)
    for r in phantom.REGIONS:
        values[r.index] = 1e4 * UPTAKE.get(r.name, 1.0)
    renderer = FrameRenderer(labels, t1w_affine, np.eye(4), pet_affine, pet_shape, FWHM)
    clean = renderer.render(values, np.eye(4))
    indices = [r.index for r in phantom.REGIONS if r.in_atlas]
    names = [r.name for r in phantom.REGIONS if r.in_atlas]
    weights = fraction_weights(atlas, t1w_affine, indices, pet_shape, pet_affine, np.eye(4))
    regions = pvc_regions(weights, names, (2.0, 2.0, 2.0))
    truth = values[indices]
    volumes = np.bincount(atlas.ravel(), minlength=len(values))[indices] * 1.0
    _rbv_voxels(regions, clean, truth, prepare(regions, psf_from_fwhm(FWHM, pet_affine),
                                               ["rbv"]))
    rng = np.random.default_rng(1)
    noisy = [add_noise(clean, rng, 3450.0, 300.0, 1.0, 2.0) for _ in range(n_noise)]
    rows = {"none": (np.array([regions.means(clean)]),
                     np.array([regions.means(f) for f in noisy]))}
    for fwhm, tag in ((FWHM, ""), (FWHM * 0.965, " (PSF 3.5 % narrow)")):
        psf = psf_from_fwhm(fwhm, pet_affine)
        setup = prepare(regions, psf, known_methods())
        for label in (known_methods() if not tag else ("gtm", "rbv")):
            rows[label + tag] = (correct(label, [clean], setup).values,
                                 correct(label, noisy, setup).values)
    print(f"T1w 1 mm {t1w_shape}, PET 2 mm {pet_shape}, FWHM {FWHM} mm, {n_noise} noise "
          "draws (sim noise model, 300 s frame at 3450 s: 15 % voxel CoV at 10 kBq/mL)")
    print("bias % noise-free / bias % mean of noisy / CoV % across noisy draws")
    head = " | ".join(rows)
    print(f"| region | mm³ | {head} |")
    print("|---|---|" + "---|" * len(rows))
    for k, name in enumerate(names):
        cells = []
        for clean_v, noisy_v in rows.values():
            b0 = 100 * (clean_v[0, k] / truth[k] - 1)
            b = 100 * (noisy_v[:, k].mean() / truth[k] - 1)
            cov = 100 * noisy_v[:, k].std(ddof=1) / noisy_v[:, k].mean()
            cells.append(f"{b0:+.1f} / {b:+.1f} / {cov:.1f}")
        print(f"| {name} | {volumes[k]:.0f} | " + " | ".join(cells) + " |", flush=True)


def _rbv_voxels(regions, clean, truth, setup) -> None:
    """RBV voxel errors (noise-free) in regions at least 2 × FWHM wide, pure voxels only.

    A region is ≥ 2 × FWHM wide when its pure voxels (fraction ≥ 0.999) include one at
    ≥ FWHM from the region's outside (Euclidean, mm).
    """
    from scipy import ndimage

    images = []
    correct("rbv", [clean], setup, on_frame=images.append)
    fractions = regions.fractions.toarray()
    print("RBV voxel errors, noise-free, pure voxels of regions >= 2 x FWHM wide:")
    print("| region | voxels | uncorrected: within 5 % / p95 abs err | RBV: within 5 % / p95 |")
    print("|---|---|---|---|")
    for k, name in enumerate(np.array(regions.names)[regions.atlas]):
        pure = (fractions[k] >= 0.999).reshape(regions.pet_shape)
        depth = ndimage.distance_transform_edt(pure, sampling=2.0)
        if depth.max() < FWHM:
            continue
        cells = []
        for image in (clean, images[0]):
            err = np.abs(image[pure] / truth[k] - 1)
            cells.append(f"{100 * np.mean(err <= 0.05):.0f} % / {100 * np.quantile(err, 0.95):.1f} %")
        print(f"| {name} | {pure.sum()} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    {"speed": speed, "rss": rss, "accuracy": accuracy}[sys.argv[1]]()
