"""Partial-volume correction benchmarks: speed, peak memory, bias/CoV with realistic noise.

Usage (shared machine: always under ``nice``)::

    nice -n 19 /work/venv/bin/python benchmarks/pvc_bench.py speed      # ~125 regions, 2 mm
    nice -n 19 /work/venv/bin/python benchmarks/pvc_bench.py rss        # 4D RBV peak RSS
    nice -n 19 /work/venv/bin/python benchmarks/pvc_bench.py accuracy   # bias / CoV table

All cases use the simulator's standard geometry: labels on the 1 mm T1w grid
(176×216×176), PET on 128×128×90 voxels of 2 mm, identity pose, FWHM 6 mm, and the
pipeline's region set-up (``core.pvc.spread.regions_from_labels``: atlas fractions,
background shells, spread functions blurred on the T1w grid). ``speed`` and ``rss`` cut
cortex, cerebellum and white matter into 48 mm cubes (~125 regions). ``accuracy`` renders PET
exactly as ``ketpet_bids.sim`` does (``FrameRenderer``: 1 mm labels blurred there, averaged
over 2×2×2 sub-voxels of each PET voxel) with the simulator's noise model.

BLAS runs one thread, as in the pipeline (``ketpet-bids`` sets ``OMP_NUM_THREADS`` to
``--omp-nthreads``, default 1, before numpy loads; the container sets it to 1): with two
OpenBLAS threads on this loaded 2-core machine each 128×128 SVD of the set-up took ~1.6 s
instead of ~5 ms (threads waiting for each other).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402

from ketpet_bids.core.pvc.psf import psf_from_fwhm  # noqa: E402
from ketpet_bids.core.pvc.regions import shell_rows  # noqa: E402
from ketpet_bids.core.pvc.registry import correct, known_methods, prepare  # noqa: E402
from ketpet_bids.core.pvc.spread import regions_from_labels, spread_from_labels  # noqa: E402
from ketpet_bids.sim import phantom  # noqa: E402
from ketpet_bids.sim.acquisition import SIZES, FrameRenderer, add_noise  # noqa: E402

GEOMETRY = SIZES["standard"]
T1W_SHAPE, PET_SHAPE = GEOMETRY.t1w_shape, GEOMETRY.pet_shape
T1W_AFFINE = phantom.grid_to_phantom(T1W_SHAPE, 1.0)
PET_AFFINE = phantom.grid_to_phantom(PET_SHAPE, 2.0)
FWHM = 6.0
UPTAKE = {"caudate": 1.1, "putamen": 1.2, "thalamus": 0.9, "habenula-left": 1.5,
          "habenula-right": 1.5, "cerebellum": 0.8, "brainstem": 0.5, "white-matter": 0.4,
          "csf": 0.05, "skull": 0.1, "scalp": 0.3}
"""Activity relative to cortex (10 kBq/mL) in the accuracy benchmark; cortex 1.0."""


def parcellated_labels(cube_mm=48.0) -> np.ndarray:
    """Sim atlas labels (1 mm) with large regions cut into cubes (consecutive labels from 1)."""
    labels = phantom.atlas_labels(phantom.build_labels(T1W_SHAPE, 1.0)).astype(np.int64)
    cube = (np.indices(T1W_SHAPE) // cube_mm).astype(np.int64)
    cube_id = (cube[0] * 64 + cube[1]) * 64 + cube[2]
    big = np.isin(labels, [phantom.BY_NAME[n].index for n in
                           (*phantom.CORTICAL, "cerebellum", "white-matter")])
    key = np.where(big, labels * 1_000_000 + cube_id, labels * 1_000_000)
    key[labels == 0] = -1
    _, inverse = np.unique(key, return_inverse=True)
    return inverse.reshape(T1W_SHAPE).astype(np.int32)  # key −1 (unlabelled) sorts first → 0


def _frame(labels: np.ndarray, values: np.ndarray) -> np.ndarray:
    """One noise-free standard frame rendered by the simulator (values per label)."""
    renderer = FrameRenderer(labels, T1W_AFFINE, np.eye(4), PET_AFFINE, PET_SHAPE, FWHM)
    return renderer.render(values, np.eye(4))


def speed() -> None:
    """Per-method time on one standard frame and on a 30-frame series."""
    labels = parcellated_labels()
    indices = [int(i) for i in np.unique(labels) if i != 0]
    names = [f"r{i}" for i in indices]
    truth = np.concatenate([[0.0], np.random.default_rng(0).uniform(2e3, 2e4, len(indices))])
    frame = _frame(labels, truth)
    series = [frame * s for s in np.linspace(0.2, 1.5, 30)]
    psf = psf_from_fwhm(FWHM, PET_AFFINE)
    print(f"T1w {T1W_SHAPE} 1 mm, PET {PET_SHAPE} 2 mm, {len(indices)} regions, 30 frames, "
          f"FWHM {FWHM} mm")
    t = time.perf_counter()
    regions, _ = regions_from_labels(labels, T1W_AFFINE, indices, names, PET_SHAPE,
                                     PET_AFFINE, np.eye(4), None)
    print(f"fraction maps + background shells: {time.perf_counter() - t:.2f} s")
    rows, _ = shell_rows(labels, indices, (1.0, 1.0, 1.0))
    t = time.perf_counter()
    spread_from_labels(rows, len(regions.names), T1W_AFFINE, PET_SHAPE, PET_AFFINE,
                       np.eye(4), psf, threads=2)
    print(f"spread functions, 2 threads: {time.perf_counter() - t:.2f} s")
    t = time.perf_counter()
    spread = spread_from_labels(rows, len(regions.names), T1W_AFFINE, PET_SHAPE, PET_AFFINE,
                                np.eye(4), psf)
    t_spread = time.perf_counter() - t
    print(f"spread functions (each region blurred once on the T1w grid), 1 thread: "
          f"{t_spread:.2f} s, {spread.nnz / 1e6:.1f} M non-zeros "
          f"({spread.data.nbytes * 2 / 1e6:.0f} MB)")
    t = time.perf_counter()
    setup = prepare(regions, psf, known_methods(), spread)
    t_setup = time.perf_counter() - t
    print(f"rest of the set-up for all methods (G, F⁻¹, GM map): {t_setup:.2f} s, "
          f"cond {setup.gtm.condition:.1f}")
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
        shared = t_spread + t_setup if label in ("gtm", "rbv", "mg", "iy") else 0.0
        print(f"| {label} | {one + shared:.2f} | {one:.2f} | {many + shared:.1f} "
              f"| {many / 30:.2f} |", flush=True)


_CHILD = """
import os, resource, sys, time
from pathlib import Path  # noqa: E402
from ketpet_bids.interfaces.pvc import ApplyPVC, PreparePVC  # noqa: E402
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
    indices = [int(i) for i in np.unique(labels) if i != 0]
    truth = np.concatenate([[0.0], np.random.default_rng(0).uniform(2e3, 2e4, len(indices))])
    frame = _frame(labels, truth)
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        base = Path(tmp)
        nib.save(nib.Nifti1Image(labels.astype(np.int16), T1W_AFFINE), base / "dseg.nii.gz")
        pd.DataFrame({"index": indices, "name": [f"r{i}" for i in indices]}).to_csv(
            base / "dseg.tsv", sep="\t", index=False)
        np.savetxt(base / "pose.txt", np.eye(4))
        series = np.stack([frame * s for s in np.linspace(0.2, 1.5, 30)], axis=-1)
        nib.save(nib.Nifti1Image(series.astype(np.float32), PET_AFFINE), base / "pet.nii.gz")
        del series
        print(f"T1w {T1W_SHAPE} 1 mm, PET {PET_SHAPE} 2 mm, {len(indices)} regions, 30 frames "
              f"({np.prod(PET_SHAPE) * 30 * 4 / 1e6:.0f} MB as float32)")
        out = subprocess.run([sys.executable, "-c", _CHILD, str(base)], capture_output=True,
                             text=True, check=True)
        print(out.stdout.strip())


def accuracy(n_noise: int = 20) -> None:
    """Bias and CoV per region and method: the simulator's rendering, realistic noise."""
    labels = phantom.build_labels(T1W_SHAPE, 1.0)
    atlas = phantom.atlas_labels(labels)
    values = np.zeros(max(r.index for r in phantom.REGIONS) + 1)
    for r in phantom.REGIONS:
        values[r.index] = 1e4 * UPTAKE.get(r.name, 1.0)
    clean = _frame(labels, values)
    indices = [r.index for r in phantom.REGIONS if r.in_atlas]
    names = [r.name for r in phantom.REGIONS if r.in_atlas]
    psf = psf_from_fwhm(FWHM, PET_AFFINE)
    regions, spread = regions_from_labels(atlas, T1W_AFFINE, indices, names, PET_SHAPE,
                                          PET_AFFINE, np.eye(4), psf)
    truth = values[indices]
    volumes = np.bincount(atlas.ravel(), minlength=len(values))[indices] * 1.0
    _rbv_voxels(regions, clean, truth, prepare(regions, psf, ["rbv"], spread))
    rng = np.random.default_rng(1)
    noisy = [add_noise(clean, rng, 3450.0, 300.0, 1.0, 2.0) for _ in range(n_noise)]
    rows = {"none": (np.array([regions.means(clean)]),
                     np.array([regions.means(f) for f in noisy]))}
    narrow = psf_from_fwhm(FWHM * 0.965, PET_AFFINE)
    for tag, setup, labels_run in (
            ("", prepare(regions, psf, known_methods(), spread), known_methods()),
            (" (PET-grid blur)", prepare(regions, psf, ["gtm", "rbv"]), ("gtm", "rbv")),
            (" (PSF 3.5 % narrow, PET grid)", prepare(regions, narrow, ["gtm", "rbv"]),
             ("gtm", "rbv"))):
        for label in labels_run:
            rows[label + tag] = (correct(label, [clean], setup).values,
                                 correct(label, noisy, setup).values)
    print(f"T1w 1 mm {T1W_SHAPE}, PET 2 mm {PET_SHAPE}, FWHM {FWHM} mm, {n_noise} noise "
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
